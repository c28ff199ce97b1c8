// The diagnostic a reproducibility check leaves on its attribute: "not reproducible: 1 of 2 outputs
// differs (dev: 1 file)", shown while the attribute evaluates to the derivation that was checked
// (a new .drv path hides it; the same one again shows it again), until a check of the attribute
// says it is reproducible. A check that could not compare anything changes nothing. Its quick fixes:
// check again, diffoscope's report of each differing output.
import { CodeActionKind, DiagnosticSeverity, type CodeAction, type Diagnostic } from 'vscode-languageserver/node';
import { ServerCommands, type CheckReproducibilityArgs, type CheckReproducibilityResult, type DiffoscopeArgs } from '../protocol';
import { documentRange } from '../eval/diagnose';
import type { WalkerOutput } from '../eval/walker';

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
      return [{ range: { start: { line: r.line, character: r.column }, end: { line: r.line, character: r.endColumn } }, severity: DiagnosticSeverity.Warning, source, code: NOT_REPRODUCIBLE, message: s.result.summary, data }];
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
