// Derivation diagnostics for open .nix documents: debounced on edit, one evaluation per document
// at a time (a newer version cancels the older one, whose result is dropped), cached by content
// and configuration, and never run in an untrusted workspace.
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { DiagnosticSeverity, type Connection, type Diagnostic } from 'vscode-languageserver/node';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import type { Nix } from '../nix/nix';
import type { BuildersListing } from '../protocol';
import { diagnoseDerivations, utf16Column, type DerivationDiagnostic } from './diagnose';
import { evaluateDocument, type EvaluationOptions, type EvaluationResult } from './evaluator';
import type { WalkerOutput } from './walker';

export const DIAGNOSTIC_SOURCE = 'Nix Builders';
const CACHE_SIZE = 64;

export interface DiagnosticsContext {
  trusted: boolean;
  options: EvaluationOptions;
  listing: BuildersListing;
}

export interface DocumentEvaluation {
  version: number;
  result: EvaluationResult;
  diagnostics: Diagnostic[];
}

export class DocumentDiagnostics {
  private readonly pending = new Map<string, { timer?: NodeJS.Timeout; abort: AbortController }>();
  private readonly cache = new Map<string, EvaluationResult>();
  private readonly latest = new Map<string, DocumentEvaluation>();

  constructor(
    private readonly connection: Connection,
    private readonly nix: Nix,
    private readonly context: () => Promise<DiagnosticsContext>,
    private readonly debounceMs = 250,
  ) {}

  /** A document was opened or changed: evaluate it after a pause, cancelling older work. */
  schedule(doc: TextDocument, delayMs = this.debounceMs): void {
    this.cancel(doc.uri);
    const abort = new AbortController();
    const entry: { timer?: NodeJS.Timeout; abort: AbortController } = { abort };
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      void this.run(doc, abort.signal);
    }, delayMs);
    this.pending.set(doc.uri, entry);
  }

  close(uri: string): void {
    this.cancel(uri);
    this.latest.delete(uri);
    void this.connection.sendDiagnostics({ uri, diagnostics: [] });
  }

  private cancel(uri: string): void {
    const p = this.pending.get(uri);
    if (!p) return;
    if (p.timer) clearTimeout(p.timer);
    p.abort.abort();
    this.pending.delete(uri);
  }

  /** True once a document has been scheduled or evaluated (until it is closed). */
  known(uri: string): boolean {
    return this.pending.has(uri) || this.latest.has(uri);
  }

  /** The last evaluation of a document (for hovers, code lenses and tests). */
  evaluation(uri: string): DocumentEvaluation | undefined {
    return this.latest.get(uri);
  }

  private async run(doc: TextDocument, signal: AbortSignal): Promise<void> {
    const evaluation = await this.evaluate(doc, signal);
    // A newer version arrived meanwhile: drop this result.
    if (signal.aborted || !evaluation) return;
    this.pending.delete(doc.uri);
    this.latest.set(doc.uri, evaluation);
    await this.connection.sendDiagnostics({ uri: doc.uri, version: doc.version, diagnostics: evaluation.diagnostics });
  }

  /** Evaluate (or serve from the cache) and turn the result into diagnostics. */
  async evaluate(doc: TextDocument, signal?: AbortSignal): Promise<DocumentEvaluation | undefined> {
    if (!doc.uri.startsWith('file:')) return undefined;
    const ctx = await this.context();
    if (!ctx.trusted) return { version: doc.version, result: { kind: 'cancelled' }, diagnostics: [] };
    const file = fileURLToPath(doc.uri);
    const text = doc.getText();
    const key = createHash('sha256')
      .update(JSON.stringify([file, text, ctx.options, this.nix.env, ctx.listing.nix.version, ctx.listing.local, ctx.listing.builders]))
      .digest('hex');
    let result = this.cache.get(key);
    if (!result) {
      result = await evaluateDocument(this.nix, file, text, ctx.options, signal);
      if (result.kind === 'cancelled') return undefined;
      if (result.kind !== 'failed') this.remember(key, result);
    }
    return { version: doc.version, result, diagnostics: toDiagnostics(text, result, ctx) };
  }

  private remember(key: string, result: EvaluationResult): void {
    this.cache.delete(key);
    this.cache.set(key, result);
    if (this.cache.size > CACHE_SIZE) this.cache.delete(this.cache.keys().next().value as string);
  }

  dispose(): void {
    for (const uri of [...this.pending.keys()]) this.cancel(uri);
  }
}

const SEVERITY: Record<DerivationDiagnostic['severity'], DiagnosticSeverity> = {
  error: DiagnosticSeverity.Error,
  warning: DiagnosticSeverity.Warning,
  information: DiagnosticSeverity.Information,
};

function wordEnd(text: string, line: number, column: number): number {
  const l = text.split('\n')[line] ?? '';
  const m = /^[A-Za-z0-9_'.-]+/.exec(l.slice(column));
  return column + Math.max(1, m ? m[0].length : 1);
}

export function toDiagnostics(text: string, result: EvaluationResult, ctx: DiagnosticsContext): Diagnostic[] {
  const atTop = (message: string, severity: DiagnosticSeverity, code: string): Diagnostic => ({
    range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } },
    severity,
    source: DIAGNOSTIC_SOURCE,
    code,
    message,
  });
  switch (result.kind) {
    case 'ok': {
      const local = ctx.listing.local;
      if (!local) return [];
      return diagnoseDerivations(text, result.output as WalkerOutput, local, ctx.listing.builders).map((d) => ({
        range: { start: { line: d.line, character: d.column }, end: { line: d.line, character: d.endColumn } },
        severity: SEVERITY[d.severity],
        source: DIAGNOSTIC_SOURCE,
        code: d.code,
        message: d.message,
        data: { attrPath: d.attrPath, ...d.data },
      }));
    }
    case 'error': {
      const e = result.error;
      if (e.line !== undefined) {
        const lineText = text.split('\n')[e.line];
        const column = lineText === undefined ? (e.column ?? 0) : utf16Column(lineText, e.column ?? 0);
        return [
          {
            range: { start: { line: e.line, character: column }, end: { line: e.line, character: wordEnd(text, e.line, column) } },
            severity: DiagnosticSeverity.Error,
            source: DIAGNOSTIC_SOURCE,
            code: e.kind,
            message: e.message,
          },
        ];
      }
      const where = e.file ? ` (in ${e.file}${e.fileLine ? `:${e.fileLine}` : ''})` : '';
      return [atTop(`${e.message}${where}`, DiagnosticSeverity.Error, e.kind)];
    }
    case 'timed-out':
      return [
        atTop(
          `Evaluation did not finish within ${Math.round(result.timeoutMs / 1000)} s and was stopped: an infinite loop, or a very slow evaluation. If it is only slow, raise "nixBuilders.evaluation.timeoutSeconds".`,
          DiagnosticSeverity.Warning,
          'eval-timeout',
        ),
      ];
    case 'failed':
      return [atTop(`Could not evaluate this file: ${result.message}`, DiagnosticSeverity.Warning, 'eval-failed')];
    case 'cancelled':
      return [];
  }
}
