// Owns everything with a lifetime, in two scopes: the extension's life (output channel, views,
// status bar, commands) and one language server's life (client and its listeners).
// Restart = stop with a timeout, dispose the server scope, start again. The client's own state
// changes (a crash, its restart after one, a failed start) drive the status bar, the
// `nixBuilders.serverReady` context and the builds waited for, like rust-analyzer's and
// vscode-eslint's clients do; a client whose start failed is dropped, so the next call makes a new one.
import { randomUUID } from 'node:crypto';
import * as vscode from 'vscode';
import { ExecuteCommandRequest, LanguageClient, State, TransportKind, WorkDoneProgress, type LanguageClientOptions, type ServerOptions } from 'vscode-languageclient/node';
import {
  isBuildUpdate,
  Notifications,
  Requests,
  type BuilderHealth,
  type BuildersListing,
  type EditResult,
  type FormatMachineLineResult,
  type MachinesEdit,
  type DoctorReport,
  type InitializationOptions,
  type SchedulePreviewParams,
  type BuildInfo,
  type BuildProgress,
  type BuildPlanInfo,
  type StartBuildParams,
  type SchedulePreviewResult,
  type TestBuildResult,
  SET_EVALUATION_ARGUMENTS,
  ServerCommands,
  type CachesInfo,
  type ServerCommandId,
  type CheckReproducibilityResult,
  type CompareMachinesResult,
} from '../language-server/protocol';
import type { Machine } from '../language-server/nix/machines';
import type { NixBuildersApi, ServerState } from './api';
import { registerCommands, toUiCommand } from './commands';
import { CheckCodeActions } from './check';
import { affectsServer, logsInOutput, serverSettings } from './config';
import { BuildersView } from './views/buildersView';
import { CachesView } from './views/cachesView';
import { BuildDecorations, BuildsView } from './views/buildsView';
import { BuildStore } from './buildState';
import { BUILD_LOG_SCHEME, BuildLogDocuments } from './views/buildLogDocument';
import { BuildTaskProvider, TASK_TYPE } from './tasks';
import { RedactingChannel } from './redact';
import { CheckStore, type CheckEntry } from './checkState';
import { CHECK_DOC_SCHEME, CheckDocuments } from './views/checkDocument';

const STOP_TIMEOUT_MS = 5000;

export class Ctx implements vscode.Disposable {
  readonly log: vscode.LogOutputChannel;
  /** The log channel as the language client's trace channel, with the values of nixBuilders.env blanked. */
  private readonly trace: RedactingChannel;
  private readonly buildersView: BuildersView;
  private readonly buildersTree: vscode.TreeView<unknown>;
  private checkedOnce = false;
  /** Every build's state, merged from the server's notifications. */
  private readonly builds = new BuildStore();
  /** The reproducibility checks answered, shown in the Builds view. */
  readonly checks = new CheckStore();
  private readonly buildsView = new BuildsView(this.builds, this.checks);
  /** What a check shows that is no file (a binary's first differing bytes, why two derivations differ). */
  readonly checkDocuments = new CheckDocuments();
  /** The caches, keys and push queue, as the server lists them. */
  readonly cachesView = new CachesView(() => this.serverCommand<CachesInfo>(ServerCommands.listCaches, []));
  private readonly buildDecorations: BuildDecorations;
  /** Build logs as read-only documents. */
  readonly buildLogs = new BuildLogDocuments({ buildLog: (b, d) => this.buildLog(b, d), failureOf: (b, d) => this.builds.derivation(b, d)?.failure });
  private readonly statusBar: vscode.StatusBarItem;
  private serverState: ServerState = 'stopped';
  private readonly serverStateChanged = new vscode.EventEmitter<ServerState>();
  private readonly extensionScope: vscode.Disposable[] = [];
  private serverScope: vscode.Disposable[] = [];
  private client: LanguageClient | undefined;
  private starting: Promise<void> | undefined;
  private lastStatus: { version?: string; problem?: string } = {};

  constructor(private readonly context: vscode.ExtensionContext) {
    this.log = vscode.window.createOutputChannel('Nix Builders', { log: true });
    this.trace = new RedactingChannel(this.log);
    this.buildersView = new BuildersView(() => this.listBuilders());
    this.buildersTree = vscode.window.createTreeView('nixBuilders.builders', { treeDataProvider: this.buildersView, showCollapseAll: true });
    this.buildDecorations = new BuildDecorations(vscode.Uri.joinPath(context.extensionUri, 'media'), this.builds);
    this.statusBar = vscode.window.createStatusBarItem('nixBuilders.status', vscode.StatusBarAlignment.Left, 0);
    this.statusBar.name = 'Nix Builders';
    this.statusBar.command = 'nixBuilders.showOutput';
    this.extensionScope.push(
      this.log,
      this.statusBar,
      this.serverStateChanged,
      this.buildersTree,
      this.buildDecorations,
      vscode.window.registerTreeDataProvider('nixBuilders.builds', this.buildsView),
      vscode.window.registerTreeDataProvider('nixBuilders.caches', this.cachesView),
      this.buildLogs,
      vscode.workspace.registerTextDocumentContentProvider(BUILD_LOG_SCHEME, this.buildLogs),
      vscode.workspace.registerTextDocumentContentProvider(CHECK_DOC_SCHEME, this.checkDocuments),
      vscode.languages.registerCodeActionsProvider({ language: 'nix' }, new CheckCodeActions(this.checks), { providedCodeActionKinds: CheckCodeActions.kinds }),
      vscode.workspace.onDidCloseTextDocument((d) => {
        if (d.uri.scheme === BUILD_LOG_SCHEME) this.buildLogs.forget(d.uri);
        if (d.uri.scheme === CHECK_DOC_SCHEME) this.checkDocuments.forget(d.uri);
      }),
      vscode.tasks.registerTaskProvider(TASK_TYPE, new BuildTaskProvider(this)),
      this.buildersTree.onDidChangeVisibility((e) => {
        // The doctor runs when the view is first shown, and on refresh.
        if (e.visible && !this.checkedOnce) void this.checkBuilders(undefined).catch((err: Error) => this.log.warn(`Checking builders: ${err.message}`));
      }),
      ...registerCommands(this),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (affectsServer(e)) {
          this.trace.addSecrets(serverSettings().env);
          this.buildersView.refresh();
          this.cachesView.refresh();
        }
      }),
      vscode.workspace.onDidGrantWorkspaceTrust(() => {
        void this.client?.sendNotification(Notifications.workspaceTrust, { trusted: true });
        this.showStatus(this.lastStatus.version, this.lastStatus.problem);
      }),
    );
    context.subscriptions.push(this);
  }

  /** Start the language server; resolves when it answered `initialize`. */
  start(): Promise<void> {
    this.starting ??= this.startServer().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async startServer(): Promise<void> {
    const module = this.context.asAbsolutePath('dist/server.js');
    const serverOptions: ServerOptions = {
      run: { module, transport: TransportKind.ipc },
      debug: { module, transport: TransportKind.ipc, options: { execArgv: ['--nolazy', '--inspect=6009'] } },
    };
    const settings = serverSettings();
    this.trace.addSecrets(settings.env);
    const initializationOptions: InitializationOptions = {
      settings,
      workspaceTrusted: vscode.workspace.isTrusted,
      clientCommands: [SET_EVALUATION_ARGUMENTS],
      registersServerCommands: true,
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [
        { scheme: 'file', language: 'nix' },
        { scheme: 'file', language: 'nix-machines' },
      ],
      synchronize: { configurationSection: 'nixBuilders' },
      initializationOptions,
      outputChannel: this.log,
      // The trace (nixBuilders.trace.server) writes whole messages, settings included: never the env's values.
      traceOutputChannel: this.trace,
      // The lenses and quick fixes carry the server's commands: run the extension's richer ones.
      middleware: {
        provideCodeLenses: async (document, token, next) => {
          const lenses = await next(document, token);
          for (const lens of lenses ?? []) toUiCommand(lens.command);
          return lenses;
        },
        provideCodeActions: async (document, range, context, token, next) => {
          const actions = await next(document, range, context, token);
          for (const a of actions ?? []) if (a instanceof vscode.CodeAction) toUiCommand(a.command);
          return actions;
        },
      },
    };
    const client = new LanguageClient('nixBuilders', 'Nix Builders', serverOptions, clientOptions);
    this.client = client;
    this.serverScope.push(
      client.onNotification(Notifications.buildersChanged, () => this.buildersView.refresh()),
      client.onNotification(Notifications.builderHealth, (h) => this.buildersView.setHealth(h)),
      client.onNotification(Notifications.buildProgress, (b) => this.buildChanged(b)),
      client.onNotification(Notifications.checkFinished, (c) => void this.addCheck(c.uri, c.attribute, c.result)),
      client.onNotification(Notifications.cachesChanged, () => this.cachesView.refresh()),
      client.onDidChangeState((e) => this.clientStateChanged(client, e.newState)),
    );
    this.setServerState('starting');
    try {
      await client.start();
    } catch (e) {
      this.log.error(`The Nix Builders language server did not start: ${(e as Error).message}`);
      // Drop the failed client (it refuses requests): the next call makes a new one.
      await this.stop('The Nix Builders language server did not start: see the log (Nix Builders: Show Log).');
      throw e;
    }
    if (client.state === State.Running) await this.serverRunning(client);
  }

  /** The client's state changed: by itself after a crash (Stopped, then Starting and Running again when it restarts the server). */
  private clientStateChanged(client: LanguageClient, state: State): void {
    if (client !== this.client) return;
    switch (state) {
      case State.Starting:
        this.setServerState('starting');
        break;
      case State.Running:
        // The first start shows the server itself (start() resolves after that): this is a restart.
        if (!this.starting) void this.serverRunning(client).catch((e: Error) => this.log.warn(`The restarted language server: ${e.message}`));
        break;
      case State.Stopped:
      case State.StartFailed:
        this.serverGone('The Nix Builders language server stopped (see the log: Nix Builders: Show Log), and the build with it.', 'failed');
    }
  }

  /** The server answered `initialize`: show its Nix, list the builders. Runs at each (re)start. */
  private async serverRunning(client: LanguageClient): Promise<void> {
    const status = await client.sendRequest(Requests.status);
    if (client !== this.client || client.state !== State.Running) return;
    this.showStatus(status.version, status.problem);
    this.setServerState('running');
    if (status.problem) void vscode.window.showErrorMessage(status.problem);
    this.buildersView.refresh();
    this.cachesView.refresh();
  }

  /** The server and its builds are gone: the builds that ran end, whoever waits for one gets `reason`. */
  private serverGone(reason: string, status: 'failed' | 'cancelled'): void {
    this.setServerState('stopped');
    for (const build of this.builds.serverStopped(reason, status)) {
      this.buildsView.update(build.buildId);
      this.buildDecorations.update(build);
    }
    void this.updateRunningContext();
  }

  private setServerState(state: ServerState): void {
    this.serverState = state;
    void vscode.commands.executeCommand('setContext', 'nixBuilders.serverReady', state === 'running');
    void vscode.commands.executeCommand('setContext', 'nixBuilders.serverState', state);
    if (state === 'starting') {
      this.statusBar.text = '$(sync~spin) Nix';
      this.statusBar.tooltip = 'Starting the Nix Builders language server…';
      this.statusBar.command = 'nixBuilders.showOutput';
      this.statusBar.backgroundColor = undefined;
    } else if (state === 'stopped') {
      this.statusBar.text = '$(error) Nix: server stopped';
      this.statusBar.tooltip = 'The Nix Builders language server is not running (see the log). Click to restart it.';
      this.statusBar.command = 'nixBuilders.restartServer';
      this.statusBar.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
    } else {
      this.showReady();
    }
    this.statusBar.show();
    this.serverStateChanged.fire(state);
  }

  /** What the server found (shown while it runs). */
  private showStatus(version: string | undefined, problem: string | undefined): void {
    this.lastStatus = { version, problem };
    if (this.serverState === 'running') this.showReady();
  }

  private showReady(): void {
    const { version, problem } = this.lastStatus;
    this.statusBar.command = 'nixBuilders.showOutput';
    const trusted = vscode.workspace.isTrusted;
    this.statusBar.text = !version ? '$(warning) Nix' : trusted ? `$(server-environment) Nix ${version}` : `$(workspace-untrusted) Nix ${version}`;
    this.statusBar.tooltip =
      problem ??
      (trusted
        ? `Nix ${version} — Nix Builders is ready. Click for the log.`
        : `Nix ${version} — this workspace is not trusted, so its Nix files are not evaluated. Trust the workspace to see derivation diagnostics.`);
    this.statusBar.backgroundColor = problem ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
    this.statusBar.show();
  }

  /** Stop and dispose the server (with a timeout); its builds end, and their waiters get `reason`. */
  async stop(reason = 'The Nix Builders language server was stopped (restarted, or the window closed) while the build ran.'): Promise<void> {
    const client = this.client;
    this.client = undefined;
    for (const d of this.serverScope.splice(0)) d.dispose();
    if (!client) return;
    this.serverGone(reason, 'cancelled');
    await client.dispose(STOP_TIMEOUT_MS).catch((e: Error) => this.log.warn(`Stopping the server: ${e.message}`));
  }

  async restart(): Promise<void> {
    if (this.starting) await this.starting.catch(() => undefined);
    await this.stop();
    await this.start();
  }

  /** The server's listing; starts the server if it is not running. */
  async listBuilders(): Promise<BuildersListing> {
    const client = await this.runningClient();
    const listing = await client.sendRequest(Requests.listBuilders);
    await vscode.commands.executeCommand('setContext', 'nixBuilders.hasBuilders', listing.builders.length > 0);
    return listing;
  }

  /** List again and check every builder. */
  async refreshBuilders(): Promise<void> {
    this.buildersView.refresh();
    await this.checkBuilders(undefined);
  }

  /** Run the health doctor (all builders when `ids` is undefined); results stream into the view. */
  async checkBuilders(ids: string[] | undefined, token?: vscode.CancellationToken): Promise<DoctorReport> {
    this.checkedOnce = true;
    const client = await this.runningClient();
    const targets = ids ?? (await this.listBuilders()).builders.map((b) => b.id);
    this.buildersView.checkStarted(targets);
    try {
      const report = await client.sendRequest(Requests.checkBuilders, { builderIds: ids }, token);
      for (const h of report.builders) this.buildersView.setHealth(h);
      this.buildersView.setLocalCheck(report.local);
      if (report.local.status !== 'ok' && report.local.status !== 'skipped') this.log.warn(`This machine: ${report.local.summary} ${report.local.fix ?? ''}`);
      return report;
    } finally {
      this.buildersView.checkEnded(targets);
    }
  }

  async testBuild(builderId: string, token?: vscode.CancellationToken): Promise<TestBuildResult> {
    const client = await this.runningClient();
    return client.sendRequest(Requests.testBuild, { builderId }, token);
  }

  private buildChanged(notification: BuildProgress): void {
    const build = this.builds.apply(notification);
    if (!build) return;
    this.buildsView.update(build.buildId);
    this.buildDecorations.update(build);
    if (build.status !== 'running' || !isBuildUpdate(notification)) void this.updateRunningContext();
    if (build.status !== 'running') void this.logBuild(build);
  }

  /** `nixBuilders.buildRunning`: whether Cancel Build has something to cancel (the palette shows it then). */
  private async updateRunningContext(): Promise<void> {
    await vscode.commands.executeCommand('setContext', 'nixBuilders.buildRunning', this.builds.running().length > 0);
  }

  /**
   * Plan and run a build; resolves with its final state (also when it ended before the server's
   * answer arrived), rejects when the server stops meanwhile. Cancelling the token stops it.
   */
  async build(params: StartBuildParams, token?: vscode.CancellationToken, onStarted?: (b: BuildInfo) => void): Promise<BuildInfo> {
    const client = await this.runningClient();
    const started = await client.sendRequest(Requests.startBuild, params);
    onStarted?.(started);
    const sub = token?.onCancellationRequested(() => void this.cancelBuild(started.buildId).catch((e: Error) => this.log.warn(`Cancelling ${started.buildId}: ${e.message}`)));
    try {
      return await this.builds.whenEnded(started.buildId);
    } finally {
      sub?.dispose();
    }
  }

  /** Stop a running build and its whole process tree; false when it is not running (any more). */
  async cancelBuild(buildId: string): Promise<boolean> {
    return (await this.runningClient()).sendRequest(Requests.cancelBuild, { buildId });
  }

  /** The builds that are running, newest first. */
  runningBuilds(): BuildInfo[] {
    return this.builds.running();
  }

  /** A finished build in the output channel: the plan, each derivation's end state, failed logs in full. */
  private async logBuild(build: BuildInfo): Promise<void> {
    const lines = [`${build.buildId} ${build.status}: ${build.plan.summary}`];
    for (const d of build.snapshot?.derivations ?? []) lines.push(`  ${d.name}: ${d.state}${d.machine ? ` on ${d.machine}` : ''}`);
    for (const p of build.problems ?? []) lines.push(`  ${p}`);
    for (const m of build.snapshot?.messages ?? []) lines.push(`  nix: ${m}`);
    const which = logsInOutput();
    const logged = which === 'none' ? [] : (build.snapshot?.derivations ?? []).filter((x) => which === 'all' || x.state === 'failed');
    for (const d of logged) {
      if (d.logLineCount === 0) continue;
      const log = await this.buildLog(build.buildId, d.drvPath).catch((e: Error) => [`(the log could not be fetched: ${e.message})`]);
      lines.push(`  --- log of ${d.drvPath} (${d.logLineCount} lines) ---`, ...log.map((l) => `  ${l}`));
    }
    if (build.status === 'failed') this.log.error(lines.join('\n'));
    else this.log.info(lines.join('\n'));
  }

  async planBuild(params: StartBuildParams, token?: vscode.CancellationToken): Promise<BuildPlanInfo> {
    return (await this.runningClient()).sendRequest(Requests.planBuild, params, token);
  }

  /**
   * One of the server's LSP commands (workspace/executeCommand); cancelling the token cancels it.
   * With `onProgress`, the command's work-done progress (on a token of ours) comes to it instead of
   * a progress of the server's own.
   */
  async serverCommand<T>(command: ServerCommandId, args: unknown[], token?: vscode.CancellationToken, onProgress?: (message: string) => void): Promise<T> {
    const client = await this.runningClient();
    if (!onProgress) return client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args }, token) as Promise<T>;
    const workDoneToken = randomUUID();
    const progress = client.onProgress(WorkDoneProgress.type, workDoneToken, (v) => {
      if (v.kind !== 'end' && v.message) onProgress(v.message);
    });
    try {
      return (await client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args, workDoneToken }, token)) as T;
    } finally {
      progress.dispose();
    }
  }

  /** A check answered (by a command of this window, or the server's checkFinished), or a comparison across machines shown as one (`compared`): kept and shown in the Builds view. */
  addCheck(uri: string, attribute: readonly string[], result: CheckReproducibilityResult, compared?: CompareMachinesResult): CheckEntry {
    const entry = this.checks.add(uri, attribute, result, compared);
    this.buildsView.checksChanged();
    return entry;
  }

  async derivations(uri: string) {
    return (await this.runningClient()).sendRequest(Requests.derivations, { uri });
  }

  async buildLog(buildId: string, drvPath: string): Promise<string[]> {
    return (await this.runningClient()).sendRequest(Requests.buildLog, { buildId, drvPath });
  }

  buildStatus(uri: string) {
    return this.buildDecorations.statusOf(uri);
  }

  async probeBuilder(entry: string, token?: vscode.CancellationToken): Promise<BuilderHealth> {
    return (await this.runningClient()).sendRequest(Requests.probeBuilder, { entry }, token);
  }

  async editMachines(file: string, edit: MachinesEdit): Promise<EditResult> {
    return (await this.runningClient()).sendRequest(Requests.editMachines, { file, edit });
  }

  async formatMachineLine(machine: Machine): Promise<FormatMachineLineResult> {
    return (await this.runningClient()).sendRequest(Requests.formatMachineLine, { machine });
  }

  async schedulePreview(params: SchedulePreviewParams): Promise<SchedulePreviewResult> {
    return (await this.runningClient()).sendRequest(Requests.schedulePreview, params);
  }

  healthOf(builderId: string) {
    return this.buildersView.healthOf(builderId);
  }

  /** The client, once its server runs: started if there is none, waited for while it (re)starts. */
  private async runningClient(): Promise<LanguageClient> {
    if (this.starting) await this.starting;
    if (!this.client) await this.start();
    const client = this.client;
    if (!client) throw new Error('The Nix Builders language server is not running: see the log (Nix Builders: Show Log) and run Nix Builders: Restart Language Server.');
    if (client.state !== State.Running) {
      // Restarting by itself after a crash (start() waits for that), or stopped for good after
      // repeated crashes (start() starts it again: this call asked for it).
      try {
        await client.start();
      } catch (e) {
        if (client === this.client) await this.stop('The Nix Builders language server did not start again: see the log (Nix Builders: Show Log).');
        throw new Error(`The Nix Builders language server did not start again: ${(e as Error).message}. See the log (Nix Builders: Show Log).`);
      }
    }
    return client;
  }

  api(): NixBuildersApi {
    return {
      listBuilders: async () => (await this.listBuilders()).builders,
      checkBuilders: (ids) => this.checkBuilders(ids),
      testBuild: (id) => this.testBuild(id),
      build: (params) => this.build(params),
      planBuild: (params) => this.planBuild(params),
      buildStatus: (uri) => this.buildStatus(uri),
      checkRows: () => this.buildsView.checkRows(),
      nixVersion: async () => (await this.listBuilders()).nix.version,
      serverState: () => ({ state: this.serverState, statusText: this.statusBar.text, statusTooltip: typeof this.statusBar.tooltip === 'string' ? this.statusBar.tooltip : '' }),
      onDidChangeServerState: this.serverStateChanged.event,
    };
  }

  dispose(): void {
    // deactivate() has stopped the server and waited for it; this catches any other disposal.
    void this.stop();
    for (const d of this.extensionScope.splice(0)) d.dispose();
  }
}
