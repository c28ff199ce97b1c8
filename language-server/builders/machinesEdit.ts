// Add, replace and remove entries of a machines file on disk (`/etc/nix/machines` or one of the
// user's), without ever leaving it half-written.
//
// The edit itself is done by the byte-preserving helpers of `nix/machines.ts`: every byte other than
// the target entry (comments, order, blank lines, `;`-separated neighbours, CRLF line ends) stays as
// it was. An entry is named by the 0-based line and column where it starts, as `parseMachines`
// reports them, and by its text as it was read: an edit whose entry is no longer there with that
// text (the file changed since it was listed) is refused, so a moved or changed entry is never
// overwritten.
//
// Writing is atomic: the new text goes to a temp file in the same folder, created with the
// original's mode (and owner, when we run as root on another user's file), fsynced, then renamed
// over the original, and the folder is fsynced. The previous content is kept as `<file>.bak`,
// written the same way before the rename. A reader (Nix, another editor) therefore sees either the
// old or the new file, also when this process is killed at any moment.
//
// A writer killed between creating its temp file and renaming it leaves the temp file behind. Such
// files are recognised by their name, `.<name>.nix-builders-<16 hex digits>.tmp` next to `<name>`
// (and `.<name>.bak.nix-builders-….tmp` for the backup), and removed by the next write of the same
// file once they are older than a minute (a younger one may belong to a writer still running).
//
// `editMachinesFile` never throws for I/O reasons: every failure is a result naming the cause and
// the fix; when the file cannot be written for lack of permission, the result carries the exact
// line for the user to paste as root.
import { randomBytes } from 'node:crypto';
import { promises as fs, type Stats } from 'node:fs';
import * as path from 'node:path';
import { appendEntry, formatMachine, parseMachineLine, parseMachines, removeEntry, replaceEntry, type Machine, type MachineEntry, type MachinesDocument } from '../nix/machines';
import type { EditResult, FormatMachineLineResult, MachinesEdit } from '../protocol';
import { shellQuote } from '../remote/shellQuote';

/** Temp files of a writer killed before its rename are removed once they are older than this. */
export const STALE_TEMP_AGE_MS = 60_000;

const TEMP_INFIX = '.nix-builders-';

/** The names of this module's temp files for `file`: `.<name>.nix-builders-<16 hex>.tmp`. */
export function tempFilePattern(file: string): RegExp {
  const base = path.basename(file).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^\\.${base}\\.nix-builders-[0-9a-f]{16}\\.tmp$`);
}

function tempFileName(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}${TEMP_INFIX}${randomBytes(8).toString('hex')}.tmp`);
}

/** Thrown when the file changed between our read and our rename (`expectCurrent`). */
export class ChangedOnDiskError extends Error {}

function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

const PERMISSION_CODES = new Set(['EACCES', 'EPERM', 'EROFS']);

/** Best effort: remove our own temp files for `file` left by a killed writer more than a minute ago. */
async function removeStaleTempFiles(file: string): Promise<void> {
  const dir = path.dirname(file);
  const pattern = tempFilePattern(file);
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return; // the write that follows reports whatever is wrong with the folder
  }
  const now = Date.now();
  for (const name of names) {
    if (!pattern.test(name)) continue;
    const p = path.join(dir, name);
    try {
      const st = await fs.lstat(p);
      if (st.isFile() && now - st.mtimeMs > STALE_TEMP_AGE_MS) await fs.unlink(p);
    } catch {
      // gone already, or not ours to remove: leave it
    }
  }
}

async function statOrUndefined(file: string): Promise<Stats | undefined> {
  try {
    return await fs.stat(file);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

async function readOrUndefined(file: string): Promise<Buffer | undefined> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

interface AtomicOptions {
  /** Mode and owner to give the new file; default: those of the file being replaced. */
  like?: Stats;
  /** Previous content to keep as `<file>.bak` (written atomically, before the rename). */
  backup?: Buffer;
  /**
   * What must be on disk just before the rename (null: no file). Otherwise nothing is renamed and
   * a `ChangedOnDiskError` is thrown, so a concurrent edit is not overwritten.
   */
  expectCurrent?: Buffer | null;
}

async function writeAtomic(file: string, data: Buffer, opts: AtomicOptions): Promise<void> {
  await removeStaleTempFiles(file);
  const like = opts.like ?? (await statOrUndefined(file));
  const tmp = tempFileName(file);
  const mode = like ? like.mode & 0o7777 : 0o644;
  // `wx`: never reuse (or follow a link planted at) an existing name.
  const fh = await fs.open(tmp, 'wx', mode);
  let renamed = false;
  try {
    try {
      await fh.writeFile(data);
      if (like) {
        await keepOwner(fh, like);
        await fh.chmod(mode); // open's mode went through the umask
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (opts.backup) await writeAtomic(`${file}.bak`, opts.backup, { like });
    if (opts.expectCurrent !== undefined) {
      const current = await readOrUndefined(file);
      const same = opts.expectCurrent === null ? current === undefined : current !== undefined && current.equals(opts.expectCurrent);
      if (!same) throw new ChangedOnDiskError(`${file} changed on disk while it was being edited`);
    }
    await fs.rename(tmp, file);
    renamed = true;
    await syncFolder(path.dirname(file));
  } finally {
    if (!renamed) await fs.unlink(tmp).catch(() => undefined);
  }
}

/** Give the new file the original's owner where we can: as root always, otherwise (group) if allowed. */
async function keepOwner(fh: fs.FileHandle, like: Stats): Promise<void> {
  if (typeof process.getuid !== 'function' || typeof process.getgid !== 'function') return;
  if (like.uid === process.getuid() && like.gid === process.getgid()) return;
  try {
    await fh.chown(like.uid, like.gid);
  } catch {
    // Not root and not allowed to give it away: the file stays ours, with the original's mode.
  }
}

/** Make the rename durable. Some file systems (and Windows) cannot fsync a folder: the rename is done anyway. */
async function syncFolder(dir: string): Promise<void> {
  let fh: fs.FileHandle | undefined;
  try {
    fh = await fs.open(dir, 'r');
    await fh.sync();
  } catch {
    // best effort: the data itself was fsynced before the rename
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/**
 * Replace `file` with `text` atomically (temp file + fsync + rename + folder fsync), keeping its
 * mode and, as root, its owner. A symbolic link is followed: its target is written. With
 * `backup`, the previous content (if any) is kept as `<target>.bak`. With `expectCurrent`, nothing
 * is renamed unless the file still holds exactly that text (null: no file), and a
 * `ChangedOnDiskError` is thrown instead. Throws the underlying `NodeJS.ErrnoException` on
 * failure; no temp file is left behind.
 */
export async function writeFileAtomic(file: string, text: string, opts: { backup?: boolean; expectCurrent?: string | null } = {}): Promise<void> {
  const target = await resolveTarget(file);
  const previous = opts.backup ? await readOrUndefined(target) : undefined;
  const expectCurrent = opts.expectCurrent === undefined ? {} : { expectCurrent: opts.expectCurrent === null ? null : Buffer.from(opts.expectCurrent, 'utf8') };
  await writeAtomic(target, Buffer.from(text, 'utf8'), { backup: previous, ...expectCurrent });
}

/** Follow symbolic links so the link stays a link; a missing file is written where it was named. */
async function resolveTarget(file: string): Promise<string> {
  try {
    return await fs.realpath(file);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return path.resolve(file);
    throw err;
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The trimmed entry, or the reason it cannot be written as one entry. */
function validateEntry(raw: string): { entry: string } | { error: string } {
  const entry = raw.trim();
  if (/[\r\n]/.test(entry)) return { error: 'an entry is a single line: it cannot contain a line break' };
  if (entry.includes(';')) return { error: "an entry cannot contain ';': Nix would read it as two entries" };
  if (entry.includes('#')) return { error: "an entry cannot contain '#': Nix would read the rest of it as a comment" };
  const error = entry.startsWith('@') ? parseMachines(entry).entries[0]?.error : parseMachineLine(entry).error;
  return error === undefined ? { entry } : { error };
}

/** `appendEntry`, with the file's own line ends (CRLF when its first line ends so). */
function appendWithLineEnds(text: string, entry: string): string {
  const nl = text.indexOf('\n');
  if (nl <= 0 || text[nl - 1] !== '\r') return appendEntry(text, entry);
  const sep = text.endsWith('\n') ? '' : '\r\n';
  return `${text}${sep}${entry}\r\n`;
}

interface FailureContext {
  file: string;
  target: string;
  edit: MachinesEdit;
  entry: string | undefined;
  old: MachineEntry | undefined;
  doing: 'read' | 'write';
}

function permissionDenied(err: unknown, ctx: FailureContext): EditResult {
  const { file, target, edit, entry, old } = ctx;
  const why =
    errnoCode(err) === 'EROFS'
      ? 'it is on a read-only file system'
      : `permission denied${ctx.doing === 'read' ? ' to read it' : ''}`;
  const which = edit.kind === 'add' ? '' : ` on line ${edit.line + 1}${old ? ` ('${old.text}')` : ''}`;
  const what =
    edit.kind === 'add'
      ? 'add this line:'
      : edit.kind === 'replace'
        ? `replace the entry${which} with this line:`
        : `remove the entry${which}.`;
  const how = target.startsWith('/nix/store/')
    ? `It is generated by Nix (it leads to ${target}): change nix.buildMachines in your NixOS configuration and run nixos-rebuild switch.${entry === undefined ? '' : ' The entry:'}`
    : `Edit it as root (for example: sudoedit ${shellQuote(file)}) and ${what}`;
  const message = `Cannot ${ctx.doing} ${file}: ${why}. ${how}`;
  return entry === undefined
    ? { ok: false, reason: 'permission-denied', message }
    : { ok: false, reason: 'permission-denied', message, lineToPaste: entry };
}

function failure(err: unknown, ctx: FailureContext): EditResult {
  if (err instanceof ChangedOnDiskError) {
    return {
      ok: false,
      reason: 'changed-on-disk',
      message: `${ctx.file} changed on disk while it was being edited; nothing was written. Reload it and try again.`,
    };
  }
  const code = errnoCode(err);
  if (code !== undefined && PERMISSION_CODES.has(code)) return permissionDenied(err, ctx);
  if (code === 'ENOENT') {
    return {
      ok: false,
      reason: 'not-found',
      message: `Cannot ${ctx.doing} ${ctx.file}: the folder ${path.dirname(ctx.target)} does not exist.`,
    };
  }
  const detail = err instanceof Error ? err.message : String(err);
  return { ok: false, reason: 'io-error', message: `Cannot ${ctx.doing} ${ctx.file}: ${detail}` };
}

/** The refusal of an edit whose entry is not where it was read, with the text it had. */
function entryNotThere(file: string, doc: MachinesDocument, edit: Extract<MachinesEdit, { expected: string }>): EditResult {
  const where = `line ${edit.line + 1}, column ${edit.column + 1}`;
  const now = doc.entries.find((e) => e.line === edit.line && e.column === edit.column);
  const moved = doc.entries.filter((e) => e.text === edit.expected).map((e) => e.line + 1);
  const what = now ? `the entry at ${where} is now '${now.text}'` : `there is no entry at ${where} any more`;
  const elsewhere = moved.length > 0 ? `, and '${edit.expected}' is on line ${moved.join(', ')}` : `, and '${edit.expected}' is not in it any more`;
  return {
    ok: false,
    reason: now ? 'entry-changed' : 'no-such-entry',
    message: `${file} changed since its builders were listed: ${what}${elsewhere}. Nothing was written: refresh the Builders view and try again.`,
  };
}

/** Blanks end a column, `#` starts a comment, `;` and line breaks end the entry: none can be in a column. */
const NOT_IN_A_COLUMN = /[ \t\r\n#;]/;

/** Why `value` cannot be a column of a machines entry. */
function notAColumn(what: string, value: string, fix = ''): FormatMachineLineResult {
  const why = value.includes('#')
    ? "'#' starts a comment there"
    : value.includes(';')
      ? "';' separates entries there"
      : value.length === 0 || value === '-'
        ? "an empty column or '-' means the default there"
        : 'Nix splits a machines entry into columns at blanks, with no quoting or escaping, so it would be read as several columns';
  return { ok: false, message: `The ${what} '${value}' cannot be written to a machines file: ${why}.${fix}` };
}

/**
 * One machines entry for `m`, or why it cannot be written as one: a value that Nix would read as
 * other columns, other entries or a comment is refused, never written. A key path with a space
 * shifts every column after it: Nix 2.8 then fails every build that may use the builders ("bad
 * machine specification: failed to convert column #3 … to 'unsigned int'"), or, for a path like
 * `/keys/my 2`, silently uses the key `/keys/my` with max-jobs 2. Nix percent-decodes the store
 * URI's `ssh-key` parameter (`ssh://b5?ssh-key=/keys/my%20key` reaches ssh as `-i '/keys/my key'`):
 * the refusal suggests that.
 */
export function formatMachineLine(m: Machine): FormatMachineLineResult {
  if (m.uri.startsWith('@') || m.uri === '-' || m.uri.length === 0 || NOT_IN_A_COLUMN.test(m.uri)) return notAColumn('store URI', m.uri);
  const lists = [
    ['system', m.systems],
    ['feature', m.supportedFeatures],
    ['mandatory feature', m.mandatoryFeatures],
  ] as const;
  for (const [what, list] of lists) {
    const item = list.find((x) => x.length === 0 || x === '-' || x.includes(',') || NOT_IN_A_COLUMN.test(x));
    if (item === undefined) continue;
    return item.includes(',') && !NOT_IN_A_COLUMN.test(item)
      ? { ok: false, message: `The ${what} '${item}' cannot contain ',': commas separate the ${what}s of a machines entry.` }
      : notAColumn(what, item);
  }
  if (m.sshKey !== undefined && (m.sshKey.length === 0 || m.sshKey === '-' || NOT_IN_A_COLUMN.test(m.sshKey))) {
    const encoded = m.sshKey.replace(/[%\s#;&]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
    const fix = ` Move or link the key to a path without blanks, or leave the key column '-' and name the key in the store URI, percent-encoded (${m.uri}${m.uri.includes('?') ? '&' : '?'}ssh-key=${encoded}), which Nix decodes.`;
    return notAColumn('SSH key path', m.sshKey, m.sshKey.length > 1 ? fix : '');
  }
  if (m.publicHostKey !== undefined && (m.publicHostKey.length === 0 || m.publicHostKey === '-' || NOT_IN_A_COLUMN.test(m.publicHostKey))) return notAColumn('host key', m.publicHostKey);
  if (!Number.isInteger(m.maxJobs) || m.maxJobs < 0) return { ok: false, message: `Max jobs must be a whole number, not ${m.maxJobs}.` };
  if (!Number.isFinite(m.speedFactor) || m.speedFactor <= 0) return { ok: false, message: `The speed factor must be a number above 0, not ${m.speedFactor}.` };
  const line = formatMachine(m);
  // The rest (the host key's base64) is checked by reading the entry back as Nix would.
  const error = parseMachineLine(line).error;
  return error === undefined ? { ok: true, line } : { ok: false, message: `The entry '${line}' is not valid: ${error}.` };
}

/**
 * Apply one edit to the machines file `file` and write it atomically, keeping the previous content
 * as `<file>.bak`. With `expectedText`, the edit is refused (`changed-on-disk`) unless the file
 * still holds exactly that text. Never throws for I/O reasons.
 */
export async function editMachinesFile(
  file: string,
  edit: MachinesEdit,
  opts: { expectedText?: string } = {},
): Promise<EditResult> {
  let entry: string | undefined;
  if (edit.kind !== 'remove') {
    const checked = validateEntry(edit.entry);
    if ('error' in checked) return { ok: false, reason: 'invalid-entry', message: checked.error };
    entry = checked.entry;
  }
  const ctx: FailureContext = { file, target: path.resolve(file), edit, entry, old: undefined, doing: 'read' };
  try {
    ctx.target = await resolveTarget(file);
    const bytes = await readOrUndefined(ctx.target);
    if (bytes === undefined && edit.kind !== 'add') {
      return { ok: false, reason: 'not-found', message: `${file} does not exist.` };
    }
    let text = '';
    if (bytes !== undefined) {
      try {
        text = UTF8.decode(bytes);
      } catch {
        return {
          ok: false,
          reason: 'io-error',
          message: `${file} is not valid UTF-8 text; it was left untouched. Edit it by hand.`,
        };
      }
    }
    if (opts.expectedText !== undefined && opts.expectedText !== text) {
      return {
        ok: false,
        reason: 'changed-on-disk',
        message: `${file} was changed on disk since it was read; nothing was written. Reload it and try again.`,
      };
    }
    let newText: string;
    if (edit.kind === 'add') {
      newText = appendWithLineEnds(text, entry as string);
    } else {
      const doc = parseMachines(text);
      const index = doc.entries.findIndex((e) => e.line === edit.line && e.column === edit.column && e.text === edit.expected);
      if (index < 0) return entryNotThere(file, doc, edit);
      ctx.old = doc.entries[index];
      newText = edit.kind === 'replace' ? replaceEntry(doc, index, entry as string) : removeEntry(doc, index);
    }
    ctx.doing = 'write';
    await writeAtomic(ctx.target, Buffer.from(newText, 'utf8'), { backup: bytes, expectCurrent: bytes ?? null });
    return { ok: true, file, backup: bytes === undefined ? undefined : `${ctx.target}.bak`, newText };
  } catch (err) {
    return failure(err, ctx);
  }
}
