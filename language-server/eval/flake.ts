// Flakes: where Nix takes a flake's source from, which of its locked inputs it could use offline,
// the files its evaluation depends on, where each output's diagnostic goes, and what the user runs
// to lock or fetch inputs. The evaluation itself is the walker's flake part (walker.ts).
import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { CodeActionKind, type CodeAction, type Diagnostic } from 'vscode-languageserver/node';
import { ServerCommands, type FixFlakeArgs } from '../protocol';
import { documentRange, type DerivationDiagnostic } from './diagnose';
import type { WalkerPosition } from './walker';

/** A flake's source as `nix build` takes it for its folder: a git repository's tracked files (`git+file:`), else the folder (`path:`). */
export interface FlakeSource {
  type: 'git' | 'path';
  /** The repository's top (git) or the flake's folder (path). */
  root: string;
  /** The flake's folder below `root` ("" when it is `root`). */
  subdir: string;
}

const exists = (p: string) => stat(p).then(
  () => true,
  () => false,
);

/** As Nix (flakeref.cc) reads a folder: the nearest folder above holding `.git` makes it `git+file://TOP?dir=SUBDIR`. */
export async function flakeSource(flakeDir: string): Promise<FlakeSource> {
  let root = path.resolve(flakeDir);
  let subdir = '';
  while (root !== path.dirname(root)) {
    if (await exists(path.join(root, '.git'))) return { type: 'git', root, subdir };
    subdir = subdir === '' ? path.basename(root) : `${path.basename(root)}/${subdir}`;
    root = path.dirname(root);
  }
  return { type: 'path', root: path.resolve(flakeDir), subdir: '' };
}

const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

/** Nix's base-32 (least significant bits first, its own alphabet). */
export function nix32(bytes: Buffer): string {
  let out = '';
  for (let n = Math.ceil((bytes.length * 8) / 5) - 1; n >= 0; n--) {
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    const c = ((bytes[i] ?? 0) >> j) | (i + 1 < bytes.length ? (bytes[i + 1] ?? 0) << (8 - j) : 0);
    out += NIX32[c & 0x1f];
  }
  return out;
}

/**
 * The store path a locked input is fetched to: the source with that NAR hash, named `source`
 * (a fixed-output path, as Nix's fetchers make it). Undefined for a hash that is not `sha256-…`.
 */
export function sourceStorePath(narHash: string, storeDir = '/nix/store'): string | undefined {
  const m = /^sha256-([A-Za-z0-9+/]{43}=)$/.exec(narHash);
  if (!m) return undefined;
  const hex = Buffer.from(m[1] as string, 'base64').toString('hex');
  const digest = createHash('sha256').update(`source:sha256:${hex}:${storeDir}:source`).digest();
  const folded = Buffer.alloc(20);
  for (let i = 0; i < digest.length; i++) folded[i % 20] = (folded[i % 20] as number) ^ (digest[i] as number);
  return `${storeDir}/${nix32(folded)}-source`;
}

interface LockNode {
  locked?: { type?: string; path?: string; url?: string; narHash?: string };
  inputs?: Record<string, string | string[]>;
}

export interface LockFile {
  root: string;
  nodes: Record<string, LockNode>;
}

/** flake.lock's content, or undefined when it is not a lock file. */
export function parseLockFile(text: string): LockFile | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockFile>;
    return typeof v.root === 'string' && v.nodes && typeof v.nodes === 'object' ? (v as LockFile) : undefined;
  } catch {
    return undefined;
  }
}

/** The folder of a local input (`path:`, `git+file:`), relative paths (Nix 2.8 locks `path:./x` so) against the flake's folder. */
function localInputFolder(node: LockNode, flakeDir: string): string | undefined {
  const l = node.locked;
  if (l?.type === 'path' && l.path) return path.resolve(flakeDir, l.path);
  if (l?.type === 'git' && l.url?.startsWith('file://')) return decodeURIComponent(new URL(l.url).pathname);
  return undefined;
}

/** What `builtins.fetchTree` returns for a locked input (fetchers' emitTreeAttrs), for one already in the store. */
export interface StoredSource {
  outPath: string;
  narHash: string;
  rev?: string;
  shortRev?: string;
  revCount?: number;
  lastModified?: number;
  lastModifiedDate?: string;
  submodules?: boolean;
}

/** `%Y%m%d%H%M%S` in UTC, as Nix formats `lastModifiedDate`. */
function lastModifiedDate(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

function storedSource(locked: NonNullable<LockNode['locked']> & Record<string, unknown>, outPath: string): StoredSource {
  const rev = typeof locked.rev === 'string' ? locked.rev : undefined;
  const lastModified = typeof locked.lastModified === 'number' ? locked.lastModified : undefined;
  return {
    outPath,
    narHash: locked.narHash as string,
    ...(locked.type === 'git' ? { submodules: locked.submodules === true } : {}),
    ...(rev !== undefined ? { rev, shortRev: rev.slice(0, 7) } : {}),
    ...(typeof locked.revCount === 'number' ? { revCount: locked.revCount } : {}),
    ...(lastModified !== undefined ? { lastModified, lastModifiedDate: lastModifiedDate(lastModified) } : {}),
  };
}

/**
 * Which locked inputs the evaluation can use without a download: those whose pinned source is in
 * the store already (`stored`: used as it is, as Nix does, also when a local input changed since),
 * and those that are not but local (fetched from their folder). The others are `missing`.
 */
export async function lockedInputs(lock: LockFile, flakeDir: string, storeDir = '/nix/store'): Promise<{ missing: string[]; stored: Record<string, StoredSource> }> {
  const missing: string[] = [];
  const stored: Record<string, StoredSource> = {};
  for (const [key, node] of Object.entries(lock.nodes)) {
    if (key === lock.root || !node.locked) continue;
    const outPath = node.locked.narHash ? sourceStorePath(node.locked.narHash, storeDir) : undefined;
    if (outPath !== undefined && (await exists(outPath))) stored[key] = storedSource(node.locked as NonNullable<LockNode['locked']> & Record<string, unknown>, outPath);
    else {
      const local = localInputFolder(node, flakeDir);
      if (local === undefined || !(await exists(local))) missing.push(key);
    }
  }
  return { missing, stored };
}

const MAX_INPUT_FILES = 2000;

/**
 * The files of the local inputs (their folders, less `.git`, at most 2000 files in all): Nix reads
 * them from its store copies, which `-v` does not name, yet an edit there changes what the
 * flake's inputs are (or that they no longer match flake.lock).
 */
export async function localInputFiles(lock: LockFile, flakeDir: string): Promise<string[]> {
  const files: string[] = [];
  const visit = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (files.length >= MAX_INPUT_FILES) return;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== '.git') await visit(p);
      } else files.push(p);
    }
  };
  for (const [key, node] of Object.entries(lock.nodes)) {
    const folder = key === lock.root ? undefined : localInputFolder(node, flakeDir);
    if (folder !== undefined) await visit(folder);
  }
  return files;
}

/**
 * Where an output's diagnostic goes: the deepest attribute of its path that the document really
 * writes at that position — `foo = …`, `packages.x86_64-linux.foo = …`, `inherit foo;` — so an
 * attribute made by a helper (`forAllSystems`, `genAttrs`: the position Nix gives is the helper's
 * `value = …` or `${system}`) falls back to the nearest one written, e.g. `packages = forAllSystems …`.
 */
export function placeOnTrail(lines: readonly string[], attrPath: readonly string[], trail: readonly (WalkerPosition | null)[]): WalkerPosition | null {
  for (let i = Math.min(trail.length, attrPath.length) - 1; i >= 0; i--) {
    const pos = trail[i];
    if (!pos) continue;
    const r = documentRange(lines, pos);
    if (r.endColumn <= r.column) continue;
    const written = (lines[r.line] ?? '').slice(r.column, r.endColumn);
    const names = written.split(/\.(?=(?:[^"]*"[^"]*")*[^"]*$)/).map((n) => (n.startsWith('"') ? (JSON.parse(n) as string) : n));
    if (names.includes(attrPath[i] as string)) return pos;
  }
  return null;
}

/**
 * The files of a git flake's work tree that an evaluation read (imports: the document's text is
 * evaluated in its folder) but that Nix's copy of the source lacks, as git does not track them:
 * nix build fails on them ("getting status of '/nix/store/…-source/…': No such file or directory").
 */
export async function missingFromCopy(files: readonly string[], source: FlakeSource, copy: string): Promise<string[]> {
  const missing: string[] = [];
  for (const f of files) {
    const rel = path.relative(source.root, f);
    if (rel.startsWith('..') || path.isAbsolute(rel)) continue;
    if (!(await exists(path.join(copy, rel)))) missing.push(f);
  }
  return missing;
}

/** An input the flake cannot be evaluated with as it is, found by the walker. */
export interface FlakeInputProblem {
  input: string;
  pos: WalkerPosition | null;
  /** `not-locked`: not in flake.lock; `not-fetched`: locked, but neither local nor in the store; `changed`: a local path input changed since it was locked. */
  problem: 'not-locked' | 'not-fetched' | 'changed';
  /** The lock file's nodes concerned (the input's own inputs included). */
  nodes: string[];
}

export type FlakeDiagnosticCode = 'flake-input-not-locked' | 'flake-input-not-fetched' | 'flake-input-changed' | 'flake-untracked';

/** What fixes a flake input's problem; the server makes the command line from it (ServerCommands.fixFlake). */
export type FlakeFix = FixFlakeArgs;

const FLAKE_SUBCOMMANDS: Record<FixFlakeArgs['action'], (input?: string) => string[]> = {
  lock: () => ['flake', 'lock'],
  archive: () => ['flake', 'archive'],
  'update-input': (input) => ['flake', 'lock', '--update-input', input ?? ''],
};

/** The `nix` arguments of a fix (after the binary): never taken from the client, made here. */
export function flakeFixArgs(fix: FixFlakeArgs): string[] {
  return ['--extra-experimental-features', 'nix-command flakes', ...FLAKE_SUBCOMMANDS[fix.action](fix.input)];
}

/** How a fix reads for the user: `nix flake lock --update-input a`. */
export function flakeFixText(fix: FixFlakeArgs): string {
  return ['nix', ...FLAKE_SUBCOMMANDS[fix.action](fix.input)].join(' ');
}

export interface FlakeFacts {
  /** The flake's folder. */
  dir: string;
  source: FlakeSource;
  /** flake.lock exists in the folder, but not in the source Nix copies (git does not track it). */
  lockUntracked: boolean;
  /** Files of the work tree the evaluation read that the source Nix copies lacks (git does not track them). */
  untracked: string[];
}

/** The diagnostics about a flake's inputs and source, each on the input's line in `inputs` (line 0 when the file does not write it). */
export function flakeDiagnostics(
  lines: readonly string[],
  kind: string,
  problems: readonly FlakeInputProblem[],
  facts: FlakeFacts,
): Array<DerivationDiagnostic & { data: { fix?: FlakeFix } }> {
  const gitTop = facts.source.type === 'git' ? facts.source.root : '';
  if (kind === 'flake-untracked' && facts.source.type === 'path') {
    return [
      {
        severity: 'information',
        code: 'flake-untracked',
        line: 0,
        column: 0,
        endColumn: 0,
        attrPath: [],
        message: `flake.nix is not saved in ${facts.dir} yet: Nix takes a flake from its folder, so its outputs are checked once it is saved.`,
        data: {},
      },
    ];
  }
  if (kind === 'flake-untracked') {
    return [
      {
        severity: 'warning',
        code: 'flake-untracked',
        line: 0,
        column: 0,
        endColumn: 0,
        attrPath: [],
        message: `flake.nix is not tracked by git (repository ${gitTop}): Nix copies only a git repository's tracked files, so nix build does not see this flake and its outputs are not checked.\nFix: git add flake.nix (git add --intent-to-add is enough).`,
        data: {},
      },
    ];
  }
  const untracked = facts.untracked.map((file) => {
    const rel = path.relative(facts.dir, file);
    // On the line that names it (`./pkgs.nix`), when the flake does.
    const line = lines.findIndex((l) => l.includes(`./${rel}`));
    const column = line < 0 ? 0 : (lines[line] as string).indexOf(`./${rel}`);
    return {
      severity: 'warning' as const,
      code: 'flake-untracked' as const,
      line: Math.max(0, line),
      column,
      endColumn: line < 0 ? 0 : column + rel.length + 2,
      attrPath: [],
      message: `${rel} is not tracked by git (repository ${gitTop}): these diagnostics read it, but Nix copies only a git repository's tracked files, so nix build fails on it ("No such file or directory").\nFix: git add ${rel}.`,
      data: {},
    };
  });
  const lockUntracked = facts.lockUntracked ? ` flake.lock exists but git does not track it, so Nix does not see it: git add flake.lock.` : '';
  return [...untracked, ...problems.map((p): DerivationDiagnostic & { data: { fix?: FlakeFix } } => {
    const range = documentRange(lines, p.pos);
    const others = p.nodes.filter((n) => n !== p.input);
    const via = others.length > 0 ? ` (through its input${others.length > 1 ? 's' : ''} ${others.join(', ')})` : '';
    switch (p.problem) {
      case 'not-locked':
        return {
          severity: 'warning',
          code: 'flake-input-not-locked',
          ...range,
          attrPath: [p.input],
          message: `Input ${p.input} is not in flake.lock: Nix would lock it first (fetching it and writing flake.lock), which Nix Builders does not do on its own; the outputs are not checked.${lockUntracked}\nFix: run nix flake lock in ${facts.dir}.`,
          data: { fix: { dir: facts.dir, action: 'lock' } },
        };
      case 'not-fetched':
        return {
          severity: 'warning',
          code: 'flake-input-not-fetched',
          ...range,
          attrPath: [p.input],
          message: `Input ${p.input} is locked but not in the Nix store${via}: Nix Builders evaluates offline and does not download it; the outputs are not checked.\nFix: run nix flake archive in ${facts.dir} (it fetches every locked input into the store).`,
          data: { fix: { dir: facts.dir, action: 'archive' } },
        };
      case 'changed':
        return {
          severity: 'information',
          code: 'flake-input-changed',
          ...range,
          attrPath: [p.input],
          message: `Input ${p.input}${via} changed since flake.lock pinned it: Nix (nix build too) still uses the pinned copy, and so do these diagnostics.\nFix: run nix flake lock --update-input ${p.input} in ${facts.dir}.`,
          data: { fix: { dir: facts.dir, action: 'update-input', input: p.input } },
        };
    }
  })];
}

const FLAKE_FIXES = new Set<string>(['flake-input-not-locked', 'flake-input-not-fetched', 'flake-input-changed']);

/**
 * Quick fixes that run the command a flake diagnostic names, as the server command
 * ServerCommands.fixFlake: it writes flake.lock or downloads, so the server asks the user first.
 */
export function flakeCodeActions(diagnostics: readonly Diagnostic[]): CodeAction[] {
  return diagnostics.flatMap((d) => {
    const fix = (d.data as { fix?: FlakeFix } | undefined)?.fix;
    if (!FLAKE_FIXES.has(String(d.code)) || !fix) return [];
    const shown = flakeFixText(fix);
    return [{ title: `Run ${shown}`, kind: CodeActionKind.QuickFix, diagnostics: [d], isPreferred: true, command: { title: `Run ${shown}`, command: ServerCommands.fixFlake, arguments: [fix] } }];
  });
}
