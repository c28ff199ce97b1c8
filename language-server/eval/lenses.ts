// What the editor shows on a document's derivations: their listing (with positions), code lenses,
// the hover, and the quick fixes of the diagnostics. Pure: from evaluations and previews to LSP
// objects.
import { CodeActionKind, MarkupKind, type CodeAction, type CodeLens, type Diagnostic, type Hover } from 'vscode-languageserver/node';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import { ServerCommands, type AddBuilderArgs, type BuildCommandArgs, type CheckReproducibilityArgs, type DerivationInfo, type DocumentDerivations, type PushToCacheArgs, type SchedulePreview } from '../protocol';
import { documentRange } from './diagnose';
import { DIAGNOSTIC_SOURCE, type DocumentEvaluation } from './documentDiagnostics';
import { entryText, notOnSearchPathMessage, type ResolveOutcome, type SearchPathEntry, type SearchPathOccurrence } from './searchPath';

/** The derivations of an evaluated document, each at its attribute's position. */
export function documentDerivations(doc: TextDocument, evaluation: DocumentEvaluation | undefined): DocumentDerivations {
  const uri = doc.uri;
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

/** The derivation whose attribute is on `line`, or the nearest one above it. */
export function derivationNear(derivations: readonly DerivationInfo[], line: number): DerivationInfo | undefined {
  return derivations.filter((d) => d.line !== undefined && d.line <= line).sort((a, b) => (b.line ?? 0) - (a.line ?? 0))[0];
}

/** The derivation whose attribute name is under the cursor. */
export function derivationAt(derivations: readonly DerivationInfo[], line: number, character: number): DerivationInfo | undefined {
  return derivations.find((x) => x.line === line && x.column !== undefined && character >= x.column && character <= x.column + x.attrPath.join('.').length + 2);
}

/**
 * Build, Build remotely only, Build on…, Plan, Check reproducibility above every derivation attribute of the document: server commands, for any editor.
 * With push targets (nixBuilders.cache.pushTargets), also Push to cache (to the first).
 */
export function codeLensesFor(uri: string, derivations: readonly DerivationInfo[], o: { pushTargets?: readonly string[] } = {}): CodeLens[] {
  const pushTo = o.pushTargets?.[0];
  return derivations.flatMap((d) => {
    if (d.line === undefined) return [];
    const range = { start: { line: d.line, character: d.column ?? 0 }, end: { line: d.line, character: d.column ?? 0 } };
    const args: BuildCommandArgs = [uri, d.attrPath];
    const check: CheckReproducibilityArgs = { uri, attribute: d.attrPath };
    const push: PushToCacheArgs[] | undefined = pushTo !== undefined ? [{ uri, attribute: d.attrPath, to: pushTo }] : undefined;
    return [
      { range, command: { title: 'Build', command: ServerCommands.build, arguments: args } },
      { range, command: { title: 'Build remotely only', command: ServerCommands.buildRemotely, arguments: args } },
      { range, command: { title: 'Build on…', command: ServerCommands.buildOn, arguments: args } },
      { range, command: { title: 'Plan', command: ServerCommands.plan, arguments: args } },
      { range, command: { title: 'Check reproducibility', command: ServerCommands.checkReproducibility, arguments: [check] } },
      ...(push ? [{ range, command: { title: 'Push to cache', command: ServerCommands.pushToCache, arguments: push } }] : []),
    ];
  });
}

/** On a derivation attribute: what it is and where Nix would build it. */
export function hoverFor(d: DerivationInfo, preview: SchedulePreview | undefined): Hover {
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

/** On a `<name>`: the search path entry that resolves it (and where that entry comes from), and the path; or why it is missing. */
export function searchPathHoverFor(o: SearchPathOccurrence, outcome: ResolveOutcome, originOf: (e: SearchPathEntry) => string): Hover {
  const range = { start: { line: o.line, character: o.column }, end: { line: o.line, character: o.endColumn } };
  const md = [`**<${o.name}>**`, ''];
  if (!outcome.ok) md.push(`Nix could not look it up: ${outcome.message}`);
  else {
    const { found, nixPath } = outcome.value;
    if (found) md.push(`→ \`${found.path}\``, '', `from the search path entry \`${entryText(found.entry)}\` (${originOf(found.entry)})`);
    else md.push(notOnSearchPathMessage(o.name).replace('\n', '\n\n'));
    md.push('', `Search path, in order: ${nixPath.length > 0 ? nixPath.map((e) => `\`${entryText(e)}\``).join(', ') : '(empty)'}`);
  }
  return { contents: { kind: MarkupKind.Markdown, value: md.join('\n') }, range };
}

const NEEDS_A_BUILDER = new Set(['no-builder-system', 'no-builder-features', 'mandatory-features', 'max-jobs-zero', 'dependency-no-builder']);

/** Quick fixes for "nothing can build this": add a builder, or see why each machine is refused (server commands). */
export function codeActionsFor(uri: string, diagnostics: Diagnostic[]): CodeAction[] {
  return diagnostics
    .filter((d) => d.source === DIAGNOSTIC_SOURCE && NEEDS_A_BUILDER.has(String(d.code)))
    .flatMap((d) => {
      const system = (d.data as { system?: string } | undefined)?.system;
      const add: AddBuilderArgs = system ? { system } : {};
      return [
        { title: `Add a builder for ${system ?? 'it'}…`, kind: CodeActionKind.QuickFix, diagnostics: [d], isPreferred: true, command: { title: 'Add Builder', command: ServerCommands.addBuilder, arguments: [add] } },
        { title: 'Show why each machine cannot build it', kind: CodeActionKind.QuickFix, diagnostics: [d], command: { title: 'Which Builder', command: ServerCommands.whichBuilder, arguments: [uri, d.range.start.line] } },
      ];
    });
}
