// Composition root of the extension: build the context, start it, hand out the API.
import type * as vscode from 'vscode';
import type { NixBuildersApi } from './api';
import { Ctx } from './ctx';

export async function activate(context: vscode.ExtensionContext): Promise<NixBuildersApi> {
  const ctx = new Ctx(context);
  // The API works even if the server fails to start now: its calls start it again.
  void ctx.start().catch(() => undefined);
  return ctx.api();
}

export function deactivate(): void {
  // Ctx is disposed through context.subscriptions.
}
