// Composition root of the extension: build the context, start it, hand out the API.
import type * as vscode from 'vscode';
import type { NixBuildersApi } from './api';
import { Ctx } from './ctx';

/** The one context, for deactivate: VS Code waits for the promise it returns, not for disposables. */
let active: Ctx | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<NixBuildersApi> {
  active = new Ctx(context);
  // The API works even if the server fails to start now: its calls start it again.
  void active.start().catch(() => undefined);
  return active.api();
}

/** Stops the server (shutdown, exit, with a timeout) before VS Code ends the extension host. Ctx is disposed through context.subscriptions afterwards. */
export function deactivate(): Promise<void> | undefined {
  const ctx = active;
  active = undefined;
  return ctx?.stop();
}
