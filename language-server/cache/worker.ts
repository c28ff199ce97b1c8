// The push queue's worker: takes the entries the post-build-hook queued, oldest first, and pushes
// each with the one push function (`queuePusher`: Push to Cache's signed, verified push) — inside
// the server while the editor runs (`QueueWorkerHost`), or standalone (`pushWorkerMain.ts`, a
// systemd user unit) when it does not.
// Both run `runQueueWorker`.
//
// What it guarantees (the queue's files: queue.ts):
// - nothing queued is lost: an entry is removed only after its push succeeded and its paths were
//   appended to the pushed log and fsynced; a worker killed at any moment leaves it queued;
// - a path is pushed once: paths in the pushed log are not pushed again (also when a later build
//   queues them again). The one exception: a worker killed after the push succeeded and before the
//   log was fsynced pushes that entry once more when it starts again (Nix skips what the cache
//   already has) — at most once more per crash;
// - one worker at a time per queue (the lock), so two never push the same entry;
// - a failing push is retried with exponential backoff (base × 2^(failures−1), at most `maxMs`,
//   times a random 0.5–1 so that workers do not retry in step); an entry that failed
//   `attemptsBeforeMovingOn` times in a row goes behind the others, so one bad entry (a path
//   garbage-collected since) does not hold up the rest.
import { watch } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Nix } from '../nix/nix';
import type { PushQueueStatus, ServerSettings } from '../protocol';
import { queueDirOf } from './hookScript';
import { defaultStagingRoot, pushClosure } from './push';
import { uploadStagedCache } from './s3';
import { ensureQueueDir, holdsLock, listEntries, moveToBack, PushedLog, queueStatus, readEntry, releaseLock, removeEntry, selfLock, tryLock, writeLastError, type LockInfo, type WorkerKind } from './queue';

/** Pushes paths to the configured target; throws (with the cause) when it did not. */
export type Pusher = (paths: string[], signal: AbortSignal) => Promise<void>;

export interface Backoff {
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { baseMs: 2_000, maxMs: 10 * 60_000 };

export type WorkerEvent =
  | { kind: 'waiting-for-lock'; holder: LockInfo }
  | { kind: 'started' }
  | { kind: 'pushed'; entry: string; paths: string[]; skipped: string[] }
  | { kind: 'failed'; entry: string; error: string; retryInMs: number; movedToBack: boolean }
  | { kind: 'dropped'; entry: string; why: string }
  | { kind: 'idle' };

export interface WorkerOptions {
  dir: string;
  kind: WorkerKind;
  /** The store pushed to (said in the lock and the status). */
  to: string;
  pusher: Pusher;
  backoff?: Backoff;
  attemptsBeforeMovingOn?: number;
  /** How often to look again without a change in the folder, and for the lock. */
  pollMs?: number;
  /** The waits between retries (tests make them instant and record them). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  random?: () => number;
  onEvent?: (e: WorkerEvent) => void;
}

/** The wait before the next try after `failures` failures in a row. */
export function backoffDelay(failures: number, b: Backoff, random: () => number = Math.random): number {
  const exp = Math.min(b.maxMs, b.baseMs * 2 ** Math.max(0, failures - 1));
  return Math.round(exp * (0.5 + random() / 2));
}

/** A wait that ends early (resolves) when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Until something changes in `dir`, `ms` pass, or `signal` aborts. */
function changeIn(dir: string, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const inner = new AbortController();
    const done = () => {
      inner.abort();
      watcher?.close();
      resolve();
    };
    let watcher: ReturnType<typeof watch> | undefined;
    try {
      watcher = watch(dir, done);
      watcher.on('error', done);
    } catch {
      watcher = undefined; // no watching here: polling alone
    }
    signal.addEventListener('abort', done, { once: true, signal: inner.signal });
    void sleep(ms, inner.signal).then(done);
  });
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Run the worker on the queue `dir` until `signal` aborts. Rejects only when the folder cannot be used at all. */
export async function runQueueWorker(o: WorkerOptions, signal: AbortSignal): Promise<void> {
  const backoff = o.backoff ?? DEFAULT_BACKOFF;
  const pause = o.sleep ?? sleep;
  const random = o.random ?? Math.random;
  const pollMs = o.pollMs ?? 10_000;
  const maxAttempts = o.attemptsBeforeMovingOn ?? 5;
  const emit = (e: WorkerEvent) => o.onEvent?.(e);
  await ensureQueueDir(o.dir);
  const me = selfLock(o.kind, o.to);
  while (!signal.aborted) {
    const got = await tryLock(o.dir, me);
    if (got === 'held') break;
    emit({ kind: 'waiting-for-lock', holder: got });
    await changeIn(o.dir, pollMs, signal);
  }
  if (signal.aborted) return;
  emit({ kind: 'started' });
  try {
    const log = await PushedLog.open(o.dir, o.to);
    let failures = 0;
    // A last error (also one a worker before this one left) is cleared by the next successful push.
    let errorShown = true;
    const attempts = new Map<string, number>();
    while (!signal.aborted) {
      if (!(await holdsLock(o.dir, me))) throw new Error(`the lock of ${o.dir} was taken by another worker: this one stops`);
      const [entry] = await listEntries(o.dir);
      if (!entry) {
        emit({ kind: 'idle' });
        await changeIn(o.dir, pollMs, signal);
        continue;
      }
      const paths = await readEntry(entry);
      if (paths === undefined) continue; // removed by hand meanwhile
      if (paths.length === 0) {
        await removeEntry(entry);
        emit({ kind: 'dropped', entry: entry.name, why: 'it names no store path' });
        continue;
      }
      const todo = paths.filter((p) => !log.has(p));
      try {
        if (todo.length > 0) await o.pusher(todo, signal);
        await log.record(todo);
        await removeEntry(entry);
        if (errorShown) await writeLastError(o.dir, undefined);
        errorShown = false;
        failures = 0;
        attempts.delete(entry.name);
        emit({ kind: 'pushed', entry: entry.name, paths: todo, skipped: paths.filter((p) => !todo.includes(p)) });
      } catch (e) {
        if (signal.aborted) break;
        failures++;
        const n = (attempts.get(entry.name) ?? 0) + 1;
        const movedToBack = n >= maxAttempts;
        if (movedToBack) {
          attempts.delete(entry.name);
          await moveToBack(entry);
        } else attempts.set(entry.name, n);
        const error = `pushing ${todo.length} path(s) of ${entry.name} to ${o.to} failed: ${message(e)}`;
        await writeLastError(o.dir, error);
        errorShown = true;
        const retryInMs = backoffDelay(failures, backoff, random);
        emit({ kind: 'failed', entry: entry.name, error, retryInMs, movedToBack });
        await pause(retryInMs, signal);
      }
    }
  } finally {
    await releaseLock(o.dir, me).catch(() => undefined);
  }
}

export interface QueuePushOptions {
  to: string;
  /** The standalone worker's --key-file. */
  keyFile?: string;
  /** nixBuilders.cache.signingKeyFile (after keyFile; then nix.conf's secret-key-files). */
  settingKeyFile?: string;
  /** Where an s3:// push without S3 support in Nix stages the closure (defaultStagingRoot). */
  stagingRoot: string;
}

/**
 * The one push function of the queue, for the server's worker and the standalone one alike: the
 * signed, verified push of Push to Cache (pushClosure) with the queued paths as its tops. A push
 * that failed, or whose verification found problems (an unsigned push, a key the consumers do not
 * trust), throws with its summary and problems: it stays queued and is the queue's last error.
 */
export function queuePusher(nix: Nix, o: QueuePushOptions): Pusher {
  return async (paths, signal) => {
    const r = await pushClosure(nix, {
      tops: paths,
      to: o.to,
      ...(o.keyFile !== undefined ? { keyFile: o.keyFile } : {}),
      ...(o.settingKeyFile ? { settingKeyFile: o.settingKeyFile } : {}),
      stagingRoot: o.stagingRoot,
      stagedUpload: uploadStagedCache,
      signal,
      report: () => undefined,
    });
    if (r.status === 'pushed' && r.problems.length === 0 && r.verification?.status === 'verified') return;
    // A failed verification's summary says what is wrong and the fix (its per-path problems repeat it).
    throw new Error(r.verification && r.verification.status !== 'verified' && r.status === 'pushed' ? r.summary : [r.summary, ...r.problems.filter((p) => !r.summary.includes(p))].join(' '));
  };
}

export interface QueueWorkerConfig {
  dir: string;
  to: string;
  /** The signing key setting the pusher signs with: a change restarts the worker. */
  signingKeyFile?: string;
  pusher: Pusher;
}

/** The server's worker for its settings: only with nixBuilders.cache.queue.enabled and a push target (the first). */
export function queueWorkerConfig(settings: ServerSettings, nix: Nix): QueueWorkerConfig | undefined {
  const to = settings.cache?.pushTargets[0];
  if (!settings.cache?.queue.enabled || !to) return undefined;
  const file = settings.cache.signingKeyFile;
  const stagingRoot = defaultStagingRoot({ ...process.env, ...settings.env });
  return { dir: queueDirOf(settings), to, ...(file ? { signingKeyFile: file } : {}), pusher: queuePusher(nix, { to, ...(file ? { settingKeyFile: file } : {}), stagingRoot }) };
}

/** The Caches view's queue: the configured queue's status, when the queue is on or its folder exists (a post-build-hook was set up). */
export async function queueStatusOf(settings: ServerSettings): Promise<PushQueueStatus | undefined> {
  const dir = queueDirOf(settings);
  if (!settings.cache?.queue.enabled && !(await stat(dir).then((s) => s.isDirectory(), () => false))) return undefined;
  return queueStatus(dir, settings.cache?.pushTargets[0]);
}

/** The server's worker: (re)started when its settings change, stopped with the server. */
export class QueueWorkerHost {
  private current: { key: string; controller: AbortController; done: Promise<void> } | undefined;

  constructor(private readonly log: { info(m: string): void; warn(m: string): void; error(m: string): void }, private readonly onChange: () => void) {}

  /** `undefined`: no worker (the queue is off or there is no push target). */
  configure(config: QueueWorkerConfig | undefined): void {
    const key = config ? `${config.dir}\n${config.to}\n${config.signingKeyFile ?? ''}` : '';
    if (this.current?.key === key) return;
    // The new worker starts once the old one has let go of its queue's lock.
    const previous = this.stop();
    if (!config) return;
    const controller = new AbortController();
    const done = previous.then(() => runQueueWorker(
      {
        ...config,
        kind: 'server',
        onEvent: (e) => {
          if (e.kind === 'waiting-for-lock') this.log.info(`The push queue ${config.dir} is worked by another ${e.holder.kind} worker (pid ${e.holder.pid}); this server's worker waits.`);
          if (e.kind === 'failed') this.log.warn(`Push queue: ${e.error}; next try in ${Math.round(e.retryInMs / 1000)} s${e.movedToBack ? ' (moved behind the other entries)' : ''}.`);
          if (e.kind === 'dropped') this.log.warn(`Push queue: ${e.entry} was removed: ${e.why}.`);
          if (e.kind === 'pushed' || e.kind === 'failed' || e.kind === 'started') this.onChange();
        },
      },
      controller.signal,
    )).catch((e: unknown) => this.log.error(`The push queue's worker stopped: ${message(e)}. Fix it and change a setting (or restart the server) to start it again.`));
    this.current = { key, controller, done };
  }

  async stop(): Promise<void> {
    const c = this.current;
    this.current = undefined;
    if (!c) return;
    c.controller.abort();
    await c.done;
  }
}
