// Builds started from the editor: resolve attributes to derivations, plan, run, stream snapshots
// to the client, cancel. One instance per server; runBuild does the Nix work.
import { randomBytes } from 'node:crypto';
import type { Connection } from 'vscode-languageserver/node';
import type { Nix } from '../nix/nix';
import { formatMachine } from '../nix/machines';
import { passedWithBuilders } from '../builders/ignoredBuilders';
import { Notifications, type BuildInfo, type BuildPlanInfo, type BuildProgress, type BuildSettings, type BuildSnapshot, type BuilderInfo, type DerivationInfo, type DrvSnapshot, type Placement, type StartBuildParams } from '../protocol';
import { describePlan, placeBuilds, planBuild, summarizeDryRun } from './plan';
import { findSubstituters } from './substituters';
import { runBuild } from './runBuild';
import { BuildModel } from './model';

/** The final snapshot goes to the client without the kept log tails (those are fetched on demand). */
function lean(snapshot: BuildSnapshot): BuildSnapshot {
  return { ...snapshot, derivations: snapshot.derivations.map((d) => ({ ...d, log: [] })) };
}

/** Finished builds whose logs are kept (the extension's history is as long)… */
const FINISHED_KEPT = 20;
/** …within this many bytes of log in all (the newest build's are always kept). */
const FINISHED_LOG_BYTES = 128 * 1024 * 1024;

const logBytes = (s: BuildSnapshot) => s.derivations.reduce((n, d) => n + d.log.reduce((m, l) => m + l.length + 1, 0), 0);

export class Builds {
  private nextId = 1;
  /** Build ids stay unique across server restarts (the client keeps a history). */
  private readonly instance = randomBytes(3).toString('hex');
  private readonly running = new Map<string, { abort: AbortController; model: BuildModel }>();
  private readonly finished = new Map<string, { snapshot: BuildSnapshot; bytes: number }>();

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
    context: {
      /** Where Nix would build a derivation with the builders and max-jobs of this build. */
      place: (d: { system: string; requiredSystemFeatures: string[]; preferLocalBuild: boolean }, machines: { builders: readonly BuilderInfo[]; maxJobs: number | undefined }) => Placement;
      substituters: readonly string[];
      signal?: AbortSignal;
    },
  ): Promise<BuildPlanInfo> {
    const { chosen, machines, maxJobs } = this.options(params, builders, settings);
    const signal = context.signal ? { signal: context.signal } : {};
    const { plan, builds } = await placeBuilds(this.nix, targets.map((t) => t.drvPath), {
      builders: machines,
      maxJobs,
      ...signal,
      place: (f) => context.place(f, { builders: chosen, maxJobs }),
    });
    const fetch = await findSubstituters(plan.toFetch, context.substituters, signal);
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
      chosen,
      machines: chosen.filter(passedWithBuilders).map((b) => formatMachine(b)).join('\n'),
      maxJobs: params.remoteOnly || settings.remoteOnly ? 0 : settings.maxJobs,
    };
  }

  /**
   * Starts a build and returns at once with its BuildInfo; progress arrives as `buildProgress`
   * notifications (and to `watch.onProgress`); `ended` resolves with the final BuildInfo. Aborting `watch.signal` cancels it.
   */
  async start(
    params: StartBuildParams,
    targets: DerivationInfo[],
    builders: readonly BuilderInfo[],
    settings: BuildSettings,
    watch: { signal?: AbortSignal; onProgress?: (p: BuildProgress) => void } = {},
  ): Promise<{ info: BuildInfo; ended: Promise<BuildInfo> }> {
    const buildId = `build-${this.instance}-${this.nextId++}`;
    const { machines, maxJobs } = this.options(params, builders, settings);
    const drvPaths = targets.map((t) => t.drvPath);
    const abort = new AbortController();
    if (watch.signal?.aborted) abort.abort();
    else watch.signal?.addEventListener('abort', () => abort.abort(), { once: true });
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
    const notify = (p: BuildProgress) => {
      void this.connection.sendNotification(Notifications.buildProgress, p);
      watch.onProgress?.(p);
    };
    const send = (status: BuildInfo['status'], snapshot?: BuildSnapshot, problems?: string[], outPaths?: string[]): BuildInfo => {
      const p: BuildInfo = { ...info, status, snapshot: snapshot && lean(snapshot), problems, ...(outPaths ? { outPaths } : {}) };
      notify(p);
      return p;
    };
    const update = (changes: BuildSnapshot) => notify({ buildId, status: 'running', snapshot: changes });
    send('running');
    const ended = runBuild(this.nix, {
      drvPaths,
      builders: machines,
      maxJobs,
      cores: settings.cores,
      signal: abort.signal,
      onUpdate: update,
      model,
    }).then(
      (outcome) => {
        this.running.delete(buildId);
        this.keepFinished(buildId, outcome.snapshot);
        this.connection.console.info(`${buildId} ${outcome.status}: ${outcome.command.join(' ')}`);
        return send(outcome.status, outcome.snapshot, outcome.problems.map((p) => `${p.message} — ${p.cause} Fix: ${p.fix}`), outcome.outPaths);
      },
      (e: unknown) => {
        // runBuild does not throw; should it all the same, the build ends as failed, saying why.
        this.running.delete(buildId);
        const cause = e instanceof Error ? e.message : String(e);
        this.connection.console.error(`${buildId} failed with an internal error: ${e instanceof Error ? (e.stack ?? cause) : cause}`);
        return send('failed', model.snapshot(), [`The build could not be run: ${cause}. This is a bug of Nix Builders: please report it with the log.`]);
      },
    );
    return { info, ended };
  }

  /** The newest finished builds' logs, at most FINISHED_KEPT builds and FINISHED_LOG_BYTES. */
  private keepFinished(buildId: string, snapshot: BuildSnapshot): void {
    this.finished.set(buildId, { snapshot, bytes: logBytes(snapshot) });
    let total = [...this.finished.values()].reduce((n, f) => n + f.bytes, 0);
    for (const [id, f] of this.finished) {
      if (this.finished.size <= 1 || (this.finished.size <= FINISHED_KEPT && total <= FINISHED_LOG_BYTES)) break;
      this.finished.delete(id);
      total -= f.bytes;
    }
  }

  cancel(buildId: string): boolean {
    const run = this.running.get(buildId);
    run?.abort.abort();
    return run !== undefined;
  }

  /** The kept log of one derivation, of a running or a finished build; a first line says what was not kept. */
  log(buildId: string, drvPath: string): string[] {
    const run = this.running.get(buildId);
    const finished = this.finished.get(buildId);
    if (!run && !finished) return [`[the logs of ${buildId} are no longer kept: the server keeps those of the newest ${FINISHED_KEPT} builds, up to ${FINISHED_LOG_BYTES / 2 ** 20} MiB]`];
    const d: DrvSnapshot | undefined = run?.model.derivation(drvPath) ?? finished?.snapshot.derivations.find((x) => x.drvPath === drvPath);
    if (!d) return [];
    return d.logDropped > 0 ? [`[${d.logDropped} earlier lines of ${d.logLineCount} not kept: the last ${d.log.length} follow]`, ...d.log] : d.log;
  }

  dispose(): void {
    for (const r of this.running.values()) r.abort.abort();
  }
}
