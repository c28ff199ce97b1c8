// Derivation diagnostics for open .nix documents: debounced on edit, one evaluation per document
// at a time (a newer version cancels the older one, whose result is dropped), cached by content
// and configuration, and never run in an untrusted workspace.
//
// Every requester of the same text and configuration (the diagnostics, a code lens, a hover, a
// build) shares one in-flight evaluation; it is killed only when the last of them cancels.
// Results also depend on the files the evaluation read (imports): when one of those changes (the
// server watches them; a client may also say so with workspace/didChangeWatchedFiles) the results
// that read it are dropped and the open documents that read it are evaluated again.
//
// Once published, the diagnostics are completed with the derivations' dependencies that nothing
// can build (dependencies.ts): what is already known of them goes out with the first answer, the
// rest is checked after it (one dry run per document version, cancelled by a newer one) and the
// diagnostics are published again when it finds problems.
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DiagnosticSeverity, type Connection, type Diagnostic } from 'vscode-languageserver/node';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import type { Nix } from '../nix/nix';
import type { BuildersListing, CheckReproducibilityResult } from '../protocol';
import { CheckDiagnostics } from '../check/checkDiagnostics';
import { splitBuilders, type BuildersIgnored } from '../builders/ignoredBuilders';
import { FilesWatcher } from '../util/watch';
import { DependencyCheck, dependencyDiagnostics, type DependencyProblem } from './dependencies';
import { diagnoseDerivations, utf16Column, type DerivationDiagnostic } from './diagnose';
import { evaluateDocument, type EvaluationOptions, type EvaluationResult } from './evaluator';
import type { WalkerOutput } from './walker';
import { notOnSearchPath, notOnSearchPathMessage } from './searchPath';

export const DIAGNOSTIC_SOURCE = 'Nix Builders';
const CACHE_SIZE = 64;

export interface DiagnosticsContext {
  trusted: boolean;
  options: EvaluationOptions;
  listing: BuildersListing;
  /** Set when the local nix-daemon ignores the builders this user passes. */
  buildersIgnored?: BuildersIgnored;
}

export interface DocumentEvaluation {
  version: number;
  result: EvaluationResult;
  diagnostics: Diagnostic[];
}

/** One running evaluation and how many requesters still wait for it. */
interface InFlight {
  result: Promise<EvaluationResult>;
  abort: AbortController;
  waiting: number;
  /** Files that changed while it ran: when it read one of them, it is run again before it answers. */
  changes: FileChange[];
}

/** Runs of one evaluation at most, when files it read keep changing while it runs. */
const MAX_RUNS = 3;

/** What a file change can invalidate: `changed` (its content) or `created`/`deleted` (a new or missing import, a readDir…). */
export interface FileChange {
  file: string;
  kind: 'changed' | 'created' | 'deleted';
}

/**
 * Whether `result` may depend on `changes`: a created or deleted file may be a new or missing
 * import of anything; a changed one counts for the results that read it (an evaluation error knows
 * what it read too, and a timed-out one what it read until it was stopped). A result that knows
 * nothing of its files (failed) depends on all.
 */
function dependsOn(result: EvaluationResult, changes: readonly FileChange[]): boolean {
  if (changes.length === 0) return false;
  if (result.kind !== 'ok' && result.kind !== 'error' && result.kind !== 'timed-out') return true;
  return changes.some((c) => c.kind !== 'changed' || result.files.includes(c.file));
}

export class DocumentDiagnostics {
  private readonly pending = new Map<string, { timer?: NodeJS.Timeout; abort: AbortController }>();
  private readonly cache = new Map<string, EvaluationResult>();
  private readonly inFlight = new Map<string, InFlight>();
  private readonly latest = new Map<string, DocumentEvaluation>();
  private readonly dependencies: DependencyCheck;
  /** The dependency check running for a document, until a newer version or its closing cancels it. */
  private readonly dependencyChecks = new Map<string, AbortController>();
  private readonly watcher = new FilesWatcher((files) => void this.filesChanged(files.map((file) => ({ file, kind: 'changed' }))));
  /** The last seen state of each changed file, so that one change reported twice (by our watcher and the client) counts once. */
  private seen = new Map<string, string>();
  /** File changes are handled one batch after the other (each awaits the files' state). */
  private changesHandled: Promise<void> = Promise.resolve();
  /** What reproducibility checks found, shown on their attributes. */
  private readonly checks = new CheckDiagnostics();
  /** Each document's last published evaluation diagnostics, so that a check's can be added without evaluating again. */
  private readonly published = new Map<string, { version: number; text: string; output: WalkerOutput | undefined; diagnostics: Diagnostic[] }>();

  constructor(
    private readonly connection: Connection,
    private readonly nix: Nix,
    /** The context of one document (its folder's settings). */
    private readonly context: (uri: string) => Promise<DiagnosticsContext>,
    /** An open document's results are out of date (a file it read changed): evaluate it again. */
    private readonly onStale: (uri: string) => void,
    private readonly debounceMs = 250,
  ) {
    this.dependencies = new DependencyCheck(nix);
  }

  /** A document was opened or changed: evaluate it after a pause, cancelling older work. */
  schedule(doc: TextDocument, delayMs = this.debounceMs): void {
    this.cancel(doc.uri);
    const abort = new AbortController();
    const entry: { timer?: NodeJS.Timeout; abort: AbortController } = { abort };
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      this.run(doc, abort.signal).catch((e: unknown) => this.connection.console.error(`Evaluating ${doc.uri} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`));
    }, delayMs);
    this.pending.set(doc.uri, entry);
  }

  close(uri: string): void {
    this.cancel(uri);
    this.latest.delete(uri);
    this.published.delete(uri);
    this.watchDependencies();
    void this.connection.sendDiagnostics({ uri, diagnostics: [] });
  }

  private cancel(uri: string): void {
    this.dependencyChecks.get(uri)?.abort();
    this.dependencyChecks.delete(uri);
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

  private async run(doc: TextDocument, signal: AbortSignal): Promise<void> {
    const evaluation = await this.evaluate(doc, signal);
    // A newer version arrived meanwhile: drop this result.
    if (signal.aborted || !evaluation) return;
    this.pending.delete(doc.uri);
    this.latest.set(doc.uri, evaluation);
    this.watchDependencies();
    await this.publishWithDependencies(doc, evaluation);
  }

  /**
   * Publish the evaluation's diagnostics with what is known of its derivations' dependencies; then
   * check the others (one dry run for all of them) and, if they have problems, publish again.
   */
  private async publishWithDependencies(doc: TextDocument, evaluation: DocumentEvaluation): Promise<void> {
    const output = evaluation.result.kind === 'ok' ? (evaluation.result.output as WalkerOutput) : undefined;
    const drvPaths = output?.items.flatMap((i) => ('error' in i ? [] : [i.drvPath])) ?? [];
    // Cancelled by a newer version or the document's closing from now on.
    const abort = new AbortController();
    this.dependencyChecks.set(doc.uri, abort);
    const done = () => {
      if (this.dependencyChecks.get(doc.uri) === abort) this.dependencyChecks.delete(doc.uri);
    };
    const ctx = await this.context(doc.uri);
    if (abort.signal.aborted) return;
    const { problems, unknown } = this.dependencies.known(drvPaths, ctx);
    const publish = (found: ReadonlyMap<string, readonly DependencyProblem[]>) => {
      const diagnostics = [...evaluation.diagnostics, ...dependencyDiagnostics(doc.getText(), output, found).map(lspDiagnostic)];
      this.published.set(doc.uri, { version: doc.version, text: doc.getText(), output, diagnostics });
      return this.sendWithChecks(doc.uri);
    };
    await publish(problems);
    if (unknown.length === 0 || !ctx.trusted || !ctx.listing.local) return done();
    const checked = await this.dependencies.check(unknown, ctx, abort.signal);
    done();
    if (abort.signal.aborted || checked.kind === 'cancelled') return;
    if (checked.kind === 'failed') {
      this.connection.console.warn(`The dependencies of ${doc.uri} were not checked: ${checked.message}`);
      return;
    }
    if ([...checked.problems.values()].every((list) => list.length === 0)) return;
    await publish(new Map([...problems, ...checked.problems]));
  }

  /** A reproducibility check of `attrPath` answered: its diagnostic is shown (or removed) at once. */
  checkFinished(uri: string, attrPath: string[], result: CheckReproducibilityResult): void {
    if (this.checks.record(uri, attrPath, result)) void this.sendWithChecks(uri);
  }

  /** The document's last published diagnostics with its checks' (nothing before its first evaluation). */
  private sendWithChecks(uri: string): Promise<void> {
    const p = this.published.get(uri);
    if (!p) return Promise.resolve();
    return this.connection.sendDiagnostics({ uri, version: p.version, diagnostics: [...p.diagnostics, ...this.checks.diagnostics(uri, p.text, p.output, DIAGNOSTIC_SOURCE)] });
  }

  /**
   * Evaluate (or serve from the cache, or join the evaluation of the same text that is running)
   * and turn the result into diagnostics; undefined when `signal` cancelled it.
   */
  async evaluate(doc: TextDocument, signal?: AbortSignal, opts: { fresh?: boolean } = {}): Promise<DocumentEvaluation | undefined> {
    if (!doc.uri.startsWith('file:')) return undefined;
    const ctx = await this.context(doc.uri);
    if (!ctx.trusted) return { version: doc.version, result: { kind: 'cancelled' }, diagnostics: [] };
    const file = fileURLToPath(doc.uri);
    const text = doc.getText();
    const key = createHash('sha256')
      .update(JSON.stringify([file, text, ctx.options, this.nix.env, ctx.listing.nix.version, ctx.listing.local, ctx.listing.builders]))
      .digest('hex');
    // `fresh` (a build): not from the cache, nor joining a run that started before the request —
    // a file the evaluation reads without parsing it (`src = ./src`, readFile) may have changed,
    // and Nix does not name those.
    const cached = opts.fresh ? undefined : this.cache.get(key);
    const result = cached ?? (await this.join(key, (s) => evaluateDocument(this.nix, file, text, ctx.options, s), signal, opts.fresh));
    if (!result || result.kind === 'cancelled') return undefined;
    return { version: doc.version, result, diagnostics: toDiagnostics(text, result, ctx) };
  }

  /** The running evaluation of `key` (or a new one), until it ends or `signal` says this requester no longer waits. */
  private join(key: string, start: (signal: AbortSignal) => Promise<EvaluationResult>, signal?: AbortSignal, fresh = false): Promise<EvaluationResult | undefined> {
    if (signal?.aborted) return Promise.resolve(undefined);
    let run = fresh ? undefined : this.inFlight.get(key);
    if (!run) {
      const abort = new AbortController();
      const started: InFlight = { abort, waiting: 0, changes: [], result: Promise.resolve({ kind: 'cancelled' }) };
      // Run again while files it read changed during the run, so that no requester gets (and the
      // cache never keeps) a result of a file's old content.
      const evaluate = async (): Promise<EvaluationResult> => {
        for (let runs = 1; ; runs++) {
          started.changes = [];
          const r = await start(abort.signal);
          if (!dependsOn(r, started.changes) || abort.signal.aborted) return r;
          if (runs === MAX_RUNS) return { kind: 'failed', message: `the files it reads kept changing while it was evaluated (${started.changes.map((c) => c.file).join(', ')})` };
        }
      };
      started.result = evaluate().then(
        (r) => {
          if (this.inFlight.get(key) === started) this.inFlight.delete(key);
          if (r.kind !== 'failed' && r.kind !== 'cancelled') this.remember(key, r);
          return r;
        },
        (e: unknown): EvaluationResult => {
          if (this.inFlight.get(key) === started) this.inFlight.delete(key);
          return { kind: 'failed', message: `the evaluation could not be run: ${e instanceof Error ? e.message : String(e)}` };
        },
      );
      this.inFlight.set(key, started);
      run = started;
    }
    const shared = run;
    shared.waiting++;
    if (!signal) return shared.result;
    return new Promise((resolve) => {
      const leave = () => {
        // The last requester gone: nobody wants the result any more, and nobody may join the
        // dying run (a new requester would get 'cancelled').
        if (--shared.waiting === 0) {
          shared.abort.abort();
          if (this.inFlight.get(key) === shared) this.inFlight.delete(key);
        }
        resolve(undefined);
      };
      signal.addEventListener('abort', leave, { once: true });
      void shared.result.then((r) => {
        signal.removeEventListener('abort', leave);
        resolve(r);
      });
    });
  }

  private remember(key: string, result: EvaluationResult): void {
    this.cache.delete(key);
    this.cache.set(key, result);
    if (this.cache.size > CACHE_SIZE) this.cache.delete(this.cache.keys().next().value as string);
  }

  /** Watch what the open documents' evaluations read. */
  private watchDependencies(): void {
    const files = new Set<string>();
    for (const e of this.latest.values()) if (e.result.kind === 'ok' || e.result.kind === 'error' || e.result.kind === 'timed-out') for (const f of e.result.files) files.add(f);
    this.watcher.setFiles(files);
    // Only the files some result depends on need a remembered state.
    this.seen = new Map([...this.seen].filter(([file]) => files.has(file)));
  }

  /**
   * Files changed (seen by our watcher, or reported by the client): drop the results that may have
   * read them, and evaluate again the open documents whose results those were.
   */
  filesChanged(changes: readonly FileChange[]): Promise<void> {
    this.changesHandled = this.changesHandled.then(() => this.handleFileChanges(changes));
    return this.changesHandled;
  }

  private async handleFileChanges(changes: readonly FileChange[]): Promise<void> {
    const news: FileChange[] = [];
    for (const c of changes) {
      const file = path.resolve(c.file);
      const state = await stat(file).then(
        (st) => `${st.ino}:${st.size}:${st.mtimeMs}`,
        () => 'missing',
      );
      if (this.seen.get(file) === state) continue;
      this.seen.set(file, state);
      news.push({ file, kind: c.kind });
    }
    if (news.length === 0) return;
    for (const [key, result] of this.cache) if (dependsOn(result, news)) this.cache.delete(key);
    // A running evaluation decides when it ends, from the files it read.
    for (const run of this.inFlight.values()) run.changes.push(...news);
    for (const [uri, e] of this.latest) if (dependsOn(e.result, news)) this.onStale(uri);
  }

  dispose(): void {
    for (const uri of new Set([...this.pending.keys(), ...this.dependencyChecks.keys()])) this.cancel(uri);
    this.watcher.dispose();
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

function lspDiagnostic(d: DerivationDiagnostic): Diagnostic {
  const diagnostic: Diagnostic = {
    range: { start: { line: d.line, character: d.column }, end: { line: d.line, character: d.endColumn } },
    severity: SEVERITY[d.severity],
    source: DIAGNOSTIC_SOURCE,
    code: d.code,
    message: d.message,
    data: { attrPath: d.attrPath, ...d.data },
  };
  if (d.related) {
    const start = { line: 0, character: 0 };
    diagnostic.relatedInformation = d.related.map((r) => ({ location: { uri: pathToFileURL(r.file).href, range: { start, end: start } }, message: r.message }));
  }
  return diagnostic;
}

function searchPathDiagnostic(o: { line: number; column: number; endColumn: number }, message: string, severity: DiagnosticSeverity): Diagnostic {
  return { range: { start: { line: o.line, character: o.column }, end: { line: o.line, character: o.endColumn } }, severity, source: DIAGNOSTIC_SOURCE, code: 'not-on-search-path', message };
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
      // A `<…>` that no entry has, where attributes failed: why they did.
      const missing = notOnSearchPath(text, result.output.missingSearchPaths ?? []).map((o) => searchPathDiagnostic(o, o.message, DiagnosticSeverity.Warning));
      const local = ctx.listing.local;
      if (!local) return missing;
      const { used, ignored } = splitBuilders(ctx.listing.builders, ctx.buildersIgnored);
      const notUsed = ctx.buildersIgnored && ignored.length > 0 ? { machines: ignored, ignored: ctx.buildersIgnored } : undefined;
      return missing.concat(diagnoseDerivations(text, result.output as WalkerOutput, local, used, notUsed).map(lspDiagnostic));
    }
    case 'error': {
      const e = result.error;
      if (e.searchPathName !== undefined) {
        // On the document's <name>s; when only an imported file has it, at the top, naming where.
        const at = notOnSearchPath(text, [e.searchPathName]).map((o) => searchPathDiagnostic(o, o.message, DiagnosticSeverity.Error));
        if (at.length > 0) return at;
        if (e.file) return [atTop(`${notOnSearchPathMessage(e.searchPathName)} (in ${e.file}${e.fileLine ? `:${e.fileLine}` : ''})`, DiagnosticSeverity.Error, 'not-on-search-path')];
      }
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
