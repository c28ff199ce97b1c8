// Check Reproducibility in VS Code: the command (from the lens, the palette or a check's row),
// its progress, its notification, the differing files opened (the diff editor for text, the sizes,
// hashes and first differing bytes otherwise), diffoscope's report, and why two derivations differ.
// Compare Builds Across Machines runs the server's compareMachines and shows its answer as a check
// (checkState's comparisonAsCheck): the same rows, notification and diff editor.
import { access, open } from 'node:fs/promises';
import * as vscode from 'vscode';
import type { Ctx } from './ctx';
import { checkRounds } from './config';
import {
  attributePath,
  CHECK_HISTORY,
  checkDiagnosticData,
  checkMessage,
  comparisonAsCheck,
  derivationDiffText,
  describeFile,
  diffTitle,
  differenceAction,
  differenceDocument,
  fileLabel,
  fileSides,
  firstOpenable,
  looksLikeText,
  NOT_REPRODUCIBLE,
  type CheckEntry,
  type CheckStore,
  type ShownOutput,
} from './checkState';
import { checkOfNode } from './views/checkNodes';
import { attributeOfNode } from './views/buildsView';
import { storeName } from '../language-server/nix/storePath';
import {
  ServerCommands,
  type CheckReproducibilityArgs,
  type CheckReproducibilityResult,
  type CompareMachinesArgs,
  type CompareMachinesResult,
  type DerivationDiff,
  type DerivationInfo,
  type DerivationSide,
  type DiffDerivationsArgs,
  type DiffoscopeArgs,
  type DiffoscopeResult,
} from '../language-server/protocol';

/** How much of a file's beginning decides whether it is text (when the server did not say). */
const TEXT_PROBE_BYTES = 64 * 1024;

/** A request cancelled by its token (vscode-languageclient's CancellationError, or the server's RequestCancelled). */
export function isCancellation(e: unknown): boolean {
  return e instanceof vscode.CancellationError || /cancel/i.test(e instanceof Error ? e.message : String(e));
}

interface Attribute {
  uri: string;
  attribute: string[];
}

/** The active Nix document's derivation at the cursor (its attribute's line), or the one picked from the document's derivations. */
async function attributeOfEditor(ctx: Ctx, placeHolder: string): Promise<Attribute | undefined> {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.document.languageId !== 'nix') {
    void vscode.window.showInformationMessage('Open a .nix file (or flake.nix) to pick its derivations.');
    return undefined;
  }
  const uri = editor.document.uri.toString();
  const derivations = await derivationsOf(ctx, uri);
  if (!derivations) return undefined;
  const line = editor.selection.active.line;
  const here = derivations.find((d) => d.line === line);
  if (here) return { uri, attribute: here.attrPath };
  const picked = await pickDerivation(derivations, placeHolder, line);
  return picked && { uri, attribute: picked.attrPath };
}

async function derivationsOf(ctx: Ctx, uri: string): Promise<DerivationInfo[] | undefined> {
  const { derivations, state } = await ctx.derivations(uri);
  if (state === 'ok' && derivations.length > 0) return derivations;
  void vscode.window.showWarningMessage(state === 'ok' ? 'This file has no derivations.' : `This file is not evaluated (${state}).`);
  return undefined;
}

/** A quick pick of derivations, the nearest above `line` first. */
async function pickDerivation(derivations: readonly DerivationInfo[], placeHolder: string, line: number): Promise<DerivationInfo | undefined> {
  const distance = (d: DerivationInfo) => (d.line === undefined ? Infinity : d.line <= line ? line - d.line : Infinity);
  const sorted = [...derivations].sort((a, b) => distance(a) - distance(b));
  const picked = await vscode.window.showQuickPick(
    sorted.map((d) => ({ label: d.attrPath.join('.'), description: d.system, detail: d.drvPath, d })),
    { placeHolder },
  );
  return picked?.d;
}

/** The command's arguments: the lens's `{ uri, attribute }`, a check's row (check it again), a built attribute's row, or the editor's derivation. */
async function checkTarget(ctx: Ctx, arg: unknown): Promise<CheckReproducibilityArgs | undefined> {
  const row = checkOfNode(arg);
  if (row) {
    const entry = ctx.checks.get(row.key);
    return entry && { uri: entry.uri, attribute: entry.attribute, ...(entry.result.machine !== 'this machine' && !entry.compared ? { builder: entry.result.machine } : {}) };
  }
  const built = attributeOfNode(arg);
  if (built) return built;
  const given = arg as Partial<CheckReproducibilityArgs> | undefined;
  if (typeof given?.uri === 'string' && (typeof given.attribute === 'string' || Array.isArray(given.attribute))) return given as CheckReproducibilityArgs;
  return attributeOfEditor(ctx, 'Check which derivation for reproducibility?');
}

/** Check Reproducibility: this machine, the rounds of nixBuilders.check.rounds (or as the arguments say). */
export async function checkReproducibility(ctx: Ctx, arg: unknown): Promise<CheckReproducibilityResult | undefined> {
  const target = await checkTarget(ctx, arg);
  return target && runCheck(ctx, target);
}

/** Check Reproducibility on…: asks where (this machine or a builder) and how many rounds. */
export async function checkReproducibilityOn(ctx: Ctx, arg: unknown): Promise<CheckReproducibilityResult | undefined> {
  const target = await checkTarget(ctx, arg);
  if (!target) return undefined;
  const { builders } = await ctx.listBuilders();
  const where = await vscode.window.showQuickPick(
    [{ label: 'This machine', description: 'rebuild here', builder: undefined as string | undefined }, ...builders.map((b) => ({ label: b.name, description: b.uri, builder: b.name }))],
    { placeHolder: `Check ${attributePath(target.attribute).join('.')} on which machine?` },
  );
  if (!where) return undefined;
  const rounds = await vscode.window.showInputBox({
    title: 'Check Reproducibility',
    prompt: 'How many rebuilds to compare with the first build',
    value: String(target.rounds ?? checkRounds()),
    validateInput: (v) => (/^[1-9]\d*$/.test(v.trim()) ? undefined : 'A whole number, 1 or more'),
  });
  if (rounds === undefined) return undefined;
  return runCheck(ctx, { ...target, ...(where.builder ? { builder: where.builder } : {}), rounds: Number(rounds.trim()) });
}

async function runCheck(ctx: Ctx, target: CheckReproducibilityArgs): Promise<CheckReproducibilityResult | undefined> {
  const attribute = attributePath(target.attribute);
  const args: CheckReproducibilityArgs = { ...target, attribute, rounds: target.rounds ?? checkRounds() };
  const title = `Checking ${attribute.join('.')} for reproducibility${args.builder ? ` on ${args.builder}` : ''}`;
  let result: CheckReproducibilityResult;
  try {
    result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, (progress, token) =>
      ctx.serverCommand<CheckReproducibilityResult>(ServerCommands.checkReproducibility, [args], token, (message) => progress.report({ message })),
    );
  } catch (e) {
    if (!isCancellation(e)) throw e;
    void vscode.window.showInformationMessage(`${title}: cancelled.`);
    return undefined;
  }
  const entry = ctx.addCheck(args.uri, attribute, result);
  ctx.log.info(checkLog(entry));
  void showCheckMessage(ctx, entry).catch((e: Error) => void vscode.window.showErrorMessage(`Nix Builders: ${e.message}`));
  return result;
}

/** Every output and differing file, for the output channel. */
function checkLog(entry: CheckEntry): string {
  const r = entry.result;
  const how = entry.compared ? `Compare ${entry.attribute.join('.')} (${r.drvPath}) across ${r.machine}` : `Check ${entry.attribute.join('.')} (${r.drvPath}) on ${r.machine}, ${r.rounds} rebuild${r.rounds === 1 ? '' : 's'}${r.builtFirst ? ', built first' : ''}`;
  const lines = [`${how}: ${r.summary}`];
  for (const o of r.outputs) {
    lines.push(`  ${o.name} (${o.path}): ${o.status}${o.reason ? ` — ${o.reason}` : ''}`);
    for (const h of entry.compared?.outputs.find((x) => x.name === o.name)?.hashes ?? []) lines.push(`    ${h.machine}: ${h.narHash ?? h.reason ?? 'no hash'}${h.note ? ` (${h.note})` : ''}`);
    for (const f of o.files ?? []) lines.push(`    ${fileLabel(o, f)}: ${describeFile(f, (o as ShownOutput).sides)}`);
  }
  return lines.join('\n');
}

async function showCheckMessage(ctx: Ctx, entry: CheckEntry): Promise<void> {
  const r = entry.result;
  // A comparison's summary names its machines ("built differently on here and b1").
  const text = `Nix Builders: ${entry.compared ? `${entry.attribute.join('.')}: ${r.summary}.` : checkMessage(entry.attribute, r)}`;
  const openable = firstOpenable(r);
  // diffoscope's report is of a check's output (the server keeps those answers).
  const differing = entry.compared ? undefined : r.outputs.find((o) => o.status === 'differs');
  const [openDiff, diffoscope, show] = ['Open Diff', 'Diffoscope Report', entry.compared ? 'Show Comparison' : 'Show Check'];
  const buttons = [...(openable ? [openDiff] : []), ...(differing ? [diffoscope] : []), show];
  const choice = await (r.status === 'reproducible' ? vscode.window.showInformationMessage(text, show) : vscode.window.showWarningMessage(text, ...buttons));
  if (choice === openDiff && openable) await openDifference(ctx, entry.key, openable.output.name, openable.file.path);
  else if (choice === diffoscope && differing) await openDiffoscopeReport(ctx, entry.key, differing.name);
  else if (choice === show) await vscode.commands.executeCommand('nixBuilders.builds.focus');
}

function checkOutput(ctx: Ctx, key: unknown, output: unknown) {
  const entry = typeof key === 'string' ? ctx.checks.get(key) : undefined;
  if (!entry) {
    void vscode.window.showInformationMessage(`That check is no longer kept (the newest ${CHECK_HISTORY} are): check the derivation again.`);
    return undefined;
  }
  const o = entry.result.outputs.find((x) => x.name === output);
  return o && { entry, output: o };
}

const exists = (p: string) => access(p).then(() => true, () => false);

async function readsAsText(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(TEXT_PROBE_BYTES), 0, TEXT_PROBE_BYTES, 0);
    return looksLikeText(buffer.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

/** A differing file of a check: text in the diff editor (first build ↔ rebuild); anything else as its sizes, hashes and first differing bytes. */
export async function openDifference(ctx: Ctx, key: unknown, output: unknown, file: unknown): Promise<void> {
  const found = checkOutput(ctx, key, output);
  const f = found?.output.files?.find((x) => x.path === file);
  if (!found || !f) return;
  const o = found.output;
  const { first, rebuild } = fileSides(o, f);
  for (const side of [first, rebuild]) {
    if (side && !(await exists(side))) {
      void vscode.window.showWarningMessage(`${side} is gone (the server keeps the rebuilds of its newest ${CHECK_HISTORY} checks while it runs): check ${found.entry.attribute.join('.')} again.`);
      return;
    }
  }
  if (f.kind === 'changed' && f.first?.type === 'file' && first && rebuild && (f.text ?? ((await readsAsText(first)) && (await readsAsText(rebuild))))) {
    await vscode.commands.executeCommand('vscode.diff', vscode.Uri.file(first), vscode.Uri.file(rebuild), diffTitle(o, f), { preview: true });
    return;
  }
  const doc = await vscode.workspace.openTextDocument(ctx.checkDocuments.add(diffTitle(o, f), differenceDocument(o, f)));
  await vscode.window.showTextDocument(doc, { preview: true });
}

/** The machines to compare on: two or more of this machine and the builders, and whether to ask the substituters too. */
async function pickMachines(ctx: Ctx, attribute: readonly string[]): Promise<Pick<CompareMachinesArgs, 'machines' | 'substituters'> | undefined> {
  const { builders } = await ctx.listBuilders();
  const picked = await vscode.window.showQuickPick(
    [
      { label: 'This machine', description: 'build here', machine: 'local' as string | undefined },
      ...builders.map((b) => ({ label: b.name, description: b.uri, machine: b.name as string | undefined })),
      { label: '$(cloud) The substituters', description: "compare with what the configured caches serve (their narinfo's NarHash)", machine: undefined },
    ],
    { canPickMany: true, placeHolder: `Build ${attribute.join('.')} on which machines (two or more, or one and the substituters)?` },
  );
  if (!picked) return undefined;
  const machines = picked.flatMap((p) => (p.machine ? [p.machine] : []));
  const substituters = picked.some((p) => !p.machine);
  if (machines.length === 0 || machines.length + (substituters ? 1 : 0) < 2) {
    void vscode.window.showWarningMessage('Comparing needs two sides: pick two machines, or one machine and the substituters.');
    return undefined;
  }
  return { machines, substituters };
}

/**
 * Compare Builds Across Machines…: the derivation at the cursor (or picked, or a built
 * attribute's row, or `[CompareMachinesArgs]` given) built independently on the machines picked;
 * the answer kept in the Builds view as a Compare row beside the checks.
 */
export async function compareAcrossMachines(ctx: Ctx, arg: unknown): Promise<CompareMachinesResult | undefined> {
  const given = arg as Partial<CompareMachinesArgs> | undefined;
  let args: CompareMachinesArgs;
  if (typeof given?.uri === 'string' && given.attribute !== undefined && Array.isArray(given.machines)) args = given as CompareMachinesArgs;
  else {
    const target = attributeOfNode(arg) ?? (await attributeOfEditor(ctx, 'Compare which derivation across machines?'));
    if (!target) return undefined;
    const machines = await pickMachines(ctx, target.attribute);
    if (!machines) return undefined;
    args = { ...target, ...machines };
  }
  const attribute = attributePath(args.attribute);
  const names = [...new Set(args.machines.map((m) => (m === 'local' ? 'this machine' : m)))];
  const title = `Comparing ${attribute.join('.')} across ${[...names, ...(args.substituters !== false ? ['the substituters'] : [])].join(', ')}`;
  let result: CompareMachinesResult;
  try {
    result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, (progress, token) =>
      ctx.serverCommand<CompareMachinesResult>(ServerCommands.compareMachines, [{ ...args, attribute }], token, (message) => progress.report({ message })),
    );
  } catch (e) {
    if (!isCancellation(e)) throw e;
    void vscode.window.showInformationMessage(`${title}: cancelled.`);
    return undefined;
  }
  const entry = ctx.addCheck(args.uri, attribute, comparisonAsCheck(result, names), result);
  ctx.log.info(checkLog(entry));
  void showCheckMessage(ctx, entry).catch((e: Error) => void vscode.window.showErrorMessage(`Nix Builders: ${e.message}`));
  return result;
}

/** Which output: the server's `DiffoscopeArgs` (its quick fix's), a differing output's row, or a check's key and an output's name. */
function diffoscopeTarget(ctx: Ctx, first: unknown, output: unknown): DiffoscopeArgs | undefined {
  const given = first as Partial<DiffoscopeArgs> | undefined;
  if (typeof given?.drvPath === 'string' && typeof given.output === 'string') return { drvPath: given.drvPath, output: given.output };
  const row = checkOfNode(first);
  const found = row ? checkOutput(ctx, row.key, row.output) : checkOutput(ctx, first, output);
  return found && { drvPath: found.entry.result.drvPath, output: found.output.name };
}

/** diffoscope's report on a differing output (the server runs it), opened in the editor; without diffoscope, how to install it. */
export async function openDiffoscopeReport(ctx: Ctx, first: unknown, output: unknown): Promise<void> {
  const args = diffoscopeTarget(ctx, first, output);
  if (!args) return;
  let r: DiffoscopeResult;
  try {
    r = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `diffoscope: ${storeName(args.drvPath)} (${args.output})`, cancellable: true },
      (_progress, token) => ctx.serverCommand<DiffoscopeResult>(ServerCommands.diffoscope, [args], token),
    );
  } catch (e) {
    if (isCancellation(e)) return;
    throw e;
  }
  if (r.status === 'report' && r.reportFile) await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(vscode.Uri.file(r.reportFile)), { preview: true });
  else if (r.status === 'not-installed') void vscode.window.showInformationMessage(`Nix Builders: ${r.message ?? 'diffoscope is not installed (Debian: apt install diffoscope).'}`);
  else void vscode.window.showErrorMessage(`Nix Builders: diffoscope failed: ${r.message ?? 'it gave no report'}`);
}

/** The quick fix of the server's "not reproducible" diagnostic that only the editor has: the diff editor on what differs. */
export class CheckCodeActions implements vscode.CodeActionProvider {
  static readonly kinds = [vscode.CodeActionKind.QuickFix];

  constructor(private readonly checks: CheckStore) {}

  provideCodeActions(_document: vscode.TextDocument, _range: vscode.Range, context: vscode.CodeActionContext): vscode.CodeAction[] {
    return context.diagnostics.flatMap((d) => {
      const code = typeof d.code === 'object' ? d.code.value : d.code;
      // vscode-languageclient keeps the LSP diagnostic's `data` on the diagnostic.
      const data = code === NOT_REPRODUCIBLE ? checkDiagnosticData((d as { data?: unknown }).data) : undefined;
      const link = data && differenceAction(this.checks, data);
      if (!link) return [];
      const action = new vscode.CodeAction(link.title, vscode.CodeActionKind.QuickFix);
      action.diagnostics = [d];
      action.isPreferred = true;
      action.command = { title: link.title, command: 'nixBuilders.openCheckDifference', arguments: link.arguments };
      return [action];
    });
  }
}

/** A side at the last commit: the diffDerivations argument's `revision` (the attribute as the file is in git's HEAD). */
type SideAtRevision = Exclude<DerivationSide, string> & { revision?: 'HEAD' };

/**
 * Why do these derivations differ? Two attributes of the document, or one now and at the last
 * commit (or `[DiffDerivationsArgs]` given): the tree of their first differing inputs in a document.
 */
export async function whyDerivationsDiffer(ctx: Ctx, arg: unknown): Promise<void> {
  let args: DiffDerivationsArgs;
  const given = arg as Partial<DiffDerivationsArgs> | undefined;
  const label = (s: DerivationSide) => (typeof s === 'string' ? s : `${attributePath(s.attribute).join('.')}${(s as SideAtRevision).revision ? ` at ${(s as SideAtRevision).revision}` : ''}`);
  if (given?.a !== undefined && given.b !== undefined) {
    args = { a: given.a, b: given.b };
  } else {
    const a = await attributeOfEditor(ctx, 'Why does which derivation differ? (the first of two)');
    if (!a) return;
    const derivations = (await derivationsOf(ctx, a.uri)) ?? [];
    const name = a.attribute.join('.');
    const atHead: SideAtRevision = { uri: a.uri, attribute: a.attribute, revision: 'HEAD' };
    const picked = await vscode.window.showQuickPick(
      [
        { label: `$(git-commit) ${name} at the last commit`, description: 'HEAD', side: atHead as DerivationSide },
        ...derivations.filter((d) => d.attrPath.join('.') !== name).map((d) => ({ label: d.attrPath.join('.'), description: d.system, detail: d.drvPath, side: { uri: a.uri, attribute: d.attrPath } as DerivationSide })),
      ],
      { placeHolder: `Compare ${name} with…` },
    );
    if (!picked) return;
    args = { a, b: picked.side };
  }
  const labels: [string, string] = [label(args.a), label(args.b)];
  let diff: DerivationDiff;
  try {
    diff = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Comparing ${labels[0]} and ${labels[1]}`, cancellable: true }, (_progress, token) =>
      ctx.serverCommand<DerivationDiff>(ServerCommands.diffDerivations, [args], token),
    );
  } catch (e) {
    if (isCancellation(e)) return;
    throw e;
  }
  const doc = await vscode.workspace.openTextDocument(ctx.checkDocuments.add(`why ${labels[0]} ↔ ${labels[1]}`, derivationDiffText(diff, labels)));
  await vscode.window.showTextDocument(doc, { preview: true });
}
