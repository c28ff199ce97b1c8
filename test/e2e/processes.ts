// Live processes from /proc, for the e2e tests that prove a process tree is gone (every PID
// namespace's, the lab builders' too). No `vscode` import: the extension-host suites and the UI tests share it.
import { readdirSync, readFileSync } from 'node:fs';

export interface LiveProcess {
  pid: number;
  ppid: number;
  /** The command line, its arguments joined by spaces. */
  cmdline: string;
}

/** Live processes (not zombies) other than this one whose command line contains `needle`. */
export function processesMentioning(needle: string): LiveProcess[] {
  const found: LiveProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid …: comm may contain spaces and parentheses.
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z' || state === 'X') continue;
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmdline.includes(needle)) found.push({ pid: Number(entry), ppid: Number(ppid), cmdline });
    } catch {
      // The process ended meanwhile.
    }
  }
  return found;
}
