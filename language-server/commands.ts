// The LSP commands (`workspace/executeCommand`): what the code lenses and code actions run, from any
// editor. Builds report work-done progress (`$/progress` on the client's `workDoneToken`, or on one
// the server creates with `window/workDoneProgress/create`), are cancelled by
// `window/workDoneProgress/cancel` or by cancelling the request (the build's whole process tree
// ends), and answer with a JSON result that says what happened. A choice (Build on…: which builder)
// is asked through `window/showMessageRequest`.
import {
  ErrorCodes,
  LSPErrorCodes,
  MessageType,
  ResponseError,
  ShowMessageNotification,
  WorkDoneProgress,
  WorkDoneProgressCancelNotification,
  WorkDoneProgressCreateRequest,
  type CancellationToken,
  type ClientCapabilities,
  type Connection,
  type ExecuteCommandParams,
  type ProgressToken,
} from 'vscode-languageserver/node';
import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import * as path from 'node:path';
import { adHocBuilder } from './builders/collect';
import { parseMachines } from './nix/machines';
import type { Nix } from './nix/nix';
import { describeResult } from './nix/runner';
import { isDrvPath } from './nix/storePath';
import { flakeFixArgs, flakeFixText } from './eval/flake';
import { diffStoreDerivations, drvPathAtRevision } from './check/drvDiff';
import { CheckCopies, checkDerivation } from './check/check';
import { CheckAnswers, diffoscopeArgsOf, runDiffoscope } from './check/diffoscope';
import { checkOnBuilder, findBuilder } from './check/remoteCheck';
import { runCompareMachines } from './check/compareMachines';
import { pushArgs, pushToCacheCommand, type PushServer } from './cache/push';
import { verifyArgs, verifyCacheCommand } from './cache/verify';
import { setUpDiffHook } from './check/diffHook';
import { setUpPostBuildHook } from './cache/hookScript';
import {
  Notifications,
  ServerCommands,
  isBuildUpdate,
  type AddBuilderArgs,
  type BuildCommandResult,
  type BuildExpressionArgs,
  type BuilderInfo,
  type BuildInfo,
  type BuildPlanInfo,
  type BuildProgress,
  type BuildersListing,
  type DerivationDiff,
  type DerivationSide,
  type CheckReproducibilityArgs,
  type CheckReproducibilityResult,
  type DerivationInfo,
  type EditResult,
  type FixFlakeArgs,
  type FixFlakeResult,
  type CachesInfo,
  type GeneratedKey,
  type GenerateKeyArgs,
  type MachinesEdit,
  type SchedulePreviewParams,
  type SchedulePreviewResult,
  type ServerSettings,
  type SetUpNixConfArgs,
  type StartBuildParams,
} from './protocol';

/** What the commands need of the server. */
export interface CommandServer {
  /** The derivations a build request names (the file evaluated afresh); refused when the workspace is not trusted. */
  buildTargets(p: StartBuildParams): Promise<DerivationInfo[]>;
  startBuild(p: StartBuildParams, o: { builders?: BuilderInfo[]; signal: AbortSignal; onProgress: (p: BuildProgress) => void }): Promise<{ info: BuildInfo; ended: Promise<BuildInfo> }>;
  planBuild(p: StartBuildParams, o: { builders?: BuilderInfo[]; signal: AbortSignal }): Promise<BuildPlanInfo>;
  listBuilders(): Promise<BuildersListing>;
  schedulePreview(p: SchedulePreviewParams, signal: AbortSignal): Promise<SchedulePreviewResult>;
  editMachines(file: string, edit: MachinesEdit): Promise<EditResult>;
  /** The machines files the user set (nixBuilders.machinesFiles). */
  machinesFiles(): string[];
  /** Refused when the workspace is not trusted. */
  checkTrusted(): void;
  nix: Nix;
  settings(): ServerSettings;
  evaluationTimeoutMs(): number;
  allowImportFromDerivation(): boolean;
  /** nixBuilders.check.diffoscopeIgnoreNoise. */
  diffoscopeIgnoreNoise(): boolean;
  /** A check answered: its diagnostic on the attribute (or none when reproducible). */
  checkFinished(uri: string, attrPath: string[], result: CheckReproducibilityResult): void;
  /** A signing key pair (cache/keys.ts); the caches and keys then changed. */
  generateKey(args: GenerateKeyArgs, signal: AbortSignal): Promise<GeneratedKey>;
  listCaches(signal: AbortSignal): Promise<CachesInfo>;
  /** The signing key setting, the staging folder of s3:// pushes, the upload of a staged cache. */
  cacheSettings: PushServer['cacheSettings'];
}

const invalid = (message: string) => new ResponseError(ErrorCodes.InvalidParams, message);

/** `[uri, attrPath?, builderIds?]`, checked. */
function buildArgs(args: unknown[] | undefined, command: string): { uri: string; attrPath?: string[]; builderIds?: string[] } {
  const [uri, attrPath, builderIds] = args ?? [];
  const strings = (x: unknown) => Array.isArray(x) && x.every((s) => typeof s === 'string');
  if (typeof uri !== 'string') throw invalid(`${command} takes [uri, attrPath?, …]: the first argument must be the document's URI.`);
  if (attrPath !== undefined && attrPath !== null && !strings(attrPath)) throw invalid(`${command}: the attribute path must be a list of strings, e.g. ["packages", "x86_64-linux", "hello"].`);
  if (builderIds !== undefined && builderIds !== null && !strings(builderIds)) throw invalid(`${command}: the builder ids must be a list of strings (the ids of nixBuilders/listBuilders).`);
  return { uri, ...(strings(attrPath) ? { attrPath: attrPath as string[] } : {}), ...(strings(builderIds) ? { builderIds: builderIds as string[] } : {}) };
}

function expressionArgs(args: unknown[] | undefined, command: string): BuildExpressionArgs {
  const a = args?.[0] as Partial<BuildExpressionArgs> | undefined;
  if (!a || typeof a !== 'object' || typeof a.expression !== 'string' || a.expression.trim() === '') {
    throw invalid(`${command} takes [{ expression, builders?, directory?, remoteOnly? }]: give the Nix expression to build as "expression".`);
  }
  for (const k of ['builders', 'directory'] as const) if (a[k] !== undefined && typeof a[k] !== 'string') throw invalid(`${command}: "${k}" must be a string.`);
  return a as BuildExpressionArgs;
}

/** `[{ uri, attribute, builder?, rounds? }]`, checked; the attribute as a list. */
function checkArgs(arg: unknown): { uri: string; attrPath: string[]; builder?: string; rounds: number } {
  const a = arg as Partial<CheckReproducibilityArgs> | undefined;
  const usage = `${ServerCommands.checkReproducibility} takes [{ uri, attribute, builder?, rounds? }]`;
  if (!a || typeof a !== 'object' || typeof a.uri !== 'string') throw invalid(`${usage}: "uri" must be the document's URI.`);
  const attrPath = typeof a.attribute === 'string' ? a.attribute.split('.') : a.attribute;
  if (!Array.isArray(attrPath) || attrPath.length === 0 || !attrPath.every((s) => typeof s === 'string' && s !== '')) throw invalid(`${usage}: "attribute" must be the attribute path, dotted ("packages.x86_64-linux.hello") or a list of names.`);
  if (a.builder !== undefined && typeof a.builder !== 'string') throw invalid(`${usage}: "builder" must be a builder's name or store URI.`);
  const rounds = a.rounds ?? 1;
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) throw invalid(`${usage}: "rounds" must be a whole number from 1 to 100.`);
  return { uri: a.uri, attrPath, ...(a.builder !== undefined ? { builder: a.builder } : {}), rounds };
}

/** `[{ nixConf?, dryRun?, queueDir?, scope? }]` of the nix.conf set-ups, checked. */
function setUpArgs(arg: unknown, command: string): SetUpNixConfArgs {
  const a = (arg ?? {}) as Partial<SetUpNixConfArgs>;
  const usage = `${command} takes [{ nixConf?, dryRun?, queueDir?, scope?: "user" | "system" }]`;
  if (typeof a !== 'object') throw invalid(`${usage}.`);
  for (const k of ['nixConf', 'queueDir'] as const) if (a[k] !== undefined && (typeof a[k] !== 'string' || !path.isAbsolute(a[k]))) throw invalid(`${usage}: "${k}" must be an absolute path.`);
  if (a.dryRun !== undefined && typeof a.dryRun !== 'boolean') throw invalid(`${usage}: "dryRun" must be true or false.`);
  if (a.scope !== undefined && a.scope !== 'user' && a.scope !== 'system') throw invalid(`${usage}: "scope" must be "user" or "system".`);
  return a;
}

/** `nix flake lock` may fetch inputs: minutes on a slow network, never forever. */
const FLAKE_FIX_TIMEOUT_MS = 15 * 60_000;

/** `[{ dir, action, input? }]`, checked: a folder holding flake.nix, one of the three fixes. */
function fixFlakeArgs(arg: unknown): FixFlakeArgs {
  const a = arg as Partial<FixFlakeArgs> | undefined;
  const usage = `${ServerCommands.fixFlake} takes [{ dir, action: "lock" | "archive" | "update-input", input? }]`;
  if (!a || typeof a !== 'object' || typeof a.dir !== 'string' || !path.isAbsolute(a.dir)) throw invalid(`${usage}: "dir" must be the flake's absolute folder.`);
  if (a.action !== 'lock' && a.action !== 'archive' && a.action !== 'update-input') throw invalid(`${usage}: unknown action ${JSON.stringify(a.action)}.`);
  // An input name as flake.nix writes it: never an option or anything else for Nix's command line.
  if (a.action === 'update-input' && (typeof a.input !== 'string' || !/^[A-Za-z_][A-Za-z0-9_'-]*(\/[A-Za-z_][A-Za-z0-9_'-]*)*$/.test(a.input))) throw invalid(`${usage}: "input" must be an input's name.`);
  return { dir: a.dir, action: a.action, ...(a.action === 'update-input' ? { input: a.input as string } : {}) };
}

/** The builders of a `--builders` text, each a BuilderInfo; refused with the entry's problem. */
export function buildersOfText(text: string): BuilderInfo[] {
  const builders: BuilderInfo[] = [];
  for (const entry of parseMachines(text).entries) {
    const where = `builders, line ${entry.line + 1}: '${entry.text}'`;
    if (entry.include !== undefined) throw invalid(`${where}: '@file' includes are not read here; give the machines entries themselves.`);
    if (!entry.machine) throw invalid(`${where}: ${entry.error ?? 'not a machines entry'}.`);
    builders.push(adHocBuilder(entry.machine, `builders ${entry.machine.uri} #${builders.length + 1}`, 'builders of the command'));
  }
  if (builders.length === 0) throw invalid('builders: no machines entry (give one per line, e.g. "ssh://b2 aarch64-linux"), or leave it out to use the configured builders.');
  return builders;
}

/** The one line a running build's progress shows. */
export function progressMessage(p: BuildProgress): string | undefined {
  if (!isBuildUpdate(p)) return p.status === 'running' ? p.plan.summary : undefined;
  const s = p.snapshot;
  const building = s.derivations.filter((d) => d.state === 'building').map((d) => `${d.name}${d.machine ? ` on ${d.machine}` : ''}`);
  const counts = s.progress.expected > 0 ? `${s.progress.done}/${s.progress.expected} built` : '';
  return [counts, building.length ? `building ${building.join(', ')}` : ''].filter(Boolean).join(' · ') || undefined;
}

/** A finished build as the command's answer. */
export function commandResult(info: BuildInfo): BuildCommandResult {
  return {
    status: info.status === 'running' ? 'failed' : info.status,
    buildId: info.buildId,
    summary: info.plan.summary,
    targets: info.targets.map((t) => ({ attrPath: t.attrPath, drvPath: t.drvPath })),
    derivations: (info.snapshot?.derivations ?? []).map((d) => ({ drvPath: d.drvPath, name: d.name, state: d.state, machine: d.machine, ...(d.failure ? { failure: d.failure } : {}) })),
    outputs: info.outPaths ?? [],
    problems: [...(info.problems ?? []), ...(info.status === 'failed' ? info.plan.problems : [])],
  };
}

/**
 * The derivations of an expression: `nix-instantiate -` reads it from stdin (never spliced into
 * Nix code or a command line), relative paths from `directory`.
 */
export async function instantiateExpression(
  nix: Nix,
  expression: string,
  o: { directory?: string; allowImportFromDerivation: boolean; timeoutMs: number; signal: AbortSignal },
): Promise<string[]> {
  const args = ['--option', 'allow-import-from-derivation', o.allowImportFromDerivation ? 'true' : 'false', '-'];
  const result = await nix.run(nix.bin('nix-instantiate'), args, { input: expression, timeoutMs: o.timeoutMs, signal: o.signal, ...(o.directory ? { cwd: o.directory } : {}) });
  if (result.kind === 'cancelled') throw new ResponseError(LSPErrorCodes.RequestCancelled, 'The evaluation of the expression was cancelled.');
  if (result.kind !== 'ok') {
    const error = result.stderr.trim().split('\n').filter((l) => !/^warning:/.test(l)).slice(-12).join('\n');
    throw new ResponseError(ErrorCodes.InvalidParams, `Evaluating the expression failed (${describeResult(result)}): ${error || 'no message'}. Fix the expression; it must give a derivation, or a list or attribute set of derivations.`);
  }
  const drvPaths = result.stdout.split('\n').map((l) => l.trim()).filter((l) => isDrvPath(l));
  if (drvPaths.length === 0) throw invalid('The expression gives no derivation: it must give a derivation, or a list or attribute set of derivations.');
  return drvPaths;
}

/** A work-done progress: the client's token, one the server created, or none when the client has no progress support. */
interface WorkDone {
  report(message: string | undefined): void;
  end(message: string): void;
}

const NO_PROGRESS: WorkDone = { report: () => undefined, end: () => undefined };

export class ServerCommandHandler {
  private canCreateProgress = false;
  /** Running commands' progress tokens → cancel. */
  private readonly cancels = new Map<ProgressToken, () => void>();
  /** The rebuilds' copies of the newest check answers. */
  private readonly checkCopies = new CheckCopies();
  /** The newest check answers, which diffoscope may compare. */
  private readonly checkAnswers = new CheckAnswers();

  constructor(
    private readonly connection: Connection,
    private readonly server: CommandServer,
  ) {}

  /**
   * At `initialize`. `window/workDoneProgress/cancel` is handled here for every token, the
   * client's own included: vscode-languageclient sends it for any progress it shows as cancellable,
   * the request's token too (vscode-languageserver's own handler, which this one replaces, only
   * cancels tokens the library created, and the server creates none through it).
   */
  initialize(capabilities: ClientCapabilities): void {
    this.canCreateProgress = capabilities.window?.workDoneProgress === true;
    this.connection.onNotification(WorkDoneProgressCancelNotification.type, (p) => this.cancels.get(p.token)?.());
  }

  readonly commands: readonly string[] = Object.values(ServerCommands);

  async execute(params: ExecuteCommandParams, token: CancellationToken): Promise<unknown> {
    const controller = new AbortController();
    const abort = () => controller.abort();
    if (token.isCancellationRequested) abort();
    else token.onCancellationRequested(abort);
    const signal = controller.signal;
    const args = params.arguments;
    const workDoneToken = params.workDoneToken;
    const c = params.command;
    switch (c) {
      case ServerCommands.build:
      case ServerCommands.buildRemotely:
      case ServerCommands.buildOn: {
        const { uri, attrPath, builderIds } = buildArgs(args, c);
        let ids = builderIds;
        if (c === ServerCommands.buildOn && !ids) {
          const picked = await this.askBuilder();
          if (!picked) return { status: 'not-started', summary: 'No builder was chosen: nothing was built.', targets: [], derivations: [], outputs: [], problems: [] } satisfies BuildCommandResult;
          ids = [picked.id];
        }
        const what = attrPath?.join('.') ?? 'every derivation of the file';
        const params: StartBuildParams = { uri, ...(attrPath ? { attrPaths: [attrPath] } : {}), ...(c !== ServerCommands.build ? { remoteOnly: true } : {}), ...(ids ? { builderIds: ids } : {}) };
        return this.build(`Building ${what}${c === ServerCommands.build ? '' : ' remotely'}`, params, undefined, { signal, abort, workDoneToken });
      }
      case ServerCommands.plan: {
        const { uri, attrPath } = buildArgs(args, c);
        return this.server.planBuild({ uri, ...(attrPath ? { attrPaths: [attrPath] } : {}) }, { signal });
      }
      case ServerCommands.buildExpression:
      case ServerCommands.planExpression: {
        const a = expressionArgs(args, c);
        this.server.checkTrusted();
        const builders = a.builders !== undefined && a.builders.trim() !== '' ? buildersOfText(a.builders) : undefined;
        const instantiate = () =>
          instantiateExpression(this.server.nix, a.expression, {
            ...(a.directory ? { directory: a.directory } : {}),
            allowImportFromDerivation: this.server.allowImportFromDerivation(),
            timeoutMs: this.server.evaluationTimeoutMs(),
            signal,
          });
        const params = (drvPaths: string[]): StartBuildParams => ({ drvPaths, ...(a.remoteOnly ? { remoteOnly: true } : {}) });
        if (c === ServerCommands.planExpression) return this.server.planBuild(params(await instantiate()), { signal, ...(builders ? { builders } : {}) });
        return this.build('Building the expression', async (progress) => {
          progress.report('evaluating the expression');
          return params(await instantiate());
        }, builders, { signal, abort, workDoneToken });
      }
      case ServerCommands.whichBuilder:
        return this.whichBuilder(args, signal);
      case ServerCommands.addBuilder:
        return this.addBuilder((args?.[0] ?? {}) as AddBuilderArgs);
      case ServerCommands.fixFlake:
        return this.fixFlake(args?.[0], { signal, abort, workDoneToken });
      case ServerCommands.diffDerivations:
        return this.diffDerivations(args?.[0], signal);
      case ServerCommands.checkReproducibility: {
        const result = await this.checkReproducibility(args?.[0], { signal, abort, workDoneToken });
        this.checkFinished(args?.[0], result);
        return result;
      }
      case ServerCommands.diffoscope:
        return runDiffoscope(this.server.nix, this.checkAnswers, diffoscopeArgsOf(args?.[0]), { ignoreNoise: this.server.diffoscopeIgnoreNoise(), signal });
      case ServerCommands.generateKey: {
        const a = (args?.[0] ?? {}) as Partial<GenerateKeyArgs>;
        if (typeof a.keyName !== 'string' || typeof a.secretKeyFile !== 'string') throw invalid(`${c} takes [{ keyName, secretKeyFile }]: the key's name ("cache.example.org-1") and the absolute path of the secret key file to create.`);
        return this.server.generateKey({ keyName: a.keyName, secretKeyFile: a.secretKeyFile }, signal);
      }
      case ServerCommands.listCaches:
        return this.server.listCaches(signal);
      case ServerCommands.compareMachines:
        return runCompareMachines(args?.[0], { server: this.server, copies: this.checkCopies, signal, progress: (title) => this.progress(title, workDoneToken, abort) });
      case ServerCommands.pushToCache: {
        const a = pushArgs(args?.[0]);
        try {
          return await this.withProgress(`Pushing ${a.attrPath.join('.')} to ${a.to}`, { abort, workDoneToken }, (report) => pushToCacheCommand(this.server, a, { signal, report }));
        } finally {
          // The target holds new paths (also after a push that failed part-way): every client's Caches view lists again.
          void this.connection.sendNotification(Notifications.cachesChanged);
        }
      }
      case ServerCommands.verifyCache: {
        const a = verifyArgs(args?.[0]);
        return this.withProgress(`Verifying ${a.store}`, { abort, workDoneToken }, (report) => verifyCacheCommand(this.server, a, { signal, report }));
      }
      case ServerCommands.setUpPostBuildHook:
        return setUpPostBuildHook(this.server.nix, setUpArgs(args?.[0], c), this.server.settings());
      case ServerCommands.setUpDiffHook:
        return setUpDiffHook(this.server.nix, setUpArgs(args?.[0], c), this.server.settings());
      default:
        throw invalid(`Unknown command '${c}': this server runs ${this.commands.join(', ')}.`);
    }
  }

  /** Why two derivations differ: each side a .drv path or an attribute of a file. */
  private async diffDerivations(arg: unknown, signal: AbortSignal): Promise<DerivationDiff> {
    const usage = `${ServerCommands.diffDerivations} takes [{ a, b }], each a .drv path or { uri, attribute, revision? } (attribute: ["packages", "x86_64-linux", "hello"] or "packages.x86_64-linux.hello"; revision: a git commit, "HEAD")`;
    const { a, b } = (arg ?? {}) as { a?: unknown; b?: unknown };
    const drvPathOf = async (side: unknown, which: string): Promise<string> => {
      if (typeof side === 'string') {
        if (!isDrvPath(side)) throw invalid(`${usage}: ${which} is not a .drv path (${side}).`);
        return side;
      }
      const { uri, attribute, revision } = (side ?? {}) as Partial<Exclude<DerivationSide, string>>;
      const attrPath: unknown = typeof attribute === 'string' ? attribute.split('.') : attribute;
      if (typeof uri !== 'string' || !Array.isArray(attrPath) || attrPath.length === 0 || !attrPath.every((x) => typeof x === 'string')) throw invalid(`${usage}: ${which} is neither.`);
      if (revision !== undefined) return drvPathAtRevision(this.server, { uri, attrPath: attrPath as string[], revision }, signal);
      const [target] = await this.server.buildTargets({ uri, attrPaths: [attrPath as string[]] });
      if (!target) throw invalid(`${usage}: ${which}: ${uri} has no derivation ${attrPath.join('.')}.`);
      return target.drvPath;
    };
    const [pa, pb] = [await drvPathOf(a, 'a'), await drvPathOf(b, 'b')];
    try {
      return await diffStoreDerivations(this.server.nix, pa, pb, { signal });
    } catch (e) {
      if (signal.aborted) throw new ResponseError(LSPErrorCodes.RequestCancelled, 'The comparison of the derivations was cancelled.');
      throw e;
    }
  }

  /** A flake input's fix: asks, then runs the command the server makes for it in the flake's folder. */
  private async fixFlake(arg: unknown, o: { signal: AbortSignal; abort: () => void; workDoneToken: ProgressToken | undefined }): Promise<FixFlakeResult> {
    const fix = fixFlakeArgs(arg);
    this.server.checkTrusted();
    if (!(await stat(path.join(fix.dir, 'flake.nix')).then((st) => st.isFile(), () => false))) throw invalid(`${ServerCommands.fixFlake}: ${fix.dir} holds no flake.nix.`);
    const command = flakeFixText(fix);
    const writes = fix.action === 'archive' ? 'It downloads every locked input into the Nix store.' : 'It may download inputs, and it writes flake.lock.';
    const run = 'Run';
    const answer = await this.connection.window.showInformationMessage(`Run ${command} in ${fix.dir}? ${writes}`, { title: run }, { title: 'Cancel' });
    if (answer?.title !== run) return { status: 'not-started', command, message: 'The user did not run it.' };
    const progress = await this.progress(`Running ${command}`, o.workDoneToken, o.abort);
    let status: FixFlakeResult['status'] = 'failed';
    try {
      const nix = this.server.nix;
      const result = await nix.run(nix.bin('nix'), flakeFixArgs(fix), { cwd: fix.dir, timeoutMs: FLAKE_FIX_TIMEOUT_MS, signal: o.signal });
      if (result.kind === 'ok') {
        status = 'ok';
        return { status, command };
      }
      const tail = result.stderr.trim().split('\n').slice(-8).join('\n');
      return { status, command, message: `${describeResult(result)}${tail ? `: ${tail}` : ''}` };
    } finally {
      progress.end(status);
    }
  }

  /** Check Reproducibility: rebuild the attribute's derivation and compare every output. */
  private async checkReproducibility(arg: unknown, o: { signal: AbortSignal; abort: () => void; workDoneToken: ProgressToken | undefined }): Promise<CheckReproducibilityResult> {
    const a = checkArgs(arg);
    const [target] = await this.server.buildTargets({ uri: a.uri, attrPaths: [a.attrPath] });
    if (!target) throw invalid(`${ServerCommands.checkReproducibility}: no derivation at ${a.attrPath.join('.')}.`);
    const progress = await this.progress(`Checking ${a.attrPath.join('.')} for reproducibility`, o.workDoneToken, o.abort);
    let last = 'ended';
    try {
      const options = { rounds: a.rounds, signal: o.signal, report: (m: string) => progress.report(m), copies: this.checkCopies };
      const result = a.builder !== undefined
        ? await checkOnBuilder(this.server.nix, findBuilder(a.builder, (await this.server.listBuilders()).builders), target.drvPath, options)
        : await checkDerivation(this.server.nix, target.drvPath, options);
      last = result.summary;
      return result;
    } finally {
      progress.end(last);
    }
  }

  /** A check's answer is remembered (for diffoscope), shown on the attribute, and told to the client. */
  private checkFinished(arg: unknown, result: CheckReproducibilityResult): void {
    const { uri, attrPath } = checkArgs(arg);
    this.checkAnswers.remember(result);
    this.server.checkFinished(uri, attrPath, result);
    void this.connection.sendNotification(Notifications.checkFinished, { uri, attribute: attrPath, result });
  }

  /** Build what `prepare` names, reporting progress; resolves with the result once it ended. */
  private async build(
    title: string,
    prepare: StartBuildParams | ((progress: WorkDone) => Promise<StartBuildParams>),
    builders: BuilderInfo[] | undefined,
    o: { signal: AbortSignal; abort: () => void; workDoneToken: ProgressToken | undefined },
  ): Promise<BuildCommandResult> {
    const progress = await this.progress(title, o.workDoneToken, o.abort);
    let last = 'ended';
    try {
      const params = typeof prepare === 'function' ? await prepare(progress) : prepare;
      const { ended } = await this.server.startBuild(params, { signal: o.signal, onProgress: (p) => progress.report(progressMessage(p)), ...(builders ? { builders } : {}) });
      const info = await ended;
      last = info.status;
      return commandResult(info);
    } finally {
      progress.end(last);
    }
  }

  /** Runs `work` under a cancellable progress that ends with the answer's summary. */
  private async withProgress<T extends { summary: string }>(title: string, o: { abort: () => void; workDoneToken: ProgressToken | undefined }, work: (report: (m: string) => void) => Promise<T>): Promise<T> {
    const progress = await this.progress(title, o.workDoneToken, o.abort);
    let last = 'ended';
    try {
      const result = await work((m) => progress.report(m));
      last = result.summary;
      return result;
    } finally {
      progress.end(last);
    }
  }

  /** Begins a cancellable progress; cancelling it calls `cancel`. */
  private async progress(title: string, clientToken: ProgressToken | undefined, cancel: () => void): Promise<WorkDone> {
    let token = clientToken;
    if (token === undefined) {
      if (!this.canCreateProgress) return NO_PROGRESS;
      const created = randomUUID();
      try {
        await this.connection.sendRequest(WorkDoneProgressCreateRequest.type, { token: created });
      } catch (e) {
        this.connection.console.warn(`The client refused a progress (${(e as Error).message}): the command runs without one.`);
        return NO_PROGRESS;
      }
      token = created;
    }
    const t = token;
    this.cancels.set(t, cancel);
    void this.connection.sendProgress(WorkDoneProgress.type, t, { kind: 'begin', title, cancellable: true });
    let ended = false;
    return {
      report: (message) => {
        if (!ended && message) void this.connection.sendProgress(WorkDoneProgress.type, t, { kind: 'report', message });
      },
      end: (message) => {
        if (ended) return;
        ended = true;
        this.cancels.delete(t);
        void this.connection.sendProgress(WorkDoneProgress.type, t, { kind: 'end', message });
      },
    };
  }

  /** A message without a choice (window/showMessage: the connection's showXMessage are requests, which some editors answer with a prompt). */
  private showMessage(type: MessageType, message: string): void {
    void this.connection.sendNotification(ShowMessageNotification.type, { type, message });
  }

  /** Build on…: which builder, asked through window/showMessageRequest. */
  private async askBuilder(): Promise<BuilderInfo | undefined> {
    const { builders } = await this.server.listBuilders();
    if (builders.length === 0) throw new ResponseError(ErrorCodes.InvalidRequest, 'No builder is configured: add one (nixBuilders.builders, nixBuilders.machinesFiles or nix.conf builders) to build on it.');
    const title = (b: BuilderInfo) => (builders.filter((x) => x.name === b.name).length > 1 ? `${b.name} (${b.uri}, ${b.source.label})` : b.name);
    const answer = await this.connection.window.showInformationMessage('Build on which builder? (nothing builds on this machine)', ...builders.map((b) => ({ title: title(b) })));
    return answer ? builders.find((b) => title(b) === answer.title) : undefined;
  }

  /** Which Builder: the preview for the derivation at or above a line, shown and answered. */
  private async whichBuilder(args: unknown[] | undefined, signal: AbortSignal): Promise<SchedulePreviewResult> {
    const [uri, line] = args ?? [];
    if (typeof uri !== 'string' || typeof line !== 'number') throw invalid(`${ServerCommands.whichBuilder} takes [uri, line] (0-based line of the derivation's attribute).`);
    const result = await this.server.schedulePreview({ uri, line }, signal);
    const p = result.preview;
    const text = p
      ? [`${result.derivation ? `${result.derivation.attrPath.join('.')}: ` : ''}${p.summary}`, ...p.candidates.map((c) => `${c.eligible ? '✓' : '✗'} ${c.name}: ${c.reason}`)].join('\n')
      : (result.problem ?? 'No preview.');
    this.showMessage(p && p.verdict !== 'none' ? MessageType.Info : MessageType.Warning, text);
    return result;
  }

  /** Add Builder: adds `entry` to a machines file; without an entry, says how (adding one needs the host, which only the user knows). */
  private async addBuilder(a: AddBuilderArgs): Promise<EditResult | null> {
    const file = a.file ?? this.server.machinesFiles()[0];
    if (typeof a.entry !== 'string' || a.entry.trim() === '') {
      const example = `ssh://HOST ${a.system ?? 'SYSTEM'}`;
      const where = file ? `to ${file}` : 'to a machines file listed in nixBuilders.machinesFiles';
      this.showMessage(
        MessageType.Info,
        `Add a builder${a.system ? ` for ${a.system}` : ''}: add a machines entry such as '${example}' ${where}, or run ${ServerCommands.addBuilder} with [{ "entry": "${example}" }].`,
      );
      return null;
    }
    if (!file) throw new ResponseError(ErrorCodes.InvalidRequest, 'No machines file to add the builder to: give "file", or list one in nixBuilders.machinesFiles.');
    return this.server.editMachines(file, { kind: 'add', entry: a.entry.trim() });
  }
}
