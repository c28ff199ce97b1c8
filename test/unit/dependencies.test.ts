// Which dependencies of a document's derivations nothing can build, from what a plan will build
// (placed as the plan places it) and the .drv files' inputs, and the diagnostics that say so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dependencyDiagnostics, dependencyProblems } from '../../language-server/eval/dependencies';
import type { PlannedDerivation } from '../../language-server/protocol';
import type { WalkerOutput } from '../../language-server/eval/walker';

const p = (name: string) => `/nix/store/${name.padEnd(32, 'a').slice(0, 32).replace(/[^a-z0-9]/g, 'a')}-${name}.drv`;
const NO_FOO = 'requires x86_64-linux with {foo}: no builder provides it (local x86_64-linux {kvm}; builders: none)\nFix: add a x86_64-linux builder that has {foo}.';

function planned(name: string, verdict: PlannedDerivation['verdict'], features: string[] = []): PlannedDerivation {
  return {
    drvPath: p(name),
    name,
    system: 'x86_64-linux',
    requiredSystemFeatures: features,
    target: false,
    verdict,
    summary: verdict === 'none' ? 'nothing can build it' : 'builds on this machine',
    ...(verdict === 'none' ? { problem: NO_FOO } : {}),
  };
}

const inputs = (graph: Record<string, string[]>) => new Map(Object.entries(graph).map(([k, v]) => [p(k), { inputDrvs: v.map(p) }]));

test('a dependency to build that nothing can build is a problem of each target that needs it, with the chain', () => {
  const builds = [planned('leaf', 'none', ['foo']), planned('mid', 'local'), planned('top', 'local'), planned('other', 'local')];
  const graph = inputs({ top: ['mid'], mid: ['leaf'], leaf: [], other: [] });
  const problems = dependencyProblems([p('top'), p('other'), p('mid')], builds, graph);
  assert.deepEqual(problems.get(p('top')), [
    { drvPath: p('leaf'), name: 'leaf', system: 'x86_64-linux', requiredSystemFeatures: ['foo'], problem: NO_FOO, chain: [p('top'), p('mid'), p('leaf')] },
  ]);
  assert.deepEqual(problems.get(p('mid'))?.map((x) => x.chain), [[p('mid'), p('leaf')]]);
  assert.deepEqual(problems.get(p('other')), []);
});

test('what the dry run does not build (valid here, or from a substituter) is no problem, nor what only it depends on', () => {
  // `cached` is not among the builds: its dependency `deep` is built only for `direct`.
  const builds = [planned('deep', 'none', ['foo']), planned('direct', 'local'), planned('top', 'local')];
  const graph = inputs({ top: ['cached', 'direct'], direct: [], deep: [] });
  graph.set(p('cached'), { inputDrvs: [p('deep')] });
  assert.deepEqual(dependencyProblems([p('top')], builds, graph).get(p('top')), []);
});

test('a target that is itself valid builds nothing; a target nothing can build is not its own dependency', () => {
  const builds = [planned('top', 'none', ['foo'])];
  assert.deepEqual(dependencyProblems([p('valid'), p('top')], builds, inputs({ top: [] })), new Map([[p('valid'), []], [p('top'), []]]));
});

test('a dependency reached twice and a cycle in the inputs are counted once', () => {
  const builds = [planned('leaf', 'none', ['foo']), planned('a', 'remote'), planned('b', 'local'), planned('top', 'local')];
  const graph = inputs({ top: ['a', 'b'], a: ['leaf', 'top'], b: ['leaf'], leaf: [] });
  const problems = dependencyProblems([p('top')], builds, graph).get(p('top')) ?? [];
  assert.deepEqual(problems.map((x) => x.chain), [[p('top'), p('a'), p('leaf')]]);
});

test("the diagnostic sits on the dependent's attribute and says which dependency, its requirements, the cause and the fix", () => {
  const text = '{\n  fine = 1;\n  top = derivation {};\n}\n';
  const output: WalkerOutput = {
    kind: 'attrs',
    items: [
      { path: ['fine'], pos: { line: 2, column: 3, inDoc: true, file: null }, name: 'fine', drvPath: p('fine'), system: 'x86_64-linux', requiredSystemFeatures: [], preferLocalBuild: false, outputs: ['out'] },
      { path: ['top'], pos: { line: 3, column: 3, inDoc: true, file: null }, name: 'top', drvPath: p('top'), system: 'x86_64-linux', requiredSystemFeatures: [], preferLocalBuild: false, outputs: ['out'] },
      { path: ['broken'], pos: null, error: 'evaluating this attribute failed' },
    ],
  };
  const builds = [planned('input-1', 'none', ['foo']), planned('input-2', 'none', ['foo']), planned('top', 'local'), planned('fine', 'local')];
  const problems = dependencyProblems([p('fine'), p('top')], builds, inputs({ top: ['input-1', 'input-2'], fine: [] }));
  const ds = dependencyDiagnostics(text, output, problems);
  assert.equal(ds.length, 1);
  assert.deepEqual(ds[0], {
    severity: 'error',
    code: 'dependency-no-builder',
    line: 2,
    column: 2,
    endColumn: 5,
    attrPath: ['top'],
    message: `top: its dependency input-1 ${NO_FOO}\nIt also depends on 1 more that nothing can build: input-2`,
    data: { system: 'x86_64-linux', features: ['foo'], drvPath: p('input-1') },
    related: [
      { file: p('input-1'), message: 'top → input-1: requires x86_64-linux {foo}' },
      { file: p('input-2'), message: 'top → input-2: requires x86_64-linux {foo}' },
    ],
  });
  assert.deepEqual(dependencyDiagnostics(text, undefined, problems), []);
});
