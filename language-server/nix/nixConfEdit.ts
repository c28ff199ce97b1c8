// Set `key = value` lines in a nix.conf on disk, for the guided set-ups (post-build-hook,
// diff-hook): every other byte (comments, order, blank lines, includes, CRLF line ends) stays as it
// was; a setting that is already there is changed in place, on the line Nix reads last (later lines
// win), and its old value is said; a new one is appended. Written atomically with a `.bak` by
// machinesEdit.ts's writeFileAtomic (temp file + fsync + rename, mode and owner kept), and only if
// the file did not change since it was read.
//
// When the file cannot be written — permission denied, a read-only file system, or a NixOS
// /etc/nix/nix.conf that is a link into the store — nothing is written and the answer is 'paste':
// the lines for the user to add as root (or the NixOS option to set).
//
// How Nix reads nix.conf (config.cc, applyConfigFile): `#` starts a comment anywhere on a line; the
// rest is split at blanks; `name = value…` (the `=` a word of its own), the value the remaining
// words joined by one space; `include` / `!include` lines name other files.
import { mkdir, readFile, readlink, realpath } from 'node:fs/promises';
import * as path from 'node:path';
import { ChangedOnDiskError, writeFileAtomic } from '../builders/machinesEdit';
import { nixConfFiles } from '../config';
import type { NixConfSetUpResult, ServerSettings } from '../protocol';
import { shellQuote } from '../remote/shellQuote';

export interface NixConfSetting {
  key: string;
  value: string;
}

/** One setting as it stands after the edit: its 0-based line, and the value it had (absent: added). */
export interface SettingChange {
  key: string;
  value: string;
  line: number;
  old?: string;
}

/** Which nix.conf: the user's (the first of NIX_USER_CONF_FILES, else $XDG_CONFIG_HOME/nix/nix.conf), or the system one (NIX_CONF_DIR's, else /etc/nix/nix.conf). */
export function nixConfFor(scope: 'user' | 'system', settings: ServerSettings): string {
  const [system, user] = nixConfFiles(settings);
  return (scope === 'system' ? system : user) as string;
}

/** Why `key = value` cannot be written so that Nix reads back exactly this value (undefined: it can). */
export function settingProblem({ key, value }: NixConfSetting): string | undefined {
  if (!/^[A-Za-z][A-Za-z0-9-]*$/.test(key)) return `'${key}' is not a nix.conf setting name`;
  if (/[\r\n]/.test(value)) return `the value of ${key} cannot hold a line break`;
  if (value.includes('#')) return `the value of ${key} cannot hold '#': Nix reads the rest of the line as a comment`;
  if (value !== value.trim() || /\s\s|\t/.test(value)) return `the value of ${key} ('${value}') has leading, trailing or repeated blanks, which Nix does not keep`;
  return undefined;
}

interface ConfLine {
  /** The line without its line end. */
  body: string;
  end: string;
}

function splitLines(text: string): ConfLine[] {
  const lines: ConfLine[] = [];
  for (const m of text.matchAll(/([^\n]*?)(\r?\n|$)/g)) {
    if (m.index === text.length && m[0] === '') break;
    lines.push({ body: m[1] as string, end: m[2] as string });
  }
  return lines;
}

/** The setting a line sets, as Nix reads it: its name and value words, or undefined. */
function parseLine(body: string): { key: string; value: string } | undefined {
  const hash = body.indexOf('#');
  const words = (hash < 0 ? body : body.slice(0, hash)).split(/[ \t]+/).filter((w) => w.length > 0);
  if (words.length < 2 || words[1] !== '=') return undefined;
  return { key: words[0] as string, value: words.slice(2).join(' ') };
}

/**
 * `text` with each setting set: the last line that sets it (the one Nix obeys) changed in place
 * — its indentation and trailing comment kept —, else a new line at the end, with the file's own
 * line ends. Pure; the settings must have passed `settingProblem`.
 */
export function setSettingsInText(text: string, settings: readonly NixConfSetting[]): { text: string; changes: SettingChange[] } {
  const lines = splitLines(text);
  const crlf = lines[0]?.end === '\r\n';
  const nl = crlf ? '\r\n' : '\n';
  const changes: SettingChange[] = [];
  for (const s of settings) {
    let index = -1;
    for (let i = lines.length - 1; i >= 0 && index < 0; i--) if (parseLine((lines[i] as ConfLine).body)?.key === s.key) index = i;
    const fresh = `${s.key} = ${s.value}`;
    if (index < 0) {
      const last = lines.at(-1);
      if (last && last.end === '') last.end = nl;
      lines.push({ body: fresh, end: nl });
      changes.push({ key: s.key, value: s.value, line: lines.length - 1 });
      continue;
    }
    const line = lines[index] as ConfLine;
    const old = (parseLine(line.body) as { value: string }).value;
    if (old !== s.value) {
      const indent = /^[ \t]*/.exec(line.body)?.[0] ?? '';
      const hash = line.body.indexOf('#');
      line.body = `${indent}${fresh}${hash < 0 ? '' : ` ${line.body.slice(hash)}`}`;
    }
    changes.push({ key: s.key, value: s.value, line: index, old });
  }
  return { text: lines.map((l) => l.body + l.end).join(''), changes };
}

/** Where `file` leads: its real path; a dangling link's target (NixOS's link into a store that is not mounted here); the file itself when missing. */
async function linkTarget(file: string): Promise<string> {
  try {
    return await realpath(file);
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw e;
    const link = await readlink(file).catch(() => undefined);
    return link === undefined ? path.resolve(file) : path.resolve(path.dirname(file), link);
  }
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The NixOS option for a setting (`nix.settings`), for a nix.conf that NixOS generates. */
function nixosOption({ key, value }: NixConfSetting): string {
  const v = value === 'true' || value === 'false' || /^\d+$/.test(value) ? value : JSON.stringify(value);
  return `nix.settings."${key}" = ${v};`;
}

/** What each change did, in words: added, changed in place from its old value, or already so. */
function changeNotes(file: string, changes: readonly SettingChange[]): string[] {
  return changes.map((c) =>
    c.old === undefined
      ? `Added ${c.key} = ${c.value} to ${file} (line ${c.line + 1}).`
      : c.old === c.value
        ? `${file} already had ${c.key} = ${c.value} (line ${c.line + 1}).`
        : `Changed ${c.key} on line ${c.line + 1} of ${file} in place: it was '${c.old}'.`,
  );
}

/**
 * Set `settings` in the nix.conf `file` (created, with its folder, when missing), atomically with
 * `<file>.bak`. Never throws for I/O reasons: 'paste' with the lines when the file is not writable
 * here (or `dryRun`), 'failed' with the cause otherwise. `notes` are the caller's, kept first.
 */
export async function setNixConfSettings(file: string, settings: readonly NixConfSetting[], opts: { dryRun?: boolean; notes?: string[] } = {}): Promise<NixConfSetUpResult> {
  const notes = opts.notes ?? [];
  const asLines = settings.map((s) => `${s.key} = ${s.value}`);
  for (const s of settings) {
    const problem = settingProblem(s);
    if (problem) return { status: 'failed', nixConf: file, lines: asLines, notes, message: `Cannot set ${s.key}: ${problem}.` };
  }
  const paste = (why: string, how = `Add ${settings.length === 1 ? 'this line' : 'these lines'} to it as root (for example: sudoedit ${shellQuote(file)}), replacing any line that sets the same name.`): NixConfSetUpResult => ({
    status: 'paste',
    nixConf: file,
    lines: asLines,
    notes,
    message: `${why} ${how}`,
  });
  if (opts.dryRun) return paste('Nothing was written (dry run).', `Add ${settings.length === 1 ? 'this line' : 'these lines'} to ${file}.`);
  let target = path.resolve(file);
  let doing = 'read';
  try {
    target = await linkTarget(file);
    if (target.startsWith('/nix/store/')) {
      return paste(`${file} is generated by Nix (it leads to ${target}), so it is not edited here.`, `On NixOS set ${settings.map(nixosOption).join(' ')} in your configuration and run nixos-rebuild switch; elsewhere change what generates it.`);
    }
    const before = await readFile(target, 'utf8').catch((e: unknown) => {
      if (errnoCode(e) === 'ENOENT') return undefined;
      throw e;
    });
    const { text, changes } = setSettingsInText(before ?? '', settings);
    const lines = changes.map((c) => `${c.key} = ${c.value}`);
    const done = [...notes, ...changeNotes(file, changes)];
    if (before === text) return { status: 'written', nixConf: file, lines, notes: done, message: `${file} already sets ${lines.join(', ')}: nothing to change.` };
    doing = 'write';
    if (before === undefined) await mkdir(path.dirname(target), { recursive: true });
    await writeFileAtomic(target, text, { backup: true, expectCurrent: before ?? null });
    return { status: 'written', nixConf: file, ...(before === undefined ? {} : { backup: `${target}.bak` }), lines, notes: done };
  } catch (err) {
    if (err instanceof ChangedOnDiskError) return { status: 'failed', nixConf: file, lines: asLines, notes, message: `${file} changed on disk while it was being edited; nothing was written. Try again.` };
    const code = errnoCode(err);
    if (code === 'EACCES' || code === 'EPERM') return paste(`Cannot ${doing} ${file}: permission denied.`);
    if (code === 'EROFS') return paste(`Cannot write ${file}: it is on a read-only file system.`);
    return { status: 'failed', nixConf: file, lines: asLines, notes, message: `Cannot ${doing} ${file}: ${err instanceof Error ? err.message : String(err)}. Nothing was changed.` };
  }
}
