// The language server: owns every Nix and SSH operation. Runs inside VS Code (started by the
// extension over IPC) and standalone over stdio for any LSP client.
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CodeActionKind,
  CodeLensRefreshRequest,
  DidChangeWatchedFilesNotification,
  ErrorCodes,
  ExecuteCommandRequest,
  FileChangeType,
  LSPErrorCodes,
  ResponseError,
  TextDocuments,
  TextDocumentSyncKind,
  type Connection,
  type InitializeParams,
  type InitializeResult,
} from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { Nix } from './nix/nix';
import type { ProcessRunner } from './nix/runner';
import {
  DEFAULT_SETTINGS,
  Notifications,
  Requests,
  type BuildersListing,
  type DerivationInfo,
  type DocumentDerivations,
  type DoctorReport,
  type BuilderInfo,
  type BuildPlanInfo,
  type BuildProgress,
  type EditMachinesParams,
  type EditResult,
  type StartBuildParams,
  type SchedulePreviewParams,
  type SchedulePreviewResult,
  type TestBuildResult,
  type InitializationOptions,
  type NixStatus,
  type ServerSettings,
  type CacheSettings,
  type CachesInfo,
  type GeneratedKey,
  type GenerateKeyArgs,
  SET_EVALUATION_ARGUMENTS,
} from './protocol';
import { evaluationOptions, parseSettings } from './config';
import type { EvaluationOptions } from './eval/evaluator';
import { argumentsActionsFor } from './eval/arguments';
import { originOf, resolveSearchPath, searchPathAt } from './eval/searchPath';
import { FilesWatcher } from './util/watch';
import { DIAGNOSTIC_SOURCE, DocumentDiagnostics, type FileChange } from './eval/documentDiagnostics';
import { checkCodeActions } from './check/checkDiagnostics';
import { codeActionsFor, codeLensesFor, derivationAt, derivationNear, documentDerivations, hoverFor, searchPathHoverFor } from './eval/lenses';
import { flakeCodeActions } from './eval/flake';
import { machinesDiagnostics } from './builders/machinesDiagnostics';
import { checkAll, checkBuilder, checkLocal } from './builders/doctor';
import { buildersIgnoredBy, type BuildersIgnored } from './builders/ignoredBuilders';
import { computeListing, nixStatus } from './builders/listing';
import { predictSchedule } from './builders/predict';
import { editMachinesFile, formatMachineLine } from './builders/machinesEdit';
import { parseMachineLine } from './nix/machines';
import { testBuild, testBuildAnswer } from './builders/testBuild';
import { atLeast } from './nix/version';
import type { BuilderHealth, CheckResult } from './protocol';
import type { CancellationToken, CodeLens, FileEvent, Hover } from 'vscode-languageserver/node';
import { Builds } from './builds/builds';
import { buildTargets, placementOf } from './builds/placement';
import { ServerCommandHandler } from './commands';
import { defaultStagingRoot } from './cache/push';
import { adHocBuilder } from './builders/collect';
import { generateKey, KeyArgumentError } from './cache/keys';
import { listCaches } from './cache/caches';
import { uploadStagedCache } from './cache/s3';

const NO_CACHE_SETTINGS: CacheSettings = { pushTargets: [], queue: { enabled: false, dir: '' } };
import { QueueWorkerHost, queueStatusOf, queueWorkerConfig } from './cache/worker';

const isMachinesDocument = (doc: TextDocument) => doc.languageId === 'nix-machines' || /\/machines$/.test(doc.uri);

async function readDocument(uri: string): Promise<TextDocument | undefined> {
  if (!uri.startsWith('file:')) return undefined;
  try {
    return TextDocument.create(uri, 'nix', 0, await readFile(fileURLToPath(uri), 'utf8'));
  } catch {
    return undefined;
  }
}

/** LSP cancellation as an AbortSignal, which kills the work's process trees. */
function abortSignalOf(token: CancellationToken): AbortSignal {
  const controller = new AbortController();
  if (token.isCancellationRequested) controller.abort();
  else token.onCancellationRequested(() => controller.abort());
  return controller.signal;
}

function fileChangeOf(c: FileEvent): FileChange {
  const kind = c.type === FileChangeType.Created ? 'created' : c.type === FileChangeType.Deleted ? 'deleted' : 'changed';
  return { file: fileURLToPath(c.uri), kind };
}

export const SERVER_NAME = 'nix-builders-language-server';

export class NixBuildersServer {
  private settings: ServerSettings = DEFAULT_SETTINGS;
  private workspaceTrusted = true;
  private canPullConfiguration = false;
  private canRegisterFileWatchers = false;
  /** The client asks for the code lenses again when told (workspace/codeLens/refresh): settings change them (Push to cache). */
  private canRefreshCodeLenses = false;
  /** Commands the client runs itself, which code actions may carry. */
  private clientCommands = new Set<string>();
  /** Each document's evaluation settings (its folder's), pulled once per configuration. */
  private readonly scopedOptions = new Map<string, Promise<EvaluationOptions>>();
  /** Settings problems already said, so that each is said once. */
  private readonly problemsSaid = new Set<string>();
  private readonly nix: Nix;
  private readonly documents = new TextDocuments(TextDocument);
  private readonly watcher: FilesWatcher;
  /** The signing key files the Caches view lists: a change (a chmod, a new key) lists them again. */
  private readonly keyFilesWatcher = new FilesWatcher(() => void this.connection.sendNotification(Notifications.cachesChanged));
  private listing: Promise<BuildersListing> | undefined;
  private readonly diagnostics: DocumentDiagnostics;
  private readonly builds: Builds;
  private readonly commands: ServerCommandHandler;
  private readonly pushQueue: QueueWorkerHost;
  private untrustedNoticeSent = false;
  /** The doctor's last verdict per builder id (for the scheduling preview). */
  private readonly health = new Map<string, BuilderHealth>();
  /** The doctor's local check (does the local nix-daemon ignore our --builders?): its last run, or one made when needed. */
  private localCheck: Promise<CheckResult<'local-daemon'> | undefined> | undefined;

  constructor(
    private readonly connection: Connection,
    runner: ProcessRunner,
  ) {
    this.nix = new Nix(runner, { binDir: '', env: {} });
    this.watcher = new FilesWatcher(() => this.invalidate());
    this.builds = new Builds(connection, this.nix);
    this.pushQueue = new QueueWorkerHost(connection.console, () => void connection.sendNotification(Notifications.cachesChanged));
    this.commands = new ServerCommandHandler(connection, {
      buildTargets: (p) => this.buildTargets(p),
      startBuild: (p, o) => this.startBuild(p, o),
      planBuild: (p, o) => this.planBuild(p, o.signal, o.builders),
      listBuilders: () => this.listBuilders(),
      schedulePreview: (p, signal) => this.schedulePreview(p, signal),
      editMachines: (file, edit) => this.editMachines({ file, edit }),
      machinesFiles: () => this.settings.machinesFiles,
      checkTrusted: () => this.checkTrusted(),
      nix: this.nix,
      settings: () => this.settings,
      evaluationTimeoutMs: () => evaluationOptions(this.settings).timeoutMs,
      allowImportFromDerivation: () => this.settings.evaluation.allowImportFromDerivation,
      diffoscopeIgnoreNoise: () => this.settings.check?.diffoscopeIgnoreNoise ?? true,
      checkFinished: (uri, attrPath, result) => this.diagnostics.checkFinished(uri, attrPath, result),
      generateKey: (a, signal) => this.generateKey(a, signal),
      listCaches: (signal) => this.listCaches(signal),
      cacheSettings: () => ({ ...this.settings.cache, stagingRoot: defaultStagingRoot({ ...process.env, ...this.settings.env }), stagedUpload: uploadStagedCache }),
    });
    this.diagnostics = new DocumentDiagnostics(connection, this.nix, async (uri) => ({
      trusted: this.workspaceTrusted,
      options: await this.evaluationOptionsFor(uri),
      listing: await this.listBuilders(),
      buildersIgnored: await this.buildersIgnored(),
    }), (uri) => {
      const doc = this.documents.get(uri);
      if (doc) this.documentChanged(doc, 0);
    });
    // Fired on open too: a document seen for the first time is evaluated at once, edits after a pause.
    this.documents.onDidChangeContent((e) => this.documentChanged(e.document, this.diagnostics.known(e.document.uri) ? undefined : 0));
    this.documents.onDidClose((e) => {
      this.diagnostics.close(e.document.uri);
      this.scopedOptions.delete(e.document.uri);
    });
    this.documents.onDidClose((e) => {
      if (isMachinesDocument(e.document)) void connection.sendDiagnostics({ uri: e.document.uri, diagnostics: [] });
    });
    connection.onInitialize((p) => this.initialize(p));
    connection.onInitialized(() => void this.initialized().catch(this.failed('Starting')));
    connection.onDidChangeConfiguration((p) => void this.configurationChanged(p.settings).catch(this.failed('Reading the settings')));
    connection.onRequest(Requests.status, () => this.status());
    connection.onRequest(Requests.listBuilders, () => this.listBuilders());
    connection.onRequest(Requests.derivations, (p, token) => this.derivations(p.uri, abortSignalOf(token)));
    connection.onRequest(Requests.checkBuilders, (p, token) => this.checkBuilders(p.builderIds, token));
    connection.onRequest(Requests.testBuild, (p, token) => this.testBuild(p.builderId, token));
    connection.onRequest(Requests.schedulePreview, (p, token) => this.schedulePreview(p, abortSignalOf(token)));
    connection.onRequest(Requests.startBuild, async (p) => (await this.startBuild(p)).info);
    connection.onRequest(Requests.planBuild, (p, token) => this.planBuild(p, abortSignalOf(token)));
    connection.onRequest(Requests.cancelBuild, (p) => this.builds.cancel(p.buildId));
    connection.onRequest(Requests.buildLog, (p) => this.builds.log(p.buildId, p.drvPath));
    connection.onCodeLens((p, token) => this.codeLenses(p.textDocument.uri, abortSignalOf(token)));
    connection.onHover((p, token) => this.hover(p.textDocument.uri, p.position.line, p.position.character, abortSignalOf(token)));
    connection.onDidChangeWatchedFiles((p) => void this.diagnostics.filesChanged(p.changes.filter((c) => c.uri.startsWith('file:')).map(fileChangeOf)));
    connection.onCodeAction((p) => [
      ...codeActionsFor(p.textDocument.uri, p.context.diagnostics),
      ...argumentsActionsFor(p.textDocument.uri, p.context.diagnostics, this.clientCommands.has(SET_EVALUATION_ARGUMENTS)),
      ...flakeCodeActions(p.context.diagnostics),
      ...checkCodeActions(p.textDocument.uri, p.context.diagnostics, DIAGNOSTIC_SOURCE),
    ]);
    // Not onExecuteCommand: that takes the client's workDoneToken out of the params.
    connection.onRequest(ExecuteCommandRequest.type, (p, token) => this.commands.execute(p, token));
    connection.onRequest(Requests.editMachines, (p) => this.editMachines(p));
    connection.onRequest(Requests.formatMachineLine, (p) => formatMachineLine(p.machine));
    connection.onRequest(Requests.probeBuilder, (p, token) => this.probeBuilder(p.entry, token));
    connection.onNotification(Notifications.workspaceTrust, (p) => {
      this.workspaceTrusted = p.trusted;
      this.invalidate();
    });
    connection.onShutdown(() => {
      this.watcher.dispose();
      this.keyFilesWatcher.dispose();
      this.diagnostics.dispose();
      this.builds.dispose();
      return this.pushQueue.stop();
    });
    this.documents.listen(connection);
  }

  /** Logs the failure of work that no request waits for. */
  private failed(what: string): (e: unknown) => void {
    return (e) => this.connection.console.error(`${what} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  }

  private initialize(params: InitializeParams): InitializeResult {
    const options = (params.initializationOptions ?? {}) as InitializationOptions;
    this.applySettings(options.settings);
    this.workspaceTrusted = options.workspaceTrusted ?? true;
    this.clientCommands = new Set(Array.isArray(options.clientCommands) ? options.clientCommands.filter((c) => typeof c === 'string') : []);
    this.canPullConfiguration = params.capabilities.workspace?.configuration === true;
    this.canRegisterFileWatchers = params.capabilities.workspace?.didChangeWatchedFiles?.dynamicRegistration === true;
    this.canRefreshCodeLenses = params.capabilities.workspace?.codeLens?.refreshSupport === true;
    this.commands.initialize(params.capabilities);
    return {
      capabilities: {
        textDocumentSync: TextDocumentSyncKind.Incremental,
        hoverProvider: true,
        codeLensProvider: { resolveProvider: false },
        codeActionProvider: { codeActionKinds: [CodeActionKind.QuickFix] },
        executeCommandProvider: { commands: options.registersServerCommands === true ? [] : [...this.commands.commands] },
      },
      serverInfo: { name: SERVER_NAME, version: '0.1.0' },
    };
  }

  private async initialized(): Promise<void> {
    const status = await this.status();
    if (status.version) this.connection.console.info(`Found ${status.implementation ?? 'Nix'} ${status.version}.`);
    else this.connection.console.error(status.problem ?? 'Nix was not found.');
    // Start watching what the builders come from.
    void this.listBuilders().catch(this.failed('Listing the builders'));
    // The client tells us about changed Nix files too (evaluations import them); the server also
    // watches the files its evaluations read, for clients that cannot.
    if (this.canRegisterFileWatchers) {
      await this.connection.client
        .register(DidChangeWatchedFilesNotification.type, { watchers: [{ globPattern: '**/*.nix' }, { globPattern: '**/flake.lock' }] })
        .catch((e: Error) => this.connection.console.warn(`The client did not accept watching Nix files (${e.message}): the server watches the files its evaluations read itself.`));
    }
  }

  private async configurationChanged(pushed: unknown): Promise<void> {
    let section: unknown = (pushed as { nixBuilders?: unknown } | undefined)?.nixBuilders;
    if (this.canPullConfiguration) {
      section = await this.connection.workspace.getConfiguration('nixBuilders');
    }
    if (section && typeof section === 'object') this.applySettings(section as Partial<ServerSettings>);
    this.scopedOptions.clear();
    this.problemsSaid.clear();
    this.invalidate();
    if (this.canRefreshCodeLenses) void this.connection.sendRequest(CodeLensRefreshRequest.type).catch(this.failed('Refreshing the code lenses'));
  }

  private applySettings(s: Partial<ServerSettings> | undefined): void {
    const problems: string[] = [];
    this.settings = parseSettings(s, problems);
    this.sayProblems(problems);
    this.nix.updateSettings({ binDir: this.settings.nixBinDir, env: this.settings.env });
    this.pushQueue.configure(queueWorkerConfig(this.settings, this.nix));
  }

  private sayProblems(problems: readonly string[]): void {
    for (const p of problems) {
      if (this.problemsSaid.has(p)) continue;
      this.problemsSaid.add(p);
      this.connection.console.warn(p);
    }
  }

  /**
   * The evaluation settings of a document: its folder's (resource settings such as
   * nixBuilders.evaluation.arguments), pulled with its URI when the client can answer, else the window's.
   */
  private evaluationOptionsFor(uri: string): Promise<EvaluationOptions> {
    if (!this.canPullConfiguration) return Promise.resolve(evaluationOptions(this.settings));
    let options = this.scopedOptions.get(uri);
    if (!options) {
      options = this.connection.workspace.getConfiguration({ scopeUri: uri, section: 'nixBuilders' }).then(
        (section: unknown) => {
          if (!section || typeof section !== 'object') return evaluationOptions(this.settings);
          const problems: string[] = [];
          const scoped = parseSettings(section as Partial<ServerSettings>, problems);
          this.sayProblems(problems);
          return evaluationOptions(scoped);
        },
        (e: Error) => {
          this.connection.console.warn(`The client did not answer workspace/configuration for ${uri} (${e.message}): the window's settings are used.`);
          return evaluationOptions(this.settings);
        },
      );
      this.scopedOptions.set(uri, options);
    }
    return options;
  }

  /** Something that the builders depend on changed: list again, tell the client, re-diagnose. */
  private invalidate(): void {
    this.listing = undefined;
    this.localCheck = undefined;
    void this.connection.sendNotification(Notifications.buildersChanged);
    void this.connection.sendNotification(Notifications.cachesChanged);
    for (const doc of this.documents.all()) this.documentChanged(doc, 0);
  }

  private documentChanged(doc: TextDocument, delayMs?: number): void {
    if (isMachinesDocument(doc)) {
      // Parsing only, no evaluation: also in an untrusted workspace.
      void this.connection.sendDiagnostics({ uri: doc.uri, version: doc.version, diagnostics: machinesDiagnostics(doc.getText()) });
      return;
    }
    if (doc.languageId !== 'nix' && !doc.uri.endsWith('.nix')) return;
    if (!this.workspaceTrusted) {
      // Said once, not per keystroke; the extension also shows it in the status bar.
      if (!this.untrustedNoticeSent) {
        this.untrustedNoticeSent = true;
        this.connection.console.info('This workspace is not trusted: Nix Builders does not evaluate its Nix files.');
      }
      return;
    }
    this.diagnostics.schedule(doc, delayMs);
  }

  /** The derivations of an open document, evaluating it now if it was not yet. */
  async derivations(uri: string, signal?: AbortSignal, opts: { fresh?: boolean } = {}): Promise<DocumentDerivations> {
    if (!this.workspaceTrusted) return { uri, state: 'untrusted', derivations: [] };
    // A file that is not open in the editor (a build task's) is read from disk.
    const doc = this.documents.get(uri) ?? (await readDocument(uri));
    if (!doc) return { uri, state: 'not-evaluated', derivations: [] };
    const evaluation = await this.diagnostics.evaluate(doc, signal, opts);
    if (signal?.aborted) throw new ResponseError(LSPErrorCodes.RequestCancelled, 'The request was cancelled.');
    return documentDerivations(doc, evaluation);
  }

  status(): Promise<NixStatus> {
    return nixStatus(this.nix, this.workspaceTrusted);
  }

  listBuilders(): Promise<BuildersListing> {
    this.listing ??= this.status()
      .then((status) => computeListing(this.nix, this.settings, status))
      .then(({ listing, files }) => {
        this.watcher.setFiles(files);
        return listing;
      });
    return this.listing;
  }

  /** The health doctor over the listed builders; each result is also sent as it arrives. */
  async checkBuilders(builderIds: string[] | undefined, token: CancellationToken): Promise<DoctorReport> {
    const listing = await this.listBuilders();
    const builders = builderIds ? listing.builders.filter((b) => builderIds.includes(b.id)) : listing.builders;
    const report = await checkAll(builders, {
      nix: this.nix,
      signal: abortSignalOf(token),
      localSystem: listing.local?.system,
      onBuilderChecked: (health) => void this.connection.sendNotification(Notifications.builderHealth, health),
    });
    for (const h of report.builders) this.health.set(h.builderId, h);
    const before = this.localCheck && buildersIgnoredBy(await this.localCheck);
    this.localCheck = Promise.resolve(report.local);
    // What the daemon does with --builders changes every prediction: diagnose again.
    if (before?.why !== (await this.buildersIgnored())?.why) for (const doc of this.documents.all()) this.documentChanged(doc, 0);
    return report;
  }

  /** Set when the local nix-daemon ignores the builders we pass: then only its own count. */
  private async buildersIgnored(): Promise<BuildersIgnored | undefined> {
    this.localCheck ??= checkLocal({ nix: this.nix }).catch((e: unknown) => {
      this.failed('The local nix-daemon check')(e);
      return undefined;
    });
    return buildersIgnoredBy(await this.localCheck);
  }

  /** `builders`: instead of the configured ones (an expression's `--builders`). */
  async startBuild(p: StartBuildParams, o: { builders?: BuilderInfo[]; signal?: AbortSignal; onProgress?: (p: BuildProgress) => void } = {}) {
    const targets = await this.buildTargets(p);
    const builders = o.builders ?? (await this.listBuilders()).builders;
    return this.builds.start(p, targets, builders, this.settings.build, o);
  }

  async planBuild(p: StartBuildParams, signal?: AbortSignal, builders?: BuilderInfo[]): Promise<BuildPlanInfo> {
    const targets = await this.buildTargets(p);
    const listing = await this.listBuilders();
    const ctx = { local: listing.local, health: this.health, ignored: await this.buildersIgnored() };
    return this.builds.plan(p, targets, builders ?? listing.builders, this.settings.build, {
      place: (d, m) => placementOf(d, m, ctx),
      substituters: listing.local?.substituters ?? [],
      ...(signal ? { signal } : {}),
    });
  }

  private async listCaches(signal: AbortSignal): Promise<CachesInfo> {
    const info = await listCaches({ nix: this.nix, cache: this.settings.cache ?? NO_CACHE_SETTINGS, queueStatus: () => queueStatusOf(this.settings) }, signal);
    this.keyFilesWatcher.setFiles(info.keys.map((k) => k.secretKeyFile));
    return info;
  }

  /** A signing key pair; a refused argument is the request's error, said as is. */
  private async generateKey(a: GenerateKeyArgs, signal: AbortSignal): Promise<GeneratedKey> {
    try {
      const key = await generateKey(this.nix, a, signal);
      this.connection.console.info(`Generated the signing key ${key.keyName}: secret in ${key.secretKeyFile} (0600), public key ${key.publicKey}.`);
      void this.connection.sendNotification(Notifications.cachesChanged);
      return key;
    } catch (e) {
      throw new ResponseError(e instanceof KeyArgumentError ? ErrorCodes.InvalidParams : ErrorCodes.InternalError, (e as Error).message);
    }
  }

  private checkTrusted(): void {
    if (!this.workspaceTrusted) throw new ResponseError(ErrorCodes.InvalidRequest, 'This workspace is not trusted: Nix Builders does not build its derivations.');
  }

  /** The derivations a build request names. */
  private async buildTargets(p: StartBuildParams): Promise<DerivationInfo[]> {
    this.checkTrusted();
    // Evaluated afresh: what is built must be what the files say now (sources too).
    return buildTargets(p, p.uri !== undefined ? await this.derivations(p.uri, undefined, { fresh: true }) : undefined);
  }

  private async editMachines(p: EditMachinesParams): Promise<EditResult> {
    const result = await editMachinesFile(p.file, p.edit, p.expectedText !== undefined ? { expectedText: p.expectedText } : {});
    if (result.ok) this.invalidate();
    else this.connection.console.warn(result.message);
    return result;
  }

  async codeLenses(uri: string, signal?: AbortSignal): Promise<CodeLens[]> {
    if (!this.workspaceTrusted || !this.documents.get(uri)) return [];
    const { derivations } = await this.derivations(uri, signal);
    return codeLensesFor(uri, derivations, { pushTargets: this.settings.cache?.pushTargets ?? [] });
  }

  async hover(uri: string, line: number, character: number, signal?: AbortSignal): Promise<Hover | null> {
    const doc = this.documents.get(uri);
    if (!this.workspaceTrusted || !doc) return null;
    const spath = uri.startsWith('file:') ? searchPathAt(doc.getText(), line, character) : undefined;
    if (spath) {
      // Where <name> comes from: resolved as the evaluation would, with its settings, env and folder.
      const options = await this.evaluationOptionsFor(uri);
      const outcome = await resolveSearchPath(this.nix, spath.name, {
        searchPath: options.searchPath,
        timeoutMs: options.timeoutMs,
        cwd: path.dirname(fileURLToPath(uri)),
        signal,
      });
      const nixPathVariable = { ...process.env, ...this.settings.env }.NIX_PATH;
      return searchPathHoverFor(spath, outcome, (e) => originOf(e, options.searchPath ?? [], nixPathVariable));
    }
    const { derivations } = await this.derivations(uri, signal);
    const d = derivationAt(derivations, line, character);
    if (!d) return null;
    const { preview } = await this.schedulePreview({ uri, line }, signal);
    return hoverFor(d, preview);
  }

  /** The doctor on an entry that is not in any machines file yet. */
  async probeBuilder(entry: string, token: CancellationToken): Promise<BuilderHealth> {
    const parsed = parseMachineLine(entry);
    if (!parsed.machine) throw new ResponseError(ErrorCodes.InvalidParams, `Not a machines entry: ${parsed.error}`);
    const listing = await this.listBuilders();
    const machine = parsed.machine;
    const builder = adHocBuilder(machine, `probe:${machine.uri}`, 'new builder');
    return checkBuilder(builder, { nix: this.nix, signal: abortSignalOf(token), localSystem: listing.local?.system });
  }

  /** Which machine Nix would choose now, and why not the others. */
  async schedulePreview(p: SchedulePreviewParams, signal?: AbortSignal): Promise<SchedulePreviewResult> {
    const listing = await this.listBuilders();
    if (!listing.local) return { problem: listing.nix.problem ?? 'The Nix configuration could not be read.' };
    let derivation: DerivationInfo | undefined;
    if (p.uri !== undefined) {
      const { derivations, state } = await this.derivations(p.uri, signal);
      if (state !== 'ok') return { problem: `The file is not evaluated (${state}).` };
      derivation = derivationNear(derivations, p.line ?? 0);
      if (!derivation) return { problem: 'No derivation attribute at or above the cursor.' };
    }
    const caps = await this.nix.detect();
    const build = this.settings.build;
    const drv = {
      system: derivation?.system ?? p.system ?? listing.local.system,
      requiredSystemFeatures: derivation?.requiredSystemFeatures ?? p.requiredSystemFeatures ?? [],
      preferLocalBuild: derivation?.preferLocalBuild ?? p.preferLocalBuild ?? false,
    };
    const { preview } = predictSchedule(
      drv,
      listing.builders,
      {
        local: listing.local,
        health: this.health,
        ignored: await this.buildersIgnored(),
        // Nix 2.8 divides load by speed factor in whole numbers; the factor became a float later.
        speedArithmetic: caps.ok && atLeast(caps.value.version, 2, 14) ? 'float' : 'integer',
      },
      build.remoteOnly ? 0 : build.maxJobs,
    );
    return { derivation, preview };
  }

  async testBuild(builderId: string, token: CancellationToken): Promise<TestBuildResult> {
    const listing = await this.listBuilders();
    const builder = listing.builders.find((b) => b.id === builderId);
    if (!builder) throw new ResponseError(ErrorCodes.InvalidParams, `No builder ${builderId}: the configuration changed, refresh the Builders view.`);
    const result = await testBuild(builder, { nix: this.nix, signal: abortSignalOf(token), localSystem: listing.local?.system });
    this.connection.console.info(`Test build on ${builder.name}: ${result.summary}\n${result.command.join(' ')}`);
    return testBuildAnswer(result);
  }

  listen(): void {
    this.connection.listen();
  }
}
