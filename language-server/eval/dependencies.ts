// Diagnostics for what a document's derivations depend on: a dependency that nothing can build
// makes its dependent's build fail deep inside, so the dependent's attribute says so. Judged over
// what would really be built — the closure less what is valid here or offered by a substituter —
// with the plan's own dry run, .drv reading and placement (builds/plan.ts `placeBuilds`): one dry
// run for all the derivations of a document, cached by derivation and configuration. The document
// diagnostics run it after their first answer (documentDiagnostics.ts).
import { createHash } from 'node:crypto';
import type { Nix } from '../nix/nix';
import { formatMachine } from '../nix/machines';
import { storeName } from '../nix/storePath';
import { featureSet } from '../builders/match';
import type { BuildersIgnored } from '../builders/ignoredBuilders';
import { placeBuilds } from '../builds/plan';
import { placementOf } from '../builds/placement';
import type { BuildersListing, PlannedDerivation } from '../protocol';
import { documentRange, type DerivationDiagnostic } from './diagnose';
import type { WalkerOutput } from './walker';

/** A dependency that would be built and that nothing can build. */
export interface DependencyProblem {
  drvPath: string;
  name: string;
  system: string;
  requiredSystemFeatures: string[];
  /** Why nothing builds it, with the fix, as the direct diagnostics say it. */
  problem: string;
  /** The derivations from the dependent down to it, both included. */
  chain: string[];
}

/**
 * For each target, the dependencies among `builds` (what the dry run will build, placed) that
 * nothing can build and that it needs, nearest first. A dependency that is not among `builds` is
 * valid here or comes from a substituter: neither it nor what it depends on is built. Pure.
 */
export function dependencyProblems(
  targets: readonly string[],
  builds: readonly PlannedDerivation[],
  inputs: ReadonlyMap<string, { inputDrvs: readonly string[] }>,
): Map<string, DependencyProblem[]> {
  const planned = new Map(builds.map((b) => [b.drvPath, b]));
  const out = new Map<string, DependencyProblem[]>();
  for (const target of targets) {
    // Breadth first over the derivations that will be built, remembering who needs each.
    const parent = new Map<string, string>();
    const queue = [target];
    for (let i = 0; i < queue.length; i++) {
      for (const input of inputs.get(queue[i] as string)?.inputDrvs ?? []) {
        if (input === target || parent.has(input) || !planned.has(input)) continue;
        parent.set(input, queue[i] as string);
        queue.push(input);
      }
    }
    const problems: DependencyProblem[] = [];
    for (const drvPath of queue.slice(1)) {
      const b = planned.get(drvPath) as PlannedDerivation;
      if (b.verdict !== 'none') continue;
      const chain = [drvPath];
      for (let p = parent.get(drvPath); p !== undefined; p = parent.get(p)) chain.unshift(p);
      problems.push({
        drvPath,
        name: b.name,
        system: b.system,
        requiredSystemFeatures: b.requiredSystemFeatures,
        problem: b.problem ?? `cannot be built: ${b.summary}`,
        chain,
      });
    }
    out.set(target, problems);
  }
  return out;
}

const MORE_NAMES = 5;
const MAX_RELATED = 10;

/** On each derivation attribute whose dependencies nothing can build: an error naming the nearest one, its requirements, the cause and the fix. Pure. */
export function dependencyDiagnostics(
  text: string,
  output: WalkerOutput | undefined,
  problems: ReadonlyMap<string, readonly DependencyProblem[]>,
): DerivationDiagnostic[] {
  if (!output) return [];
  const lines = text.split('\n');
  const out: DerivationDiagnostic[] = [];
  for (const item of output.items) {
    if ('error' in item) continue;
    const [first, ...more] = problems.get(item.drvPath) ?? [];
    if (!first) continue;
    const also =
      more.length === 0
        ? ''
        : `\nIt also depends on ${more.length} more that nothing can build: ${more
            .slice(0, MORE_NAMES)
            .map((p) => p.name)
            .join(', ')}${more.length > MORE_NAMES ? ', …' : ''}`;
    out.push({
      severity: 'error',
      code: 'dependency-no-builder',
      ...documentRange(lines, item.pos),
      attrPath: item.path,
      message: `${item.path.join('.')}: its dependency ${first.name} ${first.problem}${also}`,
      data: { system: first.system, features: first.requiredSystemFeatures, drvPath: first.drvPath },
      related: [first, ...more].slice(0, MAX_RELATED).map((p) => ({
        file: p.drvPath,
        message: `${p.chain.map(storeName).join(' → ')}: requires ${p.system}${p.requiredSystemFeatures.length > 0 ? ` ${featureSet(p.requiredSystemFeatures)}` : ''}`,
      })),
    });
  }
  return out;
}

/** What the dependencies' placement depends on. */
export interface DependencyContext {
  listing: BuildersListing;
  /** Set when the local nix-daemon ignores the builders this user passes. */
  buildersIgnored?: BuildersIgnored;
}

export type DependencyCheckResult = { kind: 'ok'; problems: Map<string, DependencyProblem[]> } | { kind: 'failed'; message: string } | { kind: 'cancelled' };

const CACHE_SIZE = 1024;

/** The dependency problems of derivations, by .drv path and configuration, remembered. */
export class DependencyCheck {
  private readonly cache = new Map<string, DependencyProblem[]>();

  constructor(private readonly nix: Nix) {}

  private configKey(ctx: DependencyContext): string {
    return createHash('sha256')
      .update(JSON.stringify([this.nix.env, ctx.listing.nix.version, ctx.listing.local, ctx.listing.builders, ctx.buildersIgnored]))
      .digest('hex');
  }

  /** What is already known of these derivations under `ctx`, and those not checked yet. */
  known(drvPaths: readonly string[], ctx: DependencyContext): { problems: Map<string, DependencyProblem[]>; unknown: string[] } {
    const config = this.configKey(ctx);
    const problems = new Map<string, DependencyProblem[]>();
    const unknown: string[] = [];
    for (const drvPath of new Set(drvPaths)) {
      const key = `${config}:${drvPath}`;
      const cached = this.cache.get(key);
      if (cached === undefined) {
        unknown.push(drvPath);
        continue;
      }
      this.cache.delete(key);
      this.cache.set(key, cached);
      problems.set(drvPath, cached);
    }
    return { problems, unknown };
  }

  /** Check these derivations' dependencies with one dry run for all of them, and remember the answers. */
  async check(drvPaths: readonly string[], ctx: DependencyContext, signal: AbortSignal): Promise<DependencyCheckResult> {
    const local = ctx.listing.local;
    if (!local) return { kind: 'failed', message: 'the local Nix configuration is not known' };
    const config = this.configKey(ctx);
    const placing = { local, health: new Map(), ignored: ctx.buildersIgnored };
    const { plan, builds, facts } = await placeBuilds(this.nix, drvPaths, {
      builders: ctx.listing.builders.map((b) => formatMachine(b)).join('\n'),
      signal,
      place: (d) => placementOf(d, { builders: ctx.listing.builders, maxJobs: undefined }, placing),
    });
    if (plan.status === 'cancelled') return { kind: 'cancelled' };
    if (plan.status !== 'ok') return { kind: 'failed', message: plan.summary };
    const problems = dependencyProblems(drvPaths, builds, facts);
    for (const [drvPath, list] of problems) {
      this.cache.set(`${config}:${drvPath}`, list);
      if (this.cache.size > CACHE_SIZE) this.cache.delete(this.cache.keys().next().value as string);
    }
    return { kind: 'ok', problems };
  }
}
