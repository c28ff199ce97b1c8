// The dry-run parser and the build model against stderr recorded from real Nix 2.8.0
// (test/fixtures/nix-2.8.0; dry-run-*.stderr.txt: `nix-store --realise --dry-run <drv…>`, the
// cached path from a local `file://` binary cache with `--option substituters file://… --option
// require-sigs false` after `nix copy --to file://…` and `nix-store --delete` of the output).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseLog, type LogEvent } from '../../language-server/nix/logParser';
import { BuildModel } from '../../language-server/builds/model';
import { parseDryRun, storeName, summarizeDryRun } from '../../language-server/builds/plan';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'nix-2.8.0');
const fixture = (name: string) => readFileSync(path.join(FIXTURES, name), 'utf8');
const DRV = /^\/nix\/store\/[0-9a-z]{32}-[^/]+\.drv$/;
const PATH = /^\/nix\/store\/[0-9a-z]{32}-[^/]+$/;

function model(name: string, finish?: 'ok' | 'failed' | 'cancelled') {
  let t = 1000;
  const m = new BuildModel({ now: () => (t += 10) });
  m.applyAll(parseLog(fixture(name)));
  if (finish) m.finishAll(finish);
  return m;
}

test('dry run: two derivations to build', () => {
  const d = parseDryRun(fixture('dry-run-two.stderr.txt'));
  assert.equal(d.toBuild.length, 2);
  assert.ok(d.toBuild.every((p) => DRV.test(p)));
  assert.deepEqual(d.toBuild.map(storeName), ['chain-leaf', 'chain-top']);
  assert.deepEqual(d.toFetch, []);
  assert.equal(summarizeDryRun(d), '2 derivations will be built');
});

test('dry run: one derivation ("this derivation will be built:")', () => {
  const d = parseDryRun(fixture('dry-run-one.stderr.txt'));
  assert.deepEqual(d.toBuild.map(storeName), ['chain-leaf']);
  assert.equal(summarizeDryRun(d), '1 derivation will be built');
});

test('dry run: nothing to do prints nothing', () => {
  const d = parseDryRun(fixture('dry-run-nothing.stderr.txt'));
  assert.deepEqual(d, { toBuild: [], toFetch: [] });
  assert.match(summarizeDryRun(d), /^Nothing to do/);
});

test('dry run: only fetched from a file:// cache → "Nothing will build: hello comes from the cache"', () => {
  const d = parseDryRun(fixture('dry-run-fetch-one.stderr.txt'));
  assert.deepEqual(d.toBuild, []);
  assert.equal(d.toFetch.length, 1);
  assert.ok(PATH.test(d.toFetch[0] as string));
  assert.equal(d.downloadMiB, 0);
  assert.equal(d.unpackedMiB, 0);
  assert.equal(summarizeDryRun(d), 'Nothing will build: hello comes from the cache');
});

test('dry run: built and fetched together', () => {
  const one = parseDryRun(fixture('dry-run-build-and-fetch.stderr.txt'));
  assert.deepEqual(one.toBuild.map(storeName), ['needs-hello']);
  assert.deepEqual(one.toFetch.map(storeName), ['hello']);
  const two = parseDryRun(fixture('dry-run-build-two-fetch-one.stderr.txt'));
  assert.equal(two.toBuild.length, 2);
  assert.equal(two.toFetch.length, 1);
  assert.equal(summarizeDryRun(two), '2 derivations will be built, 1 path (0.00 MiB) fetched');
});

test('dry run: hand-made plural fetch line with sizes, unrelated lines, and garbage never throw', () => {
  const d = parseDryRun(
    [
      'warning: something',
      'these 2 paths will be fetched (1.25 MiB download, 5.50 MiB unpacked):',
      '  /nix/store/00000000000000000000000000000000-a',
      '  /nix/store/11111111111111111111111111111111-b',
      'these 3 derivations will be built:',
      '  /nix/store/22222222222222222222222222222222-x.drv',
      'error: boom',
      '  /nix/store/33333333333333333333333333333333-not-in-a-section.drv',
    ].join('\r\n'),
  );
  assert.deepEqual(d.toFetch.map(storeName), ['a', 'b']);
  assert.deepEqual(d.toBuild.map(storeName), ['x']);
  assert.equal(d.downloadMiB, 1.25);
  assert.equal(d.unpackedMiB, 5.5);
  assert.equal(summarizeDryRun(d), '1 derivation will be built, 2 paths (1.25 MiB) fetched');
  assert.equal(summarizeDryRun({ toBuild: [], toFetch: ['/nix/store/00000000000000000000000000000000-a', '/nix/store/11111111111111111111111111111111-b'] }), 'Nothing will build: a and b come from the cache');
  for (const s of ['', '\0\0', 'these derivations will be built:\n  ', '@nix {']) assert.doesNotThrow(() => parseDryRun(s));
});

test('model: local build (build-success.jsonl): queued → built, phases, log, progress', () => {
  const m = model('build-success.jsonl');
  const s = m.snapshot();
  assert.equal(s.derivations.length, 1);
  const d = s.derivations[0]!;
  assert.equal(d.state, 'built');
  assert.equal(d.machine, '');
  assert.ok(d.logLineCount > 0);
  assert.equal(d.log.length, d.logLineCount);
  assert.equal(d.lastLogLine, d.log[d.log.length - 1]);
  assert.ok(d.phase, 'a phase was seen');
  assert.ok(d.startedAt !== undefined && d.finishedAt !== undefined && d.finishedAt > d.startedAt);
  assert.equal(s.progress.done, 1);
  assert.equal(s.progress.failed, 0);
  assert.deepEqual(JSON.parse(JSON.stringify(s)), s, 'snapshot is plain JSON');
});

test('model: remote build over ssh:// names the machine, and the output copy back', () => {
  const s = model('remote-build-ssh.jsonl', 'ok').snapshot();
  assert.equal(s.derivations.length, 1);
  assert.equal(s.derivations[0]!.state, 'built');
  assert.equal(s.derivations[0]!.machine, 'ssh://b1');
  const copy = s.transfers.find((t) => t.kind === 'copy' && t.from === 'ssh://b1');
  assert.ok(copy, 'the output was copied from b1');
  assert.equal(copy.state, 'done');
});

test('model: ssh-ng forwards the remote daemon\'s build (machine ""): correlated by drv path', () => {
  const m = new BuildModel();
  const events = parseLog(fixture('remote-build-ssh-ng.jsonl'));
  let sawBuildingRemote = false;
  for (const ev of events) {
    m.apply(ev);
    const d = m.snapshot().derivations[0];
    if (d?.state === 'building') {
      assert.equal(d.machine, 'ssh-ng://b1', 'never reported as local while the remote daemon builds');
      sawBuildingRemote = true;
    }
  }
  assert.ok(sawBuildingRemote);
  const d = m.snapshot().derivations[0]!;
  assert.equal(d.state, 'built');
  assert.equal(d.machine, 'ssh-ng://b1');
  assert.ok(d.log.some((l) => l.startsWith('remote build of ')), 'the nested activity\'s log lines belong to it');
  assert.equal(d.phase, 'buildPhase');
  assert.equal(m.snapshot().progress.done, 1, 'progress of the client, not of the remote daemon');
});

test('model: aarch64-linux routed to b2', () => {
  const s = model('remote-build-aarch64.jsonl', 'ok').snapshot();
  const built = s.derivations.filter((d) => d.state === 'built');
  assert.equal(built.length, 1);
  assert.match(built[0]!.machine, /^ssh:\/\/b2/);
});

test('model: a dependency chain: every derivation built, in order', () => {
  const s = model('dependency-chain.jsonl', 'ok').snapshot();
  assert.equal(s.derivations.length, 3);
  assert.ok(s.derivations.every((d) => d.state === 'built'));
  const started = s.derivations.map((d) => d.startedAt ?? 0);
  assert.deepEqual([...started].sort((a, b) => a - b), started, 'queued in build order');
  assert.deepEqual(s.progress, { done: 3, expected: 3, running: 0, failed: 0 });
});

test('model: a failing build is failed, with its log lines and Nix\'s message', () => {
  const s = model('build-failure.jsonl', 'failed').snapshot();
  const d = s.derivations[0]!;
  assert.equal(d.state, 'failed');
  assert.ok(d.log.includes('error: missing semicolon'));
  assert.match(d.failure ?? '', /failed with exit code 3/);
  assert.equal(s.progress.failed, 1);
});

test('model: a failed dependency fails its dependant, which never started', () => {
  const s = model('dependency-failure.jsonl', 'failed').snapshot();
  const dep = s.derivations.find((d) => d.name === 'dep-fails')!;
  const top = s.derivations.find((d) => d.name === 'top')!;
  assert.equal(dep.state, 'failed');
  assert.equal(top.state, 'failed');
  assert.match(top.failure ?? '', /dependencies of derivation/);
  assert.equal(top.startedAt, undefined);
});

test('model: a remote failure names the machine', () => {
  const s = model('remote-build-failure.jsonl', 'failed').snapshot();
  const d = s.derivations[0]!;
  assert.equal(d.state, 'failed');
  assert.equal(d.machine, 'ssh://b1');
  assert.match(d.failure ?? '', /on 'ssh:\/\/b1' failed/);
});

test('model: substitution from a file:// cache with progress', () => {
  const s = model('substitute-from-file-cache.jsonl', 'ok').snapshot();
  const sub = s.transfers.find((t) => t.kind === 'substitute');
  assert.ok(sub);
  assert.equal(sub.name, 'cached');
  assert.match(sub.from, /^file:\/\//);
  assert.equal(sub.state, 'done');
  assert.ok(s.transfers.some((t) => t.kind === 'copy' && t.from.startsWith('file://')));
  assert.equal(s.copyProgress.done, 1);
});

test('model: cancel marks what was queued or building as cancelled', () => {
  const events = parseLog(fixture('dependency-chain.jsonl'));
  const m = new BuildModel();
  // Stop right after the first build started.
  const first = events.findIndex((e) => e.kind === 'start' && e.build !== undefined);
  m.applyAll(events.slice(0, first + 1));
  m.finishAll('cancelled');
  const states = m.snapshot().derivations.map((d) => d.state);
  assert.deepEqual(states, ['cancelled', 'cancelled', 'cancelled']);
});

test('model: the log is bounded per derivation, the line count is not', () => {
  const m = new BuildModel({ maxLogBytes: 4096 });
  const drv = '/nix/store/00000000000000000000000000000000-big.drv';
  m.apply({ kind: 'start', id: '1', level: 3, activityType: 105, activityTypeName: 'build', text: '', fields: [drv, '', 1, 1], build: { drvPath: drv, machine: '', round: 1, nrRounds: 1 } });
  const line = 'x'.repeat(99);
  for (let i = 0; i < 100_000; i++) {
    m.apply({ kind: 'result', id: '1', resultType: 101, resultTypeName: 'buildLogLine', fields: [line], logLine: `${i} ${line}` });
  }
  const d = m.derivation(drv)!;
  assert.equal(d.logLineCount, 100_000);
  assert.ok(d.log.join('\n').length <= 4096);
  assert.equal(d.log[d.log.length - 1], `99999 ${line}`);
  assert.equal(d.logDropped + d.log.length, 100_000);
});

test('model: plain lines (Nix without internal-json) and junk events never throw', () => {
  const m = new BuildModel();
  const drv = '/nix/store/00000000000000000000000000000000-p.drv';
  const plain = (text: string): LogEvent => ({ kind: 'plain', text });
  m.applyAll([plain('these 1 derivations will be built:'), plain(`  ${drv}`), plain(`building '${drv}' on 'ssh://b1'...`), plain('hello')]);
  assert.equal(m.derivation(drv)?.state, 'building');
  assert.equal(m.derivation(drv)?.machine, 'ssh://b1');
  assert.deepEqual(m.derivation(drv)?.log, ['hello']);
  m.apply(plain(`error: builder for '${drv}' failed with exit code 1`));
  assert.equal(m.derivation(drv)?.state, 'failed');
  m.applyAll([{ kind: 'malformed', text: '@nix {', reason: 'x' }, { kind: 'stop', id: '999' }, { kind: 'result', id: '5', resultType: 999, resultTypeName: 'unknownCode', fields: [] }]);
});

test('model: a build activity stopped by an interrupt (no progress counted) is not built; cancel decides', () => {
  const events = parseLog(fixture('build-success.jsonl'));
  const m = new BuildModel();
  const first = events.findIndex((e) => e.kind === 'start' && e.build !== undefined);
  m.applyAll(events.slice(0, first + 1));
  const start = events[first] as Extract<LogEvent, { kind: 'start' }>;
  m.apply({ kind: 'stop', id: start.id });
  const drv = start.build!.drvPath;
  assert.equal(m.derivation(drv)?.state, 'building');
  m.finishAll('cancelled');
  assert.equal(m.derivation(drv)?.state, 'cancelled');
});

test('changes: only what moved since the last call, without logs; replayed, they rebuild the whole state', () => {
  const events = parseLog(fixture('dependency-chain.jsonl'));
  let t = 1000;
  const m = new BuildModel({ now: () => (t += 10) });
  const merged = new Map<string, unknown>();
  let sent = 0;
  for (let i = 0; i < events.length; i++) {
    m.apply(events[i] as LogEvent);
    if (i % 5 === 4) {
      const c = m.changes();
      assert.equal(c.partial, true);
      assert.ok(c.derivations.every((d) => d.log.length === 0), 'no logs in changes');
      for (const d of c.derivations) merged.set(d.drvPath, d);
      sent += c.derivations.length;
    }
  }
  m.finishAll('ok');
  for (const d of m.changes().derivations) merged.set(d.drvPath, d);
  const whole = m.snapshot({ logs: false });
  assert.deepEqual(whole.derivations.map((d) => merged.get(d.drvPath)), whole.derivations);
  // Nothing happened since: an empty change.
  assert.deepEqual(m.changes().derivations, []);
  assert.ok(sent > 0);
});

test('changes of a build with 5000 derivations and 1 M log lines stay small: the cost follows what moved', () => {
  const n = 5000;
  const drvs = Array.from({ length: n }, (_, i) => `/nix/store/${String(i).padStart(32, '0')}-d${i}.drv`);
  const m = new BuildModel({ drvPaths: drvs });
  assert.equal(m.changes().derivations.length, n, 'the first change lists the queue');
  let biggest = 0;
  let line = 0;
  m.apply({ kind: 'start', id: 'builds', level: 0, activityType: 104, activityTypeName: 'builds', text: '', fields: [] } as unknown as LogEvent);
  for (let i = 0; i < n; i++) {
    const id = `a${i}`;
    m.apply({ kind: 'start', id, level: 3, activityType: 105, activityTypeName: 'build', text: '', fields: [], build: { drvPath: drvs[i] as string, machine: 'ssh://b1' } } as unknown as LogEvent);
    for (let k = 0; k < 200; k++) m.apply({ kind: 'result', id, resultType: 101, resultTypeName: 'buildLogLine', fields: [], logLine: `line ${line++}` } as unknown as LogEvent);
    m.apply({ kind: 'result', id: 'builds', resultType: 105, resultTypeName: 'progress', fields: [], progress: { done: i + 1, expected: n, running: 0, failed: 0 } } as unknown as LogEvent);
    m.apply({ kind: 'stop', id });
    // An update every 10 derivations (≈ what 200 ms sees at this rate).
    if (i % 10 === 9) biggest = Math.max(biggest, JSON.stringify(m.changes()).length);
  }
  assert.equal(line, 1_000_000);
  assert.equal(m.derivation(drvs[n - 1] as string)?.state, 'built');
  // 10 derivations per change: a few KB, not the 5000 of the build (a whole snapshot is ~1.5 MB).
  assert.ok(biggest < 16 * 1024, `largest change ${biggest} bytes`);
  assert.ok(JSON.stringify(m.snapshot({ logs: false })).length > 50 * biggest);
});

test('finishAll: an ended build counts nothing as running, whatever the last progress of Nix said', () => {
  const drv = '/nix/store/00000000000000000000000000000000-long.drv';
  const progress = (id: string, running: number) =>
    ({ kind: 'result', id, resultType: 105, resultTypeName: 'progress', fields: [], progress: { done: 0, expected: 2, running, failed: 0 } }) as unknown as LogEvent;
  for (const how of ['cancelled', 'failed', 'ok'] as const) {
    const m = new BuildModel({ drvPaths: [drv] });
    // Nix's last word before the end (an interrupt sends no further progress): one build and one copy running.
    m.apply({ kind: 'start', id: 'builds', level: 0, activityType: 104, activityTypeName: 'builds', text: '', fields: [] } as unknown as LogEvent);
    m.apply({ kind: 'start', id: 'copies', level: 0, activityType: 103, activityTypeName: 'copyPaths', text: '', fields: [] } as unknown as LogEvent);
    m.apply({ kind: 'start', id: 'a1', level: 3, activityType: 105, activityTypeName: 'build', text: '', fields: [], build: { drvPath: drv, machine: '' } } as unknown as LogEvent);
    m.applyAll([progress('builds', 1), progress('copies', 1)]);
    assert.deepEqual([m.snapshot().progress.running, m.snapshot().copyProgress.running], [1, 1]);
    m.finishAll(how);
    assert.deepEqual([m.snapshot().progress.running, m.snapshot().copyProgress.running], [0, 0], how);
    assert.equal(m.changes().progress.running, 0, `${how}: the last update says so too`);
    assert.equal(m.snapshot().progress.expected, 2, 'the other counts stay as Nix said');
  }
});
