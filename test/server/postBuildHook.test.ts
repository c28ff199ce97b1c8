// The post-build-hook push queue against real Nix: the set-up (`nixBuilders.server.setUpPostBuildHook`)
// from a plain LSP client writes the hook and nix.conf's line; real builds with that nix.conf queue
// their outputs (Nix 2.8 passes OUT_PATHS empty: the hook reads them from DRV_PATH); the worker
// pushes them with Push to Cache's signed, verified push (real `nix copy --to file://…`, the paths
// signed by the test's key; an unsigned push is the queue's last error, not a success) — a build
// finishes while an upload is held up, a failing push is retried with backoff, one worker at a time
// holds the queue, and a standalone worker killed mid-push resumes with nothing lost. Waits are on
// events, or polls with a bound.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { StdioLspClient } from './lspClient';
import { NIX_BIN, nixCommand } from './nixUnderTest';
import { ServerCommands, type NixConfSetUpResult } from '../../language-server/protocol';
import { Nix } from '../../language-server/nix/nix';
import { ExecaRunner } from '../../language-server/nix/runner';
import { hashPart } from '../../language-server/nix/storePath';
import { listEntries, pushedLogFile, queueStatus, readEntry } from '../../language-server/cache/queue';
import { backoffDelay, queuePusher, runQueueWorker, type Pusher, type WorkerEvent, type WorkerOptions } from '../../language-server/cache/worker';
import { isRunning } from '../lab/processes';
import { standaloneArgs, systemdUnit } from '../../language-server/cache/standalone';

const SERVER = path.join(__dirname, '../../language-server/main.ts');
const WORKER = path.join(__dirname, '../../language-server/cache/pushWorkerMain.ts');
// The hook is written on this machine; a Nix in another root (the 2.26 tier) cannot run it or reach the queue.
const hereOnly = NIX_BIN ? 'the hook and its queue are outside the root that Nix 2.26 runs in' : false;

let dir: string;
let queue: string;
let client: StdioLspClient;
let setUp: NixConfSetUpResult;
/** The key the pushes sign with: its secret file (0600) and public key. */
let key: { file: string; name: string; publicKey: string };
/** The test's nix.conf: the consumers of the caches pushed to trust the key (as a user's consumers would). */
let CONF: string;
const env = () => ({ NIX_CONF_DIR: dir });
const salt = () => `${Date.now()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-hook-'));
  queue = path.join(dir, 'queue');
  key = await makeKey(`queue-${salt()}`);
  CONF = ['# test nix.conf', 'build-users-group =', 'substituters =', 'sandbox = false', `trusted-public-keys = ${key.publicKey}`, ''].join('\n');
  await writeFile(path.join(dir, 'nix.conf'), CONF);
  client = new StdioLspClient(process.env, ['--import', 'tsx', SERVER]);
  await client.initialize({ settings: { env: { ...env(), XDG_STATE_HOME: path.join(dir, 'state') }, cache: { pushTargets: [`file://${dir}/cache`], signingKeyFile: key.file } } }, dir);
  setUp = await client.request<NixConfSetUpResult>('workspace/executeCommand', { command: ServerCommands.setUpPostBuildHook, arguments: [{ nixConf: path.join(dir, 'nix.conf'), queueDir: queue }] });
});

after(async () => {
  await client?.shutdown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A key made by the Nix under test. */
async function makeKey(name: string): Promise<{ file: string; name: string; publicKey: string }> {
  const nix = (args: string[], input?: string) => execFileSync(nixCommand('nix'), ['--extra-experimental-features', 'nix-command', ...args], { env: { ...process.env, ...env() }, encoding: 'utf8', ...(input !== undefined ? { input } : {}) });
  const secret = nix(['key', 'generate-secret', '--key-name', name]);
  const file = path.join(dir, `${name}.sec`);
  await writeFile(file, secret, { mode: 0o600 });
  return { file, name, publicKey: nix(['key', 'convert-secret-to-public'], secret).trim() };
}

/** A derivation run by /bin/sh, salted so it really builds. */
const drv = (name: string, script: string, outputs = ['out']) =>
  `derivation { name = "${name}-${salt()}"; system = builtins.currentSystem; builder = "/bin/sh"; outputs = [ ${outputs.map((o) => `"${o}"`).join(' ')} ]; args = [ "-c" ${JSON.stringify(script)} ]; }`;

/** nix-build with the set-up's nix.conf (its post-build-hook): the output paths. */
function nixBuild(expr: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile(nixCommand('nix-build'), ['--no-out-link', '-E', expr], { env: { ...process.env, ...env() }, timeout: 180_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`nix-build failed: ${stderr}`));
      else resolve(stdout.split('\n').filter((l) => l.startsWith('/')));
    });
  });
}

const nixStore = (args: string[]) =>
  new Promise<string>((resolve, reject) => execFile(nixCommand('nix-store'), args, (e, out, err) => (e ? reject(new Error(err)) : resolve(out.trim()))));

const cacheDir = (name: string) => path.join(dir, name);
const narinfo = (cache: string, p: string) => path.join(cache, `${hashPart(p)}.narinfo`);
/** The key names of a path's signatures in a file:// cache (its narinfo's Sig: lines). */
const sigsIn = (cache: string, p: string) => [...readFileSync(narinfo(cache, p), 'utf8').matchAll(/^Sig: ([^:\n]+):/gm)].map((m) => m[1]);

/** The queue's entries' paths, oldest first. */
async function queued(): Promise<string[][]> {
  const out: string[][] = [];
  for (const e of await listEntries(queue)) out.push((await readEntry(e)) ?? []);
  return out;
}

/** A worker's events, and waiting for one. */
class Events {
  readonly seen: WorkerEvent[] = [];
  private waiters: Array<{ pred: (e: WorkerEvent) => boolean; resolve: (e: WorkerEvent) => void }> = [];
  readonly on = (e: WorkerEvent) => {
    this.seen.push(e);
    for (const w of this.waiters.filter((x) => x.pred(e))) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve(e);
    }
  };
  next(pred: (e: WorkerEvent) => boolean, what: string, ms = 120_000): Promise<WorkerEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${ms / 1000} s; seen: ${JSON.stringify(this.seen)}`)), ms);
      this.waiters.push({ pred, resolve: (e) => (clearTimeout(timer), resolve(e)) });
    });
  }
}

/** A promise someone else resolves; `wait` gives up when the worker is stopped, or after a bound. */
function gate(): { promise: Promise<void>; open: () => void; wait: (what: string, signal?: AbortSignal) => Promise<void> } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  const wait = (what: string, signal?: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what}: not within 180 s`)), 180_000);
      const end = (f: () => void) => () => (clearTimeout(timer), f());
      void promise.then(end(resolve));
      signal?.addEventListener('abort', end(() => reject(new Error(`${what}: the worker was stopped`))), { once: true });
    });
  return { promise, open, wait };
}

/** An empty queue folder for a test that counts its entries. */
async function emptyQueue(): Promise<void> {
  await rm(queue, { recursive: true, force: true });
  await mkdir(queue);
}

function startWorker(o: Partial<WorkerOptions> & { pusher: Pusher }, events: Events) {
  const controller = new AbortController();
  const done = runQueueWorker({ dir: queue, kind: 'server', to: 'test', pollMs: 60_000, onEvent: events.on, ...o }, controller.signal);
  return { stop: async () => (controller.abort(), await done), done };
}

/** The queue's push to a file:// cache, signed with the test's key (or, `signed` false, with none). */
const realPusher = (cache: string, signed = true) =>
  queuePusher(new Nix(new ExecaRunner(), { binDir: NIX_BIN ?? '', env: env() }), { to: `file://${cache}`, ...(signed ? { keyFile: key.file } : {}), stagingRoot: path.join(dir, 'staging') });

test('set-up: the hook (0755) and post-build-hook in nix.conf with a backup; notes on the daemon, root, restart and async hooks; the standalone unit', { skip: hereOnly }, async () => {
  assert.equal(setUp.status, 'written', JSON.stringify(setUp));
  const script = path.join(dir, 'state', 'nix-builders', 'hooks', 'post-build-hook');
  assert.equal(setUp.script, script);
  assert.equal(statSync(script).mode & 0o777, 0o755);
  assert.deepEqual(setUp.lines, [`post-build-hook = ${script}`]);
  assert.equal(await readFile(path.join(dir, 'nix.conf'), 'utf8'), `${CONF}post-build-hook = ${script}\n`);
  assert.equal(await readFile(path.join(dir, 'nix.conf.bak'), 'utf8'), CONF);
  const notes = setUp.notes.join('\n');
  assert.match(notes, /daemon's own configuration .* trusted-users/);
  assert.match(notes, /runs as root/);
  assert.match(notes, /sudo systemctl restart nix-daemon/);
  assert.match(notes, /asynchronously only from 2\.35/);
  assert.match(notes, /passes OUT_PATHS empty: the hook reads the outputs from DRV_PATH/);
  assert.match(setUp.systemdUnit?.text ?? '', new RegExp(`^ExecStart=\\S+ \\S+pushWorker\\.js --to file://${dir}/cache --queue ${queue} --key-file ${key.file}$`, 'm'));
  assert.match(setUp.systemdUnit?.file ?? '', /\/systemd\/user\/nix-builders-push\.service$/);
  assert.ok(statSync(queue).isDirectory());
});

test('a real build queues its real output paths (both outputs; Nix 2.8 passes OUT_PATHS empty) in one entry, and the hook exits 0 when the queue folder is gone', { skip: hereOnly }, async () => {
  await emptyQueue();
  const [out] = await nixBuild(drv('two', 'echo a > $out; echo b > $dev', ['out', 'dev']));
  const drvPath = await nixStore(['-q', '--deriver', out as string]);
  const outs = (await nixStore(['-q', '--outputs', drvPath])).split('\n');
  assert.equal(outs.length, 2);
  const entries = await queued();
  assert.equal(entries.length, 1);
  assert.deepEqual([...(entries[0] ?? [])].sort(), [...outs].sort());
  // The hook's own contract, run as Nix 2.8 runs it (OUT_PATHS empty, DRV_PATH set), without PATH.
  const run = (extra: Record<string, string>) =>
    new Promise<{ code: number; stderr: string }>((resolve) => execFile(setUp.script as string, [], { env: { PATH: '/nonexistent', OUT_PATHS: '', DRV_PATH: drvPath, ...extra } }, (e, _o, stderr) => resolve({ code: e ? Number((e as { code?: number }).code) : 0, stderr })));
  await emptyQueue();
  const ok = await run({});
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual((await queued()).map((e) => [...e].sort()), [[...outs].sort()], 'read from DRV_PATH without PATH');
  await rm(queue, { recursive: true });
  const gone = await run({});
  assert.equal(gone.code, 0);
  assert.match(gone.stderr, /could not queue the outputs of .*: they are not pushed/);
  await mkdir(queue);
});

test('a build finishes while the upload of the one before is held up: the queue has both entries, the push has not happened; released, both are pushed once with real nix copy', { skip: hereOnly }, async () => {
  const cache = cacheDir('cache-slow');
  const events = new Events();
  const held = gate();
  const called = gate();
  const calls: string[][] = [];
  const real = realPusher(cache);
  await emptyQueue();
  const worker = startWorker({ pusher: async (paths, signal) => {
    calls.push(paths);
    called.open();
    await held.wait('the test releasing the push', signal);
    await real(paths, signal);
  } }, events);
  try {
    await events.next((e) => e.kind === 'idle', 'idle worker');
    const [first] = await nixBuild(drv('slow-a', 'echo a > $out'));
    await called.wait('the worker pushing the first build'); // held up
    const [second] = await nixBuild(drv('slow-b', 'echo b > $out')); // a build while the push hangs: it finishes
    assert.deepEqual(await queued(), [[first], [second]]);
    assert.equal(existsSync(narinfo(cache, first as string)), false, 'the first push has not happened');
    assert.equal((await queueStatus(queue, 'test')).worker, 'server');
    held.open();
    await events.next((e) => e.kind === 'pushed' && e.paths.includes(second as string), 'push of the second build');
    assert.deepEqual(calls, [[first], [second]]);
    for (const p of [first, second]) assert.deepEqual(sigsIn(cache, p as string), [key.name], `${p} is in the cache, signed by the key`);
    assert.deepEqual(await queued(), []);
    const status = await queueStatus(queue, 'test');
    assert.equal(status.depth, 0);
    assert.ok(status.pushed >= 2);
  } finally {
    await worker.stop();
  }
  assert.equal((await queueStatus(queue, 'test')).worker, 'none', 'the lock is released');
});

test('an unsigned push (no key: none given, none in nix.conf\'s secret-key-files) is not a success: the entry stays queued and the queue\'s last error says UNSIGNED and the fix', { skip: hereOnly }, async () => {
  const cache = cacheDir('cache-unsigned');
  await emptyQueue();
  const [out] = await nixBuild(drv('unsigned', 'echo u > $out'));
  const events = new Events();
  const errors: Array<string | undefined> = [];
  const worker = startWorker({ pusher: realPusher(cache, false), sleep: async () => void errors.push((await queueStatus(queue, 'test')).lastError) }, events);
  let failed: WorkerEvent;
  try {
    failed = await events.next((e) => e.kind === 'failed' || e.kind === 'pushed', 'the push of the unsigned path');
  } finally {
    await worker.stop();
  }
  assert.equal(failed.kind, 'failed', JSON.stringify(failed));
  assert.match(errors[0] ?? '', /UNSIGNED/);
  assert.match(errors[0] ?? '', /signingKeyFile|secret-key-files/, 'it says how to sign');
  assert.deepEqual(await queued(), [[out]], 'still queued');
  assert.equal((await queueStatus(queue, 'test')).pushed, 0);
});

test('a failing push is retried with exponential backoff and jitter (bounded), the error shown in the status until a push succeeds; an entry that keeps failing goes behind the others', async () => {
  assert.deepEqual([1, 2, 3, 4, 10].map((n) => backoffDelay(n, { baseMs: 100, maxMs: 500 }, () => 1)), [100, 200, 400, 500, 500]);
  assert.equal(backoffDelay(3, { baseMs: 100, maxMs: 500 }, () => 0), 200, 'jitter: half at least');
  const q = await mkdtemp(path.join(dir, 'q-retry-'));
  await writeFile(path.join(q, 'q-aaaa-1'), '/nix/store/aaaa-bad\n');
  await writeFile(path.join(q, 'q-bbbb-2'), '/nix/store/bbbb-good\n');
  await utimes(path.join(q, 'q-aaaa-1'), new Date(1000), new Date(1000)); // oldest
  const events = new Events();
  const waits: number[] = [];
  const errors: Array<string | undefined> = [];
  const pushed: string[][] = [];
  const worker = startWorker({
    dir: q,
    backoff: { baseMs: 100, maxMs: 250 },
    attemptsBeforeMovingOn: 3,
    random: () => 1,
    sleep: async (ms) => {
      waits.push(ms);
      errors.push((await queueStatus(q, 'test')).lastError);
    },
    pusher: async (paths) => {
      if (paths[0]?.includes('bad') && waits.length < 4) throw new Error('cache unreachable');
      pushed.push(paths);
    },
  }, events);
  try {
    await events.next((e) => e.kind === 'pushed' && e.entry === 'q-aaaa-1', 'the bad entry pushed at last');
  } finally {
    await worker.stop();
  }
  assert.deepEqual(waits, [100, 200, 250, 100], 'doubling, capped; after a successful push (the good entry) from the start again');
  assert.match(errors[0] ?? '', /^pushing 1 path\(s\) of q-aaaa-1 to test failed: cache unreachable$/);
  assert.deepEqual(pushed, [['/nix/store/bbbb-good'], ['/nix/store/aaaa-bad']], 'after 3 failures the bad entry went behind the good one');
  const failed = events.seen.filter((e) => e.kind === 'failed');
  assert.deepEqual(failed.map((e) => e.kind === 'failed' && e.movedToBack), [false, false, true, false]);
  const status = await queueStatus(q, 'test');
  assert.deepEqual([status.depth, status.pushed, status.lastError], [0, 2, undefined]);
});

test('one worker at a time: a second waits while the first holds the queue and never pushes its entries; a stale lock (its process gone) is taken over', async () => {
  const q = await mkdtemp(path.join(dir, 'q-lock-'));
  await writeFile(path.join(q, 'q-cccc-1'), '/nix/store/cccc-x\n');
  const pushedBy: string[] = [];
  const held = gate();
  const aEvents = new Events();
  const a = startWorker({ dir: q, pusher: async (_paths, signal) => (pushedBy.push('a'), await held.wait('the test releasing a', signal)) }, aEvents);
  await aEvents.next((e) => e.kind === 'started', 'a started');
  const bEvents = new Events();
  const b = startWorker({ dir: q, kind: 'standalone', pollMs: 50, pusher: async () => void pushedBy.push('b') }, bEvents);
  const waiting = await bEvents.next((e) => e.kind === 'waiting-for-lock', 'b waiting');
  assert.equal(waiting.kind === 'waiting-for-lock' && waiting.holder.kind, 'server');
  assert.equal((await queueStatus(q, 'test')).worker, 'server');
  held.open();
  await aEvents.next((e) => e.kind === 'pushed', 'a pushed');
  await a.stop();
  await bEvents.next((e) => e.kind === 'started', 'b took over once a stopped');
  await b.stop();
  assert.deepEqual(pushedBy, ['a']);
  // A lock left by a process that is gone.
  const dead = spawn('true');
  await new Promise((r) => dead.on('exit', r));
  await writeFile(path.join(q, '.lock'), JSON.stringify({ pid: dead.pid, start: '1', kind: 'standalone', to: 'x' }));
  assert.equal((await queueStatus(q, 'test')).worker, 'none');
  await writeFile(path.join(q, 'q-dddd-2'), '/nix/store/dddd-y\n');
  const cEvents = new Events();
  const c = startWorker({ dir: q, pusher: async (paths) => void pushedBy.push(...paths) }, cEvents);
  await cEvents.next((e) => e.kind === 'pushed', 'c pushed after taking the stale lock');
  await c.stop();
  assert.deepEqual(pushedBy, ['a', '/nix/store/dddd-y']);
});

test('a path is pushed once: paths in the pushed log are skipped, also in a later entry and after a crash between the log and the removal of the entry; an old last error is cleared', async () => {
  const q = await mkdtemp(path.join(dir, 'q-once-'));
  // A worker killed after logging its push and before removing the entry left both behind.
  await writeFile(pushedLogFile(q, 'test'), '/nix/store/xxxx-pushed\n');
  await writeFile(path.join(q, '.status.json'), '{"lastError":"an error of the worker before"}\n');
  await writeFile(path.join(q, 'q-eeee-1'), '/nix/store/xxxx-pushed\n');
  await writeFile(path.join(q, 'q-ffff-2'), '/nix/store/xxxx-pushed\n/nix/store/yyyy-new\n');
  await utimes(path.join(q, 'q-eeee-1'), new Date(1000), new Date(1000));
  const calls: string[][] = [];
  const events = new Events();
  const worker = startWorker({ dir: q, pusher: async (paths) => void calls.push(paths) }, events);
  try {
    await events.next((e) => e.kind === 'pushed' && e.entry === 'q-ffff-2', 'the second entry');
  } finally {
    await worker.stop();
  }
  assert.deepEqual(calls, [['/nix/store/yyyy-new']]);
  const pushed = events.seen.filter((e) => e.kind === 'pushed');
  assert.deepEqual(pushed.map((e) => e.kind === 'pushed' && [e.entry, e.paths, e.skipped]), [
    ['q-eeee-1', [], ['/nix/store/xxxx-pushed']],
    ['q-ffff-2', ['/nix/store/yyyy-new'], ['/nix/store/xxxx-pushed']],
  ]);
  assert.deepEqual(await readFile(pushedLogFile(q, 'test'), 'utf8'), '/nix/store/xxxx-pushed\n/nix/store/yyyy-new\n');
  const status = await queueStatus(q, 'test');
  assert.deepEqual([status.depth, status.pushed, status.lastError], [0, 2, undefined], 'the old error is cleared by the first successful push');
});

test('the pushed log is per target: after the push target changes, paths pushed to the old one are pushed to the new one; the status counts the configured target\'s; an old single .pushed log is ignored', async () => {
  const q = await mkdtemp(path.join(dir, 'q-targets-'));
  const p = '/nix/store/gggg-both';
  // The one log of every target that an older version kept: ignored (the path is pushed once more, safely).
  await writeFile(path.join(q, '.pushed'), `${p}\n`);
  const calls: Array<[string, string[]]> = [];
  for (const to of ['file:///old-cache', 'file:///new-cache']) {
    await writeFile(path.join(q, `q-gggg-${calls.length + 1}`), `${p}\n`);
    const events = new Events();
    const worker = startWorker({ dir: q, to, pusher: async (paths) => void calls.push([to, paths]) }, events);
    try {
      await events.next((e) => e.kind === 'pushed', `the push to ${to}`);
    } finally {
      await worker.stop();
    }
  }
  assert.deepEqual(calls, [['file:///old-cache', [p]], ['file:///new-cache', [p]]]);
  assert.equal(await readFile(pushedLogFile(q, 'file:///old-cache'), 'utf8'), `${p}\n`);
  assert.equal(await readFile(pushedLogFile(q, 'file:///new-cache'), 'utf8'), `${p}\n`);
  assert.deepEqual([(await queueStatus(q, 'file:///new-cache')).pushed, (await queueStatus(q, 'file:///third')).pushed, (await queueStatus(q, undefined)).pushed], [1, 0, 0]);
});

test('the standalone worker\'s command line is checked, and its systemd unit quotes what systemd would expand or split', () => {
  assert.deepEqual(standaloneArgs(['--to', 'ssh-ng://cache', '--queue', '/q']), { systemdUnit: false, to: 'ssh-ng://cache', queue: '/q' });
  assert.deepEqual(standaloneArgs(['--to', 'file:///c', '--key-file', '/k.sec']), { systemdUnit: false, to: 'file:///c', keyFile: '/k.sec' });
  assert.match((standaloneArgs(['--to', 'x', '--key-file', 'k.sec']) as { error: string }).error, /--key-file must be an absolute path/);
  assert.match((standaloneArgs(['--queue', '/q']) as { error: string }).error, /^--to STORE is needed/);
  assert.match((standaloneArgs(['--to', 'x', '--queue', 'rel']) as { error: string }).error, /--queue must be an absolute path/);
  assert.match((standaloneArgs(['--to']) as { error: string }).error, /--to needs a value/);
  assert.match((standaloneArgs(['--bogus']) as { error: string }).error, /unknown argument '--bogus'/);
  const { text } = systemdUnit({ node: '/usr/bin/node', script: '/opt/my ext/pushWorker.js', queue: '/home/a/q', to: 's3://b?endpoint=http://h:9000&x=50%$HOME' }, { XDG_CONFIG_HOME: '/cfg' });
  assert.match(text, /^ExecStart=\/usr\/bin\/node "\/opt\/my ext\/pushWorker\.js" --to "s3:\/\/b\?endpoint=http:\/\/h:9000&x=50%%\$\$HOME" --queue \/home\/a\/q$/m);
  assert.match(systemdUnit({ node: 'n', script: 's', queue: '/q', to: 't', keyFile: '/my keys/k.sec' }).text, /^ExecStart=n s --to t --queue \/q --key-file "\/my keys\/k\.sec"$/m);
  assert.equal(systemdUnit({ node: 'n', script: 's', queue: '/q', to: 't' }, { XDG_CONFIG_HOME: '/cfg' }).file, '/cfg/systemd/user/nix-builders-push.service');
});

/** The children of a process (from /proc). */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 180_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function standaloneWorker(to: string): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, '--to', to, '--queue', queue, '--key-file', key.file], { env: { ...process.env, ...env() }, stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.setEncoding('utf8');
  return child;
}

test('a standalone worker killed (SIGKILL) mid-push: started again, it pushes everything queued, nothing lost, each path once in the pushed log and in the real file:// cache', { skip: hereOnly }, async () => {
  const cache = cacheDir('cache-kill');
  const to = `file://${cache}`;
  await emptyQueue();
  // A large output first, so that its nix copy (xz) is still running when the worker is killed.
  const [big] = await nixBuild(drv('big', '/usr/bin/head -c 24000000 /dev/urandom > $out'));
  const small = [...(await nixBuild(drv('small-a', 'echo a > $out'))), ...(await nixBuild(drv('small-b', 'echo b > $out')))];
  assert.deepEqual((await queued()).flat(), [big, ...small]);
  const first = standaloneWorker(to);
  let copy: number | undefined;
  try {
    copy = await until('the worker copying the large path', () => childrenOf(first.pid as number).find((c) => readFileSync(`/proc/${c}/cmdline`, 'utf8').split('\0').includes('copy')));
    process.kill(first.pid as number, 'SIGKILL');
    // Its nix copy too (a killed unit's whole control group goes, under systemd).
    process.kill(-copy, 'SIGKILL');
  } finally {
    first.kill('SIGKILL');
  }
  await until('the killed worker and its copy gone', () => (!isRunning(first.pid as number) && !isRunning(copy as number) ? true : undefined));
  assert.equal(existsSync(narinfo(cache, big as string)), false, 'killed before the large path was in the cache');
  assert.equal((await queued()).flat().length, 3, 'nothing was removed from the queue');
  assert.equal((await queueStatus(queue, 'test')).worker, 'none', 'the dead worker\'s lock counts as stale');
  const second = standaloneWorker(to);
  let log = '';
  second.stderr?.on('data', (d: string) => (log += d));
  try {
    await until('the queue emptied', async () => ((await queueStatus(queue, 'test')).depth === 0 ? true : undefined));
  } finally {
    second.kill('SIGTERM');
    await new Promise((r) => second.once('exit', r));
  }
  for (const p of [big, ...small]) assert.deepEqual(existsSync(narinfo(cache, p as string)) && sigsIn(cache, p as string), [key.name], `${p} is in the cache, signed by the key (${log})`);
  const pushedLog = readFileSync(pushedLogFile(queue, to), 'utf8').split('\n').filter(Boolean);
  for (const p of [big, ...small]) assert.equal(pushedLog.filter((l) => l === p).length, 1, `${p} once in the pushed log`);
  assert.match(log, /Pushed q-\S+: \/nix\/store\/\S+-big-/);
});

test('inside the server: with nixBuilders.cache.queue.enabled and a push target, the server\'s worker pushes what a build queued and says the caches changed', { skip: hereOnly }, async () => {
  const cache = cacheDir('cache-server');
  await emptyQueue();
  const server = new StdioLspClient(process.env, ['--import', 'tsx', SERVER]);
  try {
    await server.initialize({ settings: { env: env(), cache: { pushTargets: [`file://${cache}`], signingKeyFile: key.file, queue: { enabled: true, dir: queue } } } }, dir);
    await until('the server\'s worker holding the queue', async () => ((await queueStatus(queue, 'test')).worker === 'server' ? true : undefined));
    const [out] = await nixBuild(drv('in-server', 'echo s > $out'));
    await until('the entry removed', async () => ((await queueStatus(queue, 'test')).depth === 0 ? true : undefined));
    assert.deepEqual(sigsIn(cache, out as string), [key.name], 'pushed, signed by nixBuilders.cache.signingKeyFile');
    await until('nixBuilders/cachesChanged', () => (server.notifications.some((m) => m.method === 'nixBuilders/cachesChanged') ? true : undefined));
  } finally {
    await server.shutdown();
  }
  assert.equal((await queueStatus(queue, 'test')).worker, 'none', 'the server\'s worker stopped with it');
});
