// Builds started from the editor: resolve attributes to derivations, plan, run, stream snapshots
// to the client, cancel. One instance per server; runBuild does the Nix work.
import type { Connection } from 'vscode-languageserver/node';
import type { Nix } from '../nix/nix';
import { formatMachine } from '../nix/machines';
import { Notifications, type BuildInfo, type BuildPlanInfo, type BuildSettings, type BuilderInfo, type DerivationInfo, type StartBuildParams } from '../protocol';
import { readDerivations } from '../nix/derivationFile';
import { describePlan, planBuild, summarizeDryRun, type Placement, type PlannedDerivation } from './plan';
import { findSubstituters } from './substituters';
import { runBuild } from './runBuild';
import { BuildModel, type BuildSnapshot, type DrvSnapshot } from './model';

/** The final snapshot goes to the client without the kept log tails (those are fetched on demand). */
function lean(snapshot: BuildSnapshot): BuildSnapshot {
  return { ...snapshot, derivations: snapshot.derivations.map((d) => ({ ...d, log: [] })) };
}

/** Finished builds whose logs are kept (the extension's history is as long). */
const FINISHED_KEPT = 20;

export class Builds {
  private nextId = 1;
  private readonly running = new Map<string, { abort: AbortController; model: BuildModel }>();
  private readonly finished = new Map<string, BuildSnapshot>();

  constructor(
    private readonly connection: Connection,
    private readonly nix: Nix,
  ) {}

  /**
   * What a build would do: the dry run; for every derivation to build (dependencies too) where Nix
   * would build it, read from its .drv; for every path to fetch, the substituter that has it.
   */
  async plan(
    params: StartBuildParams,
    targets: DerivationInfo[],
    builders: readonly BuilderInfo[],
    settings: BuildSettings,
    context: { place: (d: { system: string; requiredSystemFeatures: string[]; preferLocalBuild: boolean }) => Placement; substituters: readonly string[] },
  ): Promise<BuildPlanInfo> {
    const { machines, maxJobs } = this.options(params, builders, settings);
    const plan = await planBuild(this.nix, targets.map((t) => t.drvPath), { builders: machines, maxJobs });
    const [facts, fetch] = await Promise.all([readDerivations(plan.toBuild), findSubstituters(plan.toFetch, context.substituters)]);
    const targetPaths = new Set(targets.map((t) => t.drvPath));
    const builds = plan.toBuild.map((drvPath): PlannedDerivation => {
      const f = facts.get(drvPath);
      const placement: Placement = f ? context.place(f) : { verdict: 'unknown', summary: 'its .drv file could not be read' };
      return { drvPath, name: f?.name ?? drvPath, system: f?.system ?? '', requiredSystemFeatures: f?.requiredSystemFeatures ?? [], target: targetPaths.has(drvPath), ...placement };
    });
    const byPath = new Map(builds.map((b) => [b.drvPath, b]));
    const nowhere = builds.filter((b) => b.verdict === 'none').map((b) => b.drvPath);
    return {
      targets: targets.map((t) => {
        const planned = byPath.get(t.drvPath);
        return { attrPath: t.attrPath, drvPath: t.drvPath, line: t.line, willBuild: planned !== undefined, where: planned ? (planned.problem ?? planned.summary) : 'nothing to build' };
      }),
      summary: plan.status === 'ok' ? summarizeDryRun(plan, nowhere) : plan.summary,
      toBuild: plan.toBuild,
      toFetch: plan.toFetch,
      downloadMiB: plan.downloadMiB,
      unpackedMiB: plan.unpackedMiB,
      builds,
      fetch,
      details: describePlan(plan, builds, fetch),
      problems: plan.problems.map((p) => `${p.message} — ${p.fix}`),
    };
  }

  private options(params: StartBuildParams, builders: readonly BuilderInfo[], settings: BuildSettings) {
    const chosen = params.builderIds ? builders.filter((b) => params.builderIds?.includes(b.id)) : builders;
    return {
      machines: chosen.map((b) => formatMachine(b)).join('\n'),
      maxJobs: params.remoteOnly || settings.remoteOnly ? 0 : settings.maxJobs,
    };
  }

  /** Starts a build and returns at once; progress arrives as `buildProgress` notifications. */
  async start(
    params: StartBuildParams,
    targets: DerivationInfo[],
    builders: readonly BuilderInfo[],
    settings: BuildSettings,
  ): Promise<BuildInfo> {
    const buildId = `build-${this.nextId++}`;
    const { machines, maxJobs } = this.options(params, builders, settings);
    const drvPaths = targets.map((t) => t.drvPath);
    const abort = new AbortController();
    const model = new BuildModel({ drvPaths });
    this.running.set(buildId, { abort, model });
    const plan = await planBuild(this.nix, drvPaths, { builders: machines, maxJobs, signal: abort.signal });
    const info: BuildInfo = {
      buildId,
      uri: params.uri,
      targets: targets.map((t) => ({ attrPath: t.attrPath, drvPath: t.drvPath, line: t.line })),
      plan: { summary: plan.summary, toBuild: plan.toBuild, toFetch: plan.toFetch, problems: plan.problems.map((p) => `${p.message} — ${p.fix}`) },
      status: 'running',
    };
    const send = (status: BuildInfo['status'], snapshot?: BuildSnapshot, problems?: string[]) =>
      void this.connection.sendNotification(Notifications.buildProgress, { ...info, status, snapshot: snapshot && lean(snapshot), problems });
    const update = (changes: BuildSnapshot) => void this.connection.sendNotification(Notifications.buildProgress, { buildId, status: 'running', snapshot: changes });
    send('running');
    void runBuild(this.nix, {
      drvPaths,
      builders: machines,
      maxJobs,
      cores: settings.cores,
      signal: abort.signal,
      onUpdate: update,
      model,
    }).then((outcome) => {
      this.running.delete(buildId);
      this.finished.set(buildId, outcome.snapshot);
      // As many as the client's history.
      for (const old of [...this.finished.keys()].slice(0, Math.max(0, this.finished.size - FINISHED_KEPT))) this.finished.delete(old);
      this.connection.console.info(`${buildId} ${outcome.status}: ${outcome.command.join(' ')}`);
      send(outcome.status, outcome.snapshot, outcome.problems.map((p) => `${p.message} — ${p.cause} Fix: ${p.fix}`));
    });
    return info;
  }

  cancel(buildId: string): boolean {
    const run = this.running.get(buildId);
    run?.abort.abort();
    return run !== undefined;
  }

  /** The kept log of one derivation, of a running or a finished build; a first line says what was not kept. */
  log(buildId: string, drvPath: string): string[] {
    const d: DrvSnapshot | undefined = this.running.get(buildId)?.model.derivation(drvPath) ?? this.finished.get(buildId)?.derivations.find((x) => x.drvPath === drvPath);
    if (!d) return [];
    return d.logDropped > 0 ? [`[${d.logDropped} earlier lines of ${d.logLineCount} not kept: the last ${d.log.length} follow]`, ...d.log] : d.log;
  }

  dispose(): void {
    for (const r of this.running.values()) r.abort.abort();
  }
}
