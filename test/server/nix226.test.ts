// The language server's Nix layer against real Nix 2.26.3 (Debian 13's nix-bin): nixBuilders.nixBinDir
// is the folder of wrappers that scripts/ensure-nix.sh makes, which run 2.26 in a Debian 13 root
// with its own /nix. Skips, saying why, when that root cannot be made here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { nix226 } from '../lab/nix226';
import { StdioLspClient, type Message } from './lspClient';

const found = nix226();
const skip = found.skip;
const bin = found.skip === undefined ? found.bin : '';
/** Host path of the 2.26 root's /nix/store. */
const rootStore = found.skip === undefined ? path.join(found.dir, 'root', 'nix', 'store') : '';

let dir: string;
let client: StdioLspClient;

const drv = (name: string, system: string, salt: string) =>
  `derivation { name = "${name}"; system = "${system}"; builder = "/bin/sh"; args = [ "-c" "echo built > $out" ]; salt = "${salt}"; }`;

async function openFile(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  client.open(uri, text);
  return uri;
}

before(async () => {
  if (skip) return;
  // Under os.tmpdir(): the wrappers bind-mount /tmp, so the paths the server passes resolve the same.
  dir = await mkdtemp(path.join(tmpdir(), 'nb-nix226-'));
  await mkdir(path.join(dir, 'src'));
  const machines = path.join(dir, 'machines');
  await writeFile(machines, '# test builders\nssh://b1 x86_64-linux - 1 1 kvm\n');
  await writeFile(
    path.join(dir, 'nix.conf'),
    ['build-users-group =', 'substituters =', 'sandbox = false', 'extra-platforms =', 'system-features = big-parallel nixos-test', `builders = @${machines}`, ''].join('\n'),
  );
  client = new StdioLspClient();
  await client.initialize({ settings: { nixBinDir: bin, env: { NIX_CONF_DIR: dir }, evaluation: { timeoutSeconds: 30 } } });
});

after(async () => {
  if (skip) return;
  await client.shutdown();
  await rm(dir, { recursive: true, force: true });
});

test('version detection: the server reports Nix 2.26.3', { skip }, async () => {
  const status = await client.request<{ version?: string; problem?: string }>('nixBuilders/status');
  assert.equal(status.problem, undefined);
  assert.equal(status.version, '2.26.3');
});

test('`nix config show` (2.20+): the local machine and the builders as 2.26 reads its configuration', { skip }, async () => {
  const listing = await client.request<{ local?: { system: string; systemFeatures: string[]; extraPlatforms: string[] }; builders: unknown[] }>('nixBuilders/listBuilders');
  assert.deepEqual(listing.local && { ...listing.local, substituters: undefined }, {
    ...listing.local,
    system: 'x86_64-linux',
    systemFeatures: ['big-parallel', 'nixos-test'],
    extraPlatforms: [],
    substituters: undefined,
  });
  assert.match(JSON.stringify(listing.builders), /ssh:\/\/b1/);
});

test('diagnostics and lenses on a saved file: an aarch64-linux derivation "requires aarch64-linux", on its attribute (positions from the file: 2.16+ gives none for stdin)', { skip }, async () => {
  const salt = `${Date.now()}-${process.pid}`;
  const text = `{\n  fine = ${drv('fine-226', 'x86_64-linux', salt)};\n  arm = ${drv('arm-226', 'aarch64-linux', salt)};\n}\n`;
  const uri = await openFile('src/system.nix', text);
  const diagnostics = await client.diagnostics(uri, (ds) => ds.some((d) => d.code === 'no-builder-system'));
  const d = diagnostics.find((x) => x.code === 'no-builder-system')!;
  assert.deepEqual(d.range, { start: { line: 2, character: 2 }, end: { line: 2, character: 5 } });
  assert.match(d.message, /^requires aarch64-linux: no builder provides it/);
  const lenses = await client.request<Array<{ range: { start: { line: number } } }>>('textDocument/codeLens', { textDocument: { uri } });
  const lines = [...new Set(lenses.map((l) => l.range.start.line))].sort();
  assert.deepEqual(lines, [1, 2]);
});

test('a build with Nix 2.26: built in the 2.26 root\'s own store, not in this machine\'s', { skip }, async () => {
  const salt = `${Date.now()}-${process.pid}`;
  const uri = await openFile('src/build.nix', `{\n  here = ${drv('here-226', 'x86_64-linux', salt)};\n}\n`);
  type Info = { buildId: string; status: string; targets: Array<{ drvPath: string; outputs?: Record<string, string> }>; problems?: string[] };
  const started = await client.request<Info>('nixBuilders/startBuild', { uri, attrPaths: [['here']] });
  const done = await client.waitForNotification(
    (m: Message) => m.method === 'nixBuilders/buildProgress' && (m.params as Info).buildId === started.buildId && (m.params as Info).status !== 'running',
    300_000,
  );
  const info = done.params as Info;
  assert.equal(info.status, 'built', JSON.stringify(info.problems));
  const drvPath = started.targets[0]!.drvPath;
  assert.ok(existsSync(path.join(rootStore, path.basename(drvPath))), `${drvPath} in the 2.26 root's store`);
  assert.ok(!existsSync(drvPath), `${drvPath} not in this machine's /nix/store`);
});

test('`nix store info --store daemon` (2.19+): a local 2.26 nix-daemon that does not trust this user — the local check says so from `Trusted: 0`, though the client\'s own nix.conf lists the user', { skip }, async () => {
  const user = userInfo().username;
  const daemonConf = path.join(dir, 'daemon-conf');
  await mkdir(daemonConf);
  await writeFile(path.join(daemonConf, 'nix.conf'), ['build-users-group =', 'substituters =', 'trusted-users = nobody', ''].join('\n'));
  // The client's configuration trusts the user: only the daemon's answer can say otherwise.
  const clientConf = path.join(dir, 'client-conf');
  await mkdir(clientConf);
  await writeFile(path.join(clientConf, 'nix.conf'), ['build-users-group =', 'substituters =', `trusted-users = root ${user}`, ''].join('\n'));
  const socket = path.join(dir, 'daemon.socket');
  let daemon: ChildProcess | undefined;
  let other: StdioLspClient | undefined;
  try {
    daemon = spawn(path.join(bin, 'nix-daemon'), [], { env: { ...process.env, NIX_CONF_DIR: daemonConf, NIX_DAEMON_SOCKET_PATH: socket }, stdio: 'ignore' });
    for (let i = 0; !existsSync(socket); i++) {
      assert.ok(i < 400 && daemon.exitCode === null, 'the 2.26 nix-daemon listens');
      await new Promise((r) => setTimeout(r, 25));
    }
    other = new StdioLspClient();
    await other.initialize({ settings: { nixBinDir: bin, env: { NIX_CONF_DIR: clientConf, NIX_REMOTE: 'daemon', NIX_DAEMON_SOCKET_PATH: socket } } });
    const report = await other.request<{ local: { status: string; summary: string; cause?: string; fix?: string } }>('nixBuilders/checkBuilders', {});
    assert.equal(report.local.status, 'error', JSON.stringify(report.local));
    assert.equal(report.local.summary, `the local nix-daemon does not trust ${user}: it silently ignores --builders`);
  } finally {
    await other?.shutdown();
    daemon?.kill('SIGTERM');
  }
});

test('parse and evaluation errors on 2.26, at their exact position with Nix\'s message (saved files)', { skip }, async () => {
  const only = (ds: Array<{ code?: unknown; range: { start: { line: number; character: number } }; message: string }>, code: string) => {
    const found = ds.filter((d) => d.code === code);
    assert.equal(found.length, 1, `one ${code} diagnostic in ${JSON.stringify(ds, null, 1)}`);
    return found[0]!;
  };
  const p = only(await client.diagnostics(await openFile('src/parse.nix', '{\n  a = 1;\n  b = ;\n}\n')), 'parse-error');
  assert.deepEqual(p.range.start, { line: 2, character: 6 });
  assert.match(p.message, /syntax error, unexpected ';'/);
  const e = only(await client.diagnostics(await openFile('src/eval.nix', '{\n  a = 1;\n  b = 1 + "two";\n}\n')), 'eval-error');
  assert.deepEqual(e.range.start, { line: 2, character: 10 });
  assert.match(e.message, /cannot add a string to an integer/);
  const r = only(await client.diagnostics(await openFile('src/recursion.nix', 'let x = x + 1; in { inherit x; }\n')), 'infinite-recursion');
  assert.match(r.message, /infinite recursion encountered/);
});

// An unsaved document is evaluated from stdin, and from Nix 2.16 `unsafeGetAttrPos` gives no
// position for such text: the server places its attributes by reading the text (attrPositions.ts).
test('an unsaved document on 2.26: the diagnostic on its attribute and the lenses there', { skip }, async () => {
  const file = path.join(dir, 'src', 'unsaved.nix');
  await writeFile(file, '# the editor has changes not saved yet\n');
  const uri = pathToFileURL(file).href;
  client.open(uri, `{\n  arm = ${drv('unsaved-arm', 'aarch64-linux', String(Date.now()))};\n}\n`);
  const d = (await client.diagnostics(uri)).find((x) => x.code === 'no-builder-system');
  assert.deepEqual(d?.range.start, { line: 1, character: 2 });
  const lenses = await client.request<unknown[]>('textDocument/codeLens', { textDocument: { uri } });
  assert.ok(lenses.length > 0);
});
