// A mixed fleet: the lab's builders run Nix 2.8 (this machine's), b5 runs Nix 2.26.3 (sshd and Nix
// of the Debian 13 root scripts/ensure-nix.sh makes, its own store, a nix-daemon for its user
// fleet). The doctor reads b5's version, trust and configuration as 2.26 prints them; builds and
// test builds from this machine's 2.8 client run on it; and the other way round, the 2.26 client
// (the wrappers' own store) plans, builds and test-builds on 2.8 builders. Skips, saying why,
// without that root.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { adHocBuilder } from '../../language-server/builders/collect';
import { checkAll, checkBuilder, type DoctorDeps } from '../../language-server/builders/doctor';
import { testBuild } from '../../language-server/builders/testBuild';
import { planBuild } from '../../language-server/builds/plan';
import { runBuild } from '../../language-server/builds/runBuild';
import { parseMachineLine } from '../../language-server/nix/machines';
import { Nix } from '../../language-server/nix/nix';
import { ExecaRunner } from '../../language-server/nix/runner';
import { capabilitiesFor, parseNixVersion } from '../../language-server/nix/version';
import type { BuilderHealth, BuilderInfo, CheckId } from '../../language-server/protocol';
import { nixSections, parseNixReport, sectionsScript } from '../../language-server/remote/probe';
import { buildersOption, builderMarker, runClient, saltedDerivation, startLab, type Lab } from './lab';
import { nix226 } from './nix226';

const found = nix226();
const skip = found.skip;

let lab: Lab;
let nix: Nix;
/** The server's Nix layer on the 2.26 client (the wrappers), against the same lab. */
let client226: Nix;
let deps: DoctorDeps;

before(async () => {
  if (found.skip !== undefined) return;
  const started = Date.now();
  lab = await startLab({ nix226: found.dir });
  console.log(`lab with b5 started in ${Date.now() - started} ms`);
  nix = new Nix(new ExecaRunner(), { binDir: '', env: lab.env });
  client226 = new Nix(new ExecaRunner(), { binDir: found.bin, env: lab.env });
  deps = { nix, thresholds: { busyLoadPerCore: 1000, lowDiskKiB: 0, criticalDiskKiB: 0 } };
});

after(async () => {
  await lab?.stop();
});

function builderOf(line: string): BuilderInfo {
  const { machine, error } = parseMachineLine(line);
  assert.ok(machine, error);
  return adHocBuilder(machine, `test:${machine.uri}`, 'the test machines line');
}

const labBuilder = (name: string) => builderOf(lab.builder(name).machinesLine);

function check(h: BuilderHealth, id: CheckId) {
  const c = h.checks.find((x) => x.id === id);
  assert.ok(c, `no check ${id}`);
  return c;
}

const show = (h: BuilderHealth) => h.checks.map((c) => `${c.id}=${c.status} ${c.summary} ${c.cause ?? ''}`).join('\n  ');

test('the doctor on a mixed fleet: b1 says Nix 2.8.0, b5 Nix 2.26.3, a trusted user of its nix-daemon; every check ok', { skip }, async () => {
  const report = await checkAll([labBuilder('b1'), labBuilder('b5')], deps);
  const [b1, b5] = report.builders as [BuilderHealth, BuilderHealth];
  assert.equal(b1.status, 'ok', show(b1));
  assert.equal(b5.status, 'ok', show(b5));
  assert.equal(check(b1, 'nix-version').summary, 'Nix 2.8.0');
  assert.equal(check(b5, 'nix-version').summary, 'Nix 2.26.3');
  assert.equal(b5.facts.nixVersion, '2.26.3');
  assert.equal(check(b5, 'remote-nix').summary, 'nix-store is on the non-interactive PATH of fleet@b5: /usr/bin/nix-store');
  assert.equal(check(b5, 'trust').summary, 'fleet is a trusted user of the nix-daemon');
  assert.equal(b5.facts.trusted, true);
  assert.equal(b5.facts.system, 'x86_64-linux');
  assert.deepEqual(b5.facts.systemFeatures, ['benchmark', 'big-parallel', 'nixos-test']);
});

test('the probe\'s second round on b5 as Nix 2.26 answers it: `nix config show` (2.20+) and `Trusted: 1` of `nix store info --store daemon` (2.19+, on stderr)', { skip }, () => {
  const caps = capabilitiesFor(parseNixVersion('nix (Nix) 2.26.3')!);
  const sections = nixSections('nix', caps, true);
  assert.deepEqual(
    sections.map((s) => s.words.slice(3)),
    [['config', 'show'], ['store', 'info', '--store', 'daemon']],
  );
  // Real ssh to b5, with the script the doctor sends (its own words, quoted).
  const r = spawnSync('ssh', ['-F', lab.sshConfig, 'b5', sectionsScript(sections)], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  const report = parseNixReport(r.stdout);
  assert.equal(report.trustError, undefined);
  assert.equal(report.trusted, true);
  assert.equal(report.configError, undefined);
  assert.equal(report.config?.get('system'), 'x86_64-linux');
  assert.equal(report.config?.get('trusted-users'), 'root fleet');
});

test('a remote build from the 2.8 client to the 2.26 builder: built on b5, the output in b5\'s store only', { skip }, async () => {
  const expr = saltedDerivation({ system: 'x86_64-linux', name: 'mixed-fleet' });
  const inst = await runClient(lab, 'nix-instantiate', ['-E', expr]);
  assert.equal(inst.code, 0, inst.stderr);
  const drv = inst.stdout.trim();
  const o = await runBuild(nix, { drvPaths: [drv], builders: buildersOption([lab.builder('b5')]), maxJobs: 0 });
  assert.equal(o.status, 'built', `${o.exit} ${o.snapshot.messages.join('\n')}`);
  const d = o.snapshot.derivations.find((x) => x.drvPath === drv);
  assert.equal(d?.machine, 'ssh://fleet@b5');
  const out = o.outPaths[0]!;
  assert.ok(lab.hasStorePath('b5', out), 'the output is in b5\'s store');
  assert.ok(!lab.hasStorePath('b1', out), 'and not in b1\'s');
  assert.equal(readFileSync(out, 'utf8').trim(), builderMarker('b5'));
});

test('the test build on b5 (2.26): ok, ran on b5, its output in b5\'s store', { skip }, async () => {
  const built = await testBuild(labBuilder('b5'), { nix });
  assert.equal(built.status, 'ok', `${built.summary} ${built.cause ?? ''}`);
  assert.equal(built.ranOnThisBuilder, true);
  assert.ok(lab.hasStorePath('b5', built.outPath ?? ''));
  const health = await checkBuilder(labBuilder('b5'), deps);
  assert.equal(health.status, 'ok', show(health));
});

test('the 2.26 client (nixBinDir = the wrappers) plans and builds on the 2.8 builder b1: the dry run is read, the build ran on b1, the output is in b1\'s store and copied back into the 2.26 store', { skip }, async () => {
  const caps = await client226.detect();
  assert.equal(caps.ok ? caps.value.version.text : caps.message, '2.26.3');
  const inst = await client226.run(client226.bin('nix-instantiate'), ['-E', saltedDerivation({ system: 'x86_64-linux', name: 'from-226' })], { timeoutMs: 60_000 });
  assert.equal(inst.kind, 'ok', inst.stderr);
  const drv = inst.stdout.trim();
  const builders = buildersOption([lab.builder('b1')]);
  const plan = await planBuild(client226, [drv], { builders, maxJobs: 0 });
  assert.equal(plan.status, 'ok', plan.error);
  assert.deepEqual(plan.toBuild, [drv]);
  const o = await runBuild(client226, { drvPaths: [drv], builders, maxJobs: 0 });
  assert.equal(o.status, 'built', `${o.exit} ${o.snapshot.messages.join('\n')}`);
  assert.equal(o.snapshot.derivations.find((x) => x.drvPath === drv)?.machine, 'ssh://b1');
  const out = o.outPaths[0]!;
  assert.ok(lab.hasStorePath('b1', out), 'built on b1');
  assert.equal(readFileSync(path.join(found.skip === undefined ? found.dir : '', 'root', out), 'utf8').trim(), builderMarker('b1'));
});

test('the 2.26 client\'s test build on the untrusted 2.8 builder b3: not-privileged, as with 2.8', { skip }, async () => {
  const built = await testBuild(labBuilder('b3'), { nix: client226 });
  assert.equal(built.status, 'error', built.summary);
  assert.equal(built.problem?.kind, 'not-privileged', `${built.summary} ${built.cause ?? ''}`);
  assert.match(built.summary, /b3/);
});
