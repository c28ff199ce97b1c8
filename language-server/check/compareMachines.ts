// Build one derivation independently on several machines (this machine and builders, each in its
// own store, never substituted) and compare the outputs' NAR hashes, and what the substituters
// serve (their narinfo's NarHash): "built the same on b1 and here; the cache's copy differs".
// Where two builds differ, both trees are brought here and compared as a check compares them, and
// only the differing files of a builder's tree are kept.
import { mkdtemp, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { ErrorCodes, ResponseError } from 'vscode-languageserver/node';
import { readBinaryCacheFile, parseNarInfo, type CacheReader } from '../builds/substituters';
import type { Nix } from '../nix/nix';
import { hashPart } from '../nix/storePath';
import { parseStoreUri } from '../nix/storeUri';
import type { CommandServer } from '../commands';
import { ServerCommands, type BuilderInfo, type CompareMachinesArgs, type CompareMachinesResult, type FileDifference, type MachineOutputHash } from '../protocol';
import { cancelled, outputsOf, why, type CheckCopies } from './check';
import { builderStore, connectBuilder, dumpRemote, findBuilder, remoteMethod, remoteNixStore, restoreNar } from './remoteCheck';
import { compareTrees, copyDifferences } from './treeDiff';

/** One side: this machine, or a builder. */
export type Machine = { kind: 'local' } | { kind: 'builder'; builder: BuilderInfo };

export interface CompareOptions {
  signal: AbortSignal;
  report: (message: string) => void;
  copies: CheckCopies;
  /** The substituters to ask (none: not asked). */
  substituters: readonly string[];
  /** Reads a cache's narinfo (default: readBinaryCacheFile). */
  read?: CacheReader;
}

const LOCAL = 'this machine';
const nameOf = (m: Machine) => (m.kind === 'local' ? LOCAL : m.builder.name);

/**
 * Build on one machine and read the NAR hashes. Its inputs may come from its caches; the
 * derivation itself is built by the machine (not handed to a builder, not substituted). Outputs
 * already in its store are not built again: `prebuilt` says so.
 */
async function buildOn(nix: Nix, m: Machine, drvPath: string, paths: readonly string[], o: CompareOptions): Promise<{ hashes: Map<string, string>; prebuilt: boolean } | { reason: string }> {
  const run = (file: string, args: string[]) => nix.run(file, args, { timeoutMs: 0, signal: o.signal });
  const done = <T extends { kind: string }>(r: T): T => {
    if (r.kind === 'cancelled') throw cancelled();
    return r;
  };
  const nixStore = nix.bin('nix-store');
  const here = ['--option', 'builders', ''];
  let storeArgs: string[] = [];
  if (m.kind === 'builder') {
    const caps = await nix.detect();
    if (!caps.ok) return { reason: caps.message };
    const method = remoteMethod(caps.value);
    if (!method.ok) return { reason: method.reason };
    const store = builderStore(m.builder);
    const copied = done(await run(nix.bin('nix'), method.copyDerivation(drvPath, store)));
    if (copied.kind !== 'ok') return { reason: `the derivation could not be copied to ${m.builder.name}: ${why(copied)}` };
    storeArgs = ['--store', store];
  }
  const validity = done(await run(nixStore, [...storeArgs, '--check-validity', '--print-invalid', ...paths]));
  const prebuilt = validity.kind === 'ok' && validity.stdout.trim() === '';
  if (!prebuilt) {
    const inputs = done(await run(nixStore, ['--query', '--references', drvPath]));
    const inputDrvs = inputs.kind === 'ok' ? inputs.stdout.split('\n').filter((l) => l.endsWith('.drv')) : [];
    o.report(`building on ${nameOf(m)}`);
    const ready = inputDrvs.length > 0 ? done(await run(nixStore, [...storeArgs, ...here, '--realise', ...inputDrvs])) : undefined;
    if (ready && ready.kind !== 'ok') return { reason: `the inputs could not be built or fetched on ${nameOf(m)}: ${why(ready)}` };
    const built = done(await run(nixStore, [...storeArgs, ...here, '--option', 'substitute', 'false', '--realise', drvPath]));
    if (built.kind !== 'ok') return { reason: `the build on ${nameOf(m)} failed: ${why(built)}` };
  }
  const query = done(await run(nixStore, [...storeArgs, '--query', '--hash', ...paths]));
  const lines = query.stdout.split('\n').filter((l) => l.startsWith('sha256:'));
  if (query.kind !== 'ok' || lines.length !== paths.length) return { reason: `the NAR hashes on ${nameOf(m)} could not be read: ${why(query)}` };
  return { hashes: new Map(paths.map((p, i) => [p, lines[i] as string])), prebuilt };
}

/** Each substituter's NarHash of each path (file:// and http(s):// caches; other stores are not asked). */
async function askSubstituters(paths: readonly string[], o: CompareOptions): Promise<Map<string, MachineOutputHash[]>> {
  const read = o.read ?? readBinaryCacheFile;
  const out = new Map<string, MachineOutputHash[]>(paths.map((p) => [p, []]));
  for (const s of o.substituters) {
    const scheme = parseStoreUri(s)?.scheme;
    const askable = scheme === 'file' || scheme === 'http' || scheme === 'https';
    for (const p of paths) {
      const entry: MachineOutputHash = { machine: s, source: 'substituter' };
      if (!askable) entry.reason = 'not a file:// or http(s):// binary cache: not asked';
      else {
        try {
          const info = parseNarInfo((await read(s, `${hashPart(p)}.narinfo`, AbortSignal.any([o.signal, AbortSignal.timeout(10_000)]))) ?? '');
          if (info?.storePath === p && info.narHash) entry.narHash = info.narHash;
          else entry.reason = info?.storePath === p ? 'its narinfo has no NarHash' : 'it has no copy';
        } catch (e) {
          if (o.signal.aborted) throw cancelled();
          entry.reason = `could not be asked: ${(e as Error).message}`;
        }
      }
      out.get(p)?.push(entry);
    }
  }
  return out;
}

const list = (names: string[]) => (names.length <= 1 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`);
const here = (name: string) => (name === LOCAL ? 'here' : name);

/** Build `drvPath` on every machine and compare their outputs with each other and with the substituters' copies. */
export async function compareMachines(nix: Nix, drvPath: string, machines: readonly Machine[], o: CompareOptions): Promise<CompareMachinesResult> {
  if (machines.length + (o.substituters.length > 0 ? 1 : 0) < 2) throw new ResponseError(ErrorCodes.InvalidParams, 'Comparing needs two sides: name two machines ("local" is this machine), or one and the substituters.');
  const outputs = await outputsOf(nix, drvPath, o.signal);
  const paths = outputs.map((x) => x.path);
  const builds = await Promise.all(machines.map((m) => buildOn(nix, m, drvPath, paths, o)));
  const caches = await askSubstituters(paths, o);
  let copies: string | undefined;
  const result: CompareMachinesResult['outputs'] = [];
  for (const x of outputs) {
    const hashes: MachineOutputHash[] = machines.map((m, i) => {
      const b = builds[i];
      const hash = b && 'hashes' in b ? b.hashes.get(x.path) : undefined;
      if (!b || 'reason' in b || !hash) return { machine: nameOf(m), source: 'built', reason: b && 'reason' in b ? b.reason : 'not built' };
      return { machine: nameOf(m), source: 'built', narHash: hash, ...(b.prebuilt ? { note: 'already in its store: not built now' } : {}) };
    });
    hashes.push(...(caches.get(x.path) ?? []));
    const known = hashes.filter((h) => h.narHash);
    const status = known.length < 2 ? 'not-checked' : known.every((h) => h.narHash === known[0]?.narHash) ? 'same' : 'differs';
    const entry: CompareMachinesResult['outputs'][number] = { name: x.name, path: x.path, status, hashes };
    // Two builds that differ: both trees here, compared file by file.
    const i = machines.findIndex((_, k) => hashes[k]?.narHash);
    const j = machines.findIndex((_, k) => hashes[k]?.narHash && hashes[k]?.narHash !== hashes[i]?.narHash);
    if (i >= 0 && j >= 0) {
      let trees: string | undefined;
      try {
        copies ??= await o.copies.create();
        const scratch = (trees = await mkdtemp(path.join(copies, 'trees-')));
        /** A side's tree: this machine's store path, or a builder's unpacked (whole, to be compared). */
        const tree = async (m: Machine, side: string): Promise<string> => {
          if (m.kind === 'local') return x.path;
          o.report(`reading ${x.name} from ${m.builder.name}`);
          const conn = await connectBuilder(m.builder, nix, o.signal);
          if (!conn.ok) throw new Error(conn.message);
          const at = path.join(scratch, side);
          try {
            await restoreNar(await dumpRemote(conn.session, remoteNixStore(m.builder), x.path, o.signal), at);
          } finally {
            conn.session.close();
          }
          return at;
        };
        const [mi, mj] = [machines[i] as Machine, machines[j] as Machine];
        const a = await tree(mi, 'first');
        const b = await tree(mj, 'other');
        const files: FileDifference[] = await compareTrees(a, b);
        // Kept of a builder's tree: its differing files only (this machine's stay in its store).
        const keep = async (m: Machine, at: string, side: 'first' | 'rebuild', label: string) => {
          if (m.kind === 'local') return undefined;
          const copy = path.join(copies as string, `${x.name}-${label}-${m.builder.name}`);
          await copyDifferences(at, copy, files, side);
          return copy;
        };
        const firstCopy = await keep(mi, a, 'first', 'first');
        const otherCopy = await keep(mj, b, 'rebuild', 'other');
        Object.assign(entry, { files, compared: [nameOf(mi), nameOf(mj)], ...(firstCopy ? { firstCopy } : {}), ...(otherCopy ? { otherCopy } : {}) });
      } catch (e) {
        if (o.signal.aborted) throw cancelled();
        // The hashes still say it differs; which files cannot be told.
        const reason = `the trees could not be brought here: ${(e as Error).message}`;
        const h = hashes[j];
        if (h) h.reason = reason;
      } finally {
        if (trees) await rm(trees, { recursive: true, force: true });
      }
    }
    result.push(entry);
  }
  const status = result.some((r) => r.status === 'differs') ? 'differs' : result.every((r) => r.status === 'same') ? 'same' : 'not-checked';
  return { drvPath, status, summary: summarise(result, machines.map(nameOf)), outputs: result };
}

/** "built the same on b1 and here; the cache's copy differs". */
export function summarise(outputs: CompareMachinesResult['outputs'], machines: readonly string[]): string {
  const hashOf = (who: string) => outputs.map((x) => x.hashes.find((h) => h.machine === who)?.narHash);
  const complete = (who: string) => hashOf(who).every((h) => h !== undefined);
  const built = machines.filter(complete);
  const failed = machines.filter((m) => !complete(m));
  const parts: string[] = [];
  const reference = built[0];
  if (reference !== undefined) {
    const same = built.filter((m) => hashOf(m).join() === hashOf(reference).join());
    const other = built.filter((m) => !same.includes(m));
    if (built.length === 1) parts.push(reference === LOCAL ? 'built here' : `built on ${reference}`);
    else if (other.length === 0) parts.push(`built the same on ${list(built.map(here))}`);
    else {
      const differing = outputs.filter((x) => x.status === 'differs').map((x) => `${x.name}${x.files ? `: ${x.files.length} file${x.files.length === 1 ? '' : 's'}` : ''}`);
      parts.push(`built differently on ${list(built.map(here))} (${differing.join(', ')})`);
    }
  }
  if (failed.length > 0) parts.push(`not built on ${list(failed.map(here))}`);
  const caches = [...new Set(outputs.flatMap((x) => x.hashes.filter((h) => h.source === 'substituter').map((h) => h.machine)))];
  const cacheName = (s: string) => (caches.length === 1 ? 'the cache' : s);
  for (const s of caches) {
    const theirs = hashOf(s);
    if (theirs.every((h) => h === undefined)) continue;
    const ref = reference !== undefined ? hashOf(reference) : undefined;
    if (!ref) continue;
    const agrees = theirs.every((h, k) => h === undefined || h === ref[k]);
    parts.push(`${cacheName(s)}'s copy ${agrees ? 'is the same' : 'differs'}`);
  }
  if (caches.length > 0 && caches.every((s) => hashOf(s).every((h) => h === undefined))) parts.push(caches.length === 1 ? 'the cache has no copy' : 'no cache has a copy');
  return parts.join('; ') || 'nothing could be compared';
}

/**
 * `nixBuilders.server.compareMachines [CompareMachinesArgs]`: the arguments checked, the
 * attribute's derivation compared on the machines named, with a cancellable progress.
 */
export async function runCompareMachines(
  arg: unknown,
  o: {
    server: Pick<CommandServer, 'buildTargets' | 'listBuilders' | 'nix'>;
    copies: CheckCopies;
    signal: AbortSignal;
    progress: (title: string) => Promise<{ report(message: string | undefined): void; end(message: string): void }>;
  },
): Promise<CompareMachinesResult> {
  const a = arg as Partial<CompareMachinesArgs> | undefined;
  const usage = `${ServerCommands.compareMachines} takes [{ uri, attribute, machines, substituters? }]`;
  const invalid = (m: string) => new ResponseError(ErrorCodes.InvalidParams, `${usage}: ${m}`);
  if (!a || typeof a !== 'object' || typeof a.uri !== 'string') throw invalid('"uri" must be the document\'s URI.');
  const attrPath = typeof a.attribute === 'string' ? a.attribute.split('.') : a.attribute;
  if (!Array.isArray(attrPath) || attrPath.length === 0 || !attrPath.every((s) => typeof s === 'string' && s !== '')) throw invalid('"attribute" must be the attribute path, dotted or a list of names.');
  if (!Array.isArray(a.machines) || !a.machines.every((m) => typeof m === 'string' && m !== '')) throw invalid('"machines" must be a list of builders\' names or store URIs ("local": this machine).');
  if (a.substituters !== undefined && typeof a.substituters !== 'boolean') throw invalid('"substituters" must be true or false.');
  const [target] = await o.server.buildTargets({ uri: a.uri, attrPaths: [attrPath] });
  if (!target) throw invalid(`no derivation at ${attrPath.join('.')}.`);
  const builders = a.machines.some((m) => m !== 'local') ? (await o.server.listBuilders()).builders : [];
  const machines: Machine[] = [...new Set(a.machines)].map((m) => (m === 'local' ? { kind: 'local' } : { kind: 'builder', builder: findBuilder(m, builders) }));
  let substituters: string[] = [];
  if (a.substituters !== false) {
    const config = await o.server.nix.config(o.signal);
    substituters = config.ok ? config.value.substituters : [];
  }
  const progress = await o.progress(`Comparing ${attrPath.join('.')} across ${machines.map(nameOf).join(', ')}`);
  let last = 'ended';
  try {
    const result = await compareMachines(o.server.nix, target.drvPath, machines, { signal: o.signal, report: (m) => progress.report(m), copies: o.copies, substituters });
    last = result.summary;
    return result;
  } finally {
    progress.end(last);
  }
}
