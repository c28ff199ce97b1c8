// Every custom request and notification between the extension and the language server, typed,
// with the types that go over the wire. No string method names anywhere else: both sides import
// these. The wire types are defined here, not re-exported from the server's modules (those import
// them from here), so that a change inside the server does not silently change what is sent; the
// one exception is the machines-file entry (`Machine`), the format both sides read and write.
import { NotificationType, NotificationType0, RequestType, RequestType0 } from 'vscode-languageserver-protocol';
import type { Machine } from './nix/machines';

/** Settings the extension sends (section `nixBuilders` of VS Code's settings). */
export interface EvaluationSettings {
  /** How deep nested attribute sets are searched for derivations. */
  depth: number;
  timeoutSeconds: number;
  allowImportFromDerivation: boolean;
  /** Arguments of files that are functions, name → Nix expression (as `--arg name expr`). */
  arguments: Record<string, string>;
  /** Extra search path entries, `name=path` or `path` (as `-I`), before NIX_PATH and nix.conf's `nix-path`. */
  searchPath: string[];
}

/** How builds that the extension starts (test builds, builds from the editor) use machines. */
export interface BuildSettings {
  /** `--max-jobs 0`: never build on this machine. */
  remoteOnly: boolean;
  /** `--max-jobs N` for local builds; undefined: nix.conf's. */
  maxJobs?: number;
  /** `--cores N` (NIX_BUILD_CORES of each build); undefined: nix.conf's. */
  cores?: number;
}

/** Reproducibility checks (nixBuilders.check.*). */
export interface CheckSettings {
  /** diffoscope ignores times and metadata noise unless a request says otherwise. */
  diffoscopeIgnoreNoise: boolean;
}

/** Binary caches (section `nixBuilders.cache`): where to push, the key to sign with, the post-build-hook's push queue. */
export interface CacheSettings {
  /** Store URIs to push to (`nixBuilders.cache.pushTargets`), in the user's order; the push queue's worker pushes to the first. */
  pushTargets: string[];
  /** `nixBuilders.cache.signingKeyFile`: the secret key pushes sign with (before nix.conf's secret-key-files). */
  signingKeyFile?: string;
  /** The queue's worker runs inside the server (with a push target); `dir` empty: the server's own folder. */
  queue: { enabled: boolean; dir: string };
}

export interface ServerSettings {
  nixBinDir: string;
  env: Record<string, string>;
  machinesFiles: string[];
  builders: string[];
  evaluation: EvaluationSettings;
  build: BuildSettings;
  /** Absent: the defaults (a client that sends only what it knows). */
  check?: CheckSettings;
  /** Optional on the wire (a client may send none; the server pulls the whole section where it can); parseSettings always sets it. */
  cache?: CacheSettings;
}

export const DEFAULT_SETTINGS: ServerSettings = {
  nixBinDir: '',
  env: {},
  machinesFiles: [],
  builders: [],
  evaluation: { depth: 3, timeoutSeconds: 30, allowImportFromDerivation: false, arguments: {}, searchPath: [] },
  build: { remoteOnly: false },
  check: { diffoscopeIgnoreNoise: true },
  cache: { pushTargets: [], queue: { enabled: false, dir: '' } },
};

/** `initializationOptions` of the initialize request. Any LSP client may omit them. */
export interface InitializationOptions {
  settings?: Partial<ServerSettings>;
  /** VS Code workspace trust. A standalone client that says nothing is trusted (it chose to run us). */
  workspaceTrusted?: boolean;
  /** Commands the client runs itself (the VS Code extension's): code actions may carry them. */
  clientCommands?: string[];
  /**
   * The client registers the server's commands itself (the VS Code extension does, once for its
   * life): executeCommandProvider then lists none. vscode-languageclient registers every listed id
   * as a VS Code command again for each server it starts, and a client that could not be stopped
   * cleanly keeps its registrations ("command already exists").
   */
  registersServerCommands?: boolean;
}

/**
 * A client command (the VS Code extension's): sets `nixBuilders.evaluation.arguments` of the
 * document's folder. Arguments: the document's URI and { name: template expression } of the missing ones.
 */
export const SET_EVALUATION_ARGUMENTS = 'nixBuilders.setEvaluationArguments';

/**
 * Where a builder's entry is configured, as Nix reads it. An entry of a machines file (an `@file`
 * or a file it includes) has the kind of what named the file, except that every file of the
 * daemon's own nix.conf `builders` is `system-machines`.
 */
export type BuilderSourceKind =
  /** A machines file of the local nix-daemon's own `builders` (by default /etc/nix/machines), or one it includes. */
  | 'system-machines'
  /** Inline in `builders` of the daemon's own nix.conf (NIX_CONF_DIR's or /etc/nix/nix.conf, and the files it includes). */
  | 'nix-conf-system'
  /** `builders` of the user's nix.conf (~/.config/nix/nix.conf, NIX_USER_CONF_FILES). */
  | 'nix-conf-user'
  /** `builders` of NIX_CONFIG (the environment's or nixBuilders.env's). */
  | 'nix-config-env'
  /** The setting nixBuilders.machinesFiles. */
  | 'setting-machines-files'
  /** The setting nixBuilders.builders. */
  | 'setting-builders';

export interface BuilderProvenance {
  kind: BuilderSourceKind;
  /**
   * The daemon's own entry, which the user's `builders` (their nix.conf, NIX_CONFIG) replaces for
   * this client: not passed with --builders; Nix builds on it only where the daemon ignores those.
   */
  replaced?: boolean;
}

export interface BuilderSource {
  /** Human label: "/etc/nix/machines", "nix.conf builders", "user nix.conf builders", "NIX_CONFIG builders", "machines file …", "setting nixBuilders.builders". */
  label: string;
  /** Where Nix reads it from; absent for an entry that is not configured anywhere (a line being checked before it is added). */
  provenance?: BuilderProvenance;
  /** File the entry was read from, if any. */
  path?: string;
  /** 0-based line and column of the entry in that file. */
  line?: number;
  column?: number;
  /** The entry's text in that file, as read: what an edit of it expects to replace. */
  text?: string;
}

export interface BuilderInfo extends Machine {
  /** Source and URI (and, for a URI repeated in one source, which occurrence): stable across listings. */
  id: string;
  /** Host part of the URI ("b1"). */
  name: string;
  user?: string;
  source: BuilderSource;
}

export interface ConfigProblem {
  message: string;
  path?: string;
  line?: number;
  column?: number;
  sourceLabel?: string;
}

export interface LocalMachineInfo {
  system: string;
  extraPlatforms: string[];
  systemFeatures: string[];
  maxJobs: number;
  /** The `cores` setting; 0 means every core. */
  cores: number;
  /** What a local build sees as NIX_BUILD_CORES (`cores`, or the CPU count when it is 0). */
  buildCores: number;
  /** `substituters` (with `extra-substituters`), in the order configured. */
  substituters: string[];
}

export interface NixStatus {
  /** "2.8.0" when Nix was found. */
  version?: string;
  implementation?: string;
  /** Set when Nix is missing or broken: says what and how to fix it. */
  problem?: string;
  workspaceTrusted: boolean;
}

export interface BuildersListing {
  nix: NixStatus;
  local?: LocalMachineInfo;
  builders: BuilderInfo[];
  problems: ConfigProblem[];
}

/** A derivation of a document, as its evaluation found it. */
export interface DerivationInfo {
  attrPath: string[];
  name: string;
  drvPath: string;
  system: string;
  requiredSystemFeatures: string[];
  preferLocalBuild: boolean;
  outputs: string[];
  /** 0-based position of the attribute name in the document, when it is defined there. */
  line?: number;
  column?: number;
}

export interface DocumentDerivations {
  uri: string;
  version?: number;
  /** 'ok', or why there is nothing: 'untrusted', 'error', 'timed-out', 'not-evaluated'. */
  state: 'ok' | 'untrusted' | 'error' | 'timed-out' | 'not-evaluated';
  derivations: DerivationInfo[];
}

// ---------------------------------------------------------------------------------------------
// Where Nix would build

export type ScheduleVerdict = 'local' | 'remote' | 'wait' | 'none';

export interface ScheduleCandidate {
  /** Absent for this machine. */
  builderId?: string;
  /** The builder's name, or 'this machine'. */
  name: string;
  /** Nix could start the build there now: it fits and has a free slot (down or not: Nix does not know). */
  eligible: boolean;
  /** Why chosen or why not. */
  reason: string;
  /** load / speed factor, as Nix compares it (builders with a free slot only). */
  score?: number;
  /** The doctor found it down. */
  down?: boolean;
}

export interface ScheduleChoice {
  builderId?: string;
  name: string;
  reason: string;
}

export interface SchedulePreview {
  verdict: ScheduleVerdict;
  /** Where Nix starts the build ('remote' or 'local'); a down builder stays Nix's choice. */
  chosen?: ScheduleChoice;
  /** When the chosen builder is down: what Nix does once it cannot connect to it (and to any other down one it tries next). */
  fallback?: { verdict: ScheduleVerdict; chosen?: ScheduleChoice; summary: string };
  /** In the order Nix considers them. */
  candidates: ScheduleCandidate[];
  /** One line. */
  summary: string;
  /** What Nix prints for a 'wait' or a 'none' ('…' stands for the .drv path). */
  nixMessage?: string;
}

export interface SchedulePreviewParams {
  /** Either a system and features… */
  system?: string;
  requiredSystemFeatures?: string[];
  preferLocalBuild?: boolean;
  /** …or the derivation at a position of an open document. */
  uri?: string;
  line?: number;
}

export interface SchedulePreviewResult {
  /** The derivation it is about, when asked by position. */
  derivation?: DerivationInfo;
  preview?: SchedulePreview;
  /** Why there is no preview (no derivation there, Nix missing, …). */
  problem?: string;
}

// ---------------------------------------------------------------------------------------------
// Machines-file edits

/** `expected`: the entry's text as it was read (`BuilderSource.text`); the edit is refused unless it is still there. */
export type MachinesEdit =
  | { kind: 'add'; entry: string }
  | { kind: 'replace'; line: number; column: number; expected: string; entry: string }
  | { kind: 'remove'; line: number; column: number; expected: string };

export type EditFailureReason =
  | 'permission-denied'
  | 'not-found'
  | 'changed-on-disk'
  | 'invalid-entry'
  | 'no-such-entry'
  | 'entry-changed'
  | 'io-error';

export type EditResult =
  | {
      ok: true;
      /** The file as it was given (a symbolic link stays a link; its target was written). */
      file: string;
      /** `<file>.bak` holding the previous content; undefined when the edit created the file. */
      backup: string | undefined;
      newText: string;
    }
  | {
      ok: false;
      reason: EditFailureReason;
      message: string;
      /** For `permission-denied` on add/replace: the exact entry for the user to paste as root. */
      lineToPaste?: string;
    };

export interface EditMachinesParams {
  file: string;
  edit: MachinesEdit;
  /** The file's text the edit was prepared against: refused if it changed since. */
  expectedText?: string;
}

/** A machines entry made by the server's formatter, or why the machine cannot be written as one. */
export type FormatMachineLineResult = { ok: true; line: string } | { ok: false; message: string };

export interface ProbeBuilderParams {
  /** A machines entry (at least the URI; e.g. "ssh://b5 - /root/.ssh/id_ed25519"). */
  entry: string;
}

export interface StartBuildParams {
  /** The document whose attributes to build… */
  uri?: string;
  attrPaths?: string[][];
  /** …or derivations directly. */
  drvPaths?: string[];
  /** `--max-jobs 0`: only builders build. */
  remoteOnly?: boolean;
  /** Only these builders (default: every configured builder). */
  builderIds?: string[];
}

// ---------------------------------------------------------------------------------------------
// Builds

export type DrvState = 'queued' | 'building' | 'built' | 'failed' | 'substituted' | 'cancelled';

export interface DrvSnapshot {
  drvPath: string;
  name: string;
  state: DrvState;
  /** '' = this machine, else the store URI Nix built it on. */
  machine: string;
  phase?: string;
  /** ms since the epoch (the model's clock). */
  startedAt?: number;
  finishedAt?: number;
  lastLogLine?: string;
  /** Every log line seen, kept or not. */
  logLineCount: number;
  /** The kept tail of the log (at most maxLogBytes), newest last. */
  log: string[];
  /** Lines dropped from the front of `log`. */
  logDropped: number;
  /** Nix's message when it failed. */
  failure?: string;
}

export interface TransferSnapshot {
  kind: 'copy' | 'substitute';
  path: string;
  name: string;
  /** Store URI it comes from ('' or "local" = this machine). */
  from: string;
  to: string;
  state: 'running' | 'done';
  doneBytes?: number;
  expectedBytes?: number;
  startedAt: number;
  finishedAt?: number;
}

/** Counts of builds or of copied paths, as Nix reports them. */
export interface ProgressCounts {
  done: number;
  expected: number;
  running: number;
  failed: number;
}

export interface BuildSnapshot {
  derivations: DrvSnapshot[];
  transfers: TransferSnapshot[];
  /** Builds: [done, expected, running, failed] as Nix counts them. */
  progress: ProgressCounts;
  /** Paths copied/substituted: as Nix counts them. */
  copyProgress: ProgressCounts;
  /** Nix's own messages (errors and warnings, ANSI stripped), the last 50 (when partial: those new since the previous change). */
  messages: string[];
  /** Events applied so far. */
  events: number;
  /**
   * True when `derivations` and `transfers` hold only those that changed since the previous
   * `changes()` (the client merges them by drv path / transfer path); absent for a whole snapshot.
   */
  partial?: boolean;
}

/** Where Nix would build one derivation of the plan. */
export interface Placement {
  /** 'unknown': its .drv could not be read. */
  verdict: 'local' | 'remote' | 'wait' | 'none' | 'unknown';
  /** The machine's name ('this machine' or a builder's), when Nix would start it somewhere. */
  machine?: string;
  /** One line: "builds on b2: lowest load ÷ speed 0 …". */
  summary: string;
  /** When nothing can build it: the cause and the fix, as the diagnostics say them. */
  problem?: string;
}

export interface PlannedDerivation extends Placement {
  drvPath: string;
  name: string;
  system: string;
  requiredSystemFeatures: string[];
  /** Asked for (else a dependency). */
  target: boolean;
}

export interface BuildInfo {
  buildId: string;
  uri?: string;
  /** What was asked for, with the attribute's line in the document. */
  targets: Array<{ attrPath: string[]; drvPath: string; line?: number }>;
  /** The dry run before the build: what will be built and fetched. */
  plan: { summary: string; toBuild: string[]; toFetch: string[]; problems: string[] };
  status: 'running' | 'built' | 'failed' | 'cancelled';
  /** Per-derivation state (logs left out: ask buildLog); whole, never partial. */
  snapshot?: BuildSnapshot;
  /** Classified problems when it failed, with cause and fix. */
  problems?: string[];
  /** Output paths Nix printed, once it built. */
  outPaths?: string[];
}

/**
 * A running build's update, between the BuildInfo sent when it starts and the one sent when it
 * ends: only the derivations and transfers that changed since the previous notification of this
 * build (`snapshot.partial`; merge them by drv path / transfer path) and the messages new since.
 */
export interface BuildUpdate {
  buildId: string;
  status: 'running';
  snapshot: BuildSnapshot;
}

/** A buildProgress notification: a whole BuildInfo (at the start and the end) or an update. */
export type BuildProgress = BuildInfo | BuildUpdate;

export const isBuildUpdate = (p: BuildProgress): p is BuildUpdate => !('plan' in p);

export interface FetchSource {
  path: string;
  /** The substituter that has it (the first in Nix's order), when one of those asked has it. */
  substituter?: string;
  downloadBytes?: number;
  narBytes?: number;
}

export interface SubstituterSummary {
  substituter: string;
  paths: number;
  downloadBytes: number;
  narBytes: number;
}

export interface SubstituterReport {
  sources: FetchSource[];
  /** Per substituter that provides something, in Nix's order. */
  bySubstituter: SubstituterSummary[];
  /** Substituters not asked (not a binary cache we can read) or that could not be reached, with why. */
  unchecked: Array<{ substituter: string; reason: string }>;
}

export interface BuildPlanInfo {
  targets: Array<{ attrPath: string[]; drvPath: string; line?: number; willBuild: boolean; where: string }>;
  summary: string;
  toBuild: string[];
  toFetch: string[];
  downloadMiB?: number;
  unpackedMiB?: number;
  /** Every derivation that will be built (targets and dependencies) and where Nix would build it. */
  builds: PlannedDerivation[];
  /** Which substituter each path to fetch comes from, with sizes. */
  fetch: SubstituterReport;
  /** The plan for people, a line each (builds grouped by machine, fetches by substituter). */
  details: string[];
  /** Why the dry run failed, with cause and fix. */
  problems: string[];
}

// ---------------------------------------------------------------------------------------------
// The builder doctor

export type CheckStatus = 'ok' | 'warning' | 'error' | 'skipped';

export type CheckId = 'ssh-config' | 'tcp' | 'host-key' | 'ssh-auth' | 'remote-nix' | 'nix-version' | 'system' | 'features' | 'trust' | 'load' | 'disk';

export interface CheckResult<Id extends string = CheckId> {
  id: Id;
  status: CheckStatus;
  /** One line. */
  summary: string;
  /** Why, in plain words (for warnings and errors; for skipped checks: why not checked). */
  cause?: string;
  /** What to do. */
  fix?: string;
  /** Extra facts worth showing (e.g. which file matched). */
  detail?: string;
  /** `local-daemon` only: the local nix-daemon ignores the builders this user passes (`--builders`). */
  ignoresBuilders?: boolean;
  durationMs: number;
}

/** What the checks learnt about the builder, for display. */
export interface BuilderFacts {
  hostName?: string;
  port?: number;
  user?: string;
  groups?: string[];
  nixVersion?: string;
  /** The program found for Nix (e.g. /usr/bin/nix-store). */
  remoteProgram?: string;
  system?: string;
  extraPlatforms?: string[];
  systemFeatures?: string[];
  trusted?: boolean;
  /** 1, 5 and 15 minute load averages. */
  load?: [number, number, number];
  cores?: number;
  diskAvailableKiB?: number;
  diskTotalKiB?: number;
  uname?: string;
}

export interface BuilderHealth {
  builderId: string;
  name: string;
  uri: string;
  /** The worst status of the checks (skipped counts only when everything was skipped). */
  status: CheckStatus;
  checks: CheckResult[];
  /** The key the builder presented, when it was not (or not correctly) pinned: the UI can offer to pin it. */
  presentedHostKey?: PresentedHostKey;
  facts: BuilderFacts;
  durationMs: number;
}

export interface DoctorReport {
  local: CheckResult<'local-daemon'>;
  builders: BuilderHealth[];
  durationMs: number;
}

/** A host key as OpenSSH's log names it (the OpenSSH fallback sees no more than this). */
export interface HostKeyFingerprint {
  type: string;
  /** `SHA256:…`, as ssh prints it. */
  fingerprint: string;
}

/** A host key as presented by a server, in every form the UI needs to show and pin it. */
export interface PresentedHostKey extends HostKeyFingerprint {
  /** `ssh-ed25519 AAAA…`. */
  publicKeyLine: string;
  /** What to put in machines column 8. */
  machinesColumn: string;
  /** A known_hosts line for the name ssh looks up. */
  knownHostsLine: string;
}

/**
 * The answer to a test build: what the client shows. The build's log and command stay in the
 * server's log (a failed build's stderr can be megabytes).
 */
export interface TestBuildResult {
  builderId: string;
  name: string;
  uri: string;
  status: 'ok' | 'error' | 'timed-out' | 'cancelled';
  summary: string;
  cause?: string;
  fix?: string;
  /** Store URI of the machine the build ran on as Nix reported it ("" = this machine). */
  ranOn?: string;
  ranOnThisBuilder: boolean;
  system: string;
  drvPath?: string;
  outPath?: string;
  /** First line of /etc/nix/nix.conf of the machine that built it. */
  marker?: string;
  /** The UUID the build read on the builder. */
  buildUuid?: string;
  /** The salt that made this derivation new. */
  salt: string;
  durationMs: number;
  /** The kind of the classified problem when the build failed ("cannot-connect", …). */
  problemKind?: string;
}

export const Requests = {
  /** Nix version and whether it works. */
  status: new RequestType0<NixStatus, void>('nixBuilders/status'),
  /** Every configured builder, the local machine and configuration problems. */
  listBuilders: new RequestType0<BuildersListing, void>('nixBuilders/listBuilders'),
  /** The derivations of an open document (evaluating it now if needed). */
  derivations: new RequestType<{ uri: string }, DocumentDerivations, void>('nixBuilders/derivations'),
  /** Run the health doctor on some builders (all when `builderIds` is absent). Cancellable. */
  checkBuilders: new RequestType<{ builderIds?: string[] }, DoctorReport, void>('nixBuilders/checkBuilders'),
  /** Build a fresh salted derivation on exactly one builder. Cancellable. */
  testBuild: new RequestType<{ builderId: string }, TestBuildResult, void>('nixBuilders/testBuild'),
  /** Add, replace or remove one machines-file entry, atomically and with a backup. */
  editMachines: new RequestType<EditMachinesParams, EditResult, void>('nixBuilders/editMachines'),
  /** One machines entry for a machine, or why it cannot be written as one (e.g. a key path with a blank). */
  formatMachineLine: new RequestType<{ machine: Machine }, FormatMachineLineResult, void>('nixBuilders/formatMachineLine'),
  /** Run the doctor on a builder that is not configured yet (to suggest systems, features, host key). */
  probeBuilder: new RequestType<ProbeBuilderParams, BuilderHealth, void>('nixBuilders/probeBuilder'),
  /** Plan and start a build; progress arrives as buildProgress notifications. */
  startBuild: new RequestType<StartBuildParams, BuildInfo, void>('nixBuilders/startBuild'),
  /** The plan alone (a dry run), with where Nix would build each asked-for derivation. */
  planBuild: new RequestType<StartBuildParams, BuildPlanInfo, void>('nixBuilders/planBuild'),
  /** Stop a running build and its whole process tree (locally and the remote build). */
  cancelBuild: new RequestType<{ buildId: string }, boolean, void>('nixBuilders/cancelBuild'),
  /** The kept log of one derivation of a finished build. */
  buildLog: new RequestType<{ buildId: string; drvPath: string }, string[], void>('nixBuilders/buildLog'),
  /** Which machine Nix would pick now for a system and features, or the derivation at a position. */
  schedulePreview: new RequestType<SchedulePreviewParams, SchedulePreviewResult, void>('nixBuilders/schedulePreview'),
} as const;

// ---------------------------------------------------------------------------------------------
// LSP commands (`workspace/executeCommand`), advertised in `executeCommandProvider.commands`: what
// every code lens and code action runs, from any editor. Their ids are the server's own
// (`nixBuilders.server.…`), apart from the VS Code extension's commands: vscode-languageclient
// registers every advertised id as a VS Code command, and the extension maps the lenses' ids to
// its own richer commands (ServerCommands → extension/commands.ts).

export const ServerCommands = {
  /** Arguments `[uri, attrPath?]` (every derivation of the file without attrPath): BuildCommandResult. */
  build: 'nixBuilders.server.build',
  /** `[uri, attrPath?]`: the same with `--max-jobs 0`. */
  buildRemotely: 'nixBuilders.server.buildRemotely',
  /** `[uri, attrPath?, builderIds?]`: only on these builders; without builderIds the server asks which one (window/showMessageRequest). */
  buildOn: 'nixBuilders.server.buildOn',
  /** `[uri, attrPath?]`: the plan alone (a dry run): BuildPlanInfo. */
  plan: 'nixBuilders.server.plan',
  /** `[BuildExpressionArgs]`: evaluate any Nix expression and build its derivations: BuildCommandResult. */
  buildExpression: 'nixBuilders.server.buildExpression',
  /** `[BuildExpressionArgs]`: the plan of an expression's derivations: BuildPlanInfo. */
  planExpression: 'nixBuilders.server.planExpression',
  /** `[uri, line]`: which machine Nix would pick for the derivation at or above the line, shown (window/showMessage) and answered: SchedulePreviewResult. */
  whichBuilder: 'nixBuilders.server.whichBuilder',
  /** `[AddBuilderArgs]`: add a machines entry to a machines file: EditResult; without an entry, says how (window/showMessage). */
  addBuilder: 'nixBuilders.server.addBuilder',
  /**
   * `[FixFlakeArgs]`: run `nix flake lock` / `nix flake archive` / `nix flake lock --update-input X`
   * in a flake's folder (the quick fix of a flake input's problem), after asking the user
   * (window/showMessageRequest): FixFlakeResult.
   */
  fixFlake: 'nixBuilders.server.fixFlake',
  /** `[DiffDerivationsArgs]`: why two derivations differ, their first differing inputs recursively (what nix-diff shows): DerivationDiff. */
  diffDerivations: 'nixBuilders.server.diffDerivations',
  /**
   * `[CheckReproducibilityArgs]`: rebuild a derivation and compare every output with the first
   * build: CheckReproducibilityResult. Without the `server.` of the others: issue 11 names this id
   * for every editor (`workspace/executeCommand nixBuilders.checkReproducibility`), so it is kept.
   */
  checkReproducibility: 'nixBuilders.checkReproducibility',
  /** `[CompareMachinesArgs]`: build one derivation independently on several machines and compare their outputs' NAR hashes, and what substituters serve: CompareMachinesResult. */
  compareMachines: 'nixBuilders.server.compareMachines',
  /** `[DiffoscopeArgs]`: diffoscope's report on one differing output of a check the server answered: DiffoscopeResult. */
  diffoscope: 'nixBuilders.server.diffoscope',
  /** `[SetUpNixConfArgs]`: the diff-hook + run-diff-hook (and `repeat` before 2.13) lines and hook script: NixConfSetUpResult. */
  setUpDiffHook: 'nixBuilders.server.setUpDiffHook',
  /** `[PushToCacheArgs]`: sign and push an attribute's closure to a store, then verify it: PushToCacheResult. Issue 12 names this id for every editor. */
  pushToCache: 'nixBuilders.pushToCache',
  /** `[VerifyCacheArgs]`: what a cache already holds of an attribute's closure (or of paths): signed by a trusted key, substitutable: CacheVerification. */
  verifyCache: 'nixBuilders.server.verifyCache',
  /** `[GenerateKeyArgs]`: a signing key pair with the installed Nix's command; the secret file 0600: GeneratedKey (never the secret). */
  generateKey: 'nixBuilders.server.generateKey',
  /** `[]`: the substituters in priority order, push targets, signing keys, the push queue: CachesInfo. */
  listCaches: 'nixBuilders.server.listCaches',
  /** `[SetUpNixConfArgs]`: the queueing post-build-hook script and its nix.conf line: NixConfSetUpResult. */
  setUpPostBuildHook: 'nixBuilders.server.setUpPostBuildHook',
} as const;

// ---- Issue 11 (check across machines, diffoscope, diff-hook) ----

export interface CompareMachinesArgs {
  uri: string;
  attribute: string | string[];
  /** Builders' names or store URIs; 'local' (or absent, as one of them) is this machine. At least two sides with `substituters`. */
  machines: string[];
  /** Also ask the configured substituters for the outputs' narinfo (default true). */
  substituters?: boolean;
}

export interface MachineOutputHash {
  /** 'this machine', a builder's name, or a substituter's URI. */
  machine: string;
  source: 'built' | 'substituter';
  /** `sha256:<nix32>` as Nix prints it; absent when it could not be had (`reason`). */
  narHash?: string;
  reason?: string;
  /** `built`: the output was in that machine's store already, so it was not built for this comparison. */
  note?: string;
}

export interface CompareMachinesResult {
  drvPath: string;
  status: 'same' | 'differs' | 'not-checked';
  /** "built the same on b1 and here; the cache's copy differs". */
  summary: string;
  outputs: Array<{
    name: string;
    path: string;
    status: 'same' | 'differs' | 'not-checked';
    hashes: MachineOutputHash[];
    /** Where two builds differ: what differs from the first build (`compared[0]`) to the other (`compared[1]`), as a check's files. */
    files?: FileDifference[];
    /** The two machines whose trees `files` compares (of `hashes`' built ones). */
    compared?: [first: string, other: string];
    /** The differing files of the first build when it is a builder's (this machine's is at `path`), at their paths relative to the output. */
    firstCopy?: string;
    /** The differing files of the other build when it is a builder's (this machine's is at `path`), at their paths relative to the output. */
    otherCopy?: string;
  }>;
}

export interface DiffoscopeArgs {
  /** The check's derivation and the output's name, as in a CheckReproducibilityResult the server answered. */
  drvPath: string;
  output: string;
  /** Ignore timestamps and ordering noise (default: the nixBuilders setting). */
  ignoreNoise?: boolean;
}

export interface DiffoscopeResult {
  status: 'report' | 'not-installed' | 'failed';
  /** A text report file the editor can open. */
  reportFile?: string;
  /** How to install it (not-installed) or why it failed. */
  message?: string;
}

export interface SetUpNixConfArgs {
  /** The nix.conf to edit (default: the user's, or the system one with `scope: 'system'`). */
  nixConf?: string;
  /** Show the lines only, write nothing. */
  dryRun?: boolean;
  /** post-build-hook: where the queue is (default: the server's). */
  queueDir?: string;
  /** Which nix.conf when `nixConf` is not given: the user's (default) or the system one (what the daemon reads). */
  scope?: 'user' | 'system';
}

export interface NixConfSetUpResult {
  /** 'written': the file was edited (backup kept); 'paste': not writable here, the lines are for the user to paste. */
  status: 'written' | 'paste' | 'failed';
  nixConf: string;
  backup?: string;
  /** The lines added or changed, as they stand in the file. */
  lines: string[];
  /** The hook script the server wrote (0755). */
  script?: string;
  /** What else the user must do: restart the daemon, be a trusted user, … */
  notes: string[];
  message?: string;
  /** post-build-hook: the systemd user unit of the standalone push worker, for when no editor runs (shown, not installed). */
  systemdUnit?: { file: string; text: string };
}

// ---- Issue 12 (push to cache) ----

export interface PushToCacheArgs {
  uri: string;
  attribute: string | string[];
  /** The target store URI: file://…, ssh://…, ssh-ng://…, s3://bucket?region=…&endpoint=…&profile=… */
  to: string;
  /** A secret key file to sign with (default: nixBuilders.cache.signingKeyFile, then secret-key-files). */
  keyFile?: string;
}

export interface CacheVerification {
  status: 'verified' | 'problems' | 'not-verified';
  /** Paths checked, and per path what is wrong. */
  checked: number;
  problems: Array<{ path?: string; problem: 'unsigned' | 'untrusted-key' | 'missing' | 'not-substitutable' | 'other'; message: string; fix?: string }>;
  /** The public keys the check trusted (the consumers' trusted-public-keys). */
  trustedKeys: string[];
  /** A fresh temporary store substituted the top path from the target. */
  substituted?: boolean;
  summary: string;
}

export interface PushToCacheResult {
  status: 'pushed' | 'failed' | 'cancelled' | 'not-started';
  /** True only when pushed and the verification found it signed by a trusted key and substitutable (verification.status 'verified'): 'pushed' alone says the copy ended. */
  verified: boolean;
  to: string;
  /** "Pushed 12 paths (30 already in the cache) to file:///…, signed by cache-1". */
  summary: string;
  pushed: string[];
  skipped: Array<{ path: string; why: string }>;
  signed: { status: 'signed' | 'unsigned' | 'already-signed'; keyName?: string; message?: string };
  verification?: CacheVerification;
  problems: string[];
  /** Said before pushing: what the target will refuse (an untrusted ssh user needs signatures it trusts), an unsigned push. */
  notes?: string[];
  /** The attribute's outputs were not valid: it was built first. */
  builtFirst?: boolean;
}

export interface VerifyCacheArgs {
  /** The store to check. */
  store: string;
  /** What to check: an attribute's closure, or paths. */
  uri?: string;
  attribute?: string | string[];
  paths?: string[];
  /** Keys the consumers trust (default: trusted-public-keys of the effective configuration, plus the extension's keys). */
  trustedPublicKeys?: string[];
}

/** A key name the server takes: what Nix accepts, and that no command line can read as an option (`cache.example.org-1`). */
export const SIGNING_KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

export interface GenerateKeyArgs {
  /** The key's name (`cache.example.org-1`): SIGNING_KEY_NAME. */
  keyName: string;
  /** Where to write the secret key (0600; refused if it exists). */
  secretKeyFile: string;
}

export interface GeneratedKey {
  keyName: string;
  secretKeyFile: string;
  /** `name:base64`. */
  publicKey: string;
  /** The public key written beside the secret (`<secret>.pub`). */
  publicKeyFile: string;
}

export interface CacheInfo {
  uri: string;
  /** Position in Nix's priority order (lower first). */
  priority?: number;
  origin: 'substituters' | 'push-target';
  reachable: 'yes' | 'no' | 'unknown';
  /** nix-cache-info's fields (StoreDir, WantMassQuery, Priority). */
  cacheInfo?: Record<string, string>;
  /** Whether a key in trusted-public-keys matches the cache's (from the cache's signatures, or a key configured for it); undefined: not known. */
  keyTrusted?: boolean;
  message?: string;
}

export interface PushQueueStatus {
  dir: string;
  depth: number;
  pushed: number;
  lastError?: string;
  /** Whether a worker is running (in this server, or standalone). */
  worker: 'server' | 'standalone' | 'none';
}

export interface CachesInfo {
  caches: CacheInfo[];
  keys: Array<{ secretKeyFile: string; origin: 'secret-key-files' | 'nixBuilders'; keyName?: string; publicKey?: string; problem?: string }>;
  trustedPublicKeys: string[];
  queue?: PushQueueStatus;
  /** Copy-ready consumer configuration for the first push target. */
  consumerSnippets?: { nixConf: string; flakeNixConfig: string; nixos: string };
  /** Why the substituters and keys of the Nix configuration could not be read (Nix missing, …). */
  problem?: string;
}

/**
 * One side of a derivation comparison: a .drv path, or a derivation attribute of a file (evaluated
 * afresh), with `revision` as the file is in that git commit of its repository ('HEAD': the last
 * commit; the whole repository's tree at that commit, so imports are the commit's too).
 */
export type DerivationSide = string | { uri: string; attribute: string[] | string; revision?: 'HEAD' | (string & {}) };

export interface DiffDerivationsArgs {
  a: DerivationSide;
  b: DerivationSide;
}

/**
 * One difference between two derivations. `a`/`b`: the value on each side (absent: not on that
 * side, so `a` alone = removed, `b` alone = added). Paths of inputs whose hashes differ make many
 * values differ: `onlyStorePaths` says a value differs in store path hashes alone.
 */
export interface DerivationDifference {
  field: 'output' | 'outputHashAlgo' | 'outputHash' | 'system' | 'builder' | 'arg' | 'env' | 'inputSource' | 'inputDerivation' | 'inputOutputs';
  /** The output's, variable's, input's name, or the argument's index. */
  name?: string;
  a?: string;
  b?: string;
  onlyStorePaths?: boolean;
  /** Set when the values were shortened: how long they were and where they first differ. */
  note?: string;
}

/** Why two derivations differ: their own differences, and the pairs of same-named inputs that differ, compared the same way. */
export interface DerivationDiff {
  drvPath: [a: string, b: string];
  name: string;
  /** Empty when they are the same derivation. */
  differences: DerivationDifference[];
  inputs: Array<{ name: string; diff: DerivationDiff }>;
  /** Why the comparison stopped here: a .drv that could not be read, the depth bound, a pair compared above. */
  note?: string;
}

/** A flake input's fix: the server makes the command line (the client never sends one). */
export interface FixFlakeArgs {
  /** The flake's folder (holding flake.nix). */
  dir: string;
  action: 'lock' | 'archive' | 'update-input';
  /** For `update-input`. */
  input?: string;
}

export interface FixFlakeResult {
  status: 'ok' | 'failed' | 'not-started';
  /** The command as run: `nix flake lock`. */
  command: string;
  /** What went wrong (Nix's last lines), or that the user declined. */
  message?: string;
}

export interface CheckReproducibilityArgs {
  /** The document the attribute is in. */
  uri: string;
  /** The derivation's attribute path: dotted ("packages.x86_64-linux.hello") or a list. */
  attribute: string | string[];
  /** A builder's name or store URI; absent: this machine. */
  builder?: string;
  /** How many rebuilds (default 1). */
  rounds?: number;
}

/** One side of a differing file. A NAR keeps only these. */
export interface FileSide {
  type: 'file' | 'directory' | 'symlink';
  size?: number;
  sha256?: string;
  executable?: boolean;
  target?: string;
}

export interface FileDifference {
  /** Relative to the output ('.': the output itself). */
  path: string;
  kind: 'changed' | 'only-in-first' | 'only-in-rebuild' | 'mode' | 'symlink-target' | 'type';
  first?: FileSide;
  rebuild?: FileSide;
  /** For a changed file: whether both sides are text (UTF-8 without NUL): a diff editor shows it. */
  text?: boolean;
  /** For a changed binary file: the first differing byte's offset and up to 16 bytes of each side from the 16-aligned offset before it, as hex. */
  firstDifference?: { offset: number; first: string; rebuild: string };
}

export interface OutputCheck {
  name: string;
  path: string;
  status: 'reproducible' | 'differs' | 'not-checked';
  /** Why it was not checked (the first build failed, the rebuild failed, timed out, …). */
  reason?: string;
  /** For `differs`: what differs. */
  files?: FileDifference[];
  /**
   * For `differs`: the differing files of the rebuild (Nix's `.check` path is not a GC root), each
   * at its path relative to the output (`files`' paths; nothing that is the same is kept), kept while
   * the answer is among the server's newest; removed at the server's exit.
   */
  rebuildCopy?: string;
  /** For `differs` when the first build is not readable here at `path` (a builder's store): the differing files of the first build, at their paths relative to the output. */
  firstCopy?: string;
}

export interface CheckReproducibilityResult {
  drvPath: string;
  /** Where it was rebuilt: 'this machine' (or the builder asked for). */
  machine: string;
  /** The rebuilds run: fewer than asked once every output differs, or when a rebuild failed. */
  rounds: number;
  /** The outputs were not valid: built first (then rebuilt to compare). */
  builtFirst: boolean;
  /** 'reproducible': every output; 'differs': at least one; 'not-checked': none could be compared. */
  status: 'reproducible' | 'differs' | 'not-checked';
  summary: string;
  outputs: OutputCheck[];
}

export type ServerCommandId = (typeof ServerCommands)[keyof typeof ServerCommands];

/** The arguments of the code lenses' build commands, as sent in the lenses. */
export type BuildCommandArgs = [uri: string, attrPath?: string[], builderIds?: string[]];

export interface BuildExpressionArgs {
  /** Any Nix expression that evaluates to a derivation, or a list or attribute set of derivations. Given to Nix as data (its stdin). */
  expression: string;
  /** The folder relative paths in the expression start from (default: the server's working folder). */
  directory?: string;
  /** Machines text (the `--builders` format, entries on lines or separated by `;`): only these builders; default: the configured ones. */
  builders?: string;
  /** `--max-jobs 0`. */
  remoteOnly?: boolean;
}

export interface AddBuilderArgs {
  /** A machines entry (`ssh://host aarch64-linux - 4`). */
  entry?: string;
  /** The machines file to add it to (default: the first of nixBuilders.machinesFiles). */
  file?: string;
  /** What the entry is for, for the message when there is no entry ("aarch64-linux"). */
  system?: string;
}

/** What a build command did, in one JSON answer. */
export interface BuildCommandResult {
  /** 'not-started': nothing was chosen (Build on… dismissed) or nothing to build; `problems` says why. */
  status: 'built' | 'failed' | 'cancelled' | 'not-started';
  buildId?: string;
  /** The plan's summary ("2 derivations will be built"). */
  summary: string;
  targets: Array<{ attrPath: string[]; drvPath: string }>;
  /** Every derivation of the build with its end state and the machine it ran on ('' = this machine). */
  derivations: Array<{ drvPath: string; name: string; state: DrvState; machine: string; failure?: string }>;
  /** Output paths, once built. */
  outputs: string[];
  /** Why it failed, with cause and fix. */
  problems: string[];
}

export interface WorkspaceTrustParams {
  trusted: boolean;
}

export const Notifications = {
  /** Server -> client: the builders or the local configuration changed; list them again. */
  buildersChanged: new NotificationType0('nixBuilders/buildersChanged'),
  /** Server -> client: one builder's health is known (while a check runs, as each finishes). */
  builderHealth: new NotificationType<BuilderHealth>('nixBuilders/builderHealth'),
  /** Server -> client: a build's state when it starts and ends, and its changes while it runs (throttled). */
  buildProgress: new NotificationType<BuildProgress>('nixBuilders/buildProgress'),
  /** Client -> server: workspace trust was granted. */
  workspaceTrust: new NotificationType<WorkspaceTrustParams>('nixBuilders/workspaceTrust'),
  /** Server -> client: the caches, keys or push queue changed; list them again. */
  cachesChanged: new NotificationType0('nixBuilders/cachesChanged'),
  /** Server -> client: a check answered (so views and diagnostics can show it). */
  checkFinished: new NotificationType<{ uri: string; attribute: string[]; result: CheckReproducibilityResult }>('nixBuilders/checkFinished'),
} as const;
