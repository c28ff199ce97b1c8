// The runner's registry of process groups: killAllChildren ends every group still running, also
// members that ignore SIGTERM and grandchildren of the same group.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExecaRunner, killAllChildren } from '../../language-server/nix/runner';

/** Whether any process of group `pgid` (other than a zombie) is left, from /proc. */
async function groupAlive(pgid: number): Promise<boolean> {
  const { readdir, readFile } = await import('node:fs/promises');
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (state !== 'Z' && Number(pgrp) === pgid) return true;
  }
  return false;
}

test('killAllChildren ends a running group, also a member that ignores SIGTERM and its grandchild', async () => {
  // The child ignores SIGTERM, starts a grandchild (same group) and says its pid once both run.
  const script = `
    process.on('SIGTERM', () => {});
    const g = require('node:child_process').spawn('sleep', ['600'], { stdio: 'ignore' });
    g.on('spawn', () => console.log(process.pid + ' ' + g.pid));
    setInterval(() => {}, 1000);`;
  let said = '';
  let onSaid: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (onSaid = resolve));
  const run = new ExecaRunner().run({
    file: process.execPath,
    args: ['-e', script],
    timeoutMs: 0,
    onStdout: (chunk) => {
      said += chunk;
      if (said.includes('\n')) onSaid();
    },
  });
  await ready;
  const pgid = Number(said.split(' ')[0]);
  assert.equal(await groupAlive(pgid), true);
  try {
    assert.equal(killAllChildren(200), 1);
    const stillRunning = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 30_000).unref());
    const result = await Promise.race([run, stillRunning]);
    assert.equal(result?.kind, 'exit', 'the child should have been killed');
    assert.equal(result.kind === 'exit' ? result.signal : undefined, 'SIGKILL');
    assert.equal(await groupAlive(pgid), false, 'the grandchild in the same group is gone too');
  } finally {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // Gone, as it should be.
    }
  }
});

test('a finished run leaves nothing registered: killAllChildren then signals nobody', async () => {
  const done = await new ExecaRunner().run({ file: process.execPath, args: ['-e', 'console.log(process.pid)'], timeoutMs: 0 });
  assert.equal(done.kind, 'ok');
  // If its pid were still registered, a later process could get that pid and be signalled: the
  // registry must be empty, which killAllChildren's return shows.
  assert.equal(killAllChildren(200), 0);
});
