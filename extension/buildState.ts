// The builds as the extension knows them: the server's buildProgress notifications merged into one
// state per build (while a build runs each notification carries only what changed), the callers
// waiting for a build to end, and the words shown for a derivation's state. Pure: no `vscode`
// import, so it is unit-tested.
import { storeHost } from '../language-server/nix/storeUri';
import { isBuildUpdate, type BuildInfo, type BuildProgress, type DrvSnapshot, type TransferSnapshot } from '../language-server/protocol';

/** The context value of a running build's row in the Builds view: its inline Cancel Build button (package.json) shows on these. */
export const RUNNING_BUILD = 'build-running';

/** Builds kept after they end. */
export const BUILD_HISTORY = 20;
/** Transfers kept per build (the server keeps as many). */
const MAX_TRANSFERS = 500;
/** Nix's messages kept per build (the server keeps as many). */
const MAX_MESSAGES = 50;

interface Merged {
  info: BuildInfo;
  drvs: Map<string, DrvSnapshot>;
  transfers: Map<string, TransferSnapshot>;
}

/** One copy or download: the same path may be copied to several builders. */
export const transferKey = (t: TransferSnapshot) => `${t.kind}:${t.path}:${t.from}:${t.to}`;

interface Waiter {
  resolve: (b: BuildInfo) => void;
  reject: (e: Error) => void;
}

export class BuildStore {
  private readonly builds = new Map<string, Merged>();
  /** Callers waiting for a build to end, by build id. */
  private readonly waiters = new Map<string, Waiter[]>();

  /**
   * Merge a notification; returns the build's whole state (a whole snapshot, never partial), or
   * undefined for an update of a build it never heard of (its start was missed).
   */
  apply(progress: BuildProgress): BuildInfo | undefined {
    let m = this.builds.get(progress.buildId);
    if (isBuildUpdate(progress)) {
      // An update belongs to a running build whose start was seen; a late one never revives a finished build.
      if (!m || m.info.status !== 'running') return undefined;
    } else if (progress.status === 'running' && !progress.snapshot && m) {
      // A start: whatever had this id before is another build.
      this.builds.delete(progress.buildId);
      m = undefined;
    }
    const next: BuildInfo = isBuildUpdate(progress) ? { ...(m as Merged).info, status: progress.status, snapshot: progress.snapshot } : progress;
    if (!m) {
      m = { info: next, drvs: new Map(), transfers: new Map() };
      this.builds.set(next.buildId, m);
      // The oldest ended builds go; a running one stays (it is shown, and may be waited for).
      let excess = this.builds.size - BUILD_HISTORY;
      for (const [id, x] of this.builds) {
        if (excess <= 0) break;
        if (x.info.status === 'running') continue;
        this.builds.delete(id);
        excess--;
      }
    }
    const s = next.snapshot;
    if (s) {
      if (!s.partial) {
        m.drvs.clear();
        m.transfers.clear();
      }
      for (const d of s.derivations) m.drvs.set(d.drvPath, d);
      for (const t of s.transfers) {
        const key = transferKey(t);
        m.transfers.delete(key);
        m.transfers.set(key, t);
      }
      while (m.transfers.size > MAX_TRANSFERS) m.transfers.delete(m.transfers.keys().next().value as string);
    }
    const before = m.info.snapshot;
    const base = s ?? before;
    // Messages of an update are the new ones: appended to those known, the last MAX_MESSAGES kept.
    const messages = s?.partial ? [...(before?.messages ?? []), ...s.messages].slice(-MAX_MESSAGES) : base?.messages;
    m.info = {
      ...next,
      snapshot: base && { ...base, messages: messages ?? [], derivations: [...m.drvs.values()], transfers: [...m.transfers.values()], partial: false },
    };
    if (m.info.status !== 'running') this.settle(m.info.buildId, (w) => w.resolve(m.info));
    return m.info;
  }

  /**
   * Resolves with the build's final state. A build that ends at once sends its last notification
   * before the startBuild answer that names it, so an ended build resolves at once from what is
   * kept here; rejected by `serverStopped`.
   */
  whenEnded(buildId: string): Promise<BuildInfo> {
    const known = this.get(buildId);
    if (known && known.status !== 'running') return Promise.resolve(known);
    return new Promise((resolve, reject) => {
      const list = this.waiters.get(buildId) ?? [];
      list.push({ resolve, reject });
      this.waiters.set(buildId, list);
    });
  }

  /**
   * The server that ran the builds is gone (stopped, restarted or crashed), and its builds with it:
   * every running build ends as `status` with `reason` as its problem (its derivations that had
   * not ended: cancelled), and every waiter is rejected with `reason`. Returns the builds that ended.
   */
  serverStopped(reason: string, status: 'failed' | 'cancelled'): BuildInfo[] {
    const ended: BuildInfo[] = [];
    for (const m of this.builds.values()) {
      if (m.info.status !== 'running') continue;
      for (const d of m.drvs.values()) if (d.state === 'queued' || d.state === 'building') m.drvs.set(d.drvPath, { ...d, state: 'cancelled' });
      const snapshot = m.info.snapshot && { ...m.info.snapshot, derivations: [...m.drvs.values()] };
      m.info = { ...m.info, status, problems: [...(m.info.problems ?? []), reason], ...(snapshot ? { snapshot } : {}) };
      ended.push(m.info);
    }
    for (const id of [...this.waiters.keys()]) this.settle(id, (w) => w.reject(new Error(reason)));
    return ended;
  }

  private settle(buildId: string, how: (w: Waiter) => void): void {
    const list = this.waiters.get(buildId);
    this.waiters.delete(buildId);
    for (const w of list ?? []) how(w);
  }

  /** The builds that are running, newest first. */
  running(): BuildInfo[] {
    return this.all()
      .filter((b) => b.status === 'running')
      .reverse();
  }

  get(buildId: string): BuildInfo | undefined {
    return this.builds.get(buildId)?.info;
  }

  /** One derivation of a build, without a search through all of them. */
  derivation(buildId: string, drvPath: string): DrvSnapshot | undefined {
    return this.builds.get(buildId)?.drvs.get(drvPath);
  }

  /** Oldest first. */
  all(): BuildInfo[] {
    return [...this.builds.values()].map((m) => m.info);
  }
}

export type DrvGroup = 'building' | 'failed' | 'queued' | 'built' | 'fetched' | 'cancelled';

/** How a derivation's state is grouped in the Builds view. */
export function groupOf(d: DrvSnapshot): DrvGroup {
  return d.state === 'substituted' ? 'fetched' : d.state;
}

/** Derivations per group, in the order the view shows them. */
export function groupDerivations(derivations: readonly DrvSnapshot[]): Array<{ group: DrvGroup; derivations: DrvSnapshot[] }> {
  const order: DrvGroup[] = ['building', 'failed', 'queued', 'built', 'fetched', 'cancelled'];
  const by = new Map<DrvGroup, DrvSnapshot[]>(order.map((g) => [g, []]));
  for (const d of derivations) by.get(groupOf(d))?.push(d);
  return order.map((group) => ({ group, derivations: by.get(group) ?? [] })).filter((g) => g.derivations.length > 0);
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;

/** One line for a derivation: "building on b2 (3.1 s)", "built on b2 (1.2 s)", "fetched from cache". */
export function drvStatus(d: DrvSnapshot, now = Date.now()): string {
  const where = d.machine ? ` on ${storeHost(d.machine)}` : ' here';
  const took = d.startedAt !== undefined ? seconds((d.finishedAt ?? now) - d.startedAt) : '';
  switch (d.state) {
    case 'queued':
      return 'queued';
    case 'building':
      return `building${where}${took ? ` (${took})` : ''}${d.phase ? ` — ${d.phase}` : ''}`;
    case 'built':
      return `built${where}${took ? ` (${took})` : ''}`;
    case 'failed':
      return `failed${where}`;
    case 'substituted':
      return 'fetched from cache';
    case 'cancelled':
      return 'cancelled';
  }
}

export type TargetState = 'queued' | 'building' | 'built' | 'failed' | 'fetched' | 'cancelled';

/** The state shown on a target attribute; `d` is its derivation in the build, if the build has it. */
export function targetStatus(build: BuildInfo, d: DrvSnapshot | undefined, now = Date.now()): { state: TargetState; text: string } {
  // Asked for but not built: fetched when the plan fetched something, else it was there already.
  if (d?.state === 'substituted' && build.plan.toFetch.length === 0) return { state: 'built', text: 'already built' };
  if (d) {
    const state = d.state === 'substituted' ? 'fetched' : d.state;
    return { state, text: drvStatus(d, now) };
  }
  // Not built by this run: it came from a cache, or was there already.
  if (build.status === 'running') return { state: 'queued', text: build.plan.summary };
  if (build.status === 'built') return { state: 'fetched', text: build.plan.toFetch.length ? 'fetched from cache' : 'already built' };
  return { state: build.status === 'cancelled' ? 'cancelled' : 'failed', text: build.status };
}
