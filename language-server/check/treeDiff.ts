// Two trees of one output compared file by file, read with Node (never a shell): the output as
// first built (in the store) and its rebuild. A NAR keeps only the file type, the executable bit,
// a file's bytes and a symlink's target, so exactly these are compared.
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, readFile, readdir, readlink, symlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { FileDifference, FileSide } from '../protocol';

/**
 * Hash parts the rebuild holds in place of the first build's (Nix rebuilds a valid output at a
 * "fallback" path and rewrites its hash to the real one only when it compares that output): each
 * `from` in the rebuild's bytes and symlink targets reads as `to`. Same lengths (store hashes).
 */
export type Rewrites = ReadonlyArray<readonly [from: string, to: string]>;

interface Entry {
  side: FileSide;
  /** A file's bytes (rewritten on the rebuild's side). */
  bytes?: Buffer;
}

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

async function entry(file: string, rewrites: Rewrites): Promise<Entry | undefined> {
  const st = await lstat(file).catch(() => undefined);
  if (!st) return undefined;
  if (st.isSymbolicLink()) return { side: { type: 'symlink', target: rewriteText(await readlink(file), rewrites) } };
  if (st.isDirectory()) return { side: { type: 'directory' } };
  const bytes = rewrite(await readFile(file), rewrites);
  return { side: { type: 'file', size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), executable: (st.mode & 0o111) !== 0 }, bytes };
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
    if (!b) return void out.push({ path: name, kind: 'only-in-first', first: (a as Entry).side });
    if (!a) return void out.push({ path: name, kind: 'only-in-rebuild', rebuild: b.side });
    if (a.side.type !== b.side.type) return void out.push({ path: name, kind: 'type', first: a.side, rebuild: b.side });
    if (a.side.type === 'symlink') {
      if (a.side.target !== b.side.target) out.push({ path: name, kind: 'symlink-target', first: a.side, rebuild: b.side });
      return;
    }
    if (a.side.type === 'file') {
      if (a.side.sha256 !== b.side.sha256) out.push({ path: name, kind: 'changed', first: a.side, rebuild: b.side });
      else if (a.side.executable !== b.side.executable) out.push({ path: name, kind: 'mode', first: a.side, rebuild: b.side });
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
 * executable bit, symlinks as they are, folders. Writable by this user only, so that it can be removed.
 */
export async function copyTree(src: string, dst: string): Promise<void> {
  const st = await lstat(src);
  if (st.isSymbolicLink()) return symlink(await readlink(src), dst);
  if (st.isDirectory()) {
    await mkdir(dst, { mode: 0o700 });
    for (const n of await readdir(src)) await copyTree(path.join(src, n), path.join(dst, n));
    return;
  }
  await writeFile(dst, await readFile(src), { mode: 0o600 });
  await chmod(dst, (st.mode & 0o111) !== 0 ? 0o700 : 0o600);
}
