// A derivation's build log as a read-only document (`nix-builders-log:` URIs): no "unsaved"
// untitled editor, a title that names the derivation, and the content asked from the server
// when opened (the kept tail of a running or finished build).
import * as vscode from 'vscode';
import { storeName } from '../../language-server/nix/storePath';

export const BUILD_LOG_SCHEME = 'nix-builders-log';


export function buildLogUri(buildId: string, drvPath: string): vscode.Uri {
  return vscode.Uri.from({ scheme: BUILD_LOG_SCHEME, path: `/${storeName(drvPath)}.log`, query: new URLSearchParams({ build: buildId, drv: drvPath }).toString() });
}

export interface BuildLogSource {
  buildLog(buildId: string, drvPath: string): Promise<string[]>;
  /** Nix's message when that derivation failed. */
  failureOf(buildId: string, drvPath: string): string | undefined;
}

/** The lines of the document: a header naming the derivation (and Nix's failure), then the log. */
export const LOG_HEADER_LINES = 2;

export class BuildLogDocuments implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  constructor(private readonly source: BuildLogSource) {}

  /** The last text fetched per document, so that VS Code and the command see the same. */
  private readonly texts = new Map<string, string>();

  /** Fetch the log now; an open document of it shows the new text. */
  async load(uri: vscode.Uri): Promise<string> {
    const q = new URLSearchParams(uri.query);
    const buildId = q.get('build') ?? '';
    const drvPath = q.get('drv') ?? '';
    const log = await this.source.buildLog(buildId, drvPath);
    const failure = this.source.failureOf(buildId, drvPath);
    const text = [`# ${drvPath}`, `# ${failure ?? (log.length ? `${log.length} lines` : 'no log yet')}`, ...log, ''].join('\n');
    this.texts.set(uri.toString(), text);
    if (vscode.workspace.textDocuments.some((d) => d.uri.toString() === uri.toString())) this.changed.fire(uri);
    return text;
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    return this.texts.get(uri.toString()) ?? this.load(uri);
  }

  /** Closed log documents are fetched again when opened. */
  forget(uri: vscode.Uri): void {
    this.texts.delete(uri.toString());
  }

  dispose(): void {
    this.changed.dispose();
  }
}

/** The line to put the cursor on: the last that says error/failed/not found, else the last of the log. */
export function errorLine(log: readonly string[]): number {
  let at = -1;
  for (let i = log.length - 1; i >= 0 && at < 0; i--) if (/\berror\b|\bfailed\b|not found/i.test(log[i] as string)) at = i;
  if (at < 0) for (let i = log.length - 1; i >= 0 && at < 0; i--) if ((log[i] as string).trim() !== '') at = i;
  return LOG_HEADER_LINES + Math.max(0, at);
}
