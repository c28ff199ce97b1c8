// Where would Nix build this derivation right now? A preview of Nix's own choice between this
// machine and the remote builders, with the reason for every machine. Pure: the caller passes the
// builders, the local settings, how busy each builder is and what the doctor found.
//
// What Nix 2.8 does (read in NixOS/nix, and measured with nix 2.8.0 on this kind of machine):
//
// 1. `DerivationGoal::tryToBuild` (src/libstore/build/derivation-goal.cc):
//      buildLocally = (buildMode != bmNormal || parsedDrv->willBuildLocally(store)) && max-jobs != 0
//    `ParsedDerivation::willBuildLocally` (src/libstore/parsed-derivations.cc) is
//    `preferLocalBuild && canBuildLocally`, where `canBuildLocally` wants the system to be `system`,
//    one of `extra-platforms` or `builtin`, every required feature in `system-features`, and
//    max-jobs != 0. Only then does Nix skip the builders. Otherwise it asks the build hook FIRST,
//    even when this machine could build the derivation and has a free slot.
//    (--check and --repair also build locally; this preview assumes a normal build.)
//
// 2. The build hook, `main_build_remote` (src/build-remote/build-remote.cc):
//    - no machines at all: "# decline-permanently" (then every build is local);
//    - `canBuildLocally = amWilling && (system == thisSystem || extra-platforms has it) && every
//      required feature is in system-features`, where `amWilling` is "a local slot is free"
//      (`DerivationGoal::tryBuildHook` sends `getNrLocalBuilds() < max-jobs`);
//    - under `current-load/main-lock`, for each machine IN THE ORDER LISTED: it must be `enabled`,
//      list the system, and pass `Machine::allSupported` and `Machine::mandatoryMet`
//      (src/libstore/machines.cc; see match.ts). Such a machine sets `rightType`. Its load is the
//      number of slots 0..maxJobs-1 whose lock file `current-load/<uri with / as _>-<slot>` another
//      build holds; with no free slot it is skipped. Among the rest the best is the lowest
//      `load / speedFactor`; on equal quotients the higher speedFactor wins, then the lower load,
//      and only then the first listed. In 2.8 `load` (uint64_t) and `speedFactor` (unsigned int,
//      at least 1: `std::max(1U, …)` in the `Machine` constructor) are whole numbers, so the
//      division rounds down: load 1 / speed 2 = 0 ties with load 0 / speed 1, and speed 2 wins.
//      (Later Nix parses it as a float, `parseFloatField`, NixOS/nix#9840/#9841: `speedArithmetic: 'float'`.)
//    - no machine chosen: "# postpone" if some machine fitted (`rightType`) and this machine cannot
//      build it now; otherwise "# decline".
//    - a chosen machine it cannot connect to is printed ("cannot build on '…'"), set
//      `enabled = false` for the rest of this hook's life, and the choice is made again.
// 3. Back in `tryToBuild`: accept → remote build; postpone → "waiting for a machine to build '…'"
//    and ask again later; decline → `LocalDerivationGoal::tryLocalBuild`: it waits for a local slot
//    (with max-jobs 0 never: `Worker::run` fails with "unable to start any build; …"), then
//    `startBuilder` fails with "a '…' with features {…} is required to build '…', but I am a '…'
//    with features {…}" if this machine cannot build it.
//
// Measured with nix 2.8.0 and unreachable builders (each "cannot build on" line shows the order of
// choice): equal quotients → first listed; speed 2 listed second beats speed 1 at load 0; load 1 /
// speed 2 beats load 0 / speed 1 (whole-number division); a builder with a mandatory feature is
// skipped for a plain derivation; full builders → "waiting for a machine"; builders first even with
// -j1; preferLocalBuild with -j1 builds locally without trying the builder, with -j0 asks it; after
// a builder fails to connect and the other one is full, Nix waits. Nix 2.8 rejects a machines line
// whose speed factor is not a whole number ("failed to convert column #4 … to 'unsigned int'").
//
// The doctor's findings are not Nix's: Nix does not know a builder is down until it fails to
// connect. A down builder stays Nix's choice here; the summary says so and what Nix does next.
import type { BuildersIgnored } from './ignoredBuilders';
import { builderRefusal, featureSet, localRefusal, type Refusal } from './match';
import type { BuilderInfo, CheckStatus, LocalMachineInfo, ScheduleCandidate, ScheduleChoice, SchedulePreview, ScheduleVerdict } from '../protocol';

export type ScheduleBuilder = Pick<BuilderInfo, 'id' | 'name' | 'systems' | 'maxJobs' | 'speedFactor' | 'supportedFeatures' | 'mandatoryFeatures'>;

/** What the doctor found about a builder; a `BuilderHealth` fits (its first failing check gives the summary). */
export interface ScheduleHealth {
  status: CheckStatus;
  summary?: string;
  checks?: ReadonlyArray<{ status: CheckStatus; summary: string }>;
}

export interface ScheduleInput {
  system: string;
  requiredSystemFeatures: readonly string[];
  /** The derivation's `preferLocalBuild` (default false). */
  preferLocalBuild?: boolean;
  local: Pick<LocalMachineInfo, 'system' | 'extraPlatforms' | 'systemFeatures' | 'maxJobs'>;
  /** In machines-file order: the order breaks ties. */
  builders: readonly ScheduleBuilder[];
  /** Builder id → builds running there now (held slots of `current-load`); default 0. */
  loads?: ReadonlyMap<string, number>;
  /** Local builds running now (default 0): a local slot is free when this is below max-jobs. */
  localBuildsRunning?: number;
  /** Builder id → the doctor's verdict. */
  health?: ReadonlyMap<string, ScheduleHealth>;
  /** Replaces the local max-jobs (e.g. 0 for "build remotely only", `--max-jobs 0`). */
  maxJobsOverride?: number;
  /** 'integer' (Nix 2.8: whole-number `load / speedFactor`, the default) or 'float' (newer Nix). */
  speedArithmetic?: 'integer' | 'float';
  /** Configured builders that Nix does not use (the local nix-daemon ignores `--builders`), and why; `builders` holds the others. */
  notUsed?: { builders: readonly ScheduleBuilder[]; because: BuildersIgnored };
}

export const LOCAL_NAME = 'this machine';

// ---------------------------------------------------------------------------------------------

interface Slotted {
  b: ScheduleBuilder;
  refusal: Refusal | undefined;
  slots: number;
  load: number;
  speed: number;
  score: number;
  down: string | undefined;
  warning: string | undefined;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const listOf = (xs: readonly string[]) => xs.join(', ');
/** Nix prints `std::set<std::string>`: sorted by bytes, without duplicates. */
const nixSet = (xs: readonly string[]) => featureSet([...new Set(xs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
const fmt = (n: number) => (Number.isInteger(n) ? String(n) : String(Number(n.toFixed(3))));

function healthProblem(h: ScheduleHealth | undefined): { down?: string; warning?: string } {
  if (!h || h.status === 'ok' || h.status === 'skipped') return {};
  const worst = h.checks?.find((c) => c.status === h.status)?.summary;
  const text = h.summary ?? worst ?? (h.status === 'error' ? 'the health check failed' : 'the health check warned');
  return h.status === 'error' ? { down: text } : { warning: text };
}

function refusalText(r: Refusal, drvSystem: string, localMaxJobsOverridden: boolean): string {
  switch (r.reason) {
    case 'system':
      return `lacks system ${drvSystem} (has ${listOf(r.systems)})`;
    case 'features':
      return `lacks ${r.missing.length === 1 ? 'feature' : 'features'} ${listOf(r.missing)}`;
    case 'mandatory':
      return `mandatory ${r.unmet.length === 1 ? 'feature' : 'features'} ${listOf(r.unmet)} not required by the derivation`;
    case 'max-jobs-0':
      return localMaxJobsOverridden ? 'max-jobs is 0 (build remotely only)' : 'max-jobs is 0';
  }
}

/** The same as a phrase after a machine's name: "b1 lacks …", "this machine has max-jobs 0". */
function refusalPhrase(r: Refusal, drvSystem: string, localMaxJobsOverridden: boolean): string {
  if (r.reason === 'max-jobs-0') return `has max-jobs 0${localMaxJobsOverridden ? ' (build remotely only)' : ''}`;
  if (r.reason === 'mandatory') return `only takes derivations that require ${listOf(r.unmet)}`;
  return refusalText(r, drvSystem, localMaxJobsOverridden);
}

/** At most `n` items, then "and N more". */
function some(xs: readonly string[], n = 4): string {
  return xs.length <= n ? xs.join('; ') : `${xs.slice(0, n).join('; ')}; and ${xs.length - n} more`;
}

/** Nix's comparison in `main_build_remote`: true when `m` replaces `best`. */
function better(m: Slotted, best: Slotted): boolean {
  if (m.score < best.score) return true;
  if (m.score > best.score) return false;
  if (m.speed > best.speed) return true;
  return m.speed === best.speed && m.load < best.load;
}

/** One round of the hook's loop over the machines, without the machines in `disabled`. */
function pick(all: readonly Slotted[], disabled: ReadonlySet<string>): { best?: Slotted; rightType: boolean } {
  let best: Slotted | undefined;
  let rightType = false;
  for (const m of all) {
    if (disabled.has(m.b.id) || m.refusal) continue;
    rightType = true;
    if (m.load >= m.slots) continue;
    if (!best || better(m, best)) best = m;
  }
  return best ? { best, rightType } : { rightType };
}

/** Why `best` won against the other builders with a free slot. */
function whyBest(best: Slotted, free: readonly Slotted[], fittingCount: number, arithmetic: 'integer' | 'float'): string {
  const others = free.filter((m) => m !== best);
  if (others.length === 0) {
    if (fittingCount <= 1) return 'the only builder that fits';
    return `the only fitting builder with a free slot (${plural(fittingCount - 1, 'other')} busy)`;
  }
  const ties = others.filter((m) => m.score === best.score);
  const quotient = `load ÷ speed ${fmt(best.score)}`;
  if (ties.length === 0) {
    const next = others.reduce((a, m) => (m.score < a.score ? m : a));
    return `lowest ${quotient} (next: ${next.b.name} with ${fmt(next.score)})`;
  }
  const names = listOf(ties.map((m) => m.b.name));
  const rounding = arithmetic === 'integer' && [best, ...ties].some((m) => m.load % m.speed !== 0) ? ', whole-number division' : '';
  if (ties.some((m) => m.speed < best.speed)) return `${quotient} ties with ${names}${rounding}; Nix prefers the higher speed factor (${fmt(best.speed)})`;
  if (ties.some((m) => m.load > best.load)) return `${quotient} ties with ${names}${rounding}; Nix prefers the lower load (${best.load})`;
  return `${quotient} ties with ${names}; ties go to the first listed`;
}

interface Outcome {
  verdict: ScheduleVerdict;
  chosen?: ScheduleChoice;
  summary: string;
  nixMessage?: string;
}

export function previewSchedule(input: ScheduleInput): SchedulePreview {
  const drv = { system: input.system, requiredSystemFeatures: input.requiredSystemFeatures };
  const arithmetic = input.speedArithmetic ?? 'integer';
  const overridden = input.maxJobsOverride !== undefined;
  const maxJobs = Math.max(0, Math.floor(input.maxJobsOverride ?? input.local.maxJobs));
  const local = { ...input.local, maxJobs };
  const running = Math.max(0, input.localBuildsRunning ?? 0);
  const localSlotFree = running < maxJobs;
  const localNo = localRefusal(local, drv);
  const localPhrase = localNo ? refusalPhrase(localNo, drv.system, overridden) : undefined;
  // The hook's own test: a free local slot, the system (no `builtin` here) and the features.
  const hookCanBuildLocally =
    localSlotFree &&
    (drv.system === local.system || local.extraPlatforms.includes(drv.system)) &&
    drv.requiredSystemFeatures.every((f) => local.systemFeatures.includes(f));
  // `willBuildLocally` (preferLocalBuild && canBuildLocally) && max-jobs != 0: localRefusal covers both.
  const preferLocal = (input.preferLocalBuild ?? false) && localNo === undefined;

  const all: Slotted[] = input.builders.map((b) => {
    const slots = Math.max(0, Math.floor(b.maxJobs));
    const speed = arithmetic === 'integer' ? Math.max(1, Math.floor(b.speedFactor)) : b.speedFactor > 0 ? b.speedFactor : 1;
    const load = Math.min(slots, Math.max(0, Math.floor(input.loads?.get(b.id) ?? 0)));
    const score = arithmetic === 'integer' ? Math.floor(load / speed) : load / speed;
    const { down, warning } = healthProblem(input.health?.get(b.id));
    return { b, refusal: builderRefusal(b, drv, local.system), slots, load, speed, score, down, warning };
  });
  const fitting = all.filter((m) => !m.refusal);
  const free = fitting.filter((m) => m.slots > 0 && m.load < m.slots);
  const fullText = (m: Slotted) =>
    m.slots === 0 ? 'max-jobs is 0' : m.slots === 1 ? 'its only slot is busy' : `all ${m.slots} slots busy`;

  // After the hook declined (or was never asked): `tryLocalBuild`, then `startBuilder`.
  const localOutcome = (why: string, whyNot: string = why): Outcome => {
    if (localNo) {
      return {
        verdict: 'none',
        summary: `nothing can build it: ${whyNot}; ${LOCAL_NAME} ${localPhrase ?? ''}`,
        nixMessage:
          maxJobs === 0
            ? input.builders.length === 0
              ? "unable to start any build; either increase '--max-jobs' or enable remote builds."
              : 'unable to start any build; remote machines may not have all required system features.'
            : `a '${drv.system}' with features ${nixSet(drv.requiredSystemFeatures)} is required to build '…', but I am a '${local.system}' with features ${nixSet(local.systemFeatures)}`,
      };
    }
    if (!localSlotFree) return { verdict: 'wait', summary: `waits for a local build slot (all ${maxJobs} busy): ${why}` };
    return { verdict: 'local', chosen: { name: LOCAL_NAME, reason: why }, summary: `builds on ${LOCAL_NAME}: ${why}` };
  };

  /** The hook's answer and what follows, with the builders in `disabled` found unreachable. */
  const hookOutcome = (disabled: ReadonlySet<string>): Outcome & { best?: Slotted } => {
    const { best, rightType } = pick(all, disabled);
    const gone = all.filter((m) => disabled.has(m.b.id)).map((m) => `${m.b.name} unreachable`);
    if (best) {
      const freeNow = free.filter((m) => !disabled.has(m.b.id));
      const fittingNow = fitting.filter((m) => !disabled.has(m.b.id)).length;
      let why = whyBest(best, freeNow, fittingNow, arithmetic);
      if (why === 'the only builder that fits' && disabled.size > 0) why = 'the only reachable builder that fits';
      else if (why === 'the only builder that fits' && localNo) {
        why =
          localNo.reason === 'system'
            ? `the only machine with ${drv.system}`
            : localNo.reason === 'features'
              ? `the only machine with ${listOf(drv.requiredSystemFeatures)}`
              : `the only builder that fits, and ${LOCAL_NAME} ${localPhrase ?? ''}`;
      }
      if (!localNo && disabled.size === 0) why += '; Nix asks the builders before building locally';
      return { verdict: 'remote', best, chosen: { builderId: best.b.id, name: best.b.name, reason: why }, summary: `builds on ${best.b.name}: ${why}` };
    }
    const busy = fitting.filter((m) => !disabled.has(m.b.id)).map((m) => `${m.b.name}: ${fullText(m)}`);
    if (rightType && !hookCanBuildLocally) {
      return {
        verdict: 'wait',
        summary: `waits for a machine: every builder that fits is busy (${some([...busy, ...gone])}), and ${
          localNo ? `${LOCAL_NAME} ${localPhrase ?? ''}` : `all ${maxJobs} local slots are busy`
        }`,
        nixMessage: "waiting for a machine to build '…'",
      };
    }
    if (rightType) return localOutcome(`every builder that fits is busy (${some([...busy, ...gone])})`);
    if (gone.length > 0) return localOutcome(`every builder that fits is unreachable (${some(gone)})`);
    const refused = all.map((m) => `${m.b.name} ${refusalPhrase(m.refusal as Refusal, drv.system, false)}`);
    return localOutcome(all.length === 1 ? refused.join('') : 'no builder fits', some(refused));
  };

  let outcome: Outcome & { best?: Slotted };
  let fallback: SchedulePreview['fallback'];
  if (preferLocal) {
    outcome = localOutcome('preferLocalBuild, and this machine can build it (Nix does not ask the builders)');
  } else if (input.builders.length === 0) {
    outcome = localOutcome(input.notUsed?.builders.length ? 'the nix-daemon has no builders of its own' : 'no builders are configured');
  } else {
    outcome = hookOutcome(new Set());
    const first = outcome.best;
    if (first?.down) {
      // Nix does not know: it tries the builder, and only when it cannot connect does it drop it
      // (`enabled = false`) and choose again.
      const disabled = new Set<string>();
      const alsoDown: string[] = [];
      let next = outcome;
      while (next.best?.down) {
        if (next.best !== first) alsoDown.push(next.best.b.name);
        disabled.add(next.best.b.id);
        next = hookOutcome(disabled);
      }
      fallback = { verdict: next.verdict, summary: next.summary };
      if (next.chosen) fallback.chosen = next.chosen;
      const then = next.verdict === 'none' ? `the build fails: ${next.summary}` : `Nix then ${next.summary}`;
      outcome = {
        ...outcome,
        summary: `Nix would try ${first.b.name} first, but it is down (${first.down}); if it cannot connect, ${
          alsoDown.length > 0 ? `it tries ${listOf(alsoDown)} (also down), then ` : ''
        }${then}`,
      };
    }
  }

  // Candidates, in the order Nix considers them.
  const chosenId = outcome.verdict === 'remote' ? outcome.best?.b.id : undefined;
  const builderCandidates: ScheduleCandidate[] = all.map((m) => {
    const parts: string[] = [];
    let score: number | undefined;
    if (m.refusal) parts.push(refusalText(m.refusal, drv.system, false));
    else if (m.slots === 0 || m.load >= m.slots) parts.push(fullText(m));
    else {
      score = m.score;
      const exact = arithmetic === 'float' || m.load % m.speed === 0;
      parts.push(`load ${m.load} / speed ${fmt(m.speed)} = ${fmt(m.score)}${exact ? '' : ' (Nix 2.8 divides whole numbers)'}`);
    }
    if (arithmetic === 'integer' && !Number.isInteger(m.b.speedFactor)) {
      parts.push(`speed factor ${m.b.speedFactor} is not a whole number: Nix 2.8 rejects this machines line`);
    }
    if (m.b.id === chosenId) parts.push(`chosen: ${outcome.chosen?.reason ?? ''}`);
    else if (preferLocal && score !== undefined) parts.push('not asked: preferLocalBuild builds on this machine');
    if (m.down) parts.push(`down: ${m.down}`);
    if (m.warning) parts.push(`doctor warns: ${m.warning}`);
    const c: ScheduleCandidate = { builderId: m.b.id, name: m.b.name, eligible: score !== undefined, reason: parts.join('; ') };
    if (score !== undefined) c.score = score;
    if (m.down) c.down = true;
    return c;
  });

  const localParts: string[] = [];
  if (localNo) localParts.push(refusalText(localNo, drv.system, overridden));
  else if (!localSlotFree) localParts.push(`all ${maxJobs} local slots busy`);
  else localParts.push('can build it');
  if (outcome.verdict === 'local') localParts.push(`chosen: ${outcome.chosen?.reason ?? ''}`);
  else if (!localNo && outcome.verdict === 'remote') {
    localParts.push(fallback?.verdict === 'local' ? 'Nix builds here if it cannot reach the chosen builder' : 'Nix asks the builders first');
  }
  const localCandidate: ScheduleCandidate = { name: LOCAL_NAME, eligible: !localNo && localSlotFree, reason: localParts.join('; ') };

  // Builders the daemon ignores: never chosen; said wherever they would have fitted.
  const notUsed = input.notUsed?.builders ?? [];
  const because = input.notUsed?.because.why ?? '';
  const notUsedCandidates: ScheduleCandidate[] = notUsed.map((b) => {
    const refusal = builderRefusal(b, drv, local.system);
    return { builderId: b.id, name: b.name, eligible: false, reason: `${refusal ? `${refusalText(refusal, drv.system, false)}; ` : ''}not used: ${because}` };
  });
  const wouldFit = notUsed.filter((b) => !builderRefusal(b, drv, local.system)).map((b) => b.name);
  const summary = wouldFit.length > 0 ? `${outcome.summary} (${listOf(wouldFit)} would fit, but ${because})` : outcome.summary;

  const candidates = preferLocal ? [localCandidate, ...builderCandidates, ...notUsedCandidates] : [...builderCandidates, ...notUsedCandidates, localCandidate];
  const preview: SchedulePreview = { verdict: outcome.verdict, candidates, summary };
  if (outcome.chosen) preview.chosen = outcome.chosen;
  if (fallback) preview.fallback = fallback;
  if (outcome.nixMessage) preview.nixMessage = outcome.nixMessage;
  return preview;
}
