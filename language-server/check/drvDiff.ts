// Why two derivations differ (what nix-diff shows: a cache miss, an unexpected rebuild): their own
// differences — outputs, system, builder, arguments, environment, input sources, input derivations
// and the outputs used from each — and, for an input derivation of the same name with another path
// on each side, the same comparison of that pair, recursively (bounded, each pair once). A side may
// be an attribute as it is in a git commit (gitRevision.ts).
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ErrorCodes, ResponseError } from 'vscode-languageserver/node';
import type { Nix } from '../nix/nix';
import { readFullDerivation, type Derivation } from '../nix/derivationFile';
import { storeName } from '../nix/storePath';
import { storeFileText } from '../builds/plan';
import { ServerCommands, type DerivationDiff, type DerivationDifference, type DerivationInfo, type StartBuildParams } from '../protocol';
import { fileAtRevision } from './gitRevision';

/** Values longer than this are shortened around their first difference. */
const MAX_VALUE = 240;
/** How many levels of input derivations are compared below the two given. */
export const DEFAULT_MAX_DEPTH = 32;

/** Store path hashes (`/<32 base-32 characters>-`) made alike: what is left differs for another reason. */
const withoutHashes = (s: string) => s.replace(/\/[0-9a-z]{32}-/g, '/…-');

/** One value pair, shortened around the first difference when long, and whether only store path hashes differ. */
function changed(field: DerivationDifference['field'], name: string | undefined, a: string | undefined, b: string | undefined): DerivationDifference {
  const d: DerivationDifference = { field, ...(name !== undefined ? { name } : {}) };
  if (a !== undefined && b !== undefined && withoutHashes(a) === withoutHashes(b)) d.onlyStorePaths = true;
  if ((a?.length ?? 0) > MAX_VALUE || (b?.length ?? 0) > MAX_VALUE) {
    let i = 0;
    const x = a ?? '';
    const y = b ?? '';
    while (i < x.length && i < y.length && x[i] === y[i]) i++;
    const start = Math.max(0, i - 60);
    const cut = (s: string) => `${start > 0 ? '…' : ''}${s.slice(start, start + MAX_VALUE)}${s.length > start + MAX_VALUE ? '…' : ''}`;
    d.note = `shortened: ${[a !== undefined ? `a has ${a.length} characters` : '', b !== undefined ? `b has ${b.length}` : ''].filter(Boolean).join(', ')}${a !== undefined && b !== undefined ? `; they first differ at character ${i}` : ''}`;
    if (a !== undefined) d.a = cut(a);
    if (b !== undefined) d.b = cut(b);
    return d;
  }
  if (a !== undefined) d.a = a;
  if (b !== undefined) d.b = b;
  return d;
}

/** Entries of two maps that differ (added, removed, changed), by sorted key. */
function mapDifferences<V>(a: ReadonlyMap<string, V>, b: ReadonlyMap<string, V>, eq: (x: V, y: V) => boolean, each: (name: string, x: V | undefined, y: V | undefined) => void): void {
  for (const k of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const x = a.get(k);
    const y = b.get(k);
    if (x === undefined || y === undefined || !eq(x, y)) each(k, x, y);
  }
}

/** Structured attributes (`__json`) as variables `__json.<key>`, so that one attribute's change shows alone. */
function environment(d: Derivation): Map<string, string> {
  const json = d.env.get('__json');
  if (json === undefined) return d.env;
  let attrs: unknown;
  try {
    attrs = JSON.parse(json);
  } catch {
    return d.env;
  }
  if (typeof attrs !== 'object' || attrs === null || Array.isArray(attrs)) return d.env;
  const env = new Map(d.env);
  env.delete('__json');
  for (const [k, v] of Object.entries(attrs)) env.set(`__json.${k}`, typeof v === 'string' ? v : JSON.stringify(v));
  return env;
}

const byName = (paths: Iterable<string>) => {
  const m = new Map<string, string[]>();
  for (const p of paths) m.set(storeName(p), [...(m.get(storeName(p)) ?? []), p]);
  return m;
};

/**
 * The differences of two derivations themselves, and the pairs of input derivations to compare
 * next: the same name with one other path on each side.
 */
export function compareDerivations(a: Derivation, b: Derivation): { differences: DerivationDifference[]; pairs: Array<{ name: string; a: string; b: string }> } {
  const out: DerivationDifference[] = [];
  mapDifferences(a.outputs, b.outputs, (x, y) => x.path === y.path && x.hashAlgo === y.hashAlgo && x.hash === y.hash, (name, x, y) => {
    if (!x || !y || x.path !== y.path) out.push(changed('output', name, x?.path, y?.path));
    if (x && y && x.hashAlgo !== y.hashAlgo) out.push(changed('outputHashAlgo', name, x.hashAlgo, y.hashAlgo));
    if (x && y && x.hash !== y.hash) out.push(changed('outputHash', name, x.hash, y.hash));
  });
  if (a.system !== b.system) out.push(changed('system', undefined, a.system, b.system));
  if (a.builder !== b.builder) out.push(changed('builder', undefined, a.builder, b.builder));
  for (let i = 0; i < Math.max(a.args.length, b.args.length); i++) if (a.args[i] !== b.args[i]) out.push(changed('arg', String(i), a.args[i], b.args[i]));
  mapDifferences(environment(a), environment(b), (x, y) => x === y, (name, x, y) => out.push(changed('env', name, x, y)));

  const srcA = byName(a.inputSrcs);
  const srcB = byName(b.inputSrcs);
  const samePaths = (x: string[], y: string[]) => x.length === y.length && x.every((p) => y.includes(p));
  mapDifferences(srcA, srcB, samePaths, (name, x = [], y = []) => {
    const onlyA = x.filter((p) => !y.includes(p));
    const onlyB = y.filter((p) => !x.includes(p));
    if (onlyA.length === 1 && onlyB.length === 1) out.push(changed('inputSource', name, onlyA[0], onlyB[0]));
    else for (const p of [...onlyA.map((v) => [v, undefined]), ...onlyB.map((v) => [undefined, v])]) out.push(changed('inputSource', name, p[0], p[1]));
  });

  const pairs: Array<{ name: string; a: string; b: string }> = [];
  const usedOf = (d: Derivation, p: string) => [...(d.inputDrvs.get(p) ?? [])].sort().join(' ');
  const drvA = byName(a.inputDrvs.keys());
  const drvB = byName(b.inputDrvs.keys());
  for (const name of [...new Set([...drvA.keys(), ...drvB.keys()])].sort()) {
    const x = drvA.get(name) ?? [];
    const y = drvB.get(name) ?? [];
    for (const p of x.filter((q) => y.includes(q))) if (usedOf(a, p) !== usedOf(b, p)) out.push(changed('inputOutputs', name, usedOf(a, p), usedOf(b, p)));
    const onlyA = x.filter((p) => !y.includes(p));
    const onlyB = y.filter((p) => !x.includes(p));
    if (onlyA.length === 1 && onlyB.length === 1) {
      const [pa, pb] = [onlyA[0]!, onlyB[0]!];
      pairs.push({ name, a: pa, b: pb });
      if (usedOf(a, pa) !== usedOf(b, pb)) out.push(changed('inputOutputs', name, usedOf(a, pa), usedOf(b, pb)));
      continue;
    }
    for (const p of onlyA) out.push(changed('inputDerivation', name, p, undefined));
    for (const p of onlyB) out.push(changed('inputDerivation', name, undefined, p));
  }
  return { differences: out, pairs };
}

/** Two derivations compared, their differing same-named inputs too (`read` gives a .drv's contents). */
export async function diffDerivations(
  a: string,
  b: string,
  o: { read: (drvPath: string) => Promise<Derivation | undefined>; maxDepth?: number; signal?: AbortSignal },
): Promise<DerivationDiff> {
  const maxDepth = o.maxDepth ?? DEFAULT_MAX_DEPTH;
  const visited = new Set<string>();
  const walk = async (pa: string, pb: string, depth: number): Promise<DerivationDiff> => {
    const node: DerivationDiff = { drvPath: [pa, pb], name: storeName(pa), differences: [], inputs: [] };
    if (pa === pb) return node;
    const key = `${pa}\u0000${pb}`;
    if (visited.has(key)) return { ...node, note: 'compared above' };
    visited.add(key);
    o.signal?.throwIfAborted();
    const [da, db] = await Promise.all([o.read(pa), o.read(pb)]);
    const unread = [da ? undefined : pa, db ? undefined : pb].filter((p) => p !== undefined);
    if (!da || !db) return { ...node, note: `could not read ${unread.join(' and ')}: not a derivation of this store, or it was garbage-collected (instantiate it again)` };
    node.name = da.name === db.name ? da.name : `${da.name} / ${db.name}`;
    const { differences, pairs } = compareDerivations(da, db);
    node.differences = differences;
    if (pairs.length > 0 && depth >= maxDepth) return { ...node, note: `inputs not compared: ${maxDepth} levels deep already` };
    for (const p of pairs) node.inputs.push({ name: p.name, diff: await walk(p.a, p.b, depth + 1) });
    return node;
  };
  return walk(a, b, 0);
}

/** The comparison on this machine's store: each .drv read here, or through Nix where this process cannot read it. */
export function diffStoreDerivations(nix: Nix, a: string, b: string, o: { signal?: AbortSignal; maxDepth?: number } = {}): Promise<DerivationDiff> {
  return diffDerivations(a, b, { ...o, read: (p) => readFullDerivation(p, (q) => storeFileText(nix, q, o.signal)) });
}

/** The derivation of `attrPath` in the file at `uri` as it is in `revision` of its git repository (evaluated in a temporary checkout, removed after). */
export async function drvPathAtRevision(
  server: { nix: Nix; buildTargets(p: StartBuildParams): Promise<DerivationInfo[]> },
  side: { uri: string; attrPath: string[]; revision: string },
  signal?: AbortSignal,
): Promise<string> {
  if (!side.uri.startsWith('file:')) throw new ResponseError(ErrorCodes.InvalidParams, `${ServerCommands.diffDerivations}: a revision is of a file in a git work tree; ${side.uri} is not a file.`);
  const at = await fileAtRevision(server.nix, fileURLToPath(side.uri), side.revision, signal);
  try {
    const [target] = await server.buildTargets({ uri: pathToFileURL(at.file).href, attrPaths: [side.attrPath] });
    if (!target) throw new ResponseError(ErrorCodes.InvalidParams, `${ServerCommands.diffDerivations}: ${side.uri} has no derivation ${side.attrPath.join('.')} in ${side.revision} (${at.commit.slice(0, 12)}).`);
    return target.drvPath;
  } finally {
    await at.dispose();
  }
}
