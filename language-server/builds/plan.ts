// What a build would do before it runs: a dry run (`nix-store --realise --dry-run <drv…>` with the
// same --builders/--max-jobs as the real build), read from the messages Nix 2.x prints on stderr:
//
//   these 2 derivations will be built:            this derivation will be built:
//     /nix/store/…-a.drv                            /nix/store/…-a.drv
//   these 3 paths will be fetched (1.20 MiB download, 5.00 MiB unpacked):
//   this path will be fetched (0.00 MiB download, 0.00 MiB unpacked):
//     /nix/store/…-hello
//
// (recorded from Nix 2.8.0: test/fixtures/nix-2.8.0/dry-run-*.stderr.txt). Nothing printed means
// nothing to do. The parser is total: other lines (warnings, errors) are ignored by it and given to
// the error classifier.
import { classify, type NixProblem } from '../nix/classifier';
import type { Placement, PlannedDerivation, SubstituterReport } from '../protocol';
import type { Nix } from '../nix/nix';
import { readDerivations, type DerivationFacts } from '../nix/derivationFile';
import { describeResult } from '../nix/runner';
import { stripAnsi } from '../nix/logParser';
import { isDrvPath, storeName } from '../nix/storePath';

export interface DryRun {
  /** Derivations that will be built, in Nix's order. */
  toBuild: string[];
  /** Store paths that will be fetched from a substituter. */
  toFetch: string[];
  downloadMiB?: number;
  unpackedMiB?: number;
}

export interface BuildPlan extends DryRun {
  /** 'ok': the dry run succeeded; otherwise `error` and `problems` say why. */
  status: 'ok' | 'failed' | 'cancelled' | 'timed-out';
  /** One line for people, e.g. "Nothing will build: hello comes from the cache". */
  summary: string;
  problems: NixProblem[];
  error?: string;
  /** The command as run, for the log. */
  command: string[];
}

export interface PlanOptions {
  /** Machines text for --builders (lines or `;`-separated entries, or `@file`). */
  builders?: string;
  maxJobs?: number;
  signal?: AbortSignal;
  /** Default 60 s. */
  timeoutMs?: number;
}

const HEADER_BUILD = /^(?:these (\d+) derivations|this derivation) will be built:\s*$/;
const HEADER_FETCH = /^(?:these (\d+) paths|this path) will be fetched(?: \(([\d.]+) MiB download, ([\d.]+) MiB unpacked\))?:?\s*$/;
const ITEM = /^\s+(\/\S+)\s*$/;

/** Parse the stderr of a dry run. Pure and total. */
export function parseDryRun(stderr: string): DryRun {
  const out: DryRun = { toBuild: [], toFetch: [] };
  let section: 'build' | 'fetch' | undefined;
  for (const raw of stderr.split('\n')) {
    const line = stripAnsi(raw.endsWith('\r') ? raw.slice(0, -1) : raw);
    if (HEADER_BUILD.test(line)) {
      section = 'build';
      continue;
    }
    const fetch = HEADER_FETCH.exec(line);
    if (fetch) {
      section = 'fetch';
      if (fetch[2] !== undefined) out.downloadMiB = (out.downloadMiB ?? 0) + Number(fetch[2]);
      if (fetch[3] !== undefined) out.unpackedMiB = (out.unpackedMiB ?? 0) + Number(fetch[3]);
      continue;
    }
    const item = ITEM.exec(line);
    if (item && section) {
      (section === 'build' ? out.toBuild : out.toFetch).push(item[1] as string);
      continue;
    }
    section = undefined;
  }
  return out;
}

export { storeName };

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

function names(paths: readonly string[]): string {
  const list = paths.map(storeName);
  if (list.length <= 1) return list.join('');
  return `${list.slice(0, -1).join(', ')} and ${list[list.length - 1]}`;
}

function mib(n: number): string {
  return n.toFixed(2);
}

/** One line for people. */
export function summarizeDryRun(dry: DryRun, nowhere?: readonly string[]): string {
  const { toBuild, toFetch } = dry;
  if (toBuild.length === 0 && toFetch.length === 0) return 'Nothing to do: everything is already in the store';
  if (toBuild.length === 0) {
    if (toFetch.length <= 3) return `Nothing will build: ${names(toFetch)} ${toFetch.length === 1 ? 'comes' : 'come'} from the cache`;
    return `Nothing will build: ${toFetch.length} paths come from the cache`;
  }
  const build = `${plural(toBuild.length, 'derivation', 'derivations')} will be built${nowhere && nowhere.length > 0 ? ` (nothing can build ${names(nowhere.slice(0, 3))}${nowhere.length > 3 ? ` and ${nowhere.length - 3} more` : ''})` : ''}`;
  if (toFetch.length === 0) return build;
  const size = dry.downloadMiB !== undefined ? ` (${mib(dry.downloadMiB)} MiB)` : '';
  return `${build}, ${plural(toFetch.length, 'path', 'paths')}${size} fetched`;
}

const MAX_NAMES = 8;
const MAX_PROBLEMS = 5;

function someNames(list: readonly string[]): string {
  const shown = list.slice(0, MAX_NAMES).join(', ');
  return list.length > MAX_NAMES ? `${shown} and ${list.length - MAX_NAMES} more` : shown;
}

function bytesMiB(n: number): string {
  return `${(n / 2 ** 20).toFixed(2)} MiB`;
}

/**
 * The plan for people, a line each: what builds where (grouped by machine, names listed up to a
 * few), what nothing can build with the cause and fix, what is fetched from which substituter.
 */
export function describePlan(plan: Pick<BuildPlan, 'toFetch' | 'downloadMiB' | 'unpackedMiB'>, builds: readonly PlannedDerivation[], fetch: SubstituterReport): string[] {
  const lines: string[] = [];
  if (builds.length > 0) lines.push(`Build ${plural(builds.length, 'derivation', 'derivations')}:`);
  const groups = new Map<string, PlannedDerivation[]>();
  for (const b of builds) {
    const key = b.verdict === 'none' ? 'nowhere' : b.verdict === 'unknown' ? 'unknown' : b.verdict === 'wait' ? 'waits' : (b.machine ?? 'unknown');
    groups.set(key, [...(groups.get(key) ?? []), b]);
  }
  for (const [key, group] of groups) {
    if (key === 'nowhere' || key === 'unknown') continue;
    const label = key === 'waits' ? 'waiting for a free machine' : `on ${key}`;
    lines.push(`  ${label}: ${someNames(group.map((b) => b.name))}`);
  }
  const unknown = groups.get('unknown') ?? [];
  if (unknown.length > 0) lines.push(`  where is not known (its .drv could not be read): ${someNames(unknown.map((b) => b.name))}`);
  const nowhere = groups.get('nowhere') ?? [];
  for (const b of nowhere.slice(0, MAX_PROBLEMS)) lines.push(`  nothing can build ${b.name}: ${b.problem ?? b.summary}`);
  if (nowhere.length > MAX_PROBLEMS) lines.push(`  nothing can build ${nowhere.length - MAX_PROBLEMS} more: ${someNames(nowhere.slice(MAX_PROBLEMS).map((b) => b.name))}`);

  if (plan.toFetch.length > 0) {
    const size = plan.downloadMiB !== undefined ? ` (${mib(plan.downloadMiB)} MiB download${plan.unpackedMiB !== undefined ? `, ${mib(plan.unpackedMiB)} MiB unpacked` : ''})` : '';
    lines.push(`Fetch ${plural(plan.toFetch.length, 'path', 'paths')}${size}:`);
    for (const s of fetch.bySubstituter) {
      const names = fetch.sources.filter((x) => x.substituter === s.substituter).map((x) => storeName(x.path));
      lines.push(`  from ${s.substituter}: ${plural(s.paths, 'path', 'paths')}, ${bytesMiB(s.downloadBytes)} download, ${bytesMiB(s.narBytes)} unpacked (${someNames(names)})`);
    }
    const untold = fetch.sources.filter((x) => x.substituter === undefined);
    if (untold.length > 0) lines.push(`  from a substituter not asked here: ${someNames(untold.map((x) => storeName(x.path)))}`);
    for (const u of fetch.unchecked) lines.push(`  ${u.substituter} ${u.reason}`);
  }
  return lines;
}

/** The arguments shared by the dry run and the real build. */
export function realiseOptions(opts: { builders?: string; maxJobs?: number; cores?: number }): string[] {
  const args: string[] = [];
  if (opts.builders !== undefined) args.push('--builders', opts.builders);
  if (opts.maxJobs !== undefined) args.push('--max-jobs', String(Math.max(0, Math.floor(opts.maxJobs))));
  if (opts.cores !== undefined) args.push('--cores', String(Math.max(0, Math.floor(opts.cores))));
  return args;
}

function checkDrvPaths(drvPaths: readonly string[]): string | undefined {
  if (drvPaths.length === 0) return 'no derivation to build';
  const bad = drvPaths.find((p) => !isDrvPath(p));
  return bad === undefined ? undefined : `not a derivation path: '${bad}'`;
}

/** Dry-run these derivations with the options of the real build. Never throws. */
export async function planBuild(nix: Nix, drvPaths: readonly string[], opts: PlanOptions = {}): Promise<BuildPlan> {
  const file = nix.bin('nix-store');
  const args = ['--realise', '--dry-run', ...realiseOptions(opts), ...drvPaths];
  const command = [file, ...args];
  const invalid = checkDrvPaths(drvPaths);
  if (invalid) return { status: 'failed', toBuild: [], toFetch: [], summary: `Cannot plan the build: ${invalid}`, problems: [], error: invalid, command };
  const result = await nix.run(file, args, { timeoutMs: opts.timeoutMs ?? 60_000, ...(opts.signal ? { signal: opts.signal } : {}) });
  const dry = parseDryRun(result.stderr);
  if (result.kind === 'ok') return { status: 'ok', ...dry, summary: summarizeDryRun(dry), problems: [], command };
  const status = result.kind === 'cancelled' ? 'cancelled' : result.kind === 'timed-out' ? 'timed-out' : 'failed';
  const problems = status === 'failed' ? classify(result.stderr) : [];
  const error = problems[0]?.message ?? `${describeResult(result)}${result.stderr.trim() ? `: ${result.stderr.trim().split('\n').pop() ?? ''}` : ''}`;
  return { status, ...dry, summary: `The dry run did not finish: ${status === 'failed' ? error : describeResult(result)}`, problems, error, command };
}

/** A dry run and, for every derivation it will build (dependencies too), its .drv's facts and where it would build. */
export interface PlacedPlan {
  plan: BuildPlan;
  /** In the dry run's order. */
  builds: PlannedDerivation[];
  /** The .drv files that could be read, by path. */
  facts: ReadonlyMap<string, DerivationFacts>;
}

/** A store file's text through Nix (`nix store cat`), for a store this process cannot read directly. */
export async function storeFileText(nix: Nix, storePath: string, signal?: AbortSignal): Promise<string | undefined> {
  const caps = await nix.detect();
  if (!caps.ok) return undefined;
  const result = await nix.run(nix.bin('nix'), [...caps.value.nixCommandPrefix, ...caps.value.storeCat, storePath], { timeoutMs: 20_000, ...(signal ? { signal } : {}) });
  return result.kind === 'ok' ? result.stdout : undefined;
}

/**
 * What building these derivations would really build — their closure less what is valid here or
 * offered by a substituter, as the dry run says — and where each would build (`place`). The plan
 * and the dependency diagnostics both ask this. Never throws.
 */
export async function placeBuilds(nix: Nix, drvPaths: readonly string[], opts: PlanOptions & { place: (d: DerivationFacts) => Placement }): Promise<PlacedPlan> {
  const { place, ...planOptions } = opts;
  const plan = await planBuild(nix, drvPaths, planOptions);
  const facts = await readDerivations(plan.toBuild, { readThroughNix: (drvPath) => storeFileText(nix, drvPath, planOptions.signal) });
  const targets = new Set(drvPaths);
  const builds = plan.toBuild.map((drvPath): PlannedDerivation => {
    const f = facts.get(drvPath);
    const placement: Placement = f ? place(f) : { verdict: 'unknown', summary: 'its .drv file could not be read' };
    return { drvPath, name: f?.name ?? drvPath, system: f?.system ?? '', requiredSystemFeatures: f?.requiredSystemFeatures ?? [], target: targets.has(drvPath), ...placement };
  });
  return { plan, builds, facts };
}
