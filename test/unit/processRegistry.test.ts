// The registry of Nix process groups that lets the next server end what a server killed hard left
// running: what it decides to end (never a pid given to another process since), and which files it
// trusts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { decide, parseEntries, processStart, ProcessRegistry, registryDir } from '../../language-server/nix/processRegistry';
import { endOrphanedGroups } from '../../language-server/nix/runner';

const fresh = () => mkdtempSync(path.join(tmpdir(), 'nb-registry-'));

test('decide: nothing while the server runs; else the groups whose leader is still the process recorded', () => {
  const now = new Map([
    [100, '5000'], // the server, still the same process
    [200, '6000'], // a leader, still the same process
    [300, '9999'], // a pid given to another process since
  ]);
  const startOf = (pid: number) => now.get(pid);
  const groups = [
    { pid: 200, start: '6000' },
    { pid: 300, start: '6100' },
    { pid: 400, start: '6200' }, // gone
  ];
  assert.deepEqual(decide({ pid: 100, start: '5000' }, groups, startOf), { serverAlive: true, end: [] });
  // The server's pid runs another process now: that server is gone.
  now.set(100, '7000');
  assert.deepEqual(decide({ pid: 100, start: '5000' }, groups, startOf), { serverAlive: false, end: [200] });
  now.delete(100);
  assert.deepEqual(decide({ pid: 100, start: '5000' }, groups, startOf), { serverAlive: false, end: [200] });
});

test('parseEntries refuses anything but pids above 1 with a start time', () => {
  assert.deepEqual(parseEntries('[{"pid":42,"start":"123"}]'), [{ pid: 42, start: '123' }]);
  for (const bad of ['{}', '[{"pid":1,"start":"1"}]', '[{"pid":0,"start":"1"}]', '[{"pid":-5,"start":"1"}]', '[{"pid":"42","start":"1"}]', '[{"pid":42}]', '[{"pid":42,"start":"1; x"}]']) {
    assert.throws(() => parseEntries(bad), Error, bad);
  }
});

test('registryDir: NIX_BUILDERS_RUNTIME_DIR, else $XDG_RUNTIME_DIR/nix-builders, else a per-uid folder in the temporary folder', () => {
  assert.equal(registryDir({ NIX_BUILDERS_RUNTIME_DIR: '/x', XDG_RUNTIME_DIR: '/run/user/7' }), '/x');
  assert.equal(registryDir({ XDG_RUNTIME_DIR: '/run/user/7' }), '/run/user/7/nix-builders');
  assert.equal(registryDir({}), path.join(tmpdir(), `nix-builders-${process.getuid!()}`));
});

test('the registry file: 0600 in a 0700 folder, replaced whole, removed when no group is left', () => {
  const dir = path.join(fresh(), 'reg');
  const registry = new ProcessRegistry(dir, { pid: 4242, start: '77' });
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  registry.record([{ pid: 10, start: '1' }]);
  registry.record([{ pid: 10, start: '1' }, { pid: 11, start: '2' }]);
  assert.deepEqual(readdirSync(dir), ['4242-77.json']);
  const file = path.join(dir, '4242-77.json');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(ProcessRegistry.orphans(dir, () => undefined).files, [{ file, groups: [] }]);
  registry.record([]);
  assert.deepEqual(readdirSync(dir), []);
});

/** A real process in a group of its own, and its start time. */
async function leader(): Promise<{ pid: number; start: string; exited: Promise<unknown> }> {
  const child = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
  await once(child, 'spawn');
  const pid = child.pid!;
  return { pid, start: processStart(pid)!, exited: once(child, 'exit') };
}

test('endOrphanedGroups ends the groups of a server that is gone, never a recycled pid, and keeps a live server\'s file', async () => {
  const dir = fresh();
  const orphan = await leader();
  const recycled = await leader();
  const alive = await leader();
  try {
    // A server that is gone (no process has pid 2^22+1: above pid_max) left two groups: one still
    // the process it started, and one whose pid now names another process (another start time).
    writeFileSync(path.join(dir, `4194305-1.json`), JSON.stringify([orphan, { pid: recycled.pid, start: `${Number(recycled.start) - 1}` }].map(({ pid, start }) => ({ pid, start }))), { mode: 0o600 });
    // A server that still runs (this test) lists a group that must stay.
    writeFileSync(path.join(dir, `${process.pid}-${processStart(process.pid)}.json`), JSON.stringify([{ pid: alive.pid, start: alive.start }]), { mode: 0o600 });
    const { ended, problems } = endOrphanedGroups(dir, 5_000);
    assert.deepEqual(problems, []);
    assert.deepEqual(ended, [orphan.pid]);
    await orphan.exited;
    assert.equal(processStart(recycled.pid), recycled.start, 'the process that got a recorded pid later still runs');
    assert.equal(processStart(alive.pid), alive.start, 'the group of a live server still runs');
    assert.deepEqual(readdirSync(dir), [`${process.pid}-${processStart(process.pid)}.json`]);
  } finally {
    for (const p of [orphan, recycled, alive]) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // Gone.
      }
    }
  }
});

test('files and folders it does not trust are never acted on: a symlink, writable by others, another owner', async () => {
  const victim = await leader();
  try {
    const entries = JSON.stringify([{ pid: victim.pid, start: victim.start }]);
    // A folder writable by others.
    const open = fresh();
    chmodSync(open, 0o777);
    writeFileSync(path.join(open, '4194305-1.json'), entries, { mode: 0o600 });
    const r1 = endOrphanedGroups(open);
    assert.deepEqual(r1.ended, []);
    assert.match(r1.problems.join('\n'), /is writable by others .*NIX_BUILDERS_RUNTIME_DIR/);
    // A folder that is a symlink.
    const real = fresh();
    writeFileSync(path.join(real, '4194305-1.json'), entries, { mode: 0o600 });
    const link = path.join(fresh(), 'link');
    symlinkSync(real, link);
    const r2 = endOrphanedGroups(link);
    assert.deepEqual(r2.ended, []);
    assert.match(r2.problems.join('\n'), /is a symbolic link/);
    // In a good folder: a file writable by others, a symlink to a good file, a file of another owner.
    const dir = fresh();
    chmodSync(dir, 0o700);
    writeFileSync(path.join(dir, '4194305-1.json'), entries, { mode: 0o600 });
    chmodSync(path.join(dir, '4194305-1.json'), 0o666);
    symlinkSync(path.join(real, '4194305-1.json'), path.join(dir, '4194305-2.json'));
    writeFileSync(path.join(dir, '4194305-3.json'), entries, { mode: 0o600 });
    chownSync(path.join(dir, '4194305-3.json'), 65534, 65534);
    const r3 = endOrphanedGroups(dir);
    assert.deepEqual(r3.ended, []);
    assert.equal(r3.problems.length, 3, r3.problems.join('\n'));
    assert.match(r3.problems.join('\n'), /writable by others/);
    assert.match(r3.problems.join('\n'), /symbolic link/);
    assert.match(r3.problems.join('\n'), /belongs to uid 65534/);
    assert.equal(processStart(victim.pid), victim.start);
    // Untrusted files are left where they are, for the user to look at.
    assert.ok(existsSync(path.join(dir, '4194305-1.json')));
  } finally {
    process.kill(victim.pid, 'SIGKILL');
  }
});
