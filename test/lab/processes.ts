// Process bookkeeping for the lab, straight from /proc (Linux only, like the lab itself).
// A lab process is identified by its PID *and* its start time, so a PID recycled after the lab
// died is never mistaken for (or killed as) a lab process.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** A process the lab started: the root of one builder's process group and PID namespace. */
export interface LabProcess {
  name: string;
  pid: number;
  /** Field 22 of /proc/PID/stat (clock ticks since boot). */
  startTime: string;
  /** The builder's PID namespace (`pid:[4026…]`), once known: every process inside belongs to the lab. */
  pidNs?: string;
}

/** State and start time of a process, or undefined when it does not exist. */
export function procStat(pid: number): { state: string; startTime: string } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Field 2 (comm) is parenthesised and may contain spaces or ')': split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const startTime = fields[19];
  return state === undefined || startTime === undefined ? undefined : { state, startTime };
}

/** True when the process exists and is not a zombie (and, if given, started at startTime). */
export function isRunning(pid: number, startTime?: string): boolean {
  const stat = procStat(pid);
  if (stat === undefined || stat.state === 'Z' || stat.state === 'X') return false;
  return startTime === undefined || stat.startTime === startTime;
}

function readLink(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/** The PID namespace a process creates its children in (the namespace `unshare --pid` made). */
export function childPidNamespace(pid: number): string | undefined {
  return readLink(`/proc/${pid}/ns/pid_for_children`);
}

/** Every running (non-zombie) process inside the given PID namespaces (never this process's own). */
export function namespaceMembers(namespaces: ReadonlySet<string>): number[] {
  const own = readLink('/proc/self/ns/pid');
  if (namespaces.size === 0 || (own !== undefined && namespaces.has(own))) return [];
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ns = readLink(`/proc/${entry}/ns/pid`);
    if (ns !== undefined && namespaces.has(ns) && isRunning(Number(entry))) members.push(Number(entry));
  }
  return members;
}

/** The live processes of a lab: its builders' roots and everything inside their PID namespaces. */
export function liveProcesses(procs: readonly LabProcess[]): number[] {
  const pids = new Set(procs.filter((p) => isRunning(p.pid, p.startTime)).map((p) => p.pid));
  const namespaces = new Set(procs.flatMap((p) => (p.pidNs === undefined ? [] : [p.pidNs])));
  for (const pid of namespaceMembers(namespaces)) pids.add(pid);
  return [...pids].sort((a, b) => a - b);
}

/**
 * SIGKILL every lab process, synchronously (usable from an 'exit' handler). Each root was spawned
 * detached, so its PID is also its process-group ID; killing the group takes the namespace's init
 * with it, and the kernel then kills the whole namespace (sshd's per-connection children call
 * setsid() and so are outside the group, but not outside the namespace). Members are also killed
 * one by one in case a root was already gone.
 */
export function killProcesses(procs: readonly LabProcess[]): void {
  for (const p of procs) {
    if (isRunning(p.pid, p.startTime)) signal(-p.pid);
  }
  const namespaces = new Set(procs.flatMap((p) => (p.pidNs === undefined ? [] : [p.pidNs])));
  for (const pid of namespaceMembers(namespaces)) signal(pid);
}

function signal(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** Resolve once none of the lab's processes runs any more; reject after timeoutMs. */
export async function waitUntilGone(procs: readonly LabProcess[], timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = liveProcesses(procs);
    if (left.length === 0) return;
    if (Date.now() > deadline) throw new Error(`lab processes still running after ${timeoutMs} ms: ${left.join(' ')}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
