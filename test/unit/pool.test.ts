import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachLimited } from '../../language-server/util/pool';

/** Jobs that finish only when the test says so, recording how many run at once. */
function controlledJobs() {
  const started: number[] = [];
  const finish = new Map<number, (fail?: Error) => void>();
  let running = 0;
  let most = 0;
  const work = (item: number) =>
    new Promise<void>((resolve, reject) => {
      started.push(item);
      running++;
      most = Math.max(most, running);
      finish.set(item, (fail) => {
        running--;
        if (fail) reject(fail);
        else resolve();
      });
    });
  return { started, finish, work, most: () => most };
}

const settle = () => new Promise((r) => setImmediate(r));

test('at most `limit` at once, started in order, all done', async () => {
  const jobs = controlledJobs();
  const items = [0, 1, 2, 3, 4, 5, 6];
  const all = forEachLimited(items, 3, jobs.work);
  await settle();
  assert.deepEqual(jobs.started, [0, 1, 2]);
  jobs.finish.get(1)?.();
  await settle();
  assert.deepEqual(jobs.started, [0, 1, 2, 3]);
  for (const i of items) {
    jobs.finish.get(i)?.();
    await settle();
  }
  await all;
  assert.deepEqual(jobs.started, items);
  assert.equal(jobs.most(), 3);
});

test('after a failure no further item starts; the first error once the running ones settle', async () => {
  const jobs = controlledJobs();
  let done = false;
  const all = forEachLimited([0, 1, 2, 3, 4], 2, jobs.work).finally(() => (done = true));
  await settle();
  jobs.finish.get(0)?.(new Error('first'));
  await settle();
  assert.deepEqual(jobs.started, [0, 1], 'nothing new starts after the failure');
  assert.equal(done, false, 'waits for the running item');
  jobs.finish.get(1)?.(new Error('second'));
  await assert.rejects(all, /first/);
});

test('an empty list, and a limit below 1 counts as 1', async () => {
  await forEachLimited([], 4, () => Promise.reject(new Error('never called')));
  const jobs = controlledJobs();
  const all = forEachLimited([0, 1], 0, jobs.work);
  await settle();
  assert.deepEqual(jobs.started, [0]);
  jobs.finish.get(0)?.();
  await settle();
  jobs.finish.get(1)?.();
  await all;
  assert.equal(jobs.most(), 1);
});
