// What a check shows that is not a file on disk (a binary file's sizes, hashes and first differing
// bytes; why two derivations differ) as read-only documents (`nix-builders-check:` URIs): no
// "unsaved" untitled editor, a title that names what it shows.
import * as vscode from 'vscode';

export const CHECK_DOC_SCHEME = 'nix-builders-check';

export class CheckDocuments implements vscode.TextDocumentContentProvider {
  private readonly texts = new Map<string, string>();
  private count = 0;

  /** A new document of `text`, titled `title`. */
  add(title: string, text: string): vscode.Uri {
    const uri = vscode.Uri.from({ scheme: CHECK_DOC_SCHEME, path: `/${++this.count}/${title.replace(/\//g, '∕')}` });
    this.texts.set(uri.toString(), text);
    return uri;
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? 'This document is no longer kept: open it again from the Builds view.\n';
  }

  /** A closed document's text is dropped. */
  forget(uri: vscode.Uri): void {
    this.texts.delete(uri.toString());
  }
}
