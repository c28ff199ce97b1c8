// A real build: `nix-store --realise <drv…> --log-format internal-json -v [--builders …]
// [--max-jobs N] [--cores N]`, its stderr parsed as it arrives and fed to a BuildModel whose
// changes are reported at most every 200 ms (only what changed, without logs: the cost of an
// update follows what happened, not the size of the build); the final state is the outcome's. The outcome carries the
// classified problems and the output paths (stdout of nix-store --realise). A Nix without
// internal-json (2.3) is run with its plain log, which the model and classifier read as well.
//
// Memory stays flat in the size of the log: the model keeps a bounded tail per derivation, and for
// the classifier only Nix's messages, build starts and the last lines of each build's log are kept.
import { classifyLogEvents, type NixProblem } from '../nix/classifier';
import { InternalJsonLogParser, type LogEvent } from '../nix/logParser';
import type { Nix } from '../nix/nix';
import { describeResult } from '../nix/runner';
import { isDrvPath } from '../nix/storePath';
import type { BuildSnapshot } from '../protocol';
import { BuildModel } from './model';
import { realiseOptions } from './plan';

export interface RunBuildOptions {
  drvPaths: readonly string[];
  /** Machines text for --builders. */
  builders?: string;
  maxJobs?: number;
  cores?: number;
  signal?: AbortSignal;
  /** 0: none (the default; cancel with the signal). */
  timeoutMs?: number;
  /**
   * While it runs, at most every `updateIntervalMs` (default 200 ms): the derivations and transfers
   * that changed since the previous update, without logs (`partial: true`). The final state is the
   * outcome's snapshot.
   */
  onUpdate?: (changes: BuildSnapshot) => void;
  updateIntervalMs?: number;
  /** Bytes of log kept per derivation (default 64 KiB). */
  maxLogBytes?: number;
  /** The model to feed (so that the caller can read it while the build runs); a new one by default. */
  model?: BuildModel;
}

export type BuildStatus = 'built' | 'failed' | 'cancelled';

export interface BuildOutcome {
  status: BuildStatus;
  snapshot: BuildSnapshot;
  problems: NixProblem[];
  /** Output paths Nix printed (stdout), in its order. */
  outPaths: string[];
  /** How the process ended, for the log ("nix-store exited with code 1"). */
  exit: string;
  command: string[];
  durationMs: number;
}

/** Lines of each build's log kept for the classifier. */
const LOG_LINES_FOR_CLASSIFIER = 200;
/** Plain (non-@nix) lines kept for the classifier. */
const PLAIN_LINES_FOR_CLASSIFIER = 2000;

/**
 * The events the classifier needs, in their order, bounded: every message and build start, the
 * last lines of each build activity's log and the last plain lines. Dropped events leave holes
 * (undefined) that are compacted away when they outnumber the kept ones.
 */
export class RetainedEvents {
  private events: Array<LogEvent | undefined> = [];
  private holes = 0;
  /** Per activity id (or "plain"): indices of its kept lines, oldest first. */
  private readonly lines = new Map<string, number[]>();
  private readonly buildIds = new Set<string>();

  push(ev: LogEvent): void {
    if (ev.kind === 'start') {
      if (!ev.build) return;
      this.buildIds.add(ev.id);
      this.events.push(ev);
    } else if (ev.kind === 'result') {
      if (ev.logLine === undefined || !this.buildIds.has(ev.id)) return;
      this.keepLine(ev.id, ev, LOG_LINES_FOR_CLASSIFIER);
    } else if (ev.kind === 'plain' || ev.kind === 'malformed') {
      this.keepLine('plain', ev, PLAIN_LINES_FOR_CLASSIFIER);
    } else if (ev.kind === 'msg') {
      this.events.push(ev);
    }
  }

  private keepLine(key: string, ev: LogEvent, max: number): void {
    let idx = this.lines.get(key);
    if (!idx) this.lines.set(key, (idx = []));
    idx.push(this.events.length);
    this.events.push(ev);
    if (idx.length > max) {
      const drop = idx.shift() as number;
      this.events[drop] = undefined;
      this.holes++;
    }
    if (this.holes > 4096 && this.holes * 2 > this.events.length) this.compact();
  }

  private compact(): void {
    const remap = new Map<number, number>();
    const kept: LogEvent[] = [];
    this.events.forEach((ev, i) => {
      if (ev !== undefined) {
        remap.set(i, kept.length);
        kept.push(ev);
      }
    });
    for (const [key, idx] of this.lines) this.lines.set(key, idx.map((i) => remap.get(i) as number));
    this.events = kept;
    this.holes = 0;
  }

  all(): LogEvent[] {
    return this.events.filter((e): e is LogEvent => e !== undefined);
  }

  get size(): number {
    return this.events.length - this.holes;
  }
}

/** Calls `emit` at most every `intervalMs`; `flush` emits now if something is pending. */
class Throttle {
  private last = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private pending = false;

  constructor(
    private readonly intervalMs: number,
    private readonly emit: () => void,
  ) {}

  poke(): void {
    this.pending = true;
    if (this.timer) return;
    const wait = this.last + this.intervalMs - Date.now();
    if (wait <= 0) this.fire();
    else this.timer = setTimeout(() => this.fire(), wait);
  }

  private fire(): void {
    this.timer = undefined;
    if (!this.pending) return;
    this.pending = false;
    this.last = Date.now();
    this.emit();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = false;
  }
}

/** Build these derivations. Never throws. */
export async function runBuild(nix: Nix, opts: RunBuildOptions): Promise<BuildOutcome> {
  const started = Date.now();
  const model = opts.model ?? new BuildModel({ drvPaths: opts.drvPaths, ...(opts.maxLogBytes !== undefined ? { maxLogBytes: opts.maxLogBytes } : {}) });
  const file = nix.bin('nix-store');
  const early = (status: BuildStatus, exit: string, args: string[]): BuildOutcome => {
    if (status === 'cancelled') model.finishAll('cancelled');
    const snapshot = model.snapshot();
    return { status, snapshot, problems: [], outPaths: [], exit, command: [file, ...args], durationMs: Date.now() - started };
  };
  const bad = opts.drvPaths.find((p) => !isDrvPath(p));
  if (opts.drvPaths.length === 0 || bad !== undefined) return early('failed', bad === undefined ? 'no derivation to build' : `not a derivation path: '${bad}'`, []);
  if (opts.signal?.aborted) return early('cancelled', 'cancelled before it started', []);

  const caps = await nix.detect();
  const json = caps.ok ? caps.value.internalJsonLog : true;
  const args = ['--realise', ...opts.drvPaths, ...(json ? ['--log-format', 'internal-json', '-v'] : []), ...realiseOptions(opts)];
  if (!caps.ok) return early('failed', caps.message, args);

  const parser = new InternalJsonLogParser();
  const retained = new RetainedEvents();
  const throttle = new Throttle(opts.updateIntervalMs ?? 200, () => opts.onUpdate?.(model.changes()));
  let ended = false;
  const feed = (events: LogEvent[]) => {
    if (events.length === 0) return;
    for (const ev of events) {
      model.apply(ev);
      retained.push(ev);
    }
    // Nothing is reported after the end: the outcome is the last word.
    if (opts.onUpdate && !ended) throttle.poke();
  };
  const result = await nix.run(file, args, {
    timeoutMs: opts.timeoutMs ?? 0,
    ...(opts.signal ? { signal: opts.signal } : {}),
    onStderr: (chunk) => feed(parser.push(chunk)),
  });
  feed(parser.end());
  ended = true;
  throttle.stop();

  const status: BuildStatus = result.kind === 'ok' ? 'built' : result.kind === 'cancelled' ? 'cancelled' : 'failed';
  model.finishAll(status === 'built' ? 'ok' : status);
  const problems = status === 'failed' ? classifyLogEvents(retained.all()) : [];
  const outPaths = result.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('/'));
  const snapshot = model.snapshot();
  return { status, snapshot, problems, outPaths, exit: describeResult(result), command: [file, ...args], durationMs: Date.now() - started };
}
