// Every custom request and notification between the extension and the language server, typed.
// No string method names anywhere else: both sides import these.
import { NotificationType, NotificationType0, RequestType, RequestType0 } from 'vscode-languageserver-protocol';
import type { Machine } from './nix/machines';
import type { BuilderHealth, DoctorReport } from './builders/doctor';
import type { TestBuildResult } from './builders/testBuild';

export type { BuilderHealth, CheckResult, CheckStatus, DoctorReport } from './builders/doctor';
export type { TestBuildResult } from './builders/testBuild';
export type { SchedulePreview, ScheduleCandidate } from './builders/schedule';
import type { SchedulePreview } from './builders/schedule';
import type { EditResult, MachinesEdit } from './builders/machinesEdit';
import type { WalkedDerivation } from './eval/walker';
import type { BuildSnapshot } from './builds/model';
import type { PlannedDerivation } from './builds/plan';
import type { SubstituterReport } from './builds/substituters';
export type { PlannedDerivation, Placement } from './builds/plan';
export type { SubstituterReport, SubstituterSummary, FetchSource } from './builds/substituters';
export type { BuildSnapshot, DrvSnapshot, TransferSnapshot } from './builds/model';
export type { EditResult, MachinesEdit } from './builders/machinesEdit';

/** Settings the extension sends (section `nixBuilders` of VS Code's settings). */
export interface EvaluationSettings {
  /** How deep nested attribute sets are searched for derivations. */
  depth: number;
  timeoutSeconds: number;
  allowImportFromDerivation: boolean;
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

export interface ServerSettings {
  nixBinDir: string;
  env: Record<string, string>;
  machinesFiles: string[];
  builders: string[];
  evaluation: EvaluationSettings;
  build: BuildSettings;
}

export const DEFAULT_SETTINGS: ServerSettings = {
  nixBinDir: '',
  env: {},
  machinesFiles: [],
  builders: [],
  evaluation: { depth: 3, timeoutSeconds: 30, allowImportFromDerivation: false },
  build: { remoteOnly: false },
};

/** `initializationOptions` of the initialize request. Any LSP client may omit them. */
export interface InitializationOptions {
  settings?: Partial<ServerSettings>;
  /** VS Code workspace trust. A standalone client that says nothing is trusted (it chose to run us). */
  workspaceTrusted?: boolean;
}

export interface BuilderSource {
  /** Human label: "/etc/nix/machines", "nix.conf builders", "machines file …", "setting nixBuilders.builders". */
  label: string;
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

export interface DerivationInfo extends Omit<WalkedDerivation, 'path' | 'pos'> {
  attrPath: string[];
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
} as const;
