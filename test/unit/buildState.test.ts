// The extension's merge of buildProgress notifications (partial while running, whole at the end),
// the grouping the Builds view shows, and the words on a target attribute.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BUILD_HISTORY, BuildStore, drvStatus, groupDerivations, targetStatus } from '../../extension/buildState';
import type { BuildInfo, BuildSnapshot, BuildUpdate, DrvSnapshot } from '../../language-server/protocol';

const drv = (name: string, p: Partial<DrvSnapshot> = {}): DrvSnapshot => ({
  drvPath: `/nix/store/${'a'.repeat(32)}-${name}.drv`,
  name,
  state: 'queued',
  machine: '',
  logLineCount: 0,
  log: [],
  logDropped: 0,
  ...p,
});

const snap = (derivations: DrvSnapshot[], partial: boolean, p: Partial<BuildSnapshot> = {}): BuildSnapshot => ({
  derivations,
  transfers: [],
  progress: { done: 0, expected: 0, running: 0, failed: 0 },
  copyProgress: { done: 0, expected: 0, running: 0, failed: 0 },
  messages: [],
  events: 0,
  ...(partial ? { partial: true } : {}),
  ...p,
});

const info = (buildId: string, status: BuildInfo['status'], snapshot?: BuildSnapshot): BuildInfo => ({
  buildId,
  targets: [{ attrPath: ['a'], drvPath: drv('a').drvPath, line: 1 }],
  plan: { summary: '2 derivations will be built', toBuild: [], toFetch: [], problems: [] },
  status,
  ...(snapshot ? { snapshot } : {}),
});

const update = (buildId: string, snapshot: BuildSnapshot): BuildUpdate => ({ buildId, status: 'running', snapshot });

test('partial notifications are merged by drv path; the final whole snapshot replaces them', () => {
  const store = new BuildStore();
  assert.equal(store.apply(update('b1', snap([drv('a')], true))), undefined, 'an update of a build never started is ignored');
  store.apply(info('b1', 'running'));
  store.apply(update('b1', snap([drv('a'), drv('b')], true, { messages: ['warning: one'] })));
  const mid = store.apply(update('b1', snap([drv('a', { state: 'building', machine: 'ssh://b2', lastLogLine: 'compiling' })], true, { events: 7, messages: ['warning: two'] })));
  assert.ok(mid);
  assert.equal(mid.plan.summary, '2 derivations will be built', 'what the start said is kept');
  assert.deepEqual(mid.snapshot?.messages, ['warning: one', 'warning: two'], 'new messages are appended');
  assert.deepEqual(
    mid.snapshot?.derivations.map((d) => [d.name, d.state]),
    [
      ['a', 'building'],
      ['b', 'queued'],
    ],
  );
  assert.equal(mid.snapshot?.partial, false, 'the merged state is whole');
  assert.equal(mid.snapshot?.events, 7);
  assert.equal(store.derivation('b1', drv('a').drvPath)?.machine, 'ssh://b2');
  const end = store.apply(info('b1', 'built', snap([drv('a', { state: 'built' })], false)));
  assert.deepEqual(end?.snapshot?.derivations.map((d) => d.name), ['a'], 'the whole final snapshot is the truth');
  // A late update never makes a finished build run again.
  assert.equal(store.apply(update('b1', snap([drv('b', { state: 'building' })], true))), undefined);
  assert.equal(store.get('b1')?.status, 'built');
  // A new start with the same id (a restarted server) is another build: nothing of the old one is kept.
  const again = store.apply(info('b1', 'running'));
  assert.equal(again?.snapshot, undefined);
  assert.equal(store.apply(update('b1', snap([drv('c')], true)))?.snapshot?.derivations.map((d) => d.name).join(), 'c');
});

test('the same path copied to two builders is two transfers', () => {
  const store = new BuildStore();
  store.apply(info('t', 'running'));
  const t = (to: string) => ({ kind: 'copy' as const, path: '/nix/store/x-src', name: 'x-src', from: '', to, state: 'done' as const, startedAt: 1 });
  const merged = store.apply(update('t', snap([], true, { transfers: [t('ssh://b1'), t('ssh://b2')] })));
  assert.equal(merged?.snapshot?.transfers.length, 2);
});

test('a short history: the oldest builds go', () => {
  const store = new BuildStore();
  for (let i = 0; i < BUILD_HISTORY + 5; i++) store.apply(info(`b${i}`, 'built', snap([], false)));
  const ids = store.all().map((b) => b.buildId);
  assert.equal(ids.length, BUILD_HISTORY);
  assert.equal(ids[0], 'b5');
  assert.equal(store.get('b0'), undefined);
});

test('thousands of derivations: 5000 updates of 2 changes each merge exactly', () => {
  const store = new BuildStore();
  const all = Array.from({ length: 5000 }, (_, i) => drv(`d${i}`));
  store.apply(info('big', 'running'));
  store.apply(update('big', snap(all, true)));
  for (let i = 0; i < 5000; i += 2) {
    store.apply(update('big', snap([drv(`d${i}`, { state: 'built' }), drv(`d${i + 1}`, { state: 'building' })], true)));
  }
  const groups = groupDerivations(store.get('big')?.snapshot?.derivations ?? []);
  assert.deepEqual(
    groups.map((g) => [g.group, g.derivations.length]),
    [
      ['building', 2500],
      ['built', 2500],
    ],
  );
});

test('groups in the order the view shows them; substituted is "fetched"', () => {
  const groups = groupDerivations([drv('q'), drv('f', { state: 'failed' }), drv('s', { state: 'substituted' }), drv('b', { state: 'building' }), drv('ok', { state: 'built' })]);
  assert.deepEqual(
    groups.map((g) => [g.group, g.derivations.map((d) => d.name)]),
    [
      ['building', ['b']],
      ['failed', ['f']],
      ['queued', ['q']],
      ['built', ['ok']],
      ['fetched', ['s']],
    ],
  );
});

test('words: where and how long', () => {
  assert.equal(drvStatus(drv('a', { state: 'building', machine: 'ssh://root@b2', startedAt: 1000, phase: 'buildPhase' }), 4100), 'building on b2 (3.1 s) — buildPhase');
  assert.equal(drvStatus(drv('a', { state: 'built', machine: '', startedAt: 0, finishedAt: 12_345 })), 'built here (12 s)');
  assert.equal(drvStatus(drv('a', { state: 'substituted' })), 'fetched from cache');
  const running = info('x', 'running');
  assert.deepEqual(targetStatus(running, undefined), { state: 'queued', text: '2 derivations will be built' });
  assert.deepEqual(targetStatus({ ...running, status: 'built' }, undefined), { state: 'fetched', text: 'already built' });
  assert.deepEqual(targetStatus({ ...running, status: 'built', plan: { ...running.plan, toFetch: ['/nix/store/x'] } }, drv('a', { state: 'substituted' })), { state: 'fetched', text: 'fetched from cache' });
  assert.deepEqual(targetStatus(running, drv('a', { state: 'failed', machine: 'ssh://b1' })), { state: 'failed', text: 'failed on b1' });
});

/** Whether `p` has settled by the time already-queued callbacks have run (no clock involved). */
async function settled<T>(p: Promise<T>): Promise<{ value?: T; error?: Error } | undefined> {
  const pending = Symbol('pending');
  const r = await Promise.race([p.then((value) => ({ value }), (error: Error) => ({ error })), new Promise<typeof pending>((resolve) => setImmediate(() => resolve(pending)))]);
  return r === pending ? undefined : r;
}

test('a build that ends before its startBuild answer arrives: waiting for it resolves at once with its final state', async () => {
  const store = new BuildStore();
  // The server's order for a build that ends at once: start, end, then the startBuild answer.
  store.apply(info('quick', 'running'));
  store.apply(info('quick', 'built', snap([drv('a', { state: 'built' })], false)));
  const ended = await settled(store.whenEnded('quick'));
  assert.equal(ended?.value?.status, 'built');
  // The usual order: waiting first, then the end.
  store.apply(info('slow', 'running'));
  const waiting = store.whenEnded('slow');
  assert.equal(await settled(waiting), undefined, 'still running');
  store.apply(info('slow', 'failed', snap([], false)));
  assert.equal((await settled(waiting))?.value?.status, 'failed');
});

test('when the server stops, every waiter is rejected with the reason and running builds end', async () => {
  const store = new BuildStore();
  store.apply(info('done', 'built', snap([], false)));
  store.apply(info('r1', 'running'));
  store.apply(info('r2', 'running'));
  store.apply(update('r2', snap([drv('a', { state: 'building' }), drv('b', { state: 'built' })], true)));
  const waits = [store.whenEnded('r1'), store.whenEnded('r1'), store.whenEnded('r2')];
  assert.deepEqual(store.running().map((b) => b.buildId), ['r2', 'r1']);
  const ended = store.serverStopped('The language server crashed.', 'failed');
  assert.deepEqual(ended.map((b) => [b.buildId, b.status, b.problems]), [
    ['r1', 'failed', ['The language server crashed.']],
    ['r2', 'failed', ['The language server crashed.']],
  ]);
  for (const w of waits) assert.equal((await settled(w))?.error?.message, 'The language server crashed.');
  assert.deepEqual(store.get('r2')?.snapshot?.derivations.map((d) => [d.name, d.state]), [['a', 'cancelled'], ['b', 'built']], 'what had not ended is cancelled');
  assert.equal(store.get('done')?.status, 'built', 'an ended build stays as it ended');
  assert.deepEqual(store.running(), []);
});

test('a long history never drops a running build (someone may wait for it)', () => {
  const store = new BuildStore();
  store.apply(info('long', 'running'));
  for (let i = 0; i < BUILD_HISTORY + 5; i++) store.apply(info(`b${i}`, 'built', snap([], false)));
  assert.equal(store.all().length, BUILD_HISTORY);
  assert.equal(store.get('long')?.status, 'running');
});
