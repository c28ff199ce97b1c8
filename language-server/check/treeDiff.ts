// Two trees of one output compared file by file, read with Node (never a shell): the output as
// first built (in the store) and its rebuild. A NAR keeps only the file type, the executable bit,
// a file's bytes and a symlink's target, so exactly these are compared. Files are read in chunks,
// side by side (an output may hold files of gigabytes): a changed one says whether both sides are
// text (for a diff editor) or where they first differ (for a hex view).
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, open, readdir, readlink, symlink, type FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { TextDecoder } from 'node:util';
import type { FileDifference, FileSide } from '../protocol';

/**
 * Hash parts the rebuild holds in place of the first build's (Nix rebuilds a valid output at a
 * "fallback" path and rewrites its hash to the real one only when it compares that output): each
 * `from` in the rebuild's bytes and symlink targets reads as `to`. Same lengths (store hashes).
 */
export type Rewrites = ReadonlyArray<readonly [from: string, to: string]>;

/** Files are read in chunks of this size, never whole. */
const CHUNK = 64 * 1024;
/** A changed file larger than this on either side is not offered as text (a diff editor of megabytes helps nobody). */
export const TEXT_LIMIT = 1024 * 1024;
/** The bytes of each side a binary file's first difference shows, from the 16-aligned offset before it. */
const HEX_BYTES = 16;

function rewrite(bytes: Buffer, rewrites: Rewrites): Buffer {
  let out = bytes;
  for (const [from, to] of rewrites) {
    const f = Buffer.from(from);
    if (out.indexOf(f) < 0) continue;
    if (out === bytes) out = Buffer.from(bytes);
    const t = Buffer.from(to);
    for (let i = out.indexOf(f); i >= 0; i = out.indexOf(f, i + t.length)) t.copy(out, i);
  }
  return out;
}

const rewriteText = (text: string, rewrites: Rewrites) => rewrites.reduce((s, [from, to]) => s.split(from).join(to), text);

/**
 * `length` bytes of an open file from `position` (fewer at its end), rewritten as the whole file
 * would be: the bytes read around them (a hash's length less one on each side) complete a hash
 * that crosses the chunk's edges. Rewrites keep lengths, so positions are the file's own.
 */
async function readAt(file: FileHandle, position: number, length: number, rewrites: Rewrites): Promise<Buffer> {
  const margin = rewrites.length === 0 ? 0 : Math.max(...rewrites.map(([from]) => Buffer.byteLength(from))) - 1;
  const start = Math.max(0, position - margin);
  const buffer = Buffer.alloc(length + (position - start) + margin);
  const { bytesRead } = await file.read(buffer, 0, buffer.length, start);
  const bytes = rewrite(buffer.subarray(0, bytesRead), rewrites);
  return bytes.subarray(position - start, Math.min(bytesRead, position - start + length));
}

/** One side of a file as it is read: its hash, and whether it still reads as UTF-8 text without NUL. */
class SideReader {
  readonly hash = createHash('sha256');
  private readonly decoder: TextDecoder | undefined;
  text: boolean;

  constructor(size: number) {
    this.text = size <= TEXT_LIMIT;
    this.decoder = this.text ? new TextDecoder('utf-8', { fatal: true }) : undefined;
  }

  add(chunk: Buffer, last: boolean): void {
    this.hash.update(chunk);
    if (!this.text || !this.decoder) return;
    if (chunk.includes(0)) this.text = false;
    else {
      try {
        this.decoder.decode(chunk, { stream: !last });
      } catch {
        this.text = false;
      }
    }
  }
}

interface Compared {
  first: FileSide;
  rebuild: FileSide;
  text: boolean;
  firstDifference?: { offset: number; first: string; rebuild: string };
}

/**
 * Two regular files read side by side in chunks (the rebuild's rewritten): each one's size and
 * sha256, whether both are text, and where they first differ with the bytes around it.
 */
async function compareFiles(first: string, rebuild: string, rewrites: Rewrites, executable: [boolean, boolean]): Promise<Compared> {
  const a = await open(first, 'r');
  try {
    const b = await open(rebuild, 'r');
    try {
      const [sa, sb] = [(await a.stat()).size, (await b.stat()).size];
      const [ra, rb] = [new SideReader(sa), new SideReader(sb)];
      let offset: number | undefined;
      for (let pos = 0; pos < Math.max(sa, sb); pos += CHUNK) {
        const ca = pos < sa ? await readAt(a, pos, CHUNK, []) : Buffer.alloc(0);
        const cb = pos < sb ? await readAt(b, pos, CHUNK, rewrites) : Buffer.alloc(0);
        ra.add(ca, pos + CHUNK >= sa);
        rb.add(cb, pos + CHUNK >= sb);
        if (offset === undefined && !ca.equals(cb)) {
          let i = 0;
          while (i < ca.length && i < cb.length && ca[i] === cb[i]) i++;
          offset = pos + i;
        }
      }
      const side = (size: number, r: SideReader, x: boolean): FileSide => ({ type: 'file', size, sha256: r.hash.digest('hex'), executable: x });
      const out: Compared = { first: side(sa, ra, executable[0]), rebuild: side(sb, rb, executable[1]), text: ra.text && rb.text };
      if (offset !== undefined && !out.text) {
        const at = offset - (offset % HEX_BYTES);
        out.firstDifference = { offset, first: (await readAt(a, at, HEX_BYTES, [])).toString('hex'), rebuild: (await readAt(b, at, HEX_BYTES, rewrites)).toString('hex') };
      }
      return out;
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
  }
}

type FileAt = { path: string; executable: boolean };
type Entry = { side: FileSide; file?: undefined } | { side: FileSide & { type: 'file' }; file: FileAt };

async function entry(file: string, rewrites: Rewrites): Promise<Entry | undefined> {
  const st = await lstat(file).catch(() => undefined);
  if (!st) return undefined;
  if (st.isSymbolicLink()) return { side: { type: 'symlink', target: rewriteText(await readlink(file), rewrites) } };
  if (st.isDirectory()) return { side: { type: 'directory' } };
  return { side: { type: 'file' }, file: { path: file, executable: (st.mode & 0o111) !== 0 } };
}

/** A file's side alone (on one side only, or beside a folder or symlink): its size and sha256, read in chunks. */
async function fileSide(e: Entry, rewrites: Rewrites): Promise<FileSide> {
  if (!e.file) return e.side;
  const f = await open(e.file.path, 'r');
  try {
    const size = (await f.stat()).size;
    const hash = createHash('sha256');
    for (let pos = 0; pos < size; pos += CHUNK) hash.update(await readAt(f, pos, CHUNK, rewrites));
    return { type: 'file', size, sha256: hash.digest('hex'), executable: e.file.executable };
  } finally {
    await f.close();
  }
}

const names = async (dir: string) => (await readdir(dir).catch(() => [] as string[])).sort();

/**
 * Every difference between `first` and `rebuild`, paths relative to them ('.' for the top),
 * sorted. A folder only on one side is one difference (its contents are not listed).
 */
export async function compareTrees(first: string, rebuild: string, rewrites: Rewrites = []): Promise<FileDifference[]> {
  const out: FileDifference[] = [];
  const walk = async (rel: string): Promise<void> => {
    const a = await entry(path.join(first, rel), []);
    const b = await entry(path.join(rebuild, rel), rewrites);
    const name = rel === '' ? '.' : rel;
    if (!a && !b) return;
    if (!b) return void out.push({ path: name, kind: 'only-in-first', first: await fileSide(a as Entry, []) });
    if (!a) return void out.push({ path: name, kind: 'only-in-rebuild', rebuild: await fileSide(b, rewrites) });
    if (a.side.type !== b.side.type) return void out.push({ path: name, kind: 'type', first: await fileSide(a, []), rebuild: await fileSide(b, rewrites) });
    if (a.side.type === 'symlink') {
      if (a.side.target !== b.side.target) out.push({ path: name, kind: 'symlink-target', first: a.side, rebuild: b.side });
      return;
    }
    if (a.file && b.file) {
      const c = await compareFiles(a.file.path, b.file.path, rewrites, [a.file.executable, b.file.executable]);
      if (c.first.sha256 !== c.rebuild.sha256) out.push({ path: name, kind: 'changed', first: c.first, rebuild: c.rebuild, text: c.text, ...(c.firstDifference ? { firstDifference: c.firstDifference } : {}) });
      else if (a.file.executable !== b.file.executable) out.push({ path: name, kind: 'mode', first: c.first, rebuild: c.rebuild });
      return;
    }
    const all = [...new Set([...(await names(path.join(first, rel))), ...(await names(path.join(rebuild, rel)))])].sort();
    for (const n of all) await walk(rel === '' ? n : `${rel}/${n}`);
  };
  await walk('');
  return out.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
}

/**
 * A copy of the tree `src` at `dst` (which must not exist) with what a NAR keeps: files, their
 * executable bit, symlinks, folders; with `rewrites` made (so that it reads as it was compared).
 * Read and written in chunks. Writable by this user only, so that it can be removed.
 */
export async function copyTree(src: string, dst: string, rewrites: Rewrites = []): Promise<void> {
  const st = await lstat(src);
  if (st.isSymbolicLink()) return symlink(rewriteText(await readlink(src), rewrites), dst);
  if (st.isDirectory()) {
    await mkdir(dst, { mode: 0o700 });
    for (const n of await readdir(src)) await copyTree(path.join(src, n), path.join(dst, n), rewrites);
    return;
  }
  const from = await open(src, 'r');
  try {
    const to = await open(dst, 'wx', 0o600);
    try {
      for (let pos = 0; pos < st.size; pos += CHUNK) await to.write(await readAt(from, pos, CHUNK, rewrites));
    } finally {
      await to.close();
    }
  } finally {
    await from.close();
  }
  await chmod(dst, (st.mode & 0o111) !== 0 ? 0o700 : 0o600);
}

/** Whether a difference has an entry on that side (every kind has both but the one-sided ones). */
export const onSide = (f: FileDifference, side: 'first' | 'rebuild') => f.kind !== (side === 'first' ? 'only-in-rebuild' : 'only-in-first');

/**
 * What a difference needs of one side of an output, kept at `dst` (which must not exist): only
 * the entries of `files` on that side, at their paths relative to `root` (a folder only on one side
 * or that replaced a file is copied whole: all of it differs), their parent folders made, all
 * copied as copyTree copies. The folders between are made 0700; nothing that is the same is copied.
 */
export async function copyDifferences(root: string, dst: string, files: readonly FileDifference[], side: 'first' | 'rebuild', rewrites: Rewrites = []): Promise<void> {
  const mine = files.filter((f) => onSide(f, side));
  if (mine.some((f) => f.path === '.')) return copyTree(root, dst, rewrites);
  await mkdir(dst, { mode: 0o700 });
  for (const f of mine) {
    const to = path.join(dst, f.path);
    await mkdir(path.dirname(to), { recursive: true, mode: 0o700 });
    await copyTree(path.join(root, f.path), to, rewrites);
  }
}
