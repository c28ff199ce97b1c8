// The push queue on disk: a folder that the post-build-hook (hookScript.ts) fills and one worker
// (worker.ts) empties. Everything the worker keeps is in the folder too, so a worker that is
// killed or restarted (the server's, or the standalone one) goes on where it stopped.
//
//   q-<drv hash>-<pid>  an entry: the paths of one build, one per line (the hook renames it into place)
//   .new.*              an entry being written by the hook
//   .pushed-<hash>      the pushed log of one target (<hash>: the start of the sha256 of its store
//                       URL): every path pushed there, one per line, appended and fsynced after its
//                       push succeeded and before its entry is removed; `# before N` first when it
//                       was shortened (N paths pushed before its oldest line). Once the target
//                       changes, the new one has its own log, so paths pushed to the old one are
//                       pushed to it too. A `.pushed` left by an older version (one log for every
//                       target) is ignored: a path it names may be pushed once more, which is safe
//                       (nix copy skips what the target has).
//   .status.json        the worker's last error (cleared by the next successful push)
//   .lock               the worker holding the queue: { pid, start, kind, to }; one at a time
//
// The lock: created with O_EXCL. A lock whose process is gone (its pid with another start time, or
// none) is stale: it is moved aside under a name of our own (rename is atomic, so only one of two
// workers gets it), and given back should a live worker's lock have replaced it in the meantime;
// then the O_EXCL create is tried again. The holder checks that the lock is still its own before
// each entry, so even that unlikely race cannot make two workers push one entry.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../builders/machinesEdit';
import { processStart } from '../nix/processRegistry';
import type { PushQueueStatus } from '../protocol';

export interface QueueEntry {
  name: string;
  file: string;
  mtimeMs: number;
}

export type WorkerKind = 'server' | 'standalone';

export interface LockInfo {
  pid: number;
  start: string;
  kind: WorkerKind;
  /** The store it pushes to. */
  to: string;
}

/** Queue entries are named so (by the hook, hookScript.ts); everything else in the folder starts with '.'. */
export const ENTRY_PATTERN = /^q-[0-9a-z]+-\d+$/;

const LOCK = '.lock';
const STATUS = '.status.json';
/** The pushed log is shortened to its newest half once it holds more lines. */
const PUSHED_LOG_MAX_LINES = 20_000;

function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

const orUndefined = <T>(p: Promise<T>): Promise<T | undefined> =>
  p.catch((e: unknown) => {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw e;
  });

/** The queue folder, made when missing (0755: the daemon's hook writes it as root, the user's worker empties it). */
export async function ensureQueueDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
}

/** The entries, oldest first (by the time the hook renamed them into place, then by name). */
export async function listEntries(dir: string): Promise<QueueEntry[]> {
  const names = (await orUndefined(fs.readdir(dir))) ?? [];
  const entries: QueueEntry[] = [];
  for (const name of names.filter((n) => ENTRY_PATTERN.test(n))) {
    const file = path.join(dir, name);
    const st = await orUndefined(fs.stat(file));
    if (st?.isFile()) entries.push({ name, file, mtimeMs: st.mtimeMs });
  }
  return entries.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** An entry's store paths (lines that are absolute paths), or undefined when it is gone. */
export async function readEntry(entry: QueueEntry): Promise<string[] | undefined> {
  const text = await orUndefined(fs.readFile(entry.file, 'utf8'));
  return text?.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('/') && !l.includes('\0'));
}

/** Durable removal of a pushed entry. */
export async function removeEntry(entry: QueueEntry): Promise<void> {
  await orUndefined(fs.unlink(entry.file));
  await syncFolder(path.dirname(entry.file));
}

/** Put an entry behind the others (it failed too often to keep the rest waiting); nothing is lost. */
export async function moveToBack(entry: QueueEntry): Promise<void> {
  const now = new Date();
  await orUndefined(fs.utimes(entry.file, now, now));
}

async function syncFolder(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    // some file systems cannot fsync a folder
  } finally {
    await fh.close();
  }
}

/** The pushed log of the target `to` in the queue `dir`. */
export function pushedLogFile(dir: string, to: string): string {
  return path.join(dir, `.pushed-${createHash('sha256').update(to).digest('hex').slice(0, 16)}`);
}

/** The paths pushed so far to one target (pushedLogFile), and their count. */
export class PushedLog {
  private constructor(
    private readonly file: string,
    private readonly paths: Set<string>,
    private before: number,
    private lines: string[],
  ) {}

  static async open(dir: string, to: string): Promise<PushedLog> {
    const file = pushedLogFile(dir, to);
    const { before, lines } = parsePushedLog((await orUndefined(fs.readFile(file, 'utf8'))) ?? '');
    return new PushedLog(file, new Set(lines), before, lines);
  }

  has(p: string): boolean {
    return this.paths.has(p);
  }

  get count(): number {
    return this.before + this.lines.length;
  }

  /** Append and fsync: once this returns, the paths count as pushed across crashes. */
  async record(paths: readonly string[]): Promise<void> {
    const fresh = [...new Set(paths)].filter((p) => !this.paths.has(p));
    if (fresh.length === 0) return;
    const fh = await fs.open(this.file, 'a', 0o644);
    try {
      await fh.writeFile(fresh.map((p) => `${p}\n`).join(''));
      await fh.sync();
    } finally {
      await fh.close();
    }
    for (const p of fresh) this.paths.add(p);
    this.lines.push(...fresh);
    if (this.lines.length > PUSHED_LOG_MAX_LINES) await this.shorten();
  }

  /** Keep the newest half (atomically): older paths are unlikely to be queued again, and their number stays in the count. */
  private async shorten(): Promise<void> {
    const keep = this.lines.slice(-PUSHED_LOG_MAX_LINES / 2);
    const before = this.count - keep.length;
    await writeFileAtomic(this.file, `# before ${before}\n${keep.map((p) => `${p}\n`).join('')}`);
    this.before = before;
    this.lines = keep;
    this.paths.clear();
    for (const p of keep) this.paths.add(p);
  }
}

function parsePushedLog(text: string): { before: number; lines: string[] } {
  const all = text.split('\n');
  const m = /^# before (\d+)$/.exec(all[0] ?? '');
  return { before: m ? Number(m[1]) : 0, lines: all.slice(m ? 1 : 0).filter((l) => l.startsWith('/')) };
}

/** The worker's last error, kept for the status. */
export async function writeLastError(dir: string, lastError: string | undefined): Promise<void> {
  await writeFileAtomic(path.join(dir, STATUS), `${JSON.stringify(lastError === undefined ? {} : { lastError })}\n`);
}

async function readLock(file: string): Promise<{ text: string; info?: LockInfo } | undefined> {
  const text = await orUndefined(fs.readFile(file, 'utf8'));
  if (text === undefined) return undefined;
  try {
    const info = JSON.parse(text) as Partial<LockInfo>;
    const valid = typeof info.pid === 'number' && typeof info.start === 'string' && (info.kind === 'server' || info.kind === 'standalone') && typeof info.to === 'string';
    return valid ? { text, info: info as LockInfo } : { text };
  } catch {
    return { text }; // half-written by a worker killed while creating it: stale
  }
}

const alive = (l: LockInfo): boolean => processStart(l.pid) === l.start;

/** This process, as a lock names it. */
export function selfLock(kind: WorkerKind, to: string): LockInfo {
  const start = processStart(process.pid);
  if (start === undefined) throw new Error('the push queue needs /proc to lock its folder (Linux)');
  return { pid: process.pid, start, kind, to };
}

/** Take the queue's lock: 'held', or the live worker that holds it. */
export async function tryLock(dir: string, me: LockInfo): Promise<'held' | LockInfo> {
  const file = path.join(dir, LOCK);
  const text = `${JSON.stringify(me)}\n`;
  for (let round = 0; round < 5; round++) {
    try {
      const fh = await fs.open(file, 'wx', 0o644);
      try {
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
      return 'held';
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw e;
    }
    const other = await readLock(file);
    if (other === undefined) continue; // released meanwhile
    if (other.info && alive(other.info)) return other.info;
    const aside = path.join(dir, `${LOCK}.stale-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      await fs.rename(file, aside);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') continue; // another worker moved it first
      throw e;
    }
    const moved = await fs.readFile(aside, 'utf8');
    // A live worker's lock replaced the stale one between our read and our rename: give it back.
    if (moved !== other.text) await fs.link(aside, file).catch(() => undefined);
    await fs.unlink(aside);
  }
  const other = await readLock(file);
  if (other?.info) return other.info;
  throw new Error(`could not take the lock ${file}: it keeps changing. Is another worker starting and stopping?`);
}

/** Whether the lock is still this process's (checked before each entry). */
export async function holdsLock(dir: string, me: LockInfo): Promise<boolean> {
  const l = (await readLock(path.join(dir, LOCK)))?.info;
  return l !== undefined && l.pid === me.pid && l.start === me.start;
}

export async function releaseLock(dir: string, me: LockInfo): Promise<void> {
  if (await holdsLock(dir, me)) await orUndefined(fs.unlink(path.join(dir, LOCK)));
}

/** Depth, the count pushed to `to` (the configured target; none: 0), last error and which worker (if any) holds the queue. */
export async function queueStatus(dir: string, to: string | undefined): Promise<PushQueueStatus> {
  const [entries, log, status, lock] = await Promise.all([
    listEntries(dir),
    to === undefined ? undefined : PushedLog.open(dir, to),
    orUndefined(fs.readFile(path.join(dir, STATUS), 'utf8')),
    readLock(path.join(dir, LOCK)),
  ]);
  let lastError: string | undefined;
  try {
    const s = JSON.parse(status ?? '{}') as { lastError?: unknown };
    if (typeof s.lastError === 'string') lastError = s.lastError;
  } catch {
    lastError = undefined; // being replaced: the next look reads it whole
  }
  const holder = lock?.info && alive(lock.info) ? lock.info : undefined;
  return { dir, depth: entries.length, pushed: log?.count ?? 0, ...(lastError !== undefined ? { lastError } : {}), worker: holder?.kind ?? 'none' };
}
