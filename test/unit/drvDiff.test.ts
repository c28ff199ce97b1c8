// Why two derivations differ: the comparison on .drv texts written as Nix 2.8 writes them (the
// layout of test/fixtures/nix-2.8.0/derivation-*.drv), read through the real ATerm reader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareDerivations, diffDerivations } from '../../language-server/check/drvDiff';
import { parseFullDerivation, type Derivation } from '../../language-server/nix/derivationFile';
import type { DerivationDiff } from '../../language-server/protocol';

const str = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
const hash = (seed: string) => seed.repeat(32).slice(0, 32);
const path = (seed: string, name: string) => `/nix/store/${hash(seed)}-${name}`;

interface Spec {
  name: string;
  seed: string;
  inputs?: Array<[drvPath: string, outputs: string[]]>;
  srcs?: string[];
  builder?: string;
  args?: string[];
  env?: Record<string, string>;
  system?: string;
  outputHash?: [algo: string, hash: string];
}

/** A .drv text and its path, as Nix writes one. */
function drv(s: Spec): { drvPath: string; text: string } {
  const out = path(s.seed, s.name);
  const env: Record<string, string> = { builder: s.builder ?? '/bin/sh', name: s.name, out, system: s.system ?? 'x86_64-linux', ...s.env };
  const text =
    `Derive([(${['out', out, ...(s.outputHash ?? ['', ''])].map(str).join(',')})],` +
    `[${(s.inputs ?? []).map(([p, o]) => `(${str(p)},[${o.map(str).join(',')}])`).join(',')}],` +
    `[${(s.srcs ?? []).map(str).join(',')}],${str(s.system ?? 'x86_64-linux')},${str(s.builder ?? '/bin/sh')},` +
    `[${(s.args ?? ['-c', 'echo hi > $out']).map(str).join(',')}],` +
    `[${Object.keys(env).sort().map((k) => `(${str(k)},${str(env[k]!)})`).join(',')}])`;
  return { drvPath: `/nix/store/${hash(s.seed)}-${s.name}.drv`, text };
}

/** A store of .drv texts: the reader the comparison is given. */
function store(...drvs: Array<{ drvPath: string; text: string }>) {
  const byPath = new Map(drvs.map((d) => [d.drvPath, parseFullDerivation(d.drvPath, d.text)]));
  return { read: async (p: string): Promise<Derivation | undefined> => byPath.get(p) };
}

const parsed = (d: { drvPath: string; text: string }) => {
  const p = parseFullDerivation(d.drvPath, d.text);
  assert.ok(p, d.text);
  return p;
};

test('equal derivations: no differences, no inputs', async () => {
  const dep = drv({ name: 'dep', seed: 'a' });
  const top = drv({ name: 'top', seed: 'b', inputs: [[dep.drvPath, ['out']]], env: { dep: path('a', 'dep') } });
  assert.deepEqual(compareDerivations(parsed(top), parsed(top)), { differences: [], pairs: [] });
  const diff = await diffDerivations(top.drvPath, top.drvPath, store(top, dep));
  assert.deepEqual(diff, { drvPath: [top.drvPath, top.drvPath], name: 'top', differences: [], inputs: [] });
  // Two paths, the same contents (what a copy in another store would be).
  const copy = { drvPath: top.drvPath.replace(hash('b'), hash('c')), text: top.text };
  assert.deepEqual((await diffDerivations(top.drvPath, copy.drvPath, store(top, copy))).differences, []);
});

test('an environment variable changed, added and removed, with both values; a long one shortened around its first difference', () => {
  const long = 'x'.repeat(1000);
  const a = drv({ name: 'p', seed: 'a', env: { salt: 's1', gone: 'g', long: `${long}A${long}` } });
  const b = drv({ name: 'p', seed: 'a', env: { salt: 's2', fresh: 'f', long: `${long}B${long}` } });
  const { differences, pairs } = compareDerivations(parsed(a), parsed(b));
  assert.deepEqual(pairs, []);
  const env = differences.filter((d) => d.field === 'env');
  assert.deepEqual(env.map((d) => [d.name, d.a, d.b]).filter(([n]) => n !== 'long'), [
    ['fresh', undefined, 'f'],
    ['gone', 'g', undefined],
    ['salt', 's1', 's2'],
  ]);
  const shortened = env.find((d) => d.name === 'long');
  assert.ok(shortened?.a && shortened.b);
  assert.ok(shortened.a.length < 300 && shortened.a.includes('A') && shortened.b.includes('B'), shortened.a);
  assert.equal(shortened.note, 'shortened: a has 2001 characters, b has 2001; they first differ at character 1000');
});

test('builder, arguments, system and output hash', () => {
  const a = drv({ name: 'p', seed: 'a', args: ['-c', 'one', 'extra'], outputHash: ['sha256', hash('1')] });
  const b = drv({ name: 'p', seed: 'a', builder: '/bin/bash', args: ['-c', 'two'], system: 'aarch64-linux', outputHash: ['r:sha256', hash('1')] });
  const d = compareDerivations(parsed(a), parsed(b)).differences;
  const of = (field: string) => d.filter((x) => x.field === field).map((x) => [x.name, x.a, x.b]);
  assert.deepEqual(of('builder'), [[undefined, '/bin/sh', '/bin/bash']]);
  assert.deepEqual(of('arg'), [['1', 'one', 'two'], ['2', 'extra', undefined]]);
  assert.deepEqual(of('system'), [[undefined, 'x86_64-linux', 'aarch64-linux']]);
  assert.deepEqual(of('outputHashAlgo'), [['out', 'sha256', 'r:sha256']]);
  assert.deepEqual(of('output'), []);
});

test('an input derivation that differs two levels down: the chain of same-named inputs, the variable at the bottom, the paths above marked as store paths only', async () => {
  const leafA = drv({ name: 'leaf', seed: '1', env: { flavour: 'vanilla' } });
  const leafB = drv({ name: 'leaf', seed: '2', env: { flavour: 'chocolate' } });
  const shared = drv({ name: 'shared', seed: '9' });
  const midA = drv({ name: 'mid', seed: '3', inputs: [[leafA.drvPath, ['out']], [shared.drvPath, ['out']]], env: { leaf: path('1', 'leaf') } });
  const midB = drv({ name: 'mid', seed: '4', inputs: [[leafB.drvPath, ['out']], [shared.drvPath, ['out']]], env: { leaf: path('2', 'leaf') } });
  const topA = drv({ name: 'top', seed: '5', inputs: [[midA.drvPath, ['out']]], env: { mid: path('3', 'mid') } });
  const topB = drv({ name: 'top', seed: '6', inputs: [[midB.drvPath, ['out']]], env: { mid: path('4', 'mid') } });
  const diff = await diffDerivations(topA.drvPath, topB.drvPath, store(leafA, leafB, shared, midA, midB, topA, topB));
  const chain: string[] = [];
  let node: DerivationDiff | undefined = diff;
  while (node) {
    chain.push(node.name);
    assert.ok(node.inputs.length <= 1, 'the shared input is not compared');
    node = node.inputs[0]?.diff;
  }
  assert.deepEqual(chain, ['top', 'mid', 'leaf']);
  const mid = diff.inputs[0]!.diff;
  assert.deepEqual(mid.drvPath, [midA.drvPath, midB.drvPath]);
  assert.deepEqual(mid.differences.find((d) => d.field === 'env' && d.name === 'leaf'), { field: 'env', name: 'leaf', a: path('1', 'leaf'), b: path('2', 'leaf'), onlyStorePaths: true });
  const leaf = mid.inputs[0]!.diff;
  assert.deepEqual(leaf.differences.filter((d) => d.field === 'env' && !d.onlyStorePaths), [{ field: 'env', name: 'flavour', a: 'vanilla', b: 'chocolate' }]);
  assert.deepEqual(leaf.inputs, []);

  // The depth bound: one level only, and said so.
  const bounded = await diffDerivations(topA.drvPath, topB.drvPath, { ...store(leafA, leafB, shared, midA, midB, topA, topB), maxDepth: 1 });
  assert.deepEqual(bounded.inputs[0]!.diff.inputs, []);
  assert.equal(bounded.inputs[0]!.diff.note, 'inputs not compared: 1 levels deep already');
  // A .drv that cannot be read is said, not thrown.
  const unreadable = await diffDerivations(topA.drvPath, topB.drvPath, store(topA, topB, midA));
  assert.match(unreadable.inputs[0]!.diff.note ?? '', new RegExp(`could not read ${midB.drvPath}`));
});

test('an input derivation and a source only on one side; the outputs used from an input', () => {
  const dep = drv({ name: 'dep', seed: '1' });
  const extra = drv({ name: 'extra', seed: '2' });
  const a = drv({ name: 'p', seed: 'a', inputs: [[dep.drvPath, ['out']]], srcs: [path('7', 'builder.sh'), path('8', 'patch')] });
  const b = drv({ name: 'p', seed: 'a', inputs: [[dep.drvPath, ['dev', 'out']], [extra.drvPath, ['out']]], srcs: [path('9', 'builder.sh')] });
  const { differences, pairs } = compareDerivations(parsed(a), parsed(b));
  assert.deepEqual(pairs, []);
  assert.deepEqual(differences.filter((d) => d.field.startsWith('input')), [
    { field: 'inputSource', name: 'builder.sh', a: path('7', 'builder.sh'), b: path('9', 'builder.sh'), onlyStorePaths: true },
    { field: 'inputSource', name: 'patch', a: path('8', 'patch') },
    { field: 'inputOutputs', name: 'dep', a: 'out', b: 'dev out' },
    { field: 'inputDerivation', name: 'extra', b: extra.drvPath },
  ]);
});

test('structured attributes: each attribute of __json compared alone', () => {
  const a = drv({ name: 'p', seed: 'a', env: { __json: JSON.stringify({ name: 'p', version: '1', list: [1, 2] }) } });
  const b = drv({ name: 'p', seed: 'a', env: { __json: JSON.stringify({ name: 'p', version: '2', list: [1, 2] }) } });
  assert.deepEqual(compareDerivations(parsed(a), parsed(b)).differences, [{ field: 'env', name: '__json.version', a: '1', b: '2' }]);
});

test('a cancelled comparison stops before reading further', async () => {
  const a = drv({ name: 'p', seed: 'a' });
  const b = drv({ name: 'p', seed: 'b' });
  const read: string[] = [];
  const s = store(a, b);
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(diffDerivations(a.drvPath, b.drvPath, { read: (p) => (read.push(p), s.read(p)), signal: controller.signal }), { name: 'AbortError' });
  assert.deepEqual(read, []);
});
