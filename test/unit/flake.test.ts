// Flakes without Nix: the store path of a locked input (against what Nix 2.8.0 fetched,
// test/fixtures/nix-2.8.0/flake-path-input.json), which inputs are usable offline, where Nix takes
// a flake's source from, where an output's diagnostic goes, and the quick fixes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Diagnostic } from 'vscode-languageserver/node';
import { flakeCodeActions, flakeDiagnostics, flakeFixArgs, flakeSource, lockedInputs, parseLockFile, placeOnTrail, sourceStorePath, type LockFile } from '../../language-server/eval/flake';
import type { WalkerPosition } from '../../language-server/eval/walker';

const recorded = JSON.parse(readFileSync(path.join(__dirname, '..', 'fixtures', 'nix-2.8.0', 'flake-path-input.json'), 'utf8')) as {
  'flake.lock': LockFile;
  fetchTree: { outPath: string; narHash: string; lastModified: number; lastModifiedDate: string };
};

test('a locked source is at the store path Nix computes from its NAR hash', () => {
  assert.equal(sourceStorePath(recorded.fetchTree.narHash), recorded.fetchTree.outPath);
  assert.equal(sourceStorePath('sha512-abc'), undefined);
  assert.equal(sourceStorePath('not a hash'), undefined);
});

test('inputs: in the store (with the metadata fetchTree returns), else local, else missing', () => {
  const store = mkdtempSync(path.join(os.tmpdir(), 'nb-store-'));
  const flakeDir = mkdtempSync(path.join(os.tmpdir(), 'nb-flakedir-'));
  mkdirSync(path.join(flakeDir, 'here'));
  const lock = parseLockFile(JSON.stringify(recorded['flake.lock'])) as LockFile;
  const hash = (n: number) => `sha256-${Buffer.alloc(32, n).toString('base64')}`;
  lock.nodes.local = { locked: { type: 'path', path: './here', narHash: hash(1) } };
  lock.nodes.gone = { locked: { type: 'path', path: './not-there', narHash: hash(2) } };
  lock.nodes.remote = { locked: { type: 'github', narHash: hash(3) } };
  lock.nodes.git = { locked: { type: 'git', url: `file://${flakeDir}`, narHash: hash(4) } };
  const inStore = sourceStorePath(recorded.fetchTree.narHash, store) as string;
  mkdirSync(inStore);
  return lockedInputs(lock, flakeDir, store).then(({ missing, stored }) => {
    assert.deepEqual(missing.sort(), ['gone', 'remote']);
    assert.deepEqual(stored, { dep: { ...recorded.fetchTree, outPath: inStore } });
  });
});

test('parseLockFile: anything that is not a lock file is undefined', () => {
  assert.equal(parseLockFile('{'), undefined);
  assert.equal(parseLockFile('{"version": 7}'), undefined);
  assert.equal(parseLockFile(JSON.stringify(recorded['flake.lock']))?.root, 'root');
});

test("a flake's source: the nearest git repository above it, as git+file with its subfolder, else the folder", async () => {
  const top = mkdtempSync(path.join(os.tmpdir(), 'nb-src-'));
  mkdirSync(path.join(top, 'plain'));
  assert.deepEqual(await flakeSource(path.join(top, 'plain')), { type: 'path', root: path.join(top, 'plain'), subdir: '' });
  mkdirSync(path.join(top, 'repo', '.git'), { recursive: true });
  mkdirSync(path.join(top, 'repo', 'a', 'b'), { recursive: true });
  assert.deepEqual(await flakeSource(path.join(top, 'repo', 'a', 'b')), { type: 'git', root: path.join(top, 'repo'), subdir: 'a/b' });
  assert.deepEqual(await flakeSource(path.join(top, 'repo')), { type: 'git', root: path.join(top, 'repo'), subdir: '' });
});

const at = (line: number, column: number): WalkerPosition => ({ line, column, inDoc: true, file: null });

test('an output goes on the deepest attribute the file writes by that name, else the nearest one above', () => {
  const lines = [
    '{ outputs = { self }: let forAll = f: builtins.listToAttrs (map (s: { name = s; value = f s; }) [ "x86_64-linux" ]); in {',
    '  packages = forAll (system: {',
    '    foo = 1;',
    '    "with.dot" = 2;',
    '  });',
    '  checks.x86_64-linux.t = 1;',
    '  devShells.${"x86_64-linux"}.default = 1;',
    '}; }',
  ];
  // The system's position is the helper's `value = …`: not where packages.x86_64-linux is written.
  assert.deepEqual(placeOnTrail(lines, ['packages', 'x86_64-linux', 'foo'], [at(2, 3), at(1, 67), at(3, 5)]), at(3, 5));
  assert.deepEqual(placeOnTrail(lines, ['packages', 'x86_64-linux', 'default'], [at(2, 3), at(1, 67), null]), at(2, 3));
  assert.deepEqual(placeOnTrail(lines, ['packages', 'x86_64-linux', 'with.dot'], [at(2, 3), at(1, 67), at(4, 5)]), at(4, 5));
  // A dotted path names each of its attributes (Nix 2.8 gives them all the path's start).
  assert.deepEqual(placeOnTrail(lines, ['checks', 'x86_64-linux', 't'], [at(6, 3), at(6, 3), at(6, 3)]), at(6, 3));
  // An interpolated name is not the name: the one before it that is written.
  assert.deepEqual(placeOnTrail(lines, ['devShells', 'x86_64-linux', 'default'], [at(7, 3), at(7, 3), at(7, 3)]), at(7, 3));
  assert.equal(placeOnTrail(lines, ['apps', 'x'], [null, null]), null);
});

test('input problems: on the input, with the command that fixes it as a quick fix', () => {
  const facts = { dir: '/src/f', source: { type: 'path' as const, root: '/src/f', subdir: '' }, lockUntracked: false, untracked: [] };
  const lines = ['{', '  inputs.a.url = "path:/x";', '  inputs.b.url = "github:o/r";', '  outputs = { self, a, b, c }: { };', '}'];
  const ds = flakeDiagnostics(lines, 'flake-inputs', [
    { input: 'a', pos: at(2, 3), problem: 'changed', nodes: ['a'] },
    { input: 'b', pos: at(3, 3), problem: 'not-fetched', nodes: ['b', 'b_dep'] },
    { input: 'c', pos: at(4, 3), problem: 'not-locked', nodes: [] },
  ], facts);
  assert.deepEqual(ds.map((d) => [d.code, d.line, d.column, d.endColumn, d.severity]), [
    ['flake-input-changed', 1, 2, 14, 'information'],
    ['flake-input-not-fetched', 2, 2, 14, 'warning'],
    ['flake-input-not-locked', 3, 2, 9, 'warning'],
  ]);
  assert.match(ds[1]?.message ?? '', /^Input b is locked but not in the Nix store \(through its input b_dep\)/);
  const lsp: Diagnostic[] = ds.map((d) => ({ range: { start: { line: d.line, character: d.column }, end: { line: d.line, character: d.endColumn } }, message: d.message, code: d.code, source: 'Nix Builders', data: { attrPath: d.attrPath, ...d.data } }));
  assert.deepEqual(flakeCodeActions(lsp).map((a) => [a.title, a.command?.command, a.command?.arguments]), [
    ['Run nix flake lock --update-input a', 'nixBuilders.server.fixFlake', [{ dir: '/src/f', action: 'update-input', input: 'a' }]],
    ['Run nix flake archive', 'nixBuilders.server.fixFlake', [{ dir: '/src/f', action: 'archive' }]],
    ['Run nix flake lock', 'nixBuilders.server.fixFlake', [{ dir: '/src/f', action: 'lock' }]],
  ]);
  // The command line is the server's own, never the client's.
  assert.deepEqual(flakeFixArgs({ dir: '/src/f', action: 'update-input', input: 'a' }), ['--extra-experimental-features', 'nix-command flakes', 'flake', 'lock', '--update-input', 'a']);
  // Another diagnostic (not a flake's) gets none.
  assert.deepEqual(flakeCodeActions([{ ...(lsp[0] as Diagnostic), code: 'no-builder-system' }]), []);
});

test('flake.nix that git does not track, and flake.lock that it does not: said so', () => {
  const facts = { dir: '/r/sub', source: { type: 'git' as const, root: '/r', subdir: 'sub' }, lockUntracked: false, untracked: [] };
  const [untracked] = flakeDiagnostics([], 'flake-untracked', [], facts);
  assert.match(untracked?.message ?? '', /not tracked by git \(repository \/r\).*\nFix: git add flake\.nix/s);
  const notLocked = [{ input: 'a', pos: null, problem: 'not-locked' as const, nodes: [] }];
  assert.doesNotMatch(flakeDiagnostics(['{'], 'flake-inputs', notLocked, facts)[0]?.message ?? '', /git does not track/);
  const [lockNotSeen] = flakeDiagnostics(['{'], 'flake-inputs', notLocked, { ...facts, lockUntracked: true });
  assert.match(lockNotSeen?.message ?? '', /flake\.lock exists but git does not track it, so Nix does not see it: git add flake\.lock/);
});

test('flake.nix not saved yet (outside git): evaluated once it is', () => {
  const facts = { dir: '/src/new', source: { type: 'path' as const, root: '/src/new', subdir: '' }, lockUntracked: false, untracked: [] };
  const [d] = flakeDiagnostics([], 'flake-untracked', [], facts);
  assert.equal(d?.severity, 'information');
  assert.match(d?.message ?? '', /^flake\.nix is not saved in \/src\/new yet/);
});
