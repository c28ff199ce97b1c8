// The language server: owns every Nix and SSH operation. Runs inside VS Code (started by the
// extension over IPC) and standalone over stdio for any LSP client.
import { readFile } from 'node:fs/promises';
import * as os from 'node:os';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import {
  CodeActionKind,
  MarkupKind,
  ErrorCodes,
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
import { collectBuilders, hostOf, userOf } from './builders/collect';
import {
  DEFAULT_SETTINGS,
  Notifications,
  Requests,
  type BuildersListing,
  type DerivationInfo,
  type DocumentDerivations,
  type DoctorReport,
  type BuildInfo,
  type BuildPlanInfo,
  type BuilderInfo,
  type Placement,
  type StartBuildParams,
  type SchedulePreviewParams,
  type SchedulePreviewResult,
  type TestBuildResult,
  type InitializationOptions,
  type NixStatus,
  type ServerSettings,
} from './protocol';
import { FilesWatcher } from './util/watch';
import { DIAGNOSTIC_SOURCE, DocumentDiagnostics } from './eval/documentDiagnostics';
import { documentRange, whyNothingBuilds } from './eval/diagnose';
import { machinesDiagnostics } from './builders/machinesDiagnostics';
import { checkAll, checkBuilder } from './builders/doctor';
import { editMachinesFile, formatMachineLine } from './builders/machinesEdit';
import { parseMachineLine } from './nix/machines';
import { testBuild, testBuildAnswer } from './builders/testBuild';
import { previewSchedule } from './builders/schedule';
import { atLeast } from './nix/version';
import type { BuilderHealth } from './protocol';
import type { CancellationToken, CodeAction, CodeLens, Diagnostic, Hover } from 'vscode-languageserver/node';
import { Builds } from './builds/builds';

const isMachinesDocument = (doc: TextDocument) => doc.languageId === 'nix-machines' || /\/machines$/.test(doc.uri);

async function readDocument(uri: string): Promise<TextDocument | undefined> {
  if (!uri.startsWith('file:')) return undefined;
  try {
    return TextDocument.create(uri, 'nix', 0, await readFile(fileURLToPath(uri), 'utf8'));
  } catch {
    return undefined;
  }
}

const NEEDS_A_BUILDER = new Set(['no-builder-system', 'no-builder-features', 'mandatory-features', 'max-jobs-zero']);

/** Quick fixes for "nothing can build this": add a builder, or see why each machine is refused. */
function codeActionsFor(diagnostics: Diagnostic[]): CodeAction[] {
  return diagnostics
    .filter((d) => d.source === DIAGNOSTIC_SOURCE && NEEDS_A_BUILDER.has(String(d.code)))
    .flatMap((d) => {
      const system = (d.data as { system?: string } | undefined)?.system ?? 'it';
      return [
        { title: `Add a builder for ${system}…`, kind: CodeActionKind.QuickFix, diagnostics: [d], isPreferred: true, command: { title: 'Add Builder', command: 'nixBuilders.addBuilder' } },
        { title: 'Show why each machine cannot build it', kind: CodeActionKind.QuickFix, diagnostics: [d], command: { title: 'Which Builder', command: 'nixBuilders.previewSchedule' } },
      ];
    });
}

/** LSP cancellation as an AbortSignal, which kills the work's process trees. */
function abortSignalOf(token: CancellationToken): AbortSignal {
  const controller = new AbortController();
  if (token.isCancellationRequested) controller.abort();
  else token.onCancellationRequested(() => controller.abort());
  return controller.signal;
}

export const SERVER_NAME = 'nix-builders-language-server';

export class NixBuildersServer {
  private settings: ServerSettings = DEFAULT_SETTINGS;
  private workspaceTrusted = true;
  private canPullConfiguration = false;
  private readonly nix: Nix;
  private readonly documents = new TextDocuments(TextDocument);
  private readonly watcher: FilesWatcher;
  private listing: Promise<BuildersListing> | undefined;
  private readonly diagnostics: DocumentDiagnostics;
  private readonly builds: Builds;
  private untrustedNoticeSent = false;
  /** The doctor's last verdict per builder id (for the scheduling preview). */
  private readonly health = new Map<string, BuilderHealth>();

  constructor(
    private readonly connection: Connection,
    runner: ProcessRunner,
  ) {
    this.nix = new Nix(runner, { binDir: '', env: {} });
    this.watcher = new FilesWatcher(() => this.invalidate());
    this.builds = new Builds(connection, this.nix);
    this.diagnostics = new DocumentDiagnostics(connection, this.nix, async () => ({
      trusted: this.workspaceTrusted,
      options: {
        depth: this.settings.evaluation.depth,
        timeoutMs: this.settings.evaluation.timeoutSeconds * 1000,
        allowImportFromDerivation: this.settings.evaluation.allowImportFromDerivation,
      },
      listing: await this.listBuilders(),
    }));
    // Fired on open too: a document seen for the first time is evaluated at once, edits after a pause.
    this.documents.onDidChangeContent((e) => this.documentChanged(e.document, this.diagnostics.known(e.document.uri) ? undefined : 0));
    this.documents.onDidClose((e) => this.diagnostics.close(e.document.uri));
    this.documents.onDidClose((e) => {
      if (isMachinesDocument(e.document)) void connection.sendDiagnostics({ uri: e.document.uri, diagnostics: [] });
    });
    connection.onInitialize((p) => this.initialize(p));
    connection.onInitialized(() => void this.initialized());
    connection.onDidChangeConfiguration((p) => void this.configurationChanged(p.settings));
    connection.onRequest(Requests.status, () => this.status());
    connection.onRequest(Requests.listBuilders, () => this.listBuilders());
    connection.onRequest(Requests.derivations, (p) => this.derivations(p.uri));
    connection.onRequest(Requests.checkBuilders, (p, token) => this.checkBuilders(p.builderIds, token));
    connection.onRequest(Requests.testBuild, (p, token) => this.testBuild(p.builderId, token));
    connection.onRequest(Requests.schedulePreview, (p) => this.schedulePreview(p));
    connection.onRequest(Requests.startBuild, (p) => this.startBuild(p));
    connection.onRequest(Requests.planBuild, (p, token) => this.planBuild(p, abortSignalOf(token)));
    connection.onRequest(Requests.cancelBuild, (p) => this.builds.cancel(p.buildId));
    connection.onRequest(Requests.buildLog, (p) => this.builds.log(p.buildId, p.drvPath));
    connection.onCodeLens((p) => this.codeLenses(p.textDocument.uri));
    connection.onHover((p) => this.hover(p.textDocument.uri, p.position.line, p.position.character));
    connection.onCodeAction((p) => codeActionsFor(p.context.diagnostics));
    connection.onRequest(Requests.editMachines, async (p) => {
      const result = await editMachinesFile(p.file, p.edit, { expectedText: p.expectedText });
      if (result.ok) this.invalidate();
      else this.connection.console.warn(result.message);
      return result;
    });
    connection.onRequest(Requests.formatMachineLine, (p) => formatMachineLine(p.machine));
    connection.onRequest(Requests.probeBuilder, (p, token) => this.probeBuilder(p.entry, token));
    connection.onNotification(Notifications.workspaceTrust, (p) => {
      this.workspaceTrusted = p.trusted;
      this.invalidate();
    });
    connection.onShutdown(() => {
      this.watcher.dispose();
      this.diagnostics.dispose();
      this.builds.dispose();
    });
    this.documents.listen(connection);
  }

  private initialize(params: InitializeParams): InitializeResult {
    const options = (params.initializationOptions ?? {}) as InitializationOptions;
    this.applySettings(options.settings);
    this.workspaceTrusted = options.workspaceTrusted ?? true;
    this.canPullConfiguration = params.capabilities.workspace?.configuration === true;
    return {
      capabilities: {
        textDocumentSync: TextDocumentSyncKind.Incremental,
        hoverProvider: true,
        codeLensProvider: { resolveProvider: false },
        codeActionProvider: { codeActionKinds: [CodeActionKind.QuickFix] },
      },
      serverInfo: { name: SERVER_NAME, version: '0.1.0' },
    };
  }

  private async initialized(): Promise<void> {
    const status = await this.status();
    if (status.version) this.connection.console.info(`Found ${status.implementation ?? 'Nix'} ${status.version}.`);
    else this.connection.console.error(status.problem ?? 'Nix was not found.');
    // Start watching what the builders come from.
    void this.listBuilders();
  }

  private async configurationChanged(pushed: unknown): Promise<void> {
    let section: unknown = (pushed as { nixBuilders?: unknown } | undefined)?.nixBuilders;
    if (this.canPullConfiguration) {
      section = await this.connection.workspace.getConfiguration('nixBuilders');
    }
    if (section && typeof section === 'object') this.applySettings(section as Partial<ServerSettings>);
    this.invalidate();
  }

  private applySettings(s: Partial<ServerSettings> | undefined): void {
    const strings = (x: unknown) => (Array.isArray(x) ? x.filter((v): v is string => typeof v === 'string') : []);
    const env: Record<string, string> = {};
    if (s?.env && typeof s.env === 'object') {
      for (const [k, v] of Object.entries(s.env)) if (typeof v === 'string') env[k] = v;
    }
    const number = (x: unknown, fallback: number, min: number) => (typeof x === 'number' && Number.isFinite(x) && x >= min ? x : fallback);
    const evaluation = DEFAULT_SETTINGS.evaluation;
    this.settings = {
      nixBinDir: typeof s?.nixBinDir === 'string' ? s.nixBinDir : '',
      env,
      machinesFiles: strings(s?.machinesFiles),
      builders: strings(s?.builders),
      evaluation: {
        depth: number(s?.evaluation?.depth, evaluation.depth, 1),
        timeoutSeconds: number(s?.evaluation?.timeoutSeconds, evaluation.timeoutSeconds, 1),
        allowImportFromDerivation: s?.evaluation?.allowImportFromDerivation === true,
      },
      build: {
        remoteOnly: s?.build?.remoteOnly === true,
        maxJobs: typeof s?.build?.maxJobs === 'number' && s.build.maxJobs >= 0 ? Math.floor(s.build.maxJobs) : undefined,
        cores: typeof s?.build?.cores === 'number' && s.build.cores >= 0 ? Math.floor(s.build.cores) : undefined,
      },
    };
    this.nix.updateSettings({ binDir: this.settings.nixBinDir, env: this.settings.env });
  }

  /** Something that the builders depend on changed: list again, tell the client, re-diagnose. */
  private invalidate(): void {
    this.listing = undefined;
    void this.connection.sendNotification(Notifications.buildersChanged);
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
  async derivations(uri: string): Promise<DocumentDerivations> {
    if (!this.workspaceTrusted) return { uri, state: 'untrusted', derivations: [] };
    // A file that is not open in the editor (a build task's) is read from disk.
    const doc = this.documents.get(uri) ?? (await readDocument(uri));
    if (!doc) return { uri, state: 'not-evaluated', derivations: [] };
    const done = this.diagnostics.evaluation(uri);
    const evaluation = done && done.version === doc.version ? done : await this.diagnostics.evaluate(doc);
    if (!evaluation) return { uri, state: 'not-evaluated', derivations: [] };
    const r = evaluation.result;
    if (r.kind !== 'ok') return { uri, version: doc.version, state: r.kind === 'timed-out' ? 'timed-out' : 'error', derivations: [] };
    const lines = doc.getText().split('\n');
    const derivations: DerivationInfo[] = [];
    for (const item of r.output.items) {
      if ('error' in item) continue;
      const range = item.pos?.inDoc ? documentRange(lines, item.pos) : undefined;
      const { path: attrPath, pos, ...fields } = item;
      derivations.push({ ...fields, attrPath, line: range?.line, column: range?.column });
    }
    return { uri, version: doc.version, state: 'ok', derivations };
  }

  async status(): Promise<NixStatus> {
    const caps = await this.nix.detect();
    return caps.ok
      ? { version: caps.value.version.text, implementation: caps.value.version.implementation, workspaceTrusted: this.workspaceTrusted }
      : { problem: caps.message, workspaceTrusted: this.workspaceTrusted };
  }

  listBuilders(): Promise<BuildersListing> {
    this.listing ??= this.computeListing();
    return this.listing;
  }

  private async computeListing(): Promise<BuildersListing> {
    const nix = await this.status();
    const config = await this.nix.config();
    const nixConfBuilders = config.ok ? config.value.builders : '';
    const collected = await collectBuilders(nixConfBuilders, this.settings);
    this.watcher.setFiles([...collected.files, ...this.nixConfFiles()]);
    const problems = collected.problems;
    if (!config.ok && nix.version) problems.unshift({ message: config.message });
    return {
      nix,
      local: config.ok
        ? {
            system: config.value.system,
            extraPlatforms: config.value.extraPlatforms,
            systemFeatures: config.value.systemFeatures,
            maxJobs: config.value.maxJobs,
            cores: config.value.cores,
            buildCores: config.value.cores > 0 ? config.value.cores : os.availableParallelism(),
            substituters: config.value.substituters,
          }
        : undefined,
      builders: collected.builders,
      problems,
    };
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
    return report;
  }

  async startBuild(p: StartBuildParams): Promise<BuildInfo> {
    const targets = await this.buildTargets(p);
    const listing = await this.listBuilders();
    return this.builds.start(p, targets, listing.builders, this.settings.build);
  }

  async planBuild(p: StartBuildParams, signal?: AbortSignal): Promise<BuildPlanInfo> {
    const targets = await this.buildTargets(p);
    const listing = await this.listBuilders();
    const local = listing.local;
    const place = (d: { system: string; requiredSystemFeatures: string[]; preferLocalBuild: boolean }, m: { builders: readonly BuilderInfo[]; maxJobs: number | undefined }): Placement => {
      if (!local) return { verdict: 'unknown', summary: 'the local Nix configuration is not known' };
      const preview = previewSchedule({ ...d, local, builders: m.builders, health: this.health, ...(m.maxJobs !== undefined ? { maxJobsOverride: m.maxJobs } : {}) });
      const placement: Placement = { verdict: preview.verdict, summary: preview.summary };
      if (preview.chosen) placement.machine = preview.chosen.name;
      if (preview.verdict === 'none') {
        const why = whyNothingBuilds(d, m.maxJobs !== undefined ? { ...local, maxJobs: m.maxJobs } : local, m.builders);
        if (why) placement.problem = why;
      }
      return placement;
    };
    return this.builds.plan(p, targets, listing.builders, this.settings.build, { place, substituters: local?.substituters ?? [], ...(signal ? { signal } : {}) });
  }

  /** The derivations a build request names. */
  private async buildTargets(p: StartBuildParams): Promise<DerivationInfo[]> {
    if (!this.workspaceTrusted) throw new ResponseError(ErrorCodes.InvalidRequest, 'This workspace is not trusted: Nix Builders does not build its derivations.');
    let targets: DerivationInfo[] = [];
    if (p.uri !== undefined) {
      const { derivations, state } = await this.derivations(p.uri);
      if (state !== 'ok') throw new ResponseError(ErrorCodes.InvalidRequest, `The file is not evaluated (${state}): fix its errors first.`);
      const wanted = p.attrPaths?.map((a) => a.join('\u0000'));
      targets = wanted ? derivations.filter((d) => wanted.includes(d.attrPath.join('\u0000'))) : derivations;
    }
    for (const drvPath of p.drvPaths ?? []) targets.push({ attrPath: [], drvPath, name: drvPath, system: '', requiredSystemFeatures: [], preferLocalBuild: false, outputs: [] });
    if (targets.length === 0) throw new ResponseError(ErrorCodes.InvalidParams, 'Nothing to build: no such derivation.');
    return targets;
  }

  /** Build, Build remotely only, Build on… above every derivation attribute of the document. */
  async codeLenses(uri: string): Promise<CodeLens[]> {
    if (!this.workspaceTrusted || !this.documents.get(uri)) return [];
    const { derivations } = await this.derivations(uri);
    return derivations.flatMap((d) => {
      if (d.line === undefined) return [];
      const range = { start: { line: d.line, character: d.column ?? 0 }, end: { line: d.line, character: d.column ?? 0 } };
      const args = [uri, d.attrPath];
      return [
        { range, command: { title: 'Build', command: 'nixBuilders.build', arguments: args } },
        { range, command: { title: 'Build remotely only', command: 'nixBuilders.buildRemotely', arguments: args } },
        { range, command: { title: 'Build on…', command: 'nixBuilders.buildOn', arguments: args } },
        { range, command: { title: 'Plan', command: 'nixBuilders.planBuild', arguments: args } },
      ];
    });
  }

  /** On a derivation attribute: what it is and where Nix would build it. */
  async hover(uri: string, line: number, character: number): Promise<Hover | null> {
    if (!this.workspaceTrusted || !this.documents.get(uri)) return null;
    const { derivations } = await this.derivations(uri);
    const d = derivations.find((x) => x.line === line && x.column !== undefined && character >= x.column && character <= x.column + x.attrPath.join('.').length + 2);
    if (!d) return null;
    const { preview } = await this.schedulePreview({ uri, line });
    const md = [
      `**${d.attrPath.join('.')}** — \`${d.name}\``,
      '',
      `\`${d.drvPath}\``,
      '',
      `system \`${d.system}\`${d.requiredSystemFeatures.length ? ` · features ${d.requiredSystemFeatures.map((f) => `\`${f}\``).join(', ')}` : ''} · outputs ${d.outputs.join(', ')}${d.preferLocalBuild ? ' · preferLocalBuild' : ''}`,
      ...(preview ? ['', `Nix would now: ${preview.summary}`] : []),
    ];
    return { contents: { kind: MarkupKind.Markdown, value: md.join('\n') } };
  }

  /** The doctor on an entry that is not in any machines file yet. */
  async probeBuilder(entry: string, token: CancellationToken): Promise<BuilderHealth> {
    const parsed = parseMachineLine(entry);
    if (!parsed.machine) throw new ResponseError(ErrorCodes.InvalidParams, `Not a machines entry: ${parsed.error}`);
    const listing = await this.listBuilders();
    const machine = parsed.machine;
    const builder = { ...machine, id: `probe:${machine.uri}`, name: hostOf(machine.uri), user: userOf(machine.uri), source: { label: 'new builder' } };
    return checkBuilder(builder, { nix: this.nix, signal: abortSignalOf(token), localSystem: listing.local?.system });
  }

  /** Which machine Nix would choose now, and why not the others. */
  async schedulePreview(p: SchedulePreviewParams): Promise<SchedulePreviewResult> {
    const listing = await this.listBuilders();
    if (!listing.local) return { problem: listing.nix.problem ?? 'The Nix configuration could not be read.' };
    let derivation: DerivationInfo | undefined;
    if (p.uri !== undefined) {
      const { derivations, state } = await this.derivations(p.uri);
      if (state !== 'ok') return { problem: `The file is not evaluated (${state}).` };
      // The derivation whose attribute is on that line, or the nearest one above it.
      derivation = derivations
        .filter((d) => d.line !== undefined && d.line <= (p.line ?? 0))
        .sort((a, b) => (b.line ?? 0) - (a.line ?? 0))[0];
      if (!derivation) return { problem: 'No derivation attribute at or above the cursor.' };
    }
    const caps = await this.nix.detect();
    const build = this.settings.build;
    const preview = previewSchedule({
      system: derivation?.system ?? p.system ?? listing.local.system,
      requiredSystemFeatures: derivation?.requiredSystemFeatures ?? p.requiredSystemFeatures ?? [],
      preferLocalBuild: derivation?.preferLocalBuild ?? p.preferLocalBuild ?? false,
      local: listing.local,
      builders: listing.builders,
      health: this.health,
      maxJobsOverride: build.remoteOnly ? 0 : build.maxJobs,
      // Nix 2.8 divides load by speed factor in whole numbers; the factor became a float later.
      speedArithmetic: caps.ok && atLeast(caps.value.version, 2, 14) ? 'float' : 'integer',
    });
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

  /** The nix.conf files Nix reads (NIX_CONF_DIR or /etc/nix, then the user's). */
  private nixConfFiles(): string[] {
    const env = { ...process.env, ...this.settings.env };
    const files = [path.join(env.NIX_CONF_DIR ?? '/etc/nix', 'nix.conf')];
    if (env.NIX_USER_CONF_FILES) files.push(...env.NIX_USER_CONF_FILES.split(':').filter(Boolean));
    else files.push(path.join(env.XDG_CONFIG_HOME ?? path.join(os.homedir(), '.config'), 'nix', 'nix.conf'));
    return files;
  }

  listen(): void {
    this.connection.listen();
  }
}
