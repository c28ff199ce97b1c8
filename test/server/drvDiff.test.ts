// Why two derivations differ, from a plain LSP client against real Nix: two attributes of a file
// whose only difference is an environment variable of a dependency two levels down. The answer
// names the chain of dependencies down to it and the variable with both values; a side given as a
// .drv path answers the same. On Nix 2.26 (its store in another root) the .drv files are read
// through Nix. A side at a git revision is the file as it is in that commit, its imports too (a
// real repository in a temporary folder), and a flake there is the commit's (`self.rev`).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient } from './lspClient';
import { NIX_BIN, hostStorePath } from './nixUnderTest';
import { ServerCommands, type DerivationDiff } from '../../language-server/protocol';

const SERVER = path.join(__dirname, '../../language-server/main.ts');

let dir: string;
let client: StdioLspClient;

// Salted: new .drv files each run, in the store of the Nix under test only.
const salt = randomBytes(4).toString('hex');
const DOCUMENT = `let
  mk = name: attrs: derivation ({ inherit name; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${salt} $name > $out" ]; } // attrs);
  leaf = flavour: mk "leaf" { inherit flavour; };
  mid = flavour: mk "mid" { leaf = leaf flavour; };
  top = flavour: mk "top" { mid = mid flavour; };
in {
  vanilla = top "vanilla";
  chocolate = top "chocolate";
}
`;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-drvdiff-'));
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', ''].join('\n'));
  client = new StdioLspClient(process.env, ['--import', 'tsx', SERVER]);
  await client.initialize({ settings: { env: { NIX_CONF_DIR: dir } } }, dir);
});

after(async () => {
  await client?.shutdown();
  await rm(dir, { recursive: true, force: true });
});

const diff = (a: unknown, b: unknown) => client.request<DerivationDiff>('workspace/executeCommand', { command: ServerCommands.diffDerivations, arguments: [{ a, b }] });

test('two attributes differing in a variable two levels down: the chain top → mid → leaf and the variable with both values; a .drv path as a side answers the same', async () => {
  const file = path.join(dir, 'flavours.nix');
  await writeFile(file, DOCUMENT);
  const uri = pathToFileURL(file).href;
  client.open(uri, DOCUMENT);

  const tree = await diff({ uri, attribute: ['vanilla'] }, { uri, attribute: 'chocolate' });
  assert.equal(tree.name, 'top');
  assert.ok(tree.drvPath.every((p) => /^\/nix\/store\/[0-9a-z]{32}-top\.drv$/.test(p)) && tree.drvPath[0] !== tree.drvPath[1], JSON.stringify(tree.drvPath));
  assert.equal(tree.note, undefined);
  // Above the leaf only paths differ (the outputs and the variables naming the input's output).
  assert.deepEqual(tree.differences.filter((d) => !d.onlyStorePaths), []);
  assert.deepEqual(tree.differences.map((d) => [d.field, d.name]), [['output', 'out'], ['env', 'mid'], ['env', 'out']]);
  assert.deepEqual(tree.inputs.map((i) => i.name), ['mid']);
  const mid = tree.inputs[0]!.diff;
  assert.equal(mid.name, 'mid');
  assert.deepEqual(mid.differences.filter((d) => !d.onlyStorePaths), []);
  assert.deepEqual(mid.inputs.map((i) => i.name), ['leaf']);
  const leaf = mid.inputs[0]!.diff;
  assert.equal(leaf.name, 'leaf');
  assert.match(leaf.drvPath[0], /-leaf\.drv$/);
  // The store of the Nix under test wrote them (on 2.26 not this machine's /nix/store: read through Nix).
  assert.ok(leaf.drvPath.every((p) => existsSync(hostStorePath(p))));
  if (NIX_BIN) assert.ok(!existsSync(leaf.drvPath[0]), 'the Nix under test has a store of its own');
  assert.deepEqual(leaf.differences.filter((d) => !d.onlyStorePaths), [{ field: 'env', name: 'flavour', a: 'vanilla', b: 'chocolate' }]);
  assert.deepEqual(leaf.inputs, []);

  assert.deepEqual(await diff(tree.drvPath[0], { uri, attribute: ['chocolate'] }), tree);
  const same = await diff(tree.drvPath[1], { uri, attribute: ['chocolate'] });
  assert.deepEqual(same.differences, []);
  assert.deepEqual(same.inputs, []);
});

test('a side that is neither a .drv path nor an attribute of a file is refused, saying what the command takes', async () => {
  await assert.rejects(diff('hello', '/nix/store/x.drv'), /takes \[\{ a, b \}\].*a is not a \.drv path/);
  await assert.rejects(diff('/nix/store/x.drv', { uri: 'file:///x.nix' }), /b is neither/);
});

/** A git repository at `root` with `files` committed (as this test's own user, no global configuration). */
function commit(root: string, message: string): string {
  const git = (...args: string[]) => execFileSync('git', ['-C', root, '-c', 'user.name=Test', '-c', 'user.email=test@example.invalid', '-c', 'commit.gpgsign=false', ...args], { encoding: 'utf8' }).trim();
  if (!existsSync(path.join(root, '.git'))) git('init', '--quiet');
  git('add', '--all');
  git('commit', '--quiet', '-m', message);
  return git('rev-parse', 'HEAD');
}

const revisionTrees = () => readdirSync(tmpdir()).filter((f) => f.startsWith('nix-builders-revision-'));

test('this attribute now and at the last commit: the variable changed since, and one of an imported file read as the commit has it; the checkout is removed after', async () => {
  const repo = path.join(dir, `repo-${salt}`);
  await mkdir(repo);
  const mk = (flavour: string) => `let lib = import ./lib.nix; in { pkg = derivation { name = "rev-${salt}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; flavour = "${flavour}"; greeting = lib.greeting; }; }\n`;
  await writeFile(path.join(repo, 'default.nix'), mk('vanilla'));
  await writeFile(path.join(repo, 'lib.nix'), '{ greeting = "hello"; }\n');
  commit(repo, 'first');
  await writeFile(path.join(repo, 'default.nix'), mk('chocolate'));
  await writeFile(path.join(repo, 'lib.nix'), '{ greeting = "hi"; }\n');
  const uri = pathToFileURL(path.join(repo, 'default.nix')).href;
  const before = revisionTrees();

  const tree = await diff({ uri, attribute: 'pkg', revision: 'HEAD' }, { uri, attribute: 'pkg' });
  assert.deepEqual(tree.differences.filter((d) => d.field === 'env' && d.name !== 'out'), [
    { field: 'env', name: 'flavour', a: 'vanilla', b: 'chocolate' },
    { field: 'env', name: 'greeting', a: 'hello', b: 'hi' },
  ]);
  assert.deepEqual(revisionTrees(), before, 'the temporary checkout is gone');

  // Committed: HEAD is what the file says now, HEAD~1 the first commit.
  commit(repo, 'second');
  assert.deepEqual((await diff({ uri, attribute: 'pkg', revision: 'HEAD' }, { uri, attribute: 'pkg' })).differences, []);
  assert.deepEqual((await diff({ uri, attribute: 'pkg', revision: 'HEAD~1' }, { uri, attribute: 'pkg' })).drvPath, tree.drvPath);
});

test('a flake at a revision is that commit (self.rev); a revision that is not a commit, an option, or a file not in the commit are refused', async () => {
  const repo = path.join(dir, `flake-${salt}`);
  await mkdir(repo);
  const flake = (extra: string) =>
    `{ outputs = { self }: { packages.x86_64-linux.default = derivation { name = "flake-rev-${salt}"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; rev = self.rev or "dirty";${extra} }; }; }\n`;
  await writeFile(path.join(repo, 'flake.nix'), flake(''));
  const rev = commit(repo, 'flake');
  await writeFile(path.join(repo, 'flake.nix'), flake(' more = "1";'));
  const uri = pathToFileURL(path.join(repo, 'flake.nix')).href;
  const attribute = 'packages.x86_64-linux.default';
  const tree = await diff({ uri, attribute, revision: 'HEAD' }, { uri, attribute });
  assert.deepEqual(tree.differences.filter((d) => d.field === 'env' && d.name !== 'out'), [
    { field: 'env', name: 'more', b: '1' },
    { field: 'env', name: 'rev', a: rev, b: 'dirty' },
  ]);

  await assert.rejects(diff({ uri, attribute, revision: 'no-such-branch' }, { uri, attribute }), /no-such-branch is not a commit of /);
  await assert.rejects(diff({ uri, attribute, revision: '--output=/tmp/x' }, { uri, attribute }), /"revision" must be a git revision/);
  await writeFile(path.join(repo, 'new.nix'), '{ }\n');
  await assert.rejects(diff({ uri: pathToFileURL(path.join(repo, 'new.nix')).href, attribute: 'x', revision: 'HEAD' }, { uri, attribute }), /new\.nix is not in HEAD \([0-9a-f]{12}\) of .*: it was added later, or moved/);
  await assert.rejects(diff({ uri: pathToFileURL(path.join(dir, 'flavours.nix')).href, attribute: 'vanilla', revision: 'HEAD' }, { uri, attribute }), /is not in a git work tree/);
});
