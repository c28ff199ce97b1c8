// The diagnostic a reproducibility check leaves on its attribute: "not reproducible: 1 of 2 outputs
// differs (dev: 1 file)", shown while the attribute evaluates to the derivation that was checked
// (a new .drv path hides it; the same one again shows it again), until a check of the attribute
// says it is reproducible. A check that could not compare anything changes nothing. It links to
// the result for every editor (relatedInformation: each differing file's kept copy, or the output).
// Its quick fixes: check again, diffoscope's report of each differing output.
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { CodeActionKind, DiagnosticSeverity, type CodeAction, type Diagnostic, type DiagnosticRelatedInformation } from 'vscode-languageserver/node';
import { ServerCommands, type CheckReproducibilityArgs, type CheckReproducibilityResult, type DiffoscopeArgs, type OutputCheck } from '../protocol';
import { documentRange } from '../eval/diagnose';
import type { WalkerOutput } from '../eval/walker';
import { onSide } from './treeDiff';

export const NOT_REPRODUCIBLE = 'not-reproducible';

/** What a client needs to open the check's result (its answer came with nixBuilders/checkFinished). */
export interface CheckDiagnosticData {
  attrPath: string[];
  drvPath: string;
  machine: string;
  /** The outputs that differ. */
  outputs: string[];
}

interface Shown {
  attrPath: string[];
  result: CheckReproducibilityResult;
}

/** The differing files of one output a diagnostic links to (the rest are in the check's answer). */
const RELATED_FILES = 10;

/**
 * Where a differing output's result is: each differing file in the rebuild's copy (the first
 * build's for a file only there), or the output itself where nothing was kept.
 */
export function relatedOf(o: OutputCheck): DiagnosticRelatedInformation[] {
  const at = (file: string, message: string): DiagnosticRelatedInformation => ({ location: { uri: pathToFileURL(file).href, range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } } }, message });
  const kept = (o.files ?? []).slice(0, RELATED_FILES).flatMap((f) => {
    const what = `${o.name}: ${f.path === '.' ? 'the output' : f.path} ${f.kind}`;
    if (o.rebuildCopy && onSide(f, 'rebuild')) return [at(path.join(o.rebuildCopy, f.path), `${what} (the rebuild's copy)`)];
    if (o.firstCopy && onSide(f, 'first')) return [at(path.join(o.firstCopy, f.path), `${what} (the first build's copy)`)];
    return [];
  });
  return kept.length > 0 ? kept : [at(o.path, `${o.name}: the output that differs${o.reason ? ` (${o.reason})` : ''}`)];
}

export class CheckDiagnostics {
  /** uri → attribute path (JSON) → the check that differed. */
  private readonly byUri = new Map<string, Map<string, Shown>>();

  /** A check answered; true when what the document shows changed. */
  record(uri: string, attrPath: string[], result: CheckReproducibilityResult): boolean {
    const key = JSON.stringify(attrPath);
    const shown = this.byUri.get(uri) ?? new Map<string, Shown>();
    if (result.status === 'reproducible') {
      if (!shown.delete(key)) return false;
      if (shown.size === 0) this.byUri.delete(uri);
      return true;
    }
    if (result.status !== 'differs') return false;
    shown.set(key, { attrPath, result });
    this.byUri.set(uri, shown);
    return true;
  }

  /** The document's check diagnostics, for its text and evaluation (none without one). */
  diagnostics(uri: string, text: string, output: WalkerOutput | undefined, source: string): Diagnostic[] {
    const shown = this.byUri.get(uri);
    if (!shown || !output) return [];
    const lines = text.split('\n');
    return output.items.flatMap((item): Diagnostic[] => {
      const s = shown.get(JSON.stringify(item.path));
      if (!s || 'error' in item || item.drvPath !== s.result.drvPath) return [];
      const r = documentRange(lines, item.pos);
      const data: CheckDiagnosticData = { attrPath: s.attrPath, drvPath: s.result.drvPath, machine: s.result.machine, outputs: s.result.outputs.filter((o) => o.status === 'differs').map((o) => o.name) };
      const relatedInformation = s.result.outputs.filter((o) => o.status === 'differs').flatMap(relatedOf);
      return [{ range: { start: { line: r.line, character: r.column }, end: { line: r.line, character: r.endColumn } }, severity: DiagnosticSeverity.Warning, source, code: NOT_REPRODUCIBLE, message: s.result.summary, data, relatedInformation }];
    });
  }
}

/** On a check's diagnostic: check again, and diffoscope's report of each output that differs. */
export function checkCodeActions(uri: string, diagnostics: readonly Diagnostic[], source: string): CodeAction[] {
  return diagnostics
    .filter((d) => d.source === source && d.code === NOT_REPRODUCIBLE && d.data !== undefined)
    .flatMap((d) => {
      const data = d.data as CheckDiagnosticData;
      const again: CheckReproducibilityArgs = { uri, attribute: data.attrPath, ...(data.machine !== 'this machine' ? { builder: data.machine } : {}) };
      return [
        { title: 'Check reproducibility again', kind: CodeActionKind.QuickFix, diagnostics: [d], command: { title: 'Check Reproducibility', command: ServerCommands.checkReproducibility, arguments: [again] } },
        ...data.outputs.map((output) => {
          const args: DiffoscopeArgs = { drvPath: data.drvPath, output };
          return { title: `diffoscope's report of output '${output}'`, kind: CodeActionKind.QuickFix, diagnostics: [d], command: { title: 'diffoscope', command: ServerCommands.diffoscope, arguments: [args] } };
        }),
      ];
    });
}
