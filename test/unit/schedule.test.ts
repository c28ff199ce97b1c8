// previewSchedule: Nix 2.8's choice between this machine and the builders (build-remote.cc
// `main_build_remote`, derivation-goal.cc `tryToBuild`, parsed-derivations.cc `willBuildLocally`).
// The tables marked "measured" were checked against nix 2.8.0 with unreachable builders, where the
// order of the "cannot build on '…'" lines shows the order of choice and `flock` on
// current-load/<uri>-<slot> makes a slot busy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { previewSchedule, type ScheduleBuilder, type ScheduleHealth, type ScheduleInput } from '../../language-server/builders/schedule';

const X86 = 'x86_64-linux';
const ARM = 'aarch64-linux';

function builder(name: string, more: Partial<ScheduleBuilder> = {}): ScheduleBuilder {
  return { id: name, name, systems: [X86], maxJobs: 1, speedFactor: 1, supportedFeatures: [], mandatoryFeatures: [], ...more };
}

const LOCAL = { system: X86, extraPlatforms: [] as string[], systemFeatures: ['benchmark', 'big-parallel', 'kvm', 'nixos-test'], maxJobs: 1 };

function run(over: Partial<ScheduleInput> & Pick<ScheduleInput, 'builders'>) {
  return previewSchedule({ system: X86, requiredSystemFeatures: [], local: LOCAL, ...over });
}

const candidate = (p: ReturnType<typeof run>, name: string) => {
  const c = p.candidates.find((x) => x.name === name);
  assert.ok(c, `no candidate ${name}`);
  return c;
};

test('system: builders without the system are refused, with what they have', () => {
  const table: Array<{ systems: string[]; drv: string; fits: boolean }> = [
    { systems: [X86], drv: X86, fits: true },
    { systems: [ARM], drv: X86, fits: false },
    { systems: [X86, ARM], drv: ARM, fits: true },
    { systems: [], drv: X86, fits: true }, // no systems column: the local system
    { systems: [], drv: ARM, fits: false },
  ];
  for (const row of table) {
    const p = run({ system: row.drv, maxJobsOverride: 0, builders: [builder('b1', { systems: row.systems })] });
    assert.equal(candidate(p, 'b1').eligible, row.fits, JSON.stringify(row));
    assert.equal(p.verdict, row.fits ? 'remote' : 'none', JSON.stringify(row));
  }
  const p = run({ system: ARM, builders: [builder('b1'), builder('b2', { systems: [ARM] })] });
  assert.equal(candidate(p, 'b1').reason, 'lacks system aarch64-linux (has x86_64-linux)');
  assert.equal(p.verdict, 'remote');
  assert.equal(p.chosen?.builderId, 'b2');
  assert.equal(p.summary, 'builds on b2: the only machine with aarch64-linux');
  assert.equal(candidate(p, 'this machine').reason, 'lacks system aarch64-linux (has x86_64-linux)');
});

test('features: every required feature must be supported or mandatory on the builder', () => {
  const table: Array<{ supported: string[]; mandatory: string[]; required: string[]; reason?: string }> = [
    { supported: ['kvm'], mandatory: [], required: ['kvm'] },
    { supported: [], mandatory: [], required: ['kvm'], reason: 'lacks feature kvm' },
    { supported: ['kvm'], mandatory: [], required: ['kvm', 'glitter', 'sparkle'], reason: 'lacks features glitter, sparkle' },
    { supported: [], mandatory: ['kvm'], required: ['kvm'] }, // a mandatory feature is also supported
  ];
  for (const row of table) {
    const b = builder('b1', { supportedFeatures: row.supported, mandatoryFeatures: row.mandatory });
    const p = run({ requiredSystemFeatures: row.required, builders: [b] });
    const c = candidate(p, 'b1');
    if (row.reason) assert.equal(c.reason, row.reason);
    else assert.equal(c.eligible, true, JSON.stringify(row));
  }
});

test('mandatory features keep plain derivations away (measured)', () => {
  const b1 = builder('b1', { supportedFeatures: ['benchmark'], mandatoryFeatures: ['benchmark'] });
  const p = run({ maxJobsOverride: 0, builders: [b1, builder('b2')] });
  assert.equal(candidate(p, 'b1').reason, 'mandatory feature benchmark not required by the derivation');
  assert.equal(candidate(p, 'b1').eligible, false);
  assert.equal(p.chosen?.name, 'b2');
  // A derivation that requires it goes there.
  const q = run({ requiredSystemFeatures: ['benchmark'], maxJobsOverride: 0, builders: [b1, builder('b2')] });
  assert.equal(q.chosen?.name, 'b1');
  assert.match(candidate(q, 'b2').reason, /lacks feature benchmark/);
});

test('free slots: a full builder is skipped; all fitting builders full → wait unless this machine can build (measured)', () => {
  const two = [builder('b2', { maxJobs: 1 }), builder('b1', { maxJobs: 2, speedFactor: 2 })];
  // b1 full, b2 free: b2.
  let p = run({ maxJobsOverride: 0, builders: two, loads: new Map([['b1', 2]]) });
  assert.equal(p.chosen?.name, 'b2');
  assert.equal(candidate(p, 'b1').reason, 'all 2 slots busy');
  assert.equal(candidate(p, 'b1').eligible, false);
  // Only b1, full, and this machine cannot build it (-j0): "waiting for a machine".
  p = run({ maxJobsOverride: 0, builders: [builder('b1')], loads: new Map([['b1', 1]]) });
  assert.equal(p.verdict, 'wait');
  assert.equal(p.nixMessage, "waiting for a machine to build '…'");
  assert.match(p.summary, /^waits for a machine: every builder that fits is busy \(b1: its only slot is busy\), and this machine has max-jobs 0 \(build remotely only\)$/);
  // Same, but this machine has a free slot: the hook declines and Nix builds locally (measured).
  p = run({ builders: [builder('b1')], loads: new Map([['b1', 1]]) });
  assert.equal(p.verdict, 'local');
  assert.match(p.summary, /^builds on this machine: every builder that fits is busy \(b1: its only slot is busy\)$/);
  // ... and with every local slot busy too, the hook postpones.
  p = run({ builders: [builder('b1')], loads: new Map([['b1', 1]]), localBuildsRunning: 1 });
  assert.equal(p.verdict, 'wait');
  assert.match(p.summary, /all 1 local slots are busy/);
  // A wrong-system derivation, the only fitting builder full: wait (measured with a 'glitter' feature).
  p = run({ requiredSystemFeatures: ['glitter'], builders: [builder('b1', { supportedFeatures: ['glitter'] })], loads: new Map([['b1', 1]]) });
  assert.equal(p.verdict, 'wait');
  assert.match(p.summary, /this machine lacks feature glitter/);
  // Loads above max-jobs count as full, never more.
  p = run({ maxJobsOverride: 0, builders: [builder('b1', { maxJobs: 2 })], loads: new Map([['b1', 7]]) });
  assert.equal(p.verdict, 'wait');
});

test('a builder with max-jobs 0 never builds, but counts as fitting: Nix waits instead of failing', () => {
  const p = run({ maxJobsOverride: 0, builders: [builder('b1', { maxJobs: 0 })] });
  assert.equal(candidate(p, 'b1').reason, 'max-jobs is 0');
  assert.equal(p.verdict, 'wait');
});

test('lowest load / speed factor wins; Nix 2.8 divides whole numbers (measured)', () => {
  const table: Array<{ name: string; builders: ScheduleBuilder[]; loads: Array<[string, number]>; chosen: string; float?: string }> = [
    {
      name: 'lower load, same speed',
      builders: [builder('b2', { maxJobs: 3 }), builder('b1', { maxJobs: 3 })],
      loads: [['b2', 1]],
      chosen: 'b1',
    },
    {
      name: 'load 2 / speed 2 = 1 loses to load 0 / speed 1 = 0',
      builders: [builder('b1', { maxJobs: 3, speedFactor: 2 }), builder('b2')],
      loads: [['b1', 2]],
      chosen: 'b2',
    },
    {
      name: 'load 1 / speed 2 = 0 ties load 0 / speed 1 = 0: the higher speed factor wins',
      builders: [builder('b2'), builder('b1', { maxJobs: 2, speedFactor: 2 })],
      loads: [['b1', 1]],
      chosen: 'b1',
      float: 'b2', // 0.5 > 0 in newer Nix
    },
    {
      name: 'load 3 / speed 2 = 1 ties load 1 / speed 1 = 1: the higher speed factor wins',
      builders: [builder('b2', { maxJobs: 2 }), builder('b1', { maxJobs: 4, speedFactor: 2 })],
      loads: [['b1', 3], ['b2', 1]],
      chosen: 'b1',
      float: 'b2',
    },
    {
      name: 'equal load 0: speed 2 listed second beats speed 1',
      builders: [builder('b2'), builder('b1', { maxJobs: 2, speedFactor: 2 })],
      loads: [],
      chosen: 'b1',
      float: 'b1',
    },
    {
      name: 'same quotient and speed: the lower load wins',
      builders: [builder('b1', { maxJobs: 4, speedFactor: 4 }), builder('b2', { maxJobs: 4, speedFactor: 4 })],
      loads: [['b1', 2], ['b2', 1]],
      chosen: 'b2',
    },
  ];
  for (const row of table) {
    const input = { maxJobsOverride: 0, builders: row.builders, loads: new Map(row.loads) };
    assert.equal(run(input).chosen?.name, row.chosen, row.name);
    assert.equal(run({ ...input, speedArithmetic: 'float' }).chosen?.name, row.float ?? row.chosen, `${row.name} (float)`);
  }
  const p = run({ maxJobsOverride: 0, builders: [builder('b2'), builder('b1', { maxJobs: 2, speedFactor: 2 })], loads: new Map([['b1', 1]]) });
  assert.equal(candidate(p, 'b1').score, 0);
  assert.match(candidate(p, 'b1').reason, /^load 1 \/ speed 2 = 0 \(Nix 2\.8 divides whole numbers\); chosen: /);
  assert.match(p.summary, /ties with b2, whole-number division; Nix prefers the higher speed factor \(2\)/);
  const f = run({ maxJobsOverride: 0, speedArithmetic: 'float', builders: [builder('b2'), builder('b1', { maxJobs: 2, speedFactor: 2 })], loads: new Map([['b1', 1]]) });
  assert.equal(candidate(f, 'b1').reason, 'load 1 / speed 2 = 0.5');
  assert.equal(candidate(f, 'b1').score, 0.5);
  assert.match(f.summary, /^builds on b2: lowest load ÷ speed 0 \(next: b1 with 0\.5\)/);
});

test('ties go to the first listed (measured)', () => {
  const p = run({ maxJobsOverride: 0, builders: [builder('b2', { maxJobs: 3 }), builder('b1', { maxJobs: 3 }), builder('b3', { maxJobs: 3 })] });
  assert.equal(p.chosen?.name, 'b2');
  assert.match(p.summary, /ties with b1, b3; ties go to the first listed/);
  assert.deepEqual(
    p.candidates.map((c) => c.name),
    ['b2', 'b1', 'b3', 'this machine'],
  );
});

test('speed factors: 0 counts as 1; a fraction is flagged because Nix 2.8 rejects it', () => {
  const p = run({ maxJobsOverride: 0, builders: [builder('b2'), builder('b1', { speedFactor: 0 })] });
  assert.equal(p.chosen?.name, 'b2'); // measured: speed 0 → 1, a tie, the first listed
  const q = run({ maxJobsOverride: 0, builders: [builder('b2'), builder('b1', { speedFactor: 1.5 })] });
  assert.match(candidate(q, 'b1').reason, /speed factor 1\.5 is not a whole number: Nix 2\.8 rejects this machines line/);
  assert.equal(run({ maxJobsOverride: 0, speedArithmetic: 'float', builders: [builder('b2'), builder('b1', { speedFactor: 1.5 })] }).chosen?.name, 'b1');
});

test('the builders are asked before this machine, even when it could build (measured with -j1)', () => {
  const p = run({ builders: [builder('b1')] });
  assert.equal(p.verdict, 'remote');
  assert.equal(p.chosen?.name, 'b1');
  assert.equal(p.summary, 'builds on b1: the only builder that fits; Nix asks the builders before building locally');
  assert.equal(candidate(p, 'this machine').reason, 'can build it; Nix asks the builders first');
  assert.equal(candidate(p, 'this machine').eligible, true);
  assert.equal(p.candidates.at(-1)?.name, 'this machine');
});

test('no builders: local, or nothing with max-jobs 0', () => {
  let p = run({ builders: [] });
  assert.equal(p.verdict, 'local');
  assert.deepEqual(p.chosen, { name: 'this machine', reason: 'no builders are configured' });
  p = run({ builders: [], maxJobsOverride: 0 });
  assert.equal(p.verdict, 'none');
  assert.equal(p.nixMessage, "unable to start any build; either increase '--max-jobs' or enable remote builds.");
  assert.equal(candidate(p, 'this machine').reason, 'max-jobs is 0 (build remotely only)');
  p = run({ builders: [], local: { ...LOCAL, maxJobs: 0 } });
  assert.equal(candidate(p, 'this machine').reason, 'max-jobs is 0');
});

test('max-jobs 0 forces remote even for what this machine could build', () => {
  const p = run({ maxJobsOverride: 0, builders: [builder('b1')] });
  assert.equal(p.verdict, 'remote');
  assert.equal(p.summary, 'builds on b1: the only builder that fits, and this machine has max-jobs 0 (build remotely only)');
  assert.equal(candidate(p, 'this machine').eligible, false);
  // With nothing that fits: Worker::run's error (measured).
  const q = run({ maxJobsOverride: 0, builders: [builder('b1', { systems: [ARM] })] });
  assert.equal(q.verdict, 'none');
  assert.equal(q.nixMessage, 'unable to start any build; remote machines may not have all required system features.');
});

test('preferLocalBuild: local without asking the builders, when this machine can build it (measured)', () => {
  const table: Array<{ name: string; over: Omit<Partial<ScheduleInput>, 'builders'>; verdict: string; chosen: string }> = [
    { name: 'can build locally', over: {}, verdict: 'local', chosen: 'this machine' },
    { name: 'max-jobs 0: the hook decides', over: { maxJobsOverride: 0 }, verdict: 'remote', chosen: 'b1' },
    { name: 'local lacks the feature: the hook decides', over: { requiredSystemFeatures: ['glitter'] }, verdict: 'remote', chosen: 'b1' },
    { name: 'local lacks the system: the hook decides', over: { system: ARM }, verdict: 'remote', chosen: 'b1' },
  ];
  const builders = [builder('b1', { systems: [X86, ARM], supportedFeatures: ['glitter'] })];
  for (const row of table) {
    const p = run({ preferLocalBuild: true, builders, ...row.over });
    assert.equal(p.verdict, row.verdict, row.name);
    assert.equal(p.chosen?.name, row.chosen, row.name);
  }
  const p = run({ preferLocalBuild: true, builders });
  assert.equal(p.candidates[0]?.name, 'this machine');
  assert.match(p.summary, /^builds on this machine: preferLocalBuild/);
  assert.match(candidate(p, 'b1').reason, /not asked: preferLocalBuild/);
  // All local slots busy: Nix waits for one rather than asking the builders.
  const q = run({ preferLocalBuild: true, builders, localBuildsRunning: 1 });
  assert.equal(q.verdict, 'wait');
  assert.match(q.summary, /^waits for a local build slot \(all 1 busy\)/);
  // Without the flag the same derivation goes to b1.
  assert.equal(run({ builders }).chosen?.name, 'b1');
});

test('builtin derivations build here: no builder lists the system builtin', () => {
  const p = run({ system: 'builtin', builders: [builder('b1')] });
  assert.equal(p.verdict, 'local');
  assert.equal(candidate(p, 'b1').reason, 'lacks system builtin (has x86_64-linux)');
});

test('no machine can build it: verdict none with every reason', () => {
  const builders = [
    builder('b1'),
    builder('b2', { systems: [ARM], supportedFeatures: [] }),
    builder('b3', { systems: [ARM], supportedFeatures: ['kvm', 'benchmark'], mandatoryFeatures: ['benchmark'] }),
  ];
  const p = run({ system: ARM, requiredSystemFeatures: ['kvm'], builders });
  assert.equal(p.verdict, 'none');
  assert.equal(p.chosen, undefined);
  assert.deepEqual(
    p.candidates.map((c) => [c.name, c.eligible, c.reason]),
    [
      ['b1', false, 'lacks system aarch64-linux (has x86_64-linux)'],
      ['b2', false, 'lacks feature kvm'],
      ['b3', false, 'mandatory feature benchmark not required by the derivation'],
      ['this machine', false, 'lacks system aarch64-linux (has x86_64-linux)'],
    ],
  );
  assert.equal(
    p.summary,
    'nothing can build it: b1 lacks system aarch64-linux (has x86_64-linux); b2 lacks feature kvm; b3 only takes derivations that require benchmark; this machine lacks system aarch64-linux (has x86_64-linux)',
  );
  assert.equal(p.nixMessage, "a 'aarch64-linux' with features {kvm} is required to build '…', but I am a 'x86_64-linux' with features {benchmark, big-parallel, kvm, nixos-test}");
  // One builder: its reason in the summary too.
  const q = run({ requiredSystemFeatures: ['glitter'], builders: [builder('b1')] });
  assert.equal(q.summary, 'nothing can build it: b1 lacks feature glitter; this machine lacks feature glitter');
  // extra-platforms count for this machine.
  const r = run({ system: ARM, local: { ...LOCAL, extraPlatforms: [ARM] }, builders: [builder('b1')] });
  assert.equal(r.verdict, 'local');
});

test('a down builder stays Nix\'s choice; the summary says what happens next', () => {
  const health = new Map<string, ScheduleHealth>([['b1', { status: 'error', summary: 'connection refused' }]]);
  const builders = [builder('b1', { maxJobs: 2, speedFactor: 2 }), builder('b2')];
  let p = run({ maxJobsOverride: 0, builders, health });
  assert.equal(p.verdict, 'remote');
  assert.equal(p.chosen?.name, 'b1');
  assert.equal(candidate(p, 'b1').eligible, true);
  assert.equal(candidate(p, 'b1').down, true);
  assert.match(candidate(p, 'b1').reason, /; down: connection refused$/);
  assert.match(p.summary, /^Nix would try b1 first, but it is down \(connection refused\); if it cannot connect, Nix then builds on b2: the only reachable builder that fits$/);
  assert.equal(p.fallback?.verdict, 'remote');
  assert.equal(p.fallback?.chosen?.name, 'b2');

  // The other fitting builder full: after the failed connection Nix waits (measured).
  p = run({ maxJobsOverride: 0, builders, health, loads: new Map([['b2', 1]]) });
  assert.equal(p.fallback?.verdict, 'wait');
  assert.match(p.summary, /Nix then waits for a machine: every builder that fits is busy \(b2: its only slot is busy; b1 unreachable\)/);

  // Every fitting builder down, -j0: the build fails (measured: "cannot build on" lines, then Worker::run's error).
  const both = new Map<string, ScheduleHealth>([
    ...health,
    ['b2', { status: 'error', checks: [{ status: 'ok', summary: 'fine' }, { status: 'error', summary: 'host key changed' }] }],
  ]);
  p = run({ maxJobsOverride: 0, builders, health: both });
  assert.match(p.summary, /if it cannot connect, it tries b2 \(also down\), then the build fails: nothing can build it: every builder that fits is unreachable \(b1 unreachable; b2 unreachable\); this machine has max-jobs 0/);
  assert.equal(p.fallback?.verdict, 'none');
  assert.match(candidate(p, 'b2').reason, /down: host key changed/);

  // With a free local slot the fallback is this machine.
  p = run({ builders: [builder('b1')], health });
  assert.equal(p.fallback?.verdict, 'local');
  assert.equal(candidate(p, 'this machine').reason, 'can build it; Nix builds here if it cannot reach the chosen builder');

  // A down builder that is not chosen is only annotated; warnings too.
  p = run({
    maxJobsOverride: 0,
    builders: [builder('b1'), builder('b2', { systems: [ARM] })],
    health: new Map([
      ['b2', { status: 'error' as const, summary: 'connection refused' }],
      ['b1', { status: 'warning' as const, summary: 'load 3.1 per core' }],
    ]),
  });
  assert.equal(p.summary, 'builds on b1: the only builder that fits, and this machine has max-jobs 0 (build remotely only)');
  assert.equal(candidate(p, 'b2').reason, 'lacks system x86_64-linux (has aarch64-linux); down: connection refused');
  assert.match(candidate(p, 'b1').reason, /doctor warns: load 3\.1 per core$/);
  assert.equal(p.fallback, undefined);
});
