// The process groups of a server that was killed hard (SIGKILL, the out-of-memory killer, a native
// crash) outlive it: nothing in the server runs then. So each server keeps a small file listing the
// groups it started, and the next server (the editor restarts a crashed one) ends the groups of
// every file whose server is gone.
//
// - one file per server process, `<pid>-<start time>.json`, 0600 in a 0700 folder, replaced
//   atomically (written beside it, then renamed) on each start and end of a group; removed when
//   the server has no group left;
// - a process is named by its pid AND its start time (field 22 of /proc/PID/stat): a pid the kernel
//   gave to another process since is never signalled, neither a recycled server pid (its file
//   counts as alive) nor a recycled group leader;
// - only files and a folder owned by this user and writable by no one else are trusted; symlinks
//   are never followed.
// Linux only (/proc); elsewhere nothing is recorded.
import { closeSync, constants, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

/** A process as the kernel knows it: its pid and its start time (clock ticks since boot). */
export interface ProcessId {
  pid: number;
  start: string;
}

/** The start time of a running process (not a zombie), or undefined when there is none. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ppid … : comm may hold spaces and parentheses. After it, field 3 comes first.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    return fields[22 - 3];
  } catch {
    return undefined;
  }
}

/**
 * The registry folder: $NIX_BUILDERS_RUNTIME_DIR, else `nix-builders` in $XDG_RUNTIME_DIR (per
 * user, emptied at log-out), else `nix-builders-<uid>` in the temporary folder.
 */
export function registryDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.NIX_BUILDERS_RUNTIME_DIR) return env.NIX_BUILDERS_RUNTIME_DIR;
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, 'nix-builders');
  return path.join(tmpdir(), `nix-builders-${process.getuid?.() ?? 'user'}`);
}

/** Why a file or folder of the registry is not to be trusted, or undefined when it is. */
function untrusted(p: string, kind: 'file' | 'directory'): string | undefined {
  const st = lstatSync(p);
  if (st.isSymbolicLink()) return `${p} is a symbolic link`;
  if (kind === 'file' ? !st.isFile() : !st.isDirectory()) return `${p} is not a ${kind}`;
  if (st.uid !== process.getuid?.()) return `${p} belongs to uid ${st.uid}, not to this user`;
  if ((st.mode & 0o022) !== 0) return `${p} is writable by others (mode ${(st.mode & 0o777).toString(8)})`;
  return undefined;
}

/** The folder, created 0700 if missing; throws with the cause and the fix if it cannot be trusted. */
function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const why = untrusted(dir, 'directory');
  if (why) throw new Error(`${why}: remove it, or set NIX_BUILDERS_RUNTIME_DIR to a folder of your own (mode 0700)`);
}

const FILE_NAME = /^(\d+)-(\d+)\.json(\.tmp)?$/;

/** The groups a registry file lists; throws on anything else. */
export function parseEntries(text: string): ProcessId[] {
  const data: unknown = JSON.parse(text);
  if (!Array.isArray(data)) throw new Error('not a list');
  return data.map((e: unknown) => {
    const { pid, start } = (e ?? {}) as { pid?: unknown; start?: unknown };
    // Never pid 0 or 1: -0 and -1 mean "my group" and "every process" to kill(2).
    if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid < 2 || typeof start !== 'string' || !/^\d+$/.test(start)) {
      throw new Error(`not a process: ${JSON.stringify(e)}`);
    }
    return { pid, start };
  });
}

/**
 * What to do with one registry file, from what runs now (`startOf` gives a running pid's start
 * time): nothing while its server still runs; else end each group whose leader still is the very
 * process recorded, and remove the file. A leader that is gone or whose pid now names another
 * process is left alone.
 */
export function decide(server: ProcessId, groups: readonly ProcessId[], startOf: (pid: number) => string | undefined): { serverAlive: boolean; end: number[] } {
  if (startOf(server.pid) === server.start) return { serverAlive: true, end: [] };
  return { serverAlive: false, end: groups.filter((g) => startOf(g.pid) === g.start).map((g) => g.pid) };
}

/** The registry file of one running server. */
export class ProcessRegistry {
  private readonly file: string;
  private written = false;

  constructor(dir: string, self: ProcessId) {
    ensureDir(dir);
    this.file = path.join(dir, `${self.pid}-${self.start}.json`);
  }

  /** Replaces the list of live groups; an empty list removes the file. Synchronous (small). */
  record(groups: readonly ProcessId[]): void {
    if (groups.length === 0) {
      if (this.written) removeFile(this.file);
      this.written = false;
      return;
    }
    const tmp = `${this.file}.tmp`;
    removeFile(tmp);
    // O_EXCL | O_NOFOLLOW: a file or link put there by someone else is never written through.
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      // No fsync: the file has to outlive this process, not the machine (whose processes go with it).
      writeSync(fd, JSON.stringify(groups));
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    this.written = true;
  }

  /** The registry files in the folder whose servers are gone, and the groups they list. */
  static orphans(dir: string, startOf: (pid: number) => string | undefined = processStart): { files: Array<{ file: string; groups: number[] }>; problems: string[] } {
    const files: Array<{ file: string; groups: number[] }> = [];
    const problems: string[] = [];
    let names: string[];
    try {
      ensureDir(dir);
      names = readdirSync(dir);
    } catch (e) {
      return { files, problems: [`the registry of Nix processes cannot be used: ${(e as Error).message}`] };
    }
    for (const name of names) {
      const m = FILE_NAME.exec(name);
      if (!m) continue;
      const file = path.join(dir, name);
      try {
        const why = untrusted(file, 'file');
        if (why) {
          problems.push(`A registry file of Nix processes was ignored: ${why} (remove it).`);
          continue;
        }
        const server = { pid: Number(m[1]), start: m[2]! };
        // A file being written (.tmp) lists nothing yet that the finished one will not.
        const groups = m[3] ? [] : parseEntries(readRegular(file));
        const { serverAlive, end } = decide(server, groups, startOf);
        if (!serverAlive) files.push({ file, groups: end });
      } catch (e) {
        problems.push(`A registry file of Nix processes was ignored: ${file}: ${(e as Error).message} (remove it).`);
      }
    }
    return { files, problems };
  }
}

/** Reads a file without following a symlink put in its place. */
function readRegular(file: string): string {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

export function removeFile(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // Not there (another server removed it first).
  }
}
