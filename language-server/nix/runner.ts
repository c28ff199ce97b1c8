// The one module that starts processes. Everything above it depends on the `ProcessRunner`
// interface, so tests can feed recorded real output.
//
// - argument arrays only, never a shell;
// - every run has a timeout and may be cancelled with an AbortSignal;
// - a child runs in its own process group and cancellation/timeout kills the whole group
//   (nix spawns ssh and build hooks: killing only the direct child would leave them running);
// - the outcome is data: a discriminated result, never an exception for a non-zero exit;
// - every group started is known until it has ended, so that `killAllChildren` can end them all
//   when the server exits (a group of its own is not ended by anything else when its parent goes);
// - and recorded in the server's registry file (processRegistry.ts), so that the next server ends
//   them when this one was killed hard (SIGKILL, out of memory, a crash): `endOrphanedGroups`.
import { existsSync, readFileSync } from 'node:fs';
import { processStart, ProcessRegistry, removeFile } from './processRegistry';

// execa is ESM-only: loaded with import() so that this CommonJS code also runs unbundled (tests
// under tsx); esbuild bundles it either way.
const loadExeca = () => import('execa');

export interface RunRequest {
  file: string;
  args: readonly string[];
  cwd?: string;
  /** Added to the server's environment. */
  env?: Readonly<Record<string, string>>;
  /** Removed from the environment (the server's and `env`), e.g. DISPLAY for a child that must never open a window. */
  unsetEnv?: readonly string[];
  input?: string;
  /** Milliseconds; 0 means no timeout. */
  timeoutMs: number;
  signal?: AbortSignal;
  /**
   * Called with each chunk of stderr as it arrives (for progress and logs). stderr is then not
   * buffered whole (a build's log can be gigabytes): the result's `stderr` is its last
   * STREAMED_STDERR_TAIL characters.
   */
  onStderr?: (chunk: string) => void;
  onStdout?: (chunk: string) => void;
  /** Grace period between SIGTERM and SIGKILL of the process group. */
  killGraceMs?: number;
}

/** What is kept of a streamed stderr for the result. */
export const STREAMED_STDERR_TAIL = 1024 * 1024;

interface RunOutput {
  /** The command as it was run, for logs: file then args. */
  command: readonly string[];
  stdout: string;
  stderr: string;
  durationMs: number;
}

export type RunResult =
  | (RunOutput & { kind: 'ok' })
  | (RunOutput & { kind: 'exit'; exitCode: number | undefined; signal: string | undefined })
  | (RunOutput & { kind: 'spawn-failed'; code: string | undefined; message: string })
  | (RunOutput & { kind: 'timed-out'; timeoutMs: number })
  | (RunOutput & { kind: 'cancelled' });

export interface ProcessRunner {
  run(request: RunRequest): Promise<RunResult>;
}

export function describeResult(result: RunResult): string {
  const cmd = result.command[0] ?? '?';
  switch (result.kind) {
    case 'ok':
      return `${cmd} succeeded`;
    case 'exit':
      return result.signal ? `${cmd} was killed by ${result.signal}` : `${cmd} exited with code ${result.exitCode}`;
    case 'spawn-failed':
      return result.code === 'ENOENT'
        ? `${cmd} was not found: is Nix installed and on PATH (or set nixBuilders.nixBinDir)?`
        : `${cmd} could not be started: ${result.message}`;
    case 'timed-out':
      return `${cmd} did not finish within ${Math.round(result.timeoutMs / 1000)} s and was stopped`;
    case 'cancelled':
      return `${cmd} was cancelled`;
  }
}

/**
 * Process groups started here that may still have members: the group id (the leader's pid) and the
 * leader's start time (undefined without /proc).
 */
const liveGroups = new Map<number, string | undefined>();

let registry: { file: ProcessRegistry; onProblem: (message: string) => void } | undefined;

/** From now on, every change of the live groups is written to `file`. */
export function recordGroupsIn(file: ProcessRegistry, onProblem: (message: string) => void): void {
  registry = { file, onProblem };
  syncRegistry();
}

function syncRegistry(): void {
  if (!registry) return;
  const groups = [...liveGroups].flatMap(([pid, start]) => (start === undefined ? [] : [{ pid, start }]));
  try {
    registry.file.record(groups);
  } catch (e) {
    const { onProblem } = registry;
    // Once: the runs go on, only a hard kill of the server would leave their processes running.
    registry = undefined;
    onProblem(`Nix processes are no longer recorded, so a crash of the server would leave them running: ${(e as Error).message}. Check that the folder is writable (or set NIX_BUILDERS_RUNTIME_DIR) and restart the server.`);
  }
}

function forget(pgid: number): void {
  if (liveGroups.delete(pgid)) syncRegistry();
}

function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {
    // The group is already gone.
  }
}

/** Kill a whole process group: SIGTERM, then SIGKILL after a grace period. */
function killGroup(pgid: number, graceMs: number): void {
  signalGroup(pgid, 'SIGTERM');
  const timer = setTimeout(() => {
    signalGroup(pgid, 'SIGKILL');
    forget(pgid);
  }, graceMs);
  timer.unref();
}

const hasProc = existsSync('/proc/self/stat');

/**
 * Whether the process `pid` still runs. A child that has exited stays a zombie until the event
 * loop reaps it (and a synchronous caller never lets it), so /proc's state tells; without /proc
 * it counts as running until the grace period ends.
 */
function running(pid: number): boolean {
  if (!hasProc) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * End every process group this process started and that may still run: SIGTERM (Nix stops its
 * builds and cleans up), a grace period while any group leader still runs, then SIGKILL (an
 * evaluation does not always look at SIGTERM). Synchronous, for `process.on('exit')` and signal
 * handlers: the server calls it on every way out. Returns how many groups it signalled.
 */
export function killAllChildren(graceMs = 2000): number {
  const groups = [...liveGroups.keys()];
  liveGroups.clear();
  if (groups.length === 0) return 0;
  endGroups(groups, graceMs);
  syncRegistry();
  return groups.length;
}

/**
 * End this process's groups on every way out: `exit`, and SIGTERM, SIGINT, SIGHUP (re-raised once
 * they are ended). For the composition roots (the server, the standalone push worker).
 */
export function endChildrenOnExit(): void {
  process.on('exit', () => killAllChildren());
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAllChildren();
      process.kill(process.pid, signal);
    });
  }
}

/** SIGTERM to each group, a grace period while any leader still runs, then SIGKILL. Synchronous. */
function endGroups(groups: readonly number[], graceMs: number): void {
  for (const pgid of groups) signalGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  while (groups.some(running) && Date.now() < deadline) Atomics.wait(nap, 0, 0, 20);
  for (const pgid of groups) signalGroup(pgid, 'SIGKILL');
}

/**
 * Ends the process groups that servers which are gone recorded in the registry folder `dir` and
 * whose leaders still are the processes recorded, like killAllChildren, then removes their files.
 * For a server's start, before it starts anything. Returns what it did, for the log.
 */
export function endOrphanedGroups(dir: string, graceMs = 2000): { ended: number[]; problems: string[] } {
  const { files, problems } = ProcessRegistry.orphans(dir);
  const ended = files.flatMap((f) => f.groups);
  if (ended.length > 0) endGroups(ended, graceMs);
  for (const f of files) removeFile(f.file);
  return { ended, problems };
}

export class ExecaRunner implements ProcessRunner {
  async run(req: RunRequest): Promise<RunResult> {
    const command = [req.file, ...req.args];
    const started = performance.now();
    const grace = req.killGraceMs ?? 2000;
    if (req.signal?.aborted) {
      return { kind: 'cancelled', command, stdout: '', stderr: '', durationMs: 0 };
    }
    let timedOut = false;
    let cancelled = false;
    const { execa } = await loadExeca();
    const child = execa(req.file, [...req.args], {
      cwd: req.cwd,
      // A variable set to undefined is left out of the child's environment.
      env: req.env || req.unsetEnv ? { ...req.env, ...Object.fromEntries((req.unsetEnv ?? []).map((name) => [name, undefined])) } : undefined,
      extendEnv: true,
      input: req.input,
      stdin: req.input === undefined ? 'ignore' : undefined,
      reject: false,
      stripFinalNewline: false,
      // Own process group, so that the group can be killed as a whole. (execa's `cleanup` does
      // nothing for a detached child: killAllChildren ends them when the server exits.)
      detached: true,
      // 64 MiB: evaluation of large files produces large JSON.
      maxBuffer: 64 * 1024 * 1024,
      // A streamed stderr is handed over chunk by chunk and only its tail kept here: buffering it
      // would grow with the log and stop the process at maxBuffer.
      buffer: { stdout: true, stderr: req.onStderr === undefined },
    });
    const pid = child.pid;
    if (pid !== undefined) {
      liveGroups.set(pid, hasProc ? processStart(pid) : undefined);
      syncRegistry();
    }
    // Once killed, the group stays registered until its SIGKILL (members may outlive the leader).
    let killed = false;
    const kill = () => {
      if (pid === undefined || killed) return;
      killed = true;
      killGroup(pid, grace);
    };
    const onAbort = () => {
      cancelled = true;
      kill();
    };
    req.signal?.addEventListener('abort', onAbort, { once: true });
    const timer =
      req.timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            kill();
          }, req.timeoutMs)
        : undefined;
    let stderrTail = '';
    if (req.onStderr) {
      const decoder = new TextDecoder('utf-8');
      const onChunk = (text: string) => {
        stderrTail = (stderrTail.length + text.length > 2 * STREAMED_STDERR_TAIL ? stderrTail.slice(-STREAMED_STDERR_TAIL) : stderrTail) + text;
        req.onStderr?.(text);
      };
      // A multi-byte character split between chunks is decoded once whole.
      child.stderr?.on('data', (b: Buffer) => onChunk(decoder.decode(b, { stream: true })));
      child.stderr?.on('end', () => {
        const rest = decoder.decode();
        if (rest) onChunk(rest);
      });
    }
    if (req.onStdout) child.stdout?.on('data', (b: Buffer) => req.onStdout?.(b.toString('utf8')));
    try {
      const r = await child;
      const out: RunOutput = {
        command,
        stdout: typeof r.stdout === 'string' ? r.stdout : '',
        stderr: req.onStderr ? stderrTail.slice(-STREAMED_STDERR_TAIL) : typeof r.stderr === 'string' ? r.stderr : '',
        durationMs: performance.now() - started,
      };
      if (cancelled) return { ...out, kind: 'cancelled' };
      if (timedOut) return { ...out, kind: 'timed-out', timeoutMs: req.timeoutMs };
      const failure = r as { code?: string; failed?: boolean; exitCode?: number; signal?: string; originalMessage?: string };
      if (r.exitCode === undefined && failure.code) {
        return { ...out, kind: 'spawn-failed', code: failure.code, message: failure.originalMessage ?? String(failure.code) };
      }
      if (r.exitCode === 0 && !r.signal) return { ...out, kind: 'ok' };
      return { ...out, kind: 'exit', exitCode: r.exitCode, signal: r.signal };
    } finally {
      if (timer) clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
      if (pid !== undefined && !killed) forget(pid);
    }
  }
}
