// The one table of commands. `package.json`'s contributes.commands is checked against it by a test.
import * as vscode from 'vscode';
import type { Ctx } from './ctx';
import type { CommandId } from './commandIds';
import { builderOfNode, healthSummary } from './views/buildersView';
import { addBuilder, editBuilder, pinHostKey, removeBuilder } from './builderEditor';
import { buildLogUri, errorLine, LOG_HEADER_LINES } from './views/buildLogDocument';
import { buildIdOfNode } from './views/buildsView';
import { ServerCommands, type BuildCommandResult, type BuildExpressionArgs, type BuilderInfo, type BuildPlanInfo, type SchedulePreviewParams, type ServerCommandId } from '../language-server/protocol';
import { setEvaluationArguments } from './config';
import { checkReproducibility, checkReproducibilityOn, compareAcrossMachines, isCancellation, openDiffoscopeReport, openDifference, whyDerivationsDiffer } from './check';
import { CACHE_COMMANDS } from './cacheCommands';
import { SET_UP_COMMANDS } from './setUpCommands';

/**
 * The server's code lens and code action commands (for any editor) run here through the
 * extension's own, with its progress, pickers and views, as Volar's and vscode-go's clients do
 * with theirs: the client's middleware swaps the ids, the arguments stay.
 */
const SERVER_COMMAND_UI: Partial<Record<ServerCommandId, CommandId>> = {
  [ServerCommands.build]: 'nixBuilders.build',
  [ServerCommands.buildRemotely]: 'nixBuilders.buildRemotely',
  [ServerCommands.buildOn]: 'nixBuilders.buildOn',
  [ServerCommands.plan]: 'nixBuilders.planBuild',
  [ServerCommands.whichBuilder]: 'nixBuilders.previewSchedule',
  [ServerCommands.addBuilder]: 'nixBuilders.addBuilder',
  [ServerCommands.checkReproducibility]: 'nixBuilders.checkReproducibility',
  [ServerCommands.diffoscope]: 'nixBuilders.openDiffoscopeReport',
  [ServerCommands.pushToCache]: 'nixBuilders.pushToCache',
};

const SERVER_COMMAND_IDS = new Set<string>(Object.values(ServerCommands));

/**
 * A lens's or action's server command, as the extension's command of the same action; one without
 * a UI of its own (e.g. a flake input's fix) runs through nixBuilders.runServerCommand, which sends
 * it back to the server (the server lists no commands for VS Code to register: see
 * InitializationOptions.registersServerCommands).
 */
export function toUiCommand(c: vscode.Command | undefined): void {
  if (!c || !SERVER_COMMAND_IDS.has(c.command)) return;
  const ui = SERVER_COMMAND_UI[c.command as ServerCommandId];
  if (ui) c.command = ui;
  else {
    c.arguments = [c.command, ...(c.arguments ?? [])];
    c.command = 'nixBuilders.runServerCommand';
  }
}

/** Build attributes of a document (the code lens's arguments, or the derivation under the cursor). */
async function startBuild(ctx: Ctx, uri: unknown, attrPath: unknown, opts: { remoteOnly?: boolean; builderIds?: string[] }): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  const docUri = typeof uri === 'string' ? uri : editor?.document.uri.toString();
  if (!docUri) return;
  const attrPaths = Array.isArray(attrPath) ? [attrPath as string[]] : undefined;
  const title = `Building ${attrPaths?.[0]?.join('.') ?? 'every derivation of the file'}${opts.remoteOnly ? ' remotely' : ''}`;
  const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, (progress, token) =>
    ctx.build({ uri: docUri, attrPaths, ...opts }, token, (started) => progress.report({ message: started.plan.summary })),
  );
  ctx.log.info(`${title}: ${result.status} — ${result.plan.summary}`);
  if (result.status === 'failed') {
    const failed = result.snapshot?.derivations.find((d) => d.state === 'failed');
    const choice = await vscode.window.showErrorMessage(`${title} failed: ${result.problems?.[0] ?? failed?.failure ?? 'see the log'}`, ...(failed ? ['Show Log'] : []));
    if (choice === 'Show Log' && failed) await vscode.commands.executeCommand('nixBuilders.showBuildLog', result.buildId, failed.drvPath);
  }
}

/** The running build to cancel: the row's, the only one, or the one picked; undefined when there is none. */
async function pickRunningBuild(ctx: Ctx, node: unknown): Promise<string | undefined> {
  const fromRow = buildIdOfNode(node);
  if (fromRow) return fromRow;
  const running = ctx.runningBuilds();
  if (running.length === 0) {
    void vscode.window.showInformationMessage('No build is running.');
    return undefined;
  }
  if (running.length === 1) return running[0]?.buildId;
  const picked = await vscode.window.showQuickPick(
    running.map((b) => ({ label: b.targets.map((t) => t.attrPath.join('.') || t.drvPath).join(', '), description: b.plan.summary, detail: b.uri, buildId: b.buildId })),
    { placeHolder: 'Cancel which build?' },
  );
  return picked?.buildId;
}

async function pickBuilder(ctx: Ctx, placeHolder: string): Promise<BuilderInfo | undefined> {
  const { builders } = await ctx.listBuilders();
  if (builders.length === 0) {
    void vscode.window.showInformationMessage('No builder is configured.');
    return undefined;
  }
  const picked = await vscode.window.showQuickPick(
    builders.map((b) => ({ label: b.name, description: b.uri, detail: `${b.systems.join(', ') || 'local system'} — ${b.source.label}`, builder: b })),
    { placeHolder },
  );
  return picked?.builder;
}

type Handler = (ctx: Ctx, ...args: unknown[]) => unknown;

/** Lines of a plan shown in its dialog (the rest is in the output channel). */
const PLAN_DETAIL_LINES = 24;

export const COMMANDS: Readonly<Record<CommandId, Handler>> = {
  'nixBuilders.refreshBuilders': (ctx) =>
    vscode.window.withProgress({ location: { viewId: 'nixBuilders.builders' } }, () => ctx.refreshBuilders()),
  'nixBuilders.checkAllBuilders': (ctx) =>
    vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'Checking builders…', cancellable: true },
      async (_progress, token) => {
        const report = await ctx.checkBuilders(undefined, token);
        const bad = report.builders.filter((h) => h.status === 'error' || h.status === 'warning');
        const text = bad.length === 0 ? `All ${report.builders.length} builders are healthy.` : bad.map((h) => `${h.name}: ${healthSummary(h)}`).join(' · ');
        void (bad.length ? vscode.window.showWarningMessage(`Nix Builders: ${text}`) : vscode.window.showInformationMessage(`Nix Builders: ${text}`));
      },
    ),
  'nixBuilders.checkBuilder': async (ctx, node) => {
    const builder = builderOfNode(node) ?? (await pickBuilder(ctx, 'Check which builder?'));
    if (!builder) return;
    await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Checking ${builder.name}…`, cancellable: true },
      (_progress, token) => ctx.checkBuilders([builder.id], token),
    );
  },
  'nixBuilders.testBuild': async (ctx, node) => {
    const builder = builderOfNode(node) ?? (await pickBuilder(ctx, 'Test build on which builder?'));
    if (!builder) return;
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Test build on ${builder.name}…`, cancellable: true },
      (_progress, token) => ctx.testBuild(builder.id, token),
    );
    ctx.log.info(`Test build on ${builder.name}: ${result.summary}`);
    if (result.status === 'ok') {
      void vscode.window.showInformationMessage(`Test build on ${builder.name}: ${result.summary}`);
    } else if (result.status !== 'cancelled') {
      const detail = [result.cause, result.fix && `Fix: ${result.fix}`].filter(Boolean).join(' ');
      const choice = await vscode.window.showErrorMessage(`Test build on ${builder.name} failed: ${result.summary} ${detail}`, 'Show Log');
      if (choice === 'Show Log') ctx.log.show(true);
    }
  },
  'nixBuilders.previewSchedule': async (ctx, uri, line) => {
    const editor = vscode.window.activeTextEditor;
    let params: SchedulePreviewParams;
    if (typeof uri === 'string' && typeof line === 'number') {
      // A quick fix's arguments: the diagnostic's document and line.
      params = { uri, line };
    } else if (editor && editor.document.languageId === 'nix') {
      params = { uri: editor.document.uri.toString(), line: editor.selection.active.line };
    } else {
      const asked = await vscode.window.showInputBox({
        title: 'Which machine would Nix pick?',
        prompt: 'A system and the required features, e.g. "aarch64-linux kvm big-parallel"',
        value: 'x86_64-linux',
        validateInput: (v) => (/^\s*[a-z0-9_]+-[a-z0-9_]+(\s+\S+)*\s*$/.test(v) ? undefined : 'Start with a system such as x86_64-linux'),
      });
      if (!asked) return;
      const [system, ...requiredSystemFeatures] = asked.trim().split(/\s+/);
      params = { system, requiredSystemFeatures };
    }
    const result = await ctx.schedulePreview(params);
    if (!result.preview) {
      void vscode.window.showWarningMessage(`Nix Builders: ${result.problem ?? 'no preview'}`);
      return;
    }
    const p = result.preview;
    await vscode.window.showQuickPick(
      p.candidates.map((c) => ({
        label: `${c.eligible ? (c.name === p.chosen?.name ? '$(arrow-right)' : '$(check)') : '$(close)'} ${c.name}`,
        description: c.reason,
      })),
      { title: result.derivation ? `${result.derivation.attrPath.join('.')}: ${p.summary}` : p.summary, placeHolder: p.summary },
    );
  },
  'nixBuilders.addBuilder': (ctx) => addBuilder(ctx),
  'nixBuilders.editBuilder': async (ctx, node) => {
    const builder = builderOfNode(node) ?? (await pickBuilder(ctx, 'Edit which builder?'));
    if (builder) await editBuilder(ctx, builder);
  },
  'nixBuilders.removeBuilder': async (ctx, node) => {
    const builder = builderOfNode(node) ?? (await pickBuilder(ctx, 'Remove which builder?'));
    if (builder) await removeBuilder(ctx, builder);
  },
  'nixBuilders.pinHostKey': async (ctx, node) => {
    const builder = builderOfNode(node) ?? (await pickBuilder(ctx, "Pin which builder's host key?"));
    if (builder) await pinHostKey(ctx, builder, ctx.healthOf(builder.id));
  },
  'nixBuilders.build': (ctx, uri, attrPath) => startBuild(ctx, uri, attrPath, {}),
  'nixBuilders.buildRemotely': (ctx, uri, attrPath) => startBuild(ctx, uri, attrPath, { remoteOnly: true }),
  'nixBuilders.buildOn': async (ctx, uri, attrPath) => {
    const { builders } = await ctx.listBuilders();
    const picked = await vscode.window.showQuickPick(
      builders.map((b) => ({ label: b.name, description: b.uri, detail: b.systems.join(', '), id: b.id })),
      { canPickMany: true, placeHolder: 'Build on which builders? (nothing builds on this machine)' },
    );
    if (picked?.length) await startBuild(ctx, uri, attrPath, { remoteOnly: true, builderIds: picked.map((p) => p.id) });
  },
  'nixBuilders.planBuild': async (ctx, uri, attrPath) => {
    const docUri = typeof uri === 'string' ? uri : vscode.window.activeTextEditor?.document.uri.toString();
    if (!docUri) return;
    const attrPaths = Array.isArray(attrPath) ? [attrPath as string[]] : undefined;
    // A dry run, .drv files and binary caches: quick, but a slow cache can be cancelled.
    let plan: BuildPlanInfo;
    try {
      plan = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Planning the build…', cancellable: true }, (_progress, token) =>
        ctx.planBuild({ uri: docUri, attrPaths }, token),
      );
    } catch (e) {
      if (!isCancellation(e)) void vscode.window.showErrorMessage(`Planning the build failed: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    // The whole plan goes to the log; the dialog shows its first lines.
    const lines = [...plan.targets.map((t) => `${t.attrPath.join('.')}: ${t.where}`), ...plan.details, ...plan.problems];
    ctx.log.info(`Plan: ${plan.summary}\n${lines.join('\n')}`);
    const detail = lines.length > PLAN_DETAIL_LINES ? [...lines.slice(0, PLAN_DETAIL_LINES), `… ${lines.length - PLAN_DETAIL_LINES} more lines in the Nix Builders output`].join('\n') : lines.join('\n');
    const go = await vscode.window.showInformationMessage(plan.summary, { modal: true, detail }, 'Build', 'Build Remotely Only');
    if (go) await startBuild(ctx, docUri, attrPath, { remoteOnly: go === 'Build Remotely Only' });
  },
  'nixBuilders.pickAndBuild': async (ctx) => {
    const editor = vscode.window.activeTextEditor;
    if (!editor || editor.document.languageId !== 'nix') {
      void vscode.window.showInformationMessage('Open a .nix file (or flake.nix) to pick its derivations.');
      return;
    }
    const uri = editor.document.uri.toString();
    const { derivations, state } = await ctx.derivations(uri);
    if (state !== 'ok' || derivations.length === 0) {
      void vscode.window.showWarningMessage(state === 'ok' ? 'This file has no derivations.' : `This file is not evaluated (${state}).`);
      return;
    }
    const picked = await vscode.window.showQuickPick(
      derivations.map((d) => ({ label: d.attrPath.join('.'), description: d.system, detail: d.drvPath, attrPath: d.attrPath })),
      { canPickMany: true, placeHolder: 'Build which derivations (flake outputs included)?' },
    );
    if (!picked?.length) return;
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Building ${picked.length} derivation(s)`, cancellable: true },
      (progress, token) => ctx.build({ uri, attrPaths: picked.map((p) => p.attrPath) }, token, (s) => progress.report({ message: s.plan.summary })),
    );
    if (result.status === 'failed') void vscode.window.showErrorMessage(`Build failed: ${result.problems?.[0] ?? 'see the Builds view'}`);
  },
  'nixBuilders.buildExpression': async (ctx) => {
    const expression = await vscode.window.showInputBox({
      title: 'Build Expression (1/2)',
      prompt: 'A Nix expression that gives a derivation, or a list or attribute set of derivations (relative paths start at the workspace folder)',
      placeHolder: '(import ./default.nix {}).hello',
      ignoreFocusOut: true,
    });
    if (!expression?.trim()) return;
    const builders = await vscode.window.showInputBox({
      title: 'Build Expression (2/2)',
      prompt: 'Builders for this build, machines entries separated by ";" (as --builders). Empty: the configured builders.',
      placeHolder: 'ssh://b2 aarch64-linux; ssh://b1 x86_64-linux - 2',
      ignoreFocusOut: true,
    });
    if (builders === undefined) return;
    const folder = (vscode.window.activeTextEditor && vscode.workspace.getWorkspaceFolder(vscode.window.activeTextEditor.document.uri)) ?? vscode.workspace.workspaceFolders?.[0];
    const args: BuildExpressionArgs = { expression, ...(builders.trim() ? { builders } : {}), ...(folder ? { directory: folder.uri.fsPath } : {}) };
    const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Building the expression', cancellable: true }, (_progress, token) =>
      ctx.serverCommand<BuildCommandResult>(ServerCommands.buildExpression, [args], token),
    );
    ctx.log.info(`Build Expression: ${result.status} — ${result.summary}${result.outputs.length ? `\n${result.outputs.join('\n')}` : ''}`);
    if (result.status === 'built') void vscode.window.showInformationMessage(`Built: ${result.outputs.join(', ') || result.summary}`);
    else if (result.status === 'failed') void vscode.window.showErrorMessage(`Build Expression failed: ${result.problems[0] ?? result.derivations.find((d) => d.state === 'failed')?.failure ?? 'see the Builds view'}`);
  },
  'nixBuilders.cancelBuild': async (ctx, node) => {
    const buildId = await pickRunningBuild(ctx, node);
    if (buildId && !(await ctx.cancelBuild(buildId))) void vscode.window.showInformationMessage('That build has ended already.');
  },
  'nixBuilders.showBuildLog': async (ctx, buildId, drvPath) => {
    if (typeof buildId !== 'string' || typeof drvPath !== 'string') return;
    const uri = buildLogUri(buildId, drvPath);
    // Fetched now (a running build's log grows); an open document of it is refreshed.
    const text = await ctx.buildLogs.load(uri);
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.languages.setTextDocumentLanguage(doc, 'log');
    // Opened at the error: where a failed build says what went wrong.
    const line = errorLine(text.split('\n').slice(LOG_HEADER_LINES, -1));
    await vscode.window.showTextDocument(doc, { preview: true, selection: new vscode.Range(line, 0, line, 0) });
  },
  'nixBuilders.restartServer': (ctx) => ctx.restart(),
  'nixBuilders.showOutput': (ctx) => ctx.log.show(true),
  'nixBuilders.openSettings': () => vscode.commands.executeCommand('workbench.action.openSettings', '@ext:nix-builders.nix-builders'),
  'nixBuilders.runServerCommand': async (ctx, command, ...args) => {
    if (typeof command !== 'string' || !SERVER_COMMAND_IDS.has(command)) return;
    const result = await ctx.serverCommand<{ status?: string; message?: string } | null>(command as ServerCommandId, args);
    if (result && typeof result === 'object' && result.status === 'failed') void vscode.window.showErrorMessage(`Nix Builders: ${result.message ?? `${command} failed`}`);
  },
  'nixBuilders.checkReproducibility': (ctx, arg) => checkReproducibility(ctx, arg),
  'nixBuilders.checkReproducibilityOn': (ctx, arg) => checkReproducibilityOn(ctx, arg),
  'nixBuilders.openCheckDifference': (ctx, key, output, file) => openDifference(ctx, key, output, file),
  'nixBuilders.openDiffoscopeReport': (ctx, first, output) => openDiffoscopeReport(ctx, first, output),
  'nixBuilders.whyDerivationsDiffer': (ctx, arg) => whyDerivationsDiffer(ctx, arg),
  'nixBuilders.compareMachines': (ctx, arg) => compareAcrossMachines(ctx, arg),
  'nixBuilders.setEvaluationArguments': async (_ctx, uri, templates) => {
    if (typeof uri !== 'string' || !templates || typeof templates !== 'object') return;
    if (await setEvaluationArguments(vscode.Uri.parse(uri), templates as Record<string, string>)) void vscode.window.showInformationMessage(`Nix Builders: set ${Object.keys(templates).join(', ')} in "nixBuilders.evaluation.arguments".`);
  },
  ...CACHE_COMMANDS,
  ...SET_UP_COMMANDS,
};

export function registerCommands(ctx: Ctx): vscode.Disposable[] {
  return Object.entries(COMMANDS).map(([id, handler]) =>
    vscode.commands.registerCommand(id, async (...args: unknown[]) => {
      try {
        return await handler(ctx, ...args);
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        ctx.log.error(`${id}: ${message}`);
        void vscode.window.showErrorMessage(`Nix Builders: ${message}`);
        return undefined;
      }
    }),
  );
}
