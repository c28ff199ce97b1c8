// Flakes with inputs, from the language server over stdio against the real Nix of this machine:
// evaluated through flake.lock offline, each output's diagnostic on the attribute that defines it,
// inputs that are not locked or not fetched reported (with the command that fixes them) instead
// of being fetched, and evaluated again when an input or flake.lock changes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient, type Diagnostic } from './lspClient';
import { nixCommand } from './nixUnderTest';

const ERROR = 1;
const INFORMATION = 3;

let dir: string;
let client: StdioLspClient;
let env: NodeJS.ProcessEnv;

/** `nix …` with flakes, offline, as a user would run it in `cwd`. */
const nix = (cwd: string, ...args: string[]) =>
  execFileSync(nixCommand('nix'), ['--extra-experimental-features', 'nix-command flakes', '--offline', ...args], { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** A flake input of our own: `lib.mk name system [features]` makes a derivation; `lib.version` is what its file says. */
async function makeInput(name: string, version = '1'): Promise<string> {
  const folder = path.join(dir, name);
  await mkdir(folder, { recursive: true });
  await writeFile(
    path.join(folder, 'flake.nix'),
    `{ outputs = { self }: { lib.version = "${version}"; lib.mk = name: system: features: derivation { inherit name system; builder = "/bin/sh"; args = [ "-c" ": > $out" ]; requiredSystemFeatures = features; }; }; }\n`,
  );
  return folder;
}

async function makeFlake(name: string, text: string): Promise<{ folder: string; file: string; uri: string }> {
  const folder = path.join(dir, name);
  await mkdir(folder, { recursive: true });
  const file = path.join(folder, 'flake.nix');
  await writeFile(file, text);
  return { folder, file, uri: pathToFileURL(file).href };
}

const byPath = (ds: Diagnostic[]) =>
  ds.map((d) => [d.code, (d.data as { attrPath?: string[] } | undefined)?.attrPath?.join('.'), d.range.start.line, d.severity]).sort((a, b) => String(a[1]).localeCompare(String(b[1])));

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-flake-'));
  const machines = path.join(dir, 'machines');
  await writeFile(machines, 'ssh://b1 x86_64-linux - 1 1 kvm\n');
  // This machine: x86_64-linux without kvm, no substituters; one builder with kvm.
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'extra-platforms =', 'system-features = big-parallel', `builders = @${machines}`, ''].join('\n'));
  env = { ...process.env, NIX_CONF_DIR: dir };
  client = new StdioLspClient();
  await client.initialize({ settings: { env: { NIX_CONF_DIR: dir }, evaluation: { timeoutSeconds: 60 } } });
});

after(async () => {
  await client.shutdown();
  await rm(dir, { recursive: true, force: true });
});

test('a flake with a locked path: input: each system its outputs declare is diagnosed, the derivations are the ones nix builds, flake.lock stays as it is', async () => {
  const input = await makeInput('lib-a');
  const { folder, uri } = await makeFlake(
    'locked',
    [
      '{',
      `  inputs.mylib.url = "path:${input}";`,
      '  outputs = { self, mylib }: {',
      '    packages.aarch64-linux.foo = mylib.lib.mk "foo" "aarch64-linux" [ ];',
            // What self and the input carry (their source's metadata) is part of the derivation, as in nix build.
      '    packages.x86_64-linux.bar = mylib.lib.mk "bar-${self.lastModifiedDate}-${mylib.lastModifiedDate}-${builtins.substring 0 10 mylib.narHash}" "x86_64-linux" [ ];',
      '    packages.x86_64-linux.vm = mylib.lib.mk "vm" "x86_64-linux" [ "kvm" ];',
      '  };',
      '}',
      '',
    ].join('\n'),
  );
  nix(folder, 'flake', 'lock');
  const lock = await readFile(path.join(folder, 'flake.lock'), 'utf8');
  client.open(uri, await readFile(path.join(folder, 'flake.nix'), 'utf8'));
  const ds = await client.diagnostics(uri);
  assert.deepEqual(byPath(ds), [
    ['no-builder-system', 'packages.aarch64-linux.foo', 3, ERROR],
    ['remote-only', 'packages.x86_64-linux.vm', 5, INFORMATION],
  ]);
  const foo = ds.find((d) => d.code === 'no-builder-system') as Diagnostic;
  assert.match(foo.message, /^requires aarch64-linux: no builder provides it/);
  assert.deepEqual(foo.range, { start: { line: 3, character: 4 }, end: { line: 3, character: 4 + 'packages.aarch64-linux.foo'.length } });
  assert.match((ds.find((d) => d.code === 'remote-only') as Diagnostic).message, /^builds on b1/);
  // bar builds here: no diagnostic, and its derivation is exactly the one `nix build .#…bar` builds.
  const listing = await client.request<{ state: string; derivations: Array<{ attrPath: string[]; drvPath: string; line?: number }> }>('nixBuilders/derivations', { uri });
  const bar = listing.derivations.find((d) => d.attrPath.join('.') === 'packages.x86_64-linux.bar');
  assert.equal(bar?.line, 4);
  assert.equal(bar?.drvPath, JSON.parse(nix(folder, 'eval', '--json', '--no-write-lock-file', '.#packages.x86_64-linux.bar.drvPath')));
  assert.equal(await readFile(path.join(folder, 'flake.lock'), 'utf8'), lock, 'flake.lock is never written');
});

test('outputs made by helpers (forAllSystems, genAttrs-like listToAttrs, imports): each diagnostic on the attribute the file writes, else the nearest one', async () => {
  const input = await makeInput('lib-b');
  const { folder, uri } = await makeFlake(
    'helpers',
    [
      '{',
      `  inputs.mylib.url = "path:${input}";`,
      '  outputs = { self, mylib }:',
      '    let',
      '      forAllSystems = f: builtins.listToAttrs (map (system: { name = system; value = f system; }) [ "x86_64-linux" "riscv64-linux" ]);',
      '    in {',
      '      checks = forAllSystems (system: {',
      '        unit = mylib.lib.mk "unit" system [ ];',
      '      });',
      '      devShells = forAllSystems (system: import ./shells.nix { inherit mylib system; });',
      '      apps.x86_64-linux.tool = { type = "app"; program = "${self.checks.riscv64-linux.unit}/bin/tool"; };',
      '      apps.x86_64-linux.sh = { type = "app"; program = "/bin/sh"; };',
      '      apps.riscv64-linux.notAnApp = mylib.lib.mk "x" "riscv64-linux" [ ];',
      '      legacyPackages = forAllSystems (system: import ./shells.nix { inherit mylib system; } // {',
      '        named = mylib.lib.mk "named" system [ ];',
      '      });',
      '    };',
      '}',
      '',
    ].join('\n'),
  );
  await writeFile(path.join(folder, 'shells.nix'), '{ mylib, system }: { default = mylib.lib.mk "shell" system [ ]; }\n');
  nix(folder, 'flake', 'lock');
  client.open(uri, await readFile(path.join(folder, 'flake.nix'), 'utf8'));
  const ds = await client.diagnostics(uri);
  // legacyPackages.<system>.default comes from shells.nix, not named by flake.nix: not evaluated.
  assert.deepEqual(byPath(ds), [
    ['attribute-error', 'apps.riscv64-linux.notAnApp', 12, 2],
    ['no-builder-system', 'apps.x86_64-linux.tool', 10, ERROR],
    ['no-builder-system', 'checks.riscv64-linux.unit', 7, ERROR],
    ['no-builder-system', 'devShells.riscv64-linux.default', 9, ERROR],
    ['no-builder-system', 'legacyPackages.riscv64-linux.named', 14, ERROR],
  ]);
  assert.match((ds[0] as Diagnostic).message, /^apps\.riscv64-linux\.notAnApp: not an app \(an attribute set whose program is a string\)$/);
  const unit = ds.find((d) => (d.data as { attrPath: string[] }).attrPath[0] === 'checks') as Diagnostic;
  assert.deepEqual(unit.range, { start: { line: 7, character: 8 }, end: { line: 7, character: 12 } });
  const shells = ds.find((d) => (d.data as { attrPath: string[] }).attrPath[0] === 'devShells') as Diagnostic;
  assert.deepEqual(shells.range, { start: { line: 9, character: 6 }, end: { line: 9, character: 15 } });
  // An app is the derivation that builds its program; one whose program no derivation builds (/bin/sh) needs no builder.
  const listing = await client.request<{ derivations: Array<{ attrPath: string[]; drvPath: string }> }>('nixBuilders/derivations', { uri });
  const drvOf = (p: string) => listing.derivations.find((d) => d.attrPath.join('.') === p)?.drvPath;
  assert.ok(drvOf('checks.riscv64-linux.unit'));
  assert.equal(drvOf('apps.x86_64-linux.tool'), drvOf('checks.riscv64-linux.unit'));
  assert.equal(drvOf('apps.x86_64-linux.sh'), undefined);
  assert.equal(drvOf('legacyPackages.x86_64-linux.default'), undefined);
});

test('an input that is not in flake.lock: not fetched, a diagnostic on its line with the command, and a code action that runs it', async () => {
  const input = await makeInput('lib-c');
  const extra = await makeInput('lib-extra');
  const { folder, uri, file } = await makeFlake(
    'unlocked',
    ['{', `  inputs.mylib.url = "path:${input}";`, '  outputs = { self, mylib }: { packages.aarch64-linux.foo = mylib.lib.mk "foo" "aarch64-linux" [ ]; };', '}', ''].join('\n'),
  );
  nix(folder, 'flake', 'lock');
  const lock = await readFile(path.join(folder, 'flake.lock'), 'utf8');
  // A new input, not locked yet.
  const text = ['{', `  inputs.mylib.url = "path:${input}";`, `  inputs.extra = { url = "path:${extra}"; };`, '  outputs = { self, mylib, extra }: { packages.aarch64-linux.foo = mylib.lib.mk "foo" "aarch64-linux" [ ]; };', '}', ''].join('\n');
  await writeFile(file, text);
  client.open(uri, text);
  const ds = await client.diagnostics(uri);
  assert.deepEqual(byPath(ds), [['flake-input-not-locked', 'extra', 2, 2]]);
  const d = ds[0] as Diagnostic;
  assert.match(d.message, /^Input extra is not in flake\.lock: .*\nFix: run nix flake lock in /s);
  const actions = await client.request<Array<{ title: string; command: { command: string; arguments: unknown[] } }>>('textDocument/codeAction', {
    textDocument: { uri },
    range: d.range,
    context: { diagnostics: [d] },
  });
  assert.deepEqual(
    actions.map((a) => [a.title, a.command.command, a.command.arguments]),
    [['Run nix flake lock', 'nixBuilders.server.fixFlake', [{ dir: folder, action: 'lock' }]]],
  );
  assert.equal(await readFile(path.join(folder, 'flake.lock'), 'utf8'), lock, 'flake.lock is never written');
  // The code action's command, as any editor runs it: the server asks first; declined, nothing is written.
  const asked: string[] = [];
  const answering = (title: string) => (p: unknown) => {
    asked.push((p as { message: string }).message);
    return { title };
  };
  client.answers.set('window/showMessageRequest', answering('Cancel'));
  const command = actions[0]!.command;
  const declined = await client.request<{ status: string; command: string }>('workspace/executeCommand', { command: command.command, arguments: command.arguments });
  assert.deepEqual([declined.status, declined.command], ['not-started', 'nix flake lock']);
  assert.match(asked[0] ?? '', /^Run nix flake lock in .*\? It may download inputs, and it writes flake\.lock\.$/);
  assert.equal(await readFile(path.join(folder, 'flake.lock'), 'utf8'), lock);
  // Agreed: Nix locks the new input, and the diagnostics follow the new flake.lock.
  client.answers.set('window/showMessageRequest', answering('Run'));
  const ran = await client.request<{ status: string; message?: string }>('workspace/executeCommand', { command: command.command, arguments: command.arguments });
  assert.equal(ran.status, 'ok', ran.message);
  assert.match(await readFile(path.join(folder, 'flake.lock'), 'utf8'), /"extra"/);
  await client.waitForNotification((m) => m.method === 'textDocument/publishDiagnostics' && (m.params as { uri: string }).uri === uri && !JSON.stringify(m.params).includes('flake-input-not-locked'), 60_000);
  client.answers.delete('window/showMessageRequest');
  // A command line the client makes up is refused: the server makes it from the action.
  await assert.rejects(client.request('workspace/executeCommand', { command: command.command, arguments: [{ dir: folder, action: 'update-input', input: '--option' }] }), /"input" must be an input's name/);
});

test('a locked input that is not in the store is not downloaded: the diagnostic says nix flake archive', async () => {
  const { folder, uri } = await makeFlake(
    'unfetched',
    ['{', '  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";', '  outputs = { self, nixpkgs }: { packages.x86_64-linux.hello = nixpkgs.legacyPackages.x86_64-linux.hello; };', '}', ''].join('\n'),
  );
  // As `nix flake lock` writes it, for a source that was never fetched here (a hash of nothing in this store).
  const narHash = `sha256-${Buffer.alloc(32, 7).toString('base64')}`;
  await writeFile(
    path.join(folder, 'flake.lock'),
    JSON.stringify({
      nodes: {
        nixpkgs: {
          locked: { lastModified: 1700000000, narHash, owner: 'NixOS', repo: 'nixpkgs', rev: '0'.repeat(40), type: 'github' },
          original: { owner: 'NixOS', ref: 'nixos-unstable', repo: 'nixpkgs', type: 'github' },
        },
        root: { inputs: { nixpkgs: 'nixpkgs' } },
      },
      root: 'root',
      version: 7,
    }),
  );
  client.open(uri, await readFile(path.join(folder, 'flake.nix'), 'utf8'));
  const ds = await client.diagnostics(uri);
  assert.deepEqual(byPath(ds), [['flake-input-not-fetched', 'nixpkgs', 1, 2]]);
  assert.match((ds[0] as Diagnostic).message, /not in the Nix store.*\nFix: run nix flake archive in /s);
});

test("editing a path: input's file evaluates the flake again: Nix keeps the pinned copy until flake.lock is updated, and an update of flake.lock evaluates again", async () => {
  const input = await makeInput('lib-d', '1');
  const { folder, uri } = await makeFlake(
    'edited',
    [
      '{',
      `  inputs.mylib.url = "path:${input}";`,
      '  outputs = { self, mylib }: {',
      '    packages.x86_64-linux.v = mylib.lib.mk "v${mylib.lib.version}" (if mylib.lib.version == "1" then "x86_64-linux" else "aarch64-linux") [ ];',
      '  };',
      '}',
      '',
    ].join('\n'),
  );
  nix(folder, 'flake', 'lock');
  client.open(uri, await readFile(path.join(folder, 'flake.nix'), 'utf8'));
  assert.deepEqual(byPath(await client.diagnostics(uri)), []);
  await makeInput('lib-d', '2');
  // The server watches the input's files itself (the client here reports no file changes).
  const changed = await client.diagnostics(uri, (ds) => ds.length > 0);
  assert.deepEqual(byPath(changed), [['flake-input-changed', 'mylib', 1, INFORMATION]]);
  assert.match((changed[0] as Diagnostic).message, /\nFix: run nix flake lock --update-input mylib in /);
  nix(folder, 'flake', 'lock', '--update-input', 'mylib');
  const relocked = await client.diagnostics(uri, (ds) => ds.some((d) => d.code === 'no-builder-system'));
  assert.deepEqual(byPath(relocked), [['no-builder-system', 'packages.x86_64-linux.v', 3, ERROR]]);
});

test('a flake.nix that git does not track is invisible to Nix: said so, with the fix', async () => {
  const { folder, uri } = await makeFlake('repo/sub', '{ outputs = { self }: { packages.aarch64-linux.foo = derivation { name = "foo"; system = "aarch64-linux"; builder = "/bin/sh"; }; }; }\n');
  const repo = path.dirname(folder);
  execFileSync('git', ['init', '-q', repo]);
  await writeFile(path.join(repo, 'README'), 'tracked\n');
  execFileSync('git', ['-C', repo, 'add', 'README']);
  client.open(uri, await readFile(path.join(folder, 'flake.nix'), 'utf8'));
  const ds = await client.diagnostics(uri);
  assert.deepEqual(byPath(ds), [['flake-untracked', '', 0, 2]]);
  assert.match((ds[0] as Diagnostic).message, /not tracked by git .*\nFix: git add flake\.nix/s);
  // Tracking it changes git's index, which the server watches: evaluated again.
  execFileSync('git', ['-C', repo, 'add', '--intent-to-add', 'sub/flake.nix']);
  const tracked = await client.diagnostics(uri, (ds) => ds.some((d) => d.code === 'no-builder-system'));
  assert.deepEqual(byPath(tracked), [['no-builder-system', 'packages.aarch64-linux.foo', 0, ERROR]]);
});

test('in a git repository Nix sees only tracked files: an untracked flake.lock leaves the inputs unlocked, tracking it evaluates again', async () => {
  const input = await makeInput('lib-git');
  const { folder, uri } = await makeFlake(
    'gitrepo',
    ['{', `  inputs.mylib.url = "path:${input}";`, '  outputs = { self, mylib }: { packages.aarch64-linux.foo = mylib.lib.mk "foo" "aarch64-linux" [ ]; };', '}', ''].join('\n'),
  );
  // Locked before the folder is a git repository: in one, Nix adds the lock file it writes to
  // git's index (2.26 runs git for that, which its root does not have).
  nix(folder, 'flake', 'lock');
  execFileSync('git', ['init', '-q', folder]);
  execFileSync('git', ['-C', folder, 'add', 'flake.nix']);
  client.open(uri, await readFile(path.join(folder, 'flake.nix'), 'utf8'));
  const ds = await client.diagnostics(uri);
  assert.deepEqual(byPath(ds), [['flake-input-not-locked', 'mylib', 1, 2]]);
  assert.match((ds[0] as Diagnostic).message, /flake\.lock exists but git does not track it, so Nix does not see it: git add flake\.lock/);
  execFileSync('git', ['-C', folder, 'add', 'flake.lock']);
  const tracked = await client.diagnostics(uri, (d) => d.some((x) => x.code === 'no-builder-system'));
  assert.deepEqual(byPath(tracked), [['no-builder-system', 'packages.aarch64-linux.foo', 2, ERROR]]);
});

test('a file the flake imports that git does not track: nix build would not find it, said on the line that names it', async () => {
  const { folder, uri } = await makeFlake(
    'gitimport',
    ['{', '  outputs = { self }: {', '    packages = import ./pkgs.nix;', '  };', '}', ''].join('\n'),
  );
  await writeFile(path.join(folder, 'pkgs.nix'), '{ aarch64-linux.foo = derivation { name = "foo"; system = "aarch64-linux"; builder = "/bin/sh"; }; }\n');
  execFileSync('git', ['init', '-q', folder]);
  execFileSync('git', ['-C', folder, 'add', 'flake.nix']);
  client.open(uri, await readFile(path.join(folder, 'flake.nix'), 'utf8'));
  const ds = await client.diagnostics(uri);
  assert.deepEqual(byPath(ds), [
    ['flake-untracked', '', 2, 2],
    ['no-builder-system', 'packages.aarch64-linux.foo', 2, ERROR],
  ]);
  const untracked = ds.find((d) => d.code === 'flake-untracked') as Diagnostic;
  assert.deepEqual(untracked.range, { start: { line: 2, character: 22 }, end: { line: 2, character: 32 } });
  assert.match(untracked.message, /^pkgs\.nix is not tracked by git .*\nFix: git add pkgs\.nix\.$/s);
  execFileSync('git', ['-C', folder, 'add', 'pkgs.nix']);
  const tracked = await client.diagnostics(uri, (d) => !d.some((x) => x.code === 'flake-untracked'));
  assert.deepEqual(byPath(tracked), [['no-builder-system', 'packages.aarch64-linux.foo', 2, ERROR]]);
});

test('a flake.nix not saved yet: Nix takes a flake from its folder, so it is checked once saved', async () => {
  const folder = path.join(dir, 'unsaved');
  await mkdir(folder);
  const file = path.join(folder, 'flake.nix');
  const uri = pathToFileURL(file).href;
  const text = '{ outputs = { self }: { packages.aarch64-linux.foo = derivation { name = "foo"; system = "aarch64-linux"; builder = "/bin/sh"; }; }; }\n';
  client.open(uri, text);
  assert.deepEqual(byPath(await client.diagnostics(uri)), [['flake-untracked', '', 0, INFORMATION]]);
  await writeFile(file, text);
  const saved = await client.diagnostics(uri, (ds) => ds.some((d) => d.code === 'no-builder-system'));
  assert.deepEqual(byPath(saved), [['no-builder-system', 'packages.aarch64-linux.foo', 0, ERROR]]);
});
