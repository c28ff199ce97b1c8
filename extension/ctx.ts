// Owns everything with a lifetime, in two scopes: the extension's life (output channel, views,
// status bar, commands) and one language server's life (client and its listeners).
// Restart = stop with a timeout, dispose the server scope, start again.
import * as vscode from 'vscode';
import { LanguageClient, TransportKind, type LanguageClientOptions, type ServerOptions } from 'vscode-languageclient/node';
import {
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
} from '../language-server/protocol';
import type { Machine } from '../language-server/nix/machines';
import type { NixBuildersApi } from './api';
import { registerCommands } from './commands';
import { affectsServer, logsInOutput, serverSettings } from './config';
import { BuildersView } from './views/buildersView';
import { BuildDecorations, BuildsView } from './views/buildsView';
import { BuildStore } from './buildState';
import { BUILD_LOG_SCHEME, BuildLogDocuments } from './views/buildLogDocument';
import { BuildTaskProvider, TASK_TYPE } from './tasks';

const STOP_TIMEOUT_MS = 5000;

export class Ctx implements vscode.Disposable {
  readonly log: vscode.LogOutputChannel;
  private readonly buildersView: BuildersView;
  private readonly buildersTree: vscode.TreeView<unknown>;
  private checkedOnce = false;
  /** Every build's state, merged from the server's notifications. */
  private readonly builds = new BuildStore();
  private readonly buildsView = new BuildsView(this.builds);
  private readonly buildDecorations: BuildDecorations;
  /** Build logs as read-only documents. */
  readonly buildLogs = new BuildLogDocuments({ buildLog: (b, d) => this.buildLog(b, d), failureOf: (b, d) => this.builds.derivation(b, d)?.failure });
  /** Builds started here, resolved when their final state arrives. */
  private readonly buildWaiters = new Map<string, (b: BuildInfo) => void>();
  private readonly statusBar: vscode.StatusBarItem;
  private readonly extensionScope: vscode.Disposable[] = [];
  private serverScope: vscode.Disposable[] = [];
  private client: LanguageClient | undefined;
  private starting: Promise<void> | undefined;
  private lastStatus: { version?: string; problem?: string } = {};

  constructor(private readonly context: vscode.ExtensionContext) {
    this.log = vscode.window.createOutputChannel('Nix Builders', { log: true });
    this.buildersView = new BuildersView(() => this.listBuilders());
    this.buildersTree = vscode.window.createTreeView('nixBuilders.builders', { treeDataProvider: this.buildersView, showCollapseAll: true });
    this.buildDecorations = new BuildDecorations(vscode.Uri.joinPath(context.extensionUri, 'media'), this.builds);
    this.statusBar = vscode.window.createStatusBarItem('nixBuilders.status', vscode.StatusBarAlignment.Left, 0);
    this.statusBar.name = 'Nix Builders';
    this.statusBar.command = 'nixBuilders.showOutput';
    this.extensionScope.push(
      this.log,
      this.statusBar,
      this.buildersTree,
      this.buildDecorations,
      vscode.window.registerTreeDataProvider('nixBuilders.builds', this.buildsView),
      this.buildLogs,
      vscode.workspace.registerTextDocumentContentProvider(BUILD_LOG_SCHEME, this.buildLogs),
      vscode.workspace.onDidCloseTextDocument((d) => {
        if (d.uri.scheme === BUILD_LOG_SCHEME) this.buildLogs.forget(d.uri);
      }),
      vscode.tasks.registerTaskProvider(TASK_TYPE, new BuildTaskProvider(this)),
      this.buildersTree.onDidChangeVisibility((e) => {
        // The doctor runs when the view is first shown, and on refresh.
        if (e.visible && !this.checkedOnce) void this.checkBuilders(undefined).catch((err: Error) => this.log.warn(`Checking builders: ${err.message}`));
      }),
      ...registerCommands(this),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (affectsServer(e)) this.buildersView.refresh();
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
    const initializationOptions: InitializationOptions = {
      settings: serverSettings(),
      workspaceTrusted: vscode.workspace.isTrusted,
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [
        { scheme: 'file', language: 'nix' },
        { scheme: 'file', language: 'nix-machines' },
      ],
      synchronize: { configurationSection: 'nixBuilders' },
      initializationOptions,
      outputChannel: this.log,
    };
    const client = new LanguageClient('nixBuilders', 'Nix Builders', serverOptions, clientOptions);
    this.client = client;
    this.serverScope.push(
      client.onNotification(Notifications.buildersChanged, () => this.buildersView.refresh()),
      client.onNotification(Notifications.builderHealth, (h) => this.buildersView.setHealth(h)),
      client.onNotification(Notifications.buildProgress, (b) => this.buildChanged(b)),
    );
    await vscode.commands.executeCommand('setContext', 'nixBuilders.serverReady', false);
    try {
      await client.start();
    } catch (e) {
      this.log.error(`The Nix Builders language server did not start: ${(e as Error).message}`);
      this.showStatus(undefined, 'The language server did not start: see the output.');
      throw e;
    }
    await vscode.commands.executeCommand('setContext', 'nixBuilders.serverReady', true);
    const status = await client.sendRequest(Requests.status);
    this.showStatus(status.version, status.problem);
    if (status.problem) void vscode.window.showErrorMessage(status.problem);
    this.buildersView.refresh();
  }

  private showStatus(version: string | undefined, problem: string | undefined): void {
    this.lastStatus = { version, problem };
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

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    for (const d of this.serverScope.splice(0)) d.dispose();
    if (client) await client.stop(STOP_TIMEOUT_MS).catch((e: Error) => this.log.warn(`Stopping the server: ${e.message}`));
  }

  async restart(): Promise<void> {
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
    if (build.status !== 'running') {
      this.buildWaiters.get(build.buildId)?.(build);
      this.buildWaiters.delete(build.buildId);
      void this.logBuild(build);
    }
  }

  /** Plan and run a build; resolves with its final state. Cancelling the token stops it. */
  async build(params: StartBuildParams, token?: vscode.CancellationToken, onStarted?: (b: BuildInfo) => void): Promise<BuildInfo> {
    const client = await this.runningClient();
    const started = await client.sendRequest(Requests.startBuild, params);
    onStarted?.(started);
    const done = new Promise<BuildInfo>((resolve) => this.buildWaiters.set(started.buildId, resolve));
    const sub = token?.onCancellationRequested(() => void client.sendRequest(Requests.cancelBuild, { buildId: started.buildId }));
    try {
      return await done;
    } finally {
      sub?.dispose();
    }
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

  private async runningClient(): Promise<LanguageClient> {
    if (!this.client) await this.start();
    if (this.starting) await this.starting;
    if (!this.client) throw new Error('The Nix Builders language server is not running.');
    return this.client;
  }

  api(): NixBuildersApi {
    return {
      listBuilders: async () => (await this.listBuilders()).builders,
      checkBuilders: (ids) => this.checkBuilders(ids),
      testBuild: (id) => this.testBuild(id),
      build: (params) => this.build(params),
      planBuild: (params) => this.planBuild(params),
      buildStatus: (uri) => this.buildStatus(uri),
      nixVersion: async () => (await this.listBuilders()).nix.version,
    };
  }

  dispose(): void {
    void this.stop();
    for (const d of this.extensionScope.splice(0)) d.dispose();
  }
}
