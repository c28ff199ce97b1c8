// Which substituter a path to fetch comes from, and how large it is: what Nix itself asks a binary
// cache before it substitutes (`<cache>/nix-cache-info`, then `<cache>/<hash>.narinfo`), asked the
// same way, in the order Nix asks (substituters sorted by their Priority, lower first, stable).
//
// A dry run only says how many paths will be fetched and their total size; this says from where.
// Binary caches over file://, http:// and https:// are asked directly (a file read, an HTTP GET); other
// stores (ssh://, s3://, daemon, …) are listed as not checked rather than guessed.
import { promises as fs } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { hashPart } from '../nix/storePath';
import { parseStoreUri, storeBase } from '../nix/storeUri';
import type { FetchSource, SubstituterReport, SubstituterSummary } from '../protocol';
import { forEachLimited } from '../util/pool';

export interface NarInfo {
  storePath: string;
  /** Where the NAR is, relative to the cache. */
  url?: string;
  compression?: string;
  /** Download size (the compressed NAR). */
  fileSize?: number;
  /** Unpacked size. */
  narSize?: number;
}

/** `Key: value` lines. Undefined without a StorePath. */
export function parseNarInfo(text: string): NarInfo | undefined {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const storePath = fields.get('StorePath');
  if (!storePath) return undefined;
  const num = (k: string) => {
    const v = fields.get(k);
    const n = v === undefined || v === '' ? NaN : Number(v);
    return Number.isFinite(n) && n >= 0 ? n : undefined;
  };
  const info: NarInfo = { storePath };
  const url = fields.get('URL');
  if (url) info.url = url;
  const compression = fields.get('Compression');
  if (compression) info.compression = compression;
  const fileSize = num('FileSize');
  if (fileSize !== undefined) info.fileSize = fileSize;
  const narSize = num('NarSize');
  if (narSize !== undefined) info.narSize = narSize;
  return info;
}

/**
 * The Priority of a `nix-cache-info`. Without one, a cache has the store's default priority, 0
 * (measured on Nix 2.8 and 2.26: a file:// cache whose nix-cache-info has no Priority, as `nix copy`
 * writes it, is asked before one with Priority 1 listed first).
 */
export function cachePriority(text: string | undefined): number {
  const m = /^Priority:\s*(\d+)\s*$/m.exec(text ?? '');
  return m ? Number(m[1]) : 0;
}

/** Reads one file of a binary cache: its text, undefined when it is not there; throws when the cache cannot be asked. */
export type CacheReader = (substituter: string, file: string, signal: AbortSignal) => Promise<string | undefined>;

const schemeOf = (s: string) => parseStoreUri(s)?.scheme;
const isHttp = (s: string) => schemeOf(s) === 'http' || schemeOf(s) === 'https';
const isFile = (s: string) => schemeOf(s) === 'file';

/** file:// and http(s):// binary caches; anything else is not asked. */
export const readBinaryCacheFile: CacheReader = async (substituter, file, signal) => {
  const base = storeBase(substituter);
  if (isFile(substituter)) {
    const dir = fileURLToPath(base);
    try {
      return await fs.readFile(`${dir}/${file}`, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }
  const res = await fetch(`${base}/${file}`, { signal });
  if (res.status === 404 || res.status === 403) {
    await res.body?.cancel();
    return undefined;
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`HTTP ${res.status} ${res.statusText}`);
  }
  return res.text();
};


export interface FindOptions {
  signal?: AbortSignal;
  /** Per request (default 5 s). */
  requestTimeoutMs?: number;
  /** For the whole lookup (default 20 s): what is not asked by then stays unknown. */
  timeoutMs?: number;
  concurrency?: number;
  read?: CacheReader;
}

/** `?priority=N` in a substituter's URL overrides its nix-cache-info (Nix ≥ 2.4). */
export function urlPriority(substituter: string): number | undefined {
  const p = parseStoreUri(substituter)?.params.get('priority');
  return p !== undefined && /^\d+$/.test(p) ? Number(p) : undefined;
}

/**
 * For each path, the first substituter (in Nix's order) that has it, with its sizes. Never throws.
 * A cache that fails or does not answer in time is named in `unchecked`, and the paths it was not
 * asked about stay unknown: whether it has them cannot be told, so no lower cache is credited.
 */
export async function findSubstituters(paths: readonly string[], substituters: readonly string[], opts: FindOptions = {}): Promise<SubstituterReport> {
  const read = opts.read ?? readBinaryCacheFile;
  const unchecked: SubstituterReport['unchecked'] = [];
  const sources = new Map<string, FetchSource>(paths.map((p) => [p, { path: p }]));
  if (paths.length === 0) return { sources: [], bySubstituter: [], unchecked };
  const overall = AbortSignal.timeout(opts.timeoutMs ?? 20_000);
  const whole = opts.signal ? AbortSignal.any([opts.signal, overall]) : overall;
  const ask = (s: string, file: string) => read(s, file, AbortSignal.any([whole, AbortSignal.timeout(opts.requestTimeoutMs ?? 5_000)]));
  const readable = substituters.filter((s) => {
    if (isFile(s) || isHttp(s)) return true;
    unchecked.push({ substituter: s, reason: 'not a file:// or http(s):// binary cache: not asked' });
    return false;
  });
  // Nix's order: by priority, stable. A cache without nix-cache-info is one Nix cannot open
  // (a file:// cache is created by Nix when missing: empty, priority 0).
  const withPriority = await Promise.all(
    readable.map(async (s, i) => {
      try {
        const info = await ask(s, 'nix-cache-info');
        if (info === undefined && isHttp(s)) {
          unchecked.push({ substituter: s, reason: 'has no nix-cache-info: Nix cannot use it as a binary cache' });
          return undefined;
        }
        return { s, i, priority: urlPriority(s) ?? cachePriority(info) };
      } catch (e) {
        unchecked.push({ substituter: s, reason: `could not be asked: ${reasonOf(e)}` });
        return undefined;
      }
    }),
  );
  const ordered = withPriority.filter((x): x is NonNullable<typeof x> => x !== undefined).sort((a, b) => a.priority - b.priority || a.i - b.i);

  let remaining = [...paths];
  const providers: string[] = [];
  for (const { s } of ordered) {
    if (remaining.length === 0) break;
    providers.push(s);
    const answered = new Set<string>();
    try {
      // The first failure stops asking this cache.
      await forEachLimited(remaining, opts.concurrency ?? 16, async (p) => {
        const text = await ask(s, `${hashPart(p)}.narinfo`);
        answered.add(p);
        const info = text === undefined ? undefined : parseNarInfo(text);
        if (info && info.storePath === p) {
          const src = sources.get(p) as FetchSource;
          src.substituter = s;
          if (info.fileSize !== undefined) src.downloadBytes = info.fileSize;
          if (info.narSize !== undefined) src.narBytes = info.narSize;
        }
      });
    } catch (failure) {
      unchecked.push({ substituter: s, reason: `could not be asked: ${reasonOf(failure)}` });
      // Not answered by this cache: unknown; lower caches are not credited with them.
      remaining = [];
      break;
    }
    remaining = remaining.filter((p) => answered.has(p) && sources.get(p)?.substituter === undefined);
  }
  const bySubstituter: SubstituterSummary[] = [];
  for (const s of providers) {
    const mine = [...sources.values()].filter((x) => x.substituter === s);
    if (mine.length === 0) continue;
    bySubstituter.push({
      substituter: s,
      paths: mine.length,
      downloadBytes: mine.reduce((n, x) => n + (x.downloadBytes ?? 0), 0),
      narBytes: mine.reduce((n, x) => n + (x.narBytes ?? 0), 0),
    });
  }
  return { sources: [...sources.values()], bySubstituter, unchecked };
}

function reasonOf(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as Error & { cause?: unknown }).cause;
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    return e.name === 'AbortError' || e.name === 'TimeoutError' ? 'no answer in time' : `${e.message}${detail}`;
  }
  return String(e);
}
