// The build core against real builders (one lab for the whole file): planBuild's dry run and
// runBuild's live model — where each derivation ran, a chain, a failure, cancellation that leaves
// no process behind, an untrusted builder and a system no builder has.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { planBuild } from '../../language-server/builds/plan';
import { runBuild, type BuildOutcome } from '../../language-server/builds/runBuild';
import type { BuildSnapshot } from '../../language-server/protocol';
import { Nix } from '../../language-server/nix/nix';
import { ExecaRunner } from '../../language-server/nix/runner';
import { buildersOption, builderMarker, runClient, saltedDerivation, startLab, type Lab } from './lab';

let lab: Lab;
let nix: Nix;

before(async () => {
  lab = await startLab();
  nix = new Nix(new ExecaRunner(), { binDir: '', env: lab.env });
});

after(async () => {
  await lab?.stop();
});

/** Instantiate a Nix expression on the client; returns its drv path. */
async function instantiate(expression: string): Promise<string> {
  const r = await runClient(lab, 'nix-instantiate', ['-E', expression]);
  assert.equal(r.code, 0, r.stderr);
  const drv = r.stdout.trim().split('\n').pop() ?? '';
  assert.match(drv, /^\/nix\/store\/.+\.drv$/);
  return drv;
}

const builders = (...names: string[]) => buildersOption(names.map((n) => lab.builder(n)));

function drvOf(s: BuildSnapshot, drvPath: string) {
  const d = s.derivations.find((x) => x.drvPath === drvPath);
  assert.ok(d, `${drvPath} is in the snapshot`);
  return d;
}

function explain(o: BuildOutcome): string {
  return `${o.exit}\n${JSON.stringify(o.problems.map((p) => p.kind))}\n${o.snapshot.messages.join('\n')}`;
}

test('an aarch64-linux derivation with b1+b2 and max-jobs 0 runs on b2 (plan, then build)', async () => {
  const drv = await instantiate(saltedDerivation({ system: 'aarch64-linux', name: 'arm-probe' }));
  const plan = await planBuild(nix, [drv], { builders: builders('b1', 'b2'), maxJobs: 0 });
  assert.equal(plan.status, 'ok', plan.error);
  assert.deepEqual(plan.toBuild, [drv]);
  assert.equal(plan.summary, '1 derivation will be built');

  const updates: BuildSnapshot[] = [];
  const o = await runBuild(nix, { drvPaths: [drv], builders: builders('b1', 'b2'), maxJobs: 0, onUpdate: (s) => updates.push(s) });
  assert.equal(o.status, 'built', explain(o));
  const d = drvOf(o.snapshot, drv);
  assert.equal(d.state, 'built');
  assert.equal(d.machine, 'ssh://b2');
  assert.equal(o.outPaths.length, 1);
  const out = o.outPaths[0] as string;
  assert.ok(lab.hasStorePath('b2', out), 'the output is in b2\'s store');
  assert.ok(!lab.hasStorePath('b1', out), 'and not in b1\'s');
  assert.equal(readFileSync(out, 'utf8').trim(), builderMarker('b2'));
  // Updates came while it ran: changes only, without logs (a build this short may finish between
  // two updates; test/lab/editorBuild.test.ts watches a longer one building live on b2).
  assert.ok(updates.length >= 1);
  assert.ok(updates.every((u) => u.partial === true && u.derivations.every((x) => x.log.length === 0)));
  assert.ok(updates.some((u) => u.derivations.some((x) => x.drvPath === drv)), JSON.stringify(updates));

  // Now it exists: the plan says nothing will build.
  const again = await planBuild(nix, [drv], { builders: builders('b1', 'b2'), maxJobs: 0 });
  assert.equal(again.status, 'ok');
  assert.deepEqual(again.toBuild, []);
});

test('a dependency chain: both derivations built, in order, on b1', async () => {
  const salt = `${Date.now()}-${Math.random()}`;
  const expr = [
    'let',
    `  leaf = derivation { name = "chain-leaf"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo leaf; echo ${salt} > $out" ]; };`,
    `  top = derivation { name = "chain-top"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo top; read -r x < \${leaf}; echo $x > $out" ]; };`,
    'in top',
  ].join('\n');
  const top = await instantiate(expr);
  const plan = await planBuild(nix, [top], { builders: builders('b1'), maxJobs: 0 });
  assert.equal(plan.status, 'ok', plan.error);
  assert.equal(plan.toBuild.length, 2);
  assert.equal(plan.summary, '2 derivations will be built');

  const o = await runBuild(nix, { drvPaths: [top], builders: builders('b1'), maxJobs: 0 });
  assert.equal(o.status, 'built', explain(o));
  const names = o.snapshot.derivations.map((d) => d.name);
  assert.deepEqual(new Set(names), new Set(['chain-leaf', 'chain-top']));
  for (const d of o.snapshot.derivations) {
    assert.equal(d.state, 'built', d.name);
    assert.equal(d.machine, 'ssh://b1', d.name);
  }
  const leaf = o.snapshot.derivations.find((d) => d.name === 'chain-leaf')!;
  const topD = o.snapshot.derivations.find((d) => d.name === 'chain-top')!;
  assert.ok((leaf.finishedAt ?? Infinity) <= (topD.startedAt ?? 0), 'the leaf finished before the top started');
  assert.deepEqual(leaf.log, ['leaf']);
  assert.equal(o.snapshot.progress.done, 2);
});

test('a failing build: failed, with its log lines and a classified problem', async () => {
  const drv = await instantiate(
    `derivation { name = "will-fail"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo compiling ${Date.now()}; echo 'error: missing semicolon' >&2; exit 3" ]; }`,
  );
  const o = await runBuild(nix, { drvPaths: [drv], builders: builders('b1'), maxJobs: 0 });
  assert.equal(o.status, 'failed');
  const d = drvOf(o.snapshot, drv);
  assert.equal(d.state, 'failed');
  assert.equal(d.machine, 'ssh://b1');
  assert.ok(d.log.some((l) => l.startsWith('compiling ')), JSON.stringify(d.log));
  assert.ok(d.log.includes('error: missing semicolon'), JSON.stringify(d.log));
  assert.match(d.failure ?? '', /failed/);
  assert.ok(o.problems.some((p) => p.kind === 'build-failed'), explain(o));
  assert.deepEqual(o.outPaths, []);
});

/** Processes of this machine (not inside a builder) whose command line mentions one of the needles. */
function clientProcessesMentioning(needles: string[], exclude: Set<number>): string[] {
  const own = readlinkSync('/proc/self/ns/pid');
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || exclude.has(Number(entry)) || Number(entry) === process.pid) continue;
    try {
      if (readlinkSync(`/proc/${entry}/ns/pid`) !== own) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      if (state === 'Z' || state === 'X') continue;
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      if (needles.some((n) => cmdline.includes(n))) found.push(`${entry}: ${cmdline}`);
    } catch {
      // The process ended meanwhile.
    }
  }
  return found;
}

test('cancelling a long build through the AbortSignal leaves no nix/ssh process of it', async () => {
  const drv = await instantiate(saltedDerivation({ system: 'x86_64-linux', name: 'long-build', seconds: 600 }));
  const controller = new AbortController();
  let sawBuilding = false;
  const outcome = runBuild(nix, {
    drvPaths: [drv],
    builders: builders('b1'),
    maxJobs: 0,
    signal: controller.signal,
    onUpdate: (s) => {
      if (s.derivations.some((d) => d.state === 'building') && !sawBuilding) {
        sawBuilding = true;
        controller.abort();
      }
    },
  });
  const o = await outcome;
  assert.ok(sawBuilding, 'the build started');
  assert.equal(o.status, 'cancelled');
  assert.equal(drvOf(o.snapshot, drv).state, 'cancelled');
  // The build sleeps 600 s: ending at all, as cancelled, means the cancel stopped it (no clock needed).
  // The process group gets SIGTERM, SIGKILL after the grace period: poll until nothing is left.
  const labPids = new Set(lab.processIds());
  let left: string[] = [];
  for (let i = 0; i < 50; i++) {
    left = clientProcessesMentioning([drv, lab.dir], labPids);
    if (left.length === 0) break;
    await sleep(100);
  }
  assert.deepEqual(left, [], 'no client process of the build is left');
  // And on the builder: its `nix-store --serve` and the build (/bin/sleep 600) went with the connection.
  const cmdline = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    } catch {
      return '';
    }
  };
  let remote: string[] = [];
  for (let i = 0; i < 50; i++) {
    remote = lab.processIds().map(cmdline).filter((c) => c.includes('--serve') || c.includes('/bin/sleep 600'));
    if (remote.length === 0) break;
    await sleep(100);
  }
  assert.deepEqual(remote, [], 'nothing of the build is left on b1');
});

test('b3 alone (untrusted user): the classified not-privileged problem', async () => {
  const drv = await instantiate(saltedDerivation({ system: 'x86_64-linux', name: 'untrusted' }));
  const o = await runBuild(nix, { drvPaths: [drv], builders: builders('b3'), maxJobs: 0 });
  assert.equal(o.status, 'failed');
  assert.ok(o.problems.some((p) => p.kind === 'not-privileged'), explain(o));
  assert.equal(drvOf(o.snapshot, drv).state, 'failed');
});

test('a riscv64-linux derivation: no builder has the system', async () => {
  const drv = await instantiate(saltedDerivation({ system: 'riscv64-linux', name: 'riscv-probe' }));
  const o = await runBuild(nix, { drvPaths: [drv], builders: builders('b1', 'b2'), maxJobs: 0 });
  assert.equal(o.status, 'failed');
  assert.ok(o.problems.some((p) => p.kind === 'no-machine' || p.kind === 'system-mismatch'), explain(o));
  assert.notEqual(drvOf(o.snapshot, drv).state, 'built');
});
