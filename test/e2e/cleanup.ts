// Teardown that also happens when the test process is interrupted or exits early: every resource
// registers a synchronous "stop now" (kill a process group, remove a folder) and, optionally, a
// graceful asynchronous one used on SIGINT/SIGTERM.
import { readdirSync, readFileSync } from 'node:fs';

interface Entry {
  /** Synchronous, must not throw: runs in process.on('exit'). */
  now(): void;
  /** Graceful stop on SIGINT/SIGTERM; `now` runs after it in any case. */
  graceful?(): Promise<void>;
}

const entries = new Set<Entry>();
let installed = false;
let signalled = false;

function runNow(): void {
  for (const e of [...entries].reverse()) {
    try {
      e.now();
    } catch {
      /* keep going: teardown of the others matters more */
    }
  }
  entries.clear();
}

async function onSignal(signal: NodeJS.Signals): Promise<void> {
  if (signalled) return; // a second Ctrl+C: the exit handler still runs the synchronous stops
  signalled = true;
  const graceful = [...entries].reverse().flatMap((e) => (e.graceful ? [e.graceful().catch(() => {})] : []));
  await Promise.race([Promise.all(graceful), new Promise((r) => setTimeout(r, 10_000).unref())]);
  runNow();
  process.exit(signal === 'SIGINT' ? 130 : 143);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', runNow);
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, () => void onSignal(s));
}

/** Registers a teardown; returns a function that unregisters it (after a normal stop). */
export function onTeardown(now: () => void, graceful?: () => Promise<void>): () => void {
  install();
  const entry: Entry = graceful ? { now, graceful } : { now };
  entries.add(entry);
  return () => void entries.delete(entry);
}

/**
 * Processes whose environment holds `NAME=value`: finds what a process group kill misses
 * (children that called setsid, such as terminals, or daemons that detached).
 */
export function pidsWithEnv(name: string, value: string): number[] {
  const needle = `${name}=${value}`;
  const found: number[] = [];
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return found;
  }
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    const pid = Number(n);
    if (pid === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${n}/environ`, 'latin1');
      if (env.split('\0').includes(needle)) found.push(pid);
    } catch {
      /* gone, or not ours to read */
    }
  }
  return found;
}

export function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}
