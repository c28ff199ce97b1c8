// Helpers of the extension-host suites.
import * as vscode from 'vscode';

export const EXTENSION_ID = 'nix-builders.nix-builders';

/** Polls `probe` until it returns a value that is not undefined (no fixed sleeps). */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** Resolves once the workspace is trusted (the launcher trusts the window when it opens restricted). */
export async function workspaceTrusted(): Promise<void> {
  if (vscode.workspace.isTrusted) return;
  await new Promise<void>((resolve) => {
    const sub = vscode.workspace.onDidGrantWorkspaceTrust(() => {
      sub.dispose();
      resolve();
    });
  });
}
