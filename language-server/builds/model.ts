// The state of a running build, fed with log events (internal-json, or plain lines of a Nix
// without it) one at a time. Pure: no clock of its own (pass `now`), no I/O. Memory stays flat in
// the size of the log: each derivation keeps the last `maxLogBytes` of its log and a line count.
//
// What Nix 2.8 sends (test/fixtures/nix-2.8.0/*.jsonl):
// - `msg` "this derivation will be built:" / "these N derivations will be built:" then one msg per
//   drv path, indented: the queue;
// - `start` build (105) `[drvPath, machine, …]`: machine "" = this machine, else the store URI. With
//   ssh-ng the remote daemon's activities are forwarded as well: a nested build activity for the
//   same drv with machine "" carries the log. A derivation is therefore matched by its drv path,
//   its machine is the first non-empty one, and it is finished when its last activity stops;
// - `result` 101 log line / 104 phase on a build activity; 105 progress on the `builds` (104)
//   activity: [done, expected, running, failed] (the first such activity is the client's own);
// - failure only in a later `msg`: "builder for '…drv' failed with exit code N", "build of '…drv'
//   on '…' failed: …", "N dependencies of derivation '…drv' failed to build", timeouts…; a build
//   whose activity stopped is built when the client's `builds` progress (sent just before the
//   stop) counted one more done, failed when it counted one more failure; neither means Nix was
//   interrupted (SIGTERM stops activities too) and the end of the command decides;
// - copyPath (100) `[path, from, to]` and substitute (108) `[path, host]` with byte progress.
import type { LogEvent, ProgressFields } from '../nix/logParser';
import type { BuildSnapshot, DrvSnapshot, DrvState, TransferSnapshot } from '../protocol';
import { storeName } from '../nix/storePath';

export interface BuildModelOptions {
  /** Derivations known to be part of this build (queued until something happens to them). */
  drvPaths?: readonly string[];
  /** Bytes of log kept per derivation (default 64 KiB). */
  maxLogBytes?: number;
  now?: () => number;
}

/** A derivation as the model tracks it: the snapshot's fields (less the derived name) plus bookkeeping. */
interface Drv extends Omit<DrvSnapshot, 'name'> {
  /** Index of the first kept line in `log` (dropped lines are cut lazily). */
  logHead: number;
  logBytes: number;
  /** Build activities running for it. */
  active: number;
}

/** A transfer as the model tracks it: the snapshot's fields less the derived name. */
type Transfer = Omit<TransferSnapshot, 'name'>;

const MAX_MESSAGES = 50;
const MAX_TRANSFERS = 500;
const DRV = /'(\/[^'\s]+\.drv)(?:![^']*)?'/g;
const QUEUE_HEADER = /^(?:these \d+ derivations|this derivation) will be built:\s*$/;
const FETCH_HEADER = /^(?:these \d+ paths|this path) will be fetched/;
const QUEUE_ITEM = /^\s+(\/\S+\.drv)\s*$/;
const PLAIN_BUILDING = /^building '(\/[^']+\.drv)'(?: on '([^']+)')?/;

function zero(): ProgressFields {
  return { done: 0, expected: 0, running: 0, failed: 0 };
}

export class BuildModel {
  private readonly drvs = new Map<string, Drv>();
  /** Build activity id → drv path. */
  private readonly buildIds = new Map<string, string>();
  private readonly transfers = new Map<string, Transfer>();
  private transferOrder: string[] = [];
  private buildsId: string | undefined;
  private copyPathsId: string | undefined;
  private progress = zero();
  private copyProgress = zero();
  private messages: string[] = [];
  /** Messages ever added, and how many of them `changes()` has reported. */
  private messageCount = 0;
  private messagesReported = 0;
  private section: 'build' | 'fetch' | undefined;
  private events = 0;
  /** Builds that `progress` counted as done / failed and that were matched to a derivation. */
  private builtCounted = 0;
  private failedCounted = 0;
  /** Changed since the last `changes()`. */
  private readonly dirtyDrvs = new Set<Drv>();
  private readonly dirtyTransfers = new Set<string>();
  private readonly maxLogBytes: number;
  private readonly now: () => number;

  constructor(opts: BuildModelOptions = {}) {
    this.maxLogBytes = Math.max(1024, opts.maxLogBytes ?? 64 * 1024);
    this.now = opts.now ?? Date.now;
    for (const p of opts.drvPaths ?? []) this.drv(p);
  }

  private drv(drvPath: string): Drv {
    let d = this.drvs.get(drvPath);
    if (!d) {
      d = { drvPath, state: 'queued', machine: '', logLineCount: 0, log: [], logHead: 0, logBytes: 0, logDropped: 0, active: 0 };
      this.drvs.set(drvPath, d);
    }
    this.dirtyDrvs.add(d);
    return d;
  }

  /** Feed one event. Never throws. */
  apply(ev: LogEvent): void {
    this.events++;
    switch (ev.kind) {
      case 'start':
        this.onStart(ev);
        break;
      case 'stop':
        this.onStop(ev.id);
        break;
      case 'result':
        this.onResult(ev);
        break;
      case 'msg':
        this.onMessage(ev.text, ev.fullText, ev.level);
        break;
      case 'plain':
        this.onPlain(ev.text);
        break;
      default:
        break;
    }
  }

  applyAll(events: Iterable<LogEvent>): void {
    for (const ev of events) this.apply(ev);
  }

  private onStart(ev: Extract<LogEvent, { kind: 'start' }>): void {
    if (ev.build) {
      this.startBuild(ev.build.drvPath, ev.build.machine);
      this.buildIds.set(ev.id, ev.build.drvPath);
    } else if (ev.activityTypeName === 'builds') {
      this.buildsId ??= ev.id;
    } else if (ev.activityTypeName === 'copyPaths') {
      this.copyPathsId ??= ev.id;
    } else if (ev.copyPath || ev.substitute) {
      const t: Transfer = ev.copyPath
        ? { kind: 'copy', path: ev.copyPath.path, from: ev.copyPath.from, to: ev.copyPath.to, state: 'running', startedAt: this.now() }
        : { kind: 'substitute', path: ev.substitute?.path ?? '', from: ev.substitute?.host ?? '', to: 'local', state: 'running', startedAt: this.now() };
      this.transfers.set(ev.id, t);
      this.dirtyTransfers.add(ev.id);
      this.transferOrder.push(ev.id);
      if (this.transferOrder.length > MAX_TRANSFERS) {
        const old = this.transferOrder.shift();
        if (old !== undefined) {
          this.transfers.delete(old);
          this.dirtyTransfers.delete(old);
        }
      }
    }
  }

  private startBuild(drvPath: string, machine: string): void {
    const d = this.drv(drvPath);
    d.active++;
    if (machine && !d.machine) d.machine = machine;
    if (d.state !== 'building') {
      // A new round (or a retry after a failed connection) starts a new build.
      d.state = 'building';
      d.startedAt = this.now();
      delete d.finishedAt;
      delete d.failure;
    }
  }

  private onStop(id: string): void {
    const drvPath = this.buildIds.get(id);
    if (drvPath !== undefined) {
      this.buildIds.delete(id);
      const d = this.drvs.get(drvPath);
      if (!d) return;
      this.dirtyDrvs.add(d);
      d.active = Math.max(0, d.active - 1);
      if (d.active === 0) this.settle(d);
      return;
    }
    const t = this.transfers.get(id);
    if (t && t.state === 'running') {
      t.state = 'done';
      t.finishedAt = this.now();
      this.dirtyTransfers.add(id);
    }
  }

  /**
   * Its last build activity stopped: the client's `builds` progress (sent just before the stop)
   * says whether one more build succeeded or failed. Neither: Nix was interrupted (SIGTERM makes
   * it stop its activities); it stays building until finishAll says how the command ended.
   */
  private settle(d: Drv): void {
    if (this.buildsId === undefined) {
      if (d.state === 'building') this.finish(d, 'built');
      return;
    }
    if (d.state === 'failed') {
      if (this.progress.failed > this.failedCounted) this.failedCounted++;
      return;
    }
    if (d.state !== 'building') return;
    if (this.progress.done > this.builtCounted) {
      this.builtCounted++;
      this.finish(d, 'built');
    } else if (this.progress.failed > this.failedCounted) {
      this.failedCounted++;
      this.finish(d, 'failed');
    }
  }

  private finish(d: Drv, state: DrvState, failure?: string): void {
    this.dirtyDrvs.add(d);
    d.state = state;
    d.finishedAt ??= this.now();
    if (failure !== undefined) d.failure = failure;
  }

  private onResult(ev: Extract<LogEvent, { kind: 'result' }>): void {
    const drvPath = this.buildIds.get(ev.id);
    if (drvPath !== undefined) {
      const d = this.drv(drvPath);
      if (ev.logLine !== undefined) this.addLog(d, ev.logLine);
      else if (ev.phase !== undefined) d.phase = ev.phase;
      return;
    }
    if (ev.progress) {
      if (ev.id === this.buildsId) {
        this.progress = ev.progress;
      } else if (ev.id === this.copyPathsId) {
        this.copyProgress = ev.progress;
      } else {
        const t = this.transfers.get(ev.id);
        if (t) {
          this.dirtyTransfers.add(ev.id);
          t.doneBytes = ev.progress.done;
          t.expectedBytes = ev.progress.expected;
        }
      }
    }
  }

  private addLog(d: Drv, raw: string): void {
    this.dirtyDrvs.add(d);
    // Colours are kept out of the model: the UI shows text.
    const line = raw.indexOf('\x1b') === -1 ? raw : raw.replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, '');
    d.logLineCount++;
    d.lastLogLine = line;
    d.log.push(line);
    d.logBytes += line.length + 1;
    while (d.logBytes > this.maxLogBytes && d.log.length - d.logHead > 1) {
      d.logBytes -= (d.log[d.logHead] as string).length + 1;
      d.log[d.logHead] = '';
      d.logHead++;
      d.logDropped++;
    }
    if (d.logHead > 1024 && d.logHead * 2 > d.log.length) {
      d.log = d.log.slice(d.logHead);
      d.logHead = 0;
    }
  }

  /**
   * The "these N derivations will be built:" / "will be fetched" lists, in messages or plain lines:
   * true when `line` belonged to them (the queue learns its derivations from them).
   */
  private onQueueLine(line: string): boolean {
    if (QUEUE_HEADER.test(line)) {
      this.section = 'build';
      return true;
    }
    if (FETCH_HEADER.test(line)) {
      this.section = 'fetch';
      return true;
    }
    const item = QUEUE_ITEM.exec(line);
    if (item && this.section === 'build') {
      this.drv(item[1] as string);
      return true;
    }
    if (/^\s+\/\S+\s*$/.test(line) && this.section === 'fetch') return true;
    this.section = undefined;
    return false;
  }

  private onMessage(text: string, fullText: string, level: number): void {
    if (this.onQueueLine(text.split('\n')[0] ?? '')) return;
    if (level <= 1) {
      this.addMessage(fullText);
    }
    if (level === 0) this.onError(text);
  }

  private addMessage(text: string): void {
    this.messages.push(text);
    this.messageCount++;
    if (this.messages.length > MAX_MESSAGES) this.messages.shift();
  }

  /** An error naming derivations: the first named is the one that failed. */
  private onError(text: string): void {
    DRV.lastIndex = 0;
    const m = DRV.exec(text);
    if (!m) return;
    const drvPath = m[1] as string;
    const d = this.drvs.get(drvPath);
    // An error about a derivation that never appeared (not in the queue) is still a failure of it.
    const target = d ?? this.drv(drvPath);
    if (target.state === 'failed' && target.failure !== undefined) return;
    const machine = /^build of '[^']+' on '([^']+)' failed/.exec(text);
    if (machine && !target.machine) target.machine = machine[1] as string;
    target.active = 0;
    this.finish(target, 'failed', text.split('\n')[0]);
  }

  /** A Nix without internal-json (2.3): the same facts from plain lines. */
  private onPlain(text: string): void {
    if (this.onQueueLine(text)) return;
    const building = PLAIN_BUILDING.exec(text);
    if (building) {
      // Plain logs have no "stop": the previous build of this Nix finished when the next starts only
      // if it was the single one running; keep it simple and let finishAll decide.
      this.startBuild(building[1] as string, building[2] ?? '');
      return;
    }
    if (text.startsWith('error: ')) {
      this.addMessage(text);
      this.onError(text.slice('error: '.length));
      return;
    }
    // Build output: attribute it when exactly one derivation builds.
    const running = [...this.drvs.values()].filter((d) => d.state === 'building');
    if (running.length === 1 && running[0]) this.addLog(running[0], text);
  }

  /**
   * The command ended: what is still queued or building gets its final state. `ok`: Nix succeeded,
   * so everything it was asked for exists; `cancelled`: stopped by the user; `failed`: Nix failed.
   */
  finishAll(how: 'ok' | 'failed' | 'cancelled'): void {
    for (const d of this.drvs.values()) {
      if (d.state === 'building') {
        d.active = 0;
        this.finish(d, how === 'ok' ? 'built' : how === 'cancelled' ? 'cancelled' : 'failed');
      } else if (d.state === 'queued' && how === 'cancelled') {
        this.finish(d, 'cancelled');
      } else if (d.state === 'queued' && how === 'ok') {
        // Asked for but never built: it came from a cache (or was there already).
        this.finish(d, 'substituted');
      }
    }
    for (const [id, t] of this.transfers) {
      if (t.state === 'running') {
        t.state = 'done';
        t.finishedAt = this.now();
        this.dirtyTransfers.add(id);
      }
    }
    // Nothing runs once the command has ended, whatever Nix's last progress said (it sends none
    // after an interrupt or a failure).
    this.progress = { ...this.progress, running: 0 };
    this.copyProgress = { ...this.copyProgress, running: 0 };
  }

  /** The state of one derivation, if known. */
  derivation(drvPath: string): DrvSnapshot | undefined {
    const d = this.drvs.get(drvPath);
    return d ? this.drvSnapshot(d) : undefined;
  }

  private drvSnapshot(d: Drv, withLog = true): DrvSnapshot {
    const s: DrvSnapshot = {
      drvPath: d.drvPath,
      name: storeName(d.drvPath),
      state: d.state,
      machine: d.machine,
      logLineCount: d.logLineCount,
      log: withLog ? d.log.slice(d.logHead) : [],
      logDropped: d.logDropped,
    };
    if (d.phase !== undefined) s.phase = d.phase;
    if (d.startedAt !== undefined) s.startedAt = d.startedAt;
    if (d.finishedAt !== undefined) s.finishedAt = d.finishedAt;
    if (d.lastLogLine !== undefined) s.lastLogLine = d.lastLogLine;
    if (d.failure !== undefined) s.failure = d.failure;
    return s;
  }

  /** A plain JSON-able copy of the whole current state; `logs: false` leaves the log tails out (cheap). */
  snapshot(opts: { logs?: boolean } = {}): BuildSnapshot {
    const logs = opts.logs ?? true;
    return {
      derivations: [...this.drvs.values()].map((d) => this.drvSnapshot(d, logs)),
      transfers: this.transferOrder.flatMap((id) => this.transferSnapshot(id)),
      progress: { ...this.progress },
      copyProgress: { ...this.copyProgress },
      messages: [...this.messages],
      events: this.events,
    };
  }

  /**
   * What changed since the previous call (or since the start), without logs: the derivations and
   * transfers that changed, and the counters. Its size follows what happened in the interval, not
   * the size of the build: a build of thousands of derivations sends the few that moved.
   */
  changes(): BuildSnapshot {
    const out: BuildSnapshot = {
      derivations: [...this.dirtyDrvs].map((d) => this.drvSnapshot(d, false)),
      transfers: [...this.dirtyTransfers].flatMap((id) => this.transferSnapshot(id)),
      progress: { ...this.progress },
      copyProgress: { ...this.copyProgress },
      messages: this.messages.slice(Math.max(0, this.messages.length - (this.messageCount - this.messagesReported))),
      events: this.events,
      partial: true,
    };
    this.dirtyDrvs.clear();
    this.dirtyTransfers.clear();
    this.messagesReported = this.messageCount;
    return out;
  }

  private transferSnapshot(id: string): TransferSnapshot[] {
    const t = this.transfers.get(id);
    return t ? [{ ...t, name: storeName(t.path) }] : [];
  }
}
