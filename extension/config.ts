// The one place that reads VS Code settings. Typed getters; paths validated before use.
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ServerSettings } from '../language-server/protocol';

export const SECTION = 'nixBuilders';

/** Settings that reach the language server (and so every Nix and SSH process). */
export function serverSettings(): ServerSettings {
  const c = vscode.workspace.getConfiguration(SECTION);
  const strings = (key: string) => c.get<unknown[]>(key, []).filter((v): v is string => typeof v === 'string');
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(c.get<Record<string, unknown>>('env', {}))) {
    if (typeof v === 'string') env[k] = v;
  }
  return {
    nixBinDir: c.get<string>('nixBinDir', '').trim(),
    env,
    machinesFiles: strings('machinesFiles'),
    builders: strings('builders'),
    evaluation: {
      depth: c.get<number>('evaluation.depth', 3),
      timeoutSeconds: c.get<number>('evaluation.timeoutSeconds', 30),
      allowImportFromDerivation: c.get<boolean>('evaluation.allowImportFromDerivation', false),
      // Resource settings: this is the window's value; the server reads each document's own
      // (workspace/configuration with its URI) and checks the values.
      arguments: { ...c.get<object>('evaluation.arguments', {}) } as Record<string, string>,
      searchPath: strings('evaluation.searchPath'),
    },
    build: {
      remoteOnly: c.get<boolean>('build.remoteOnly', false),
      maxJobs: c.get<number | null>('build.maxJobs', null) ?? undefined,
      cores: c.get<number | null>('build.cores', null) ?? undefined,
    },
    check: { diffoscopeIgnoreNoise: c.get<boolean>('check.diffoscopeIgnoreNoise', true) },
    cache: {
      pushTargets: strings('cache.pushTargets'),
      signingKeyFile: c.get<string>('cache.signingKeyFile', '').trim(),
      queue: { enabled: c.get<boolean>('cache.queue.enabled', false), dir: c.get<string>('cache.queue.dir', '').trim() },
    },
  };
}

/** The push targets (nixBuilders.cache.pushTargets), as set. */
export function pushTargets(): string[] {
  return vscode.workspace.getConfiguration(SECTION).get<unknown[]>('cache.pushTargets', []).filter((v): v is string => typeof v === 'string');
}

/** Sets `nixBuilders.cache.signingKeyFile` (user settings: a key is the user's, not a folder's). */
export async function setSigningKeyFile(file: string): Promise<void> {
  await vscode.workspace.getConfiguration(SECTION).update('cache.signingKeyFile', file, vscode.ConfigurationTarget.Global);
}

/** True when a change event touches a setting that the server must know about. */
export function affectsServer(e: vscode.ConfigurationChangeEvent): boolean {
  return e.affectsConfiguration(SECTION);
}

/** Which build logs go to the output channel when a build ends (extension-side only). */
export type LogsInOutput = 'failed' | 'all' | 'none';

export function logsInOutput(): LogsInOutput {
  const v = vscode.workspace.getConfiguration(SECTION).get<string>('build.logsInOutput', 'failed');
  return v === 'all' || v === 'none' ? v : 'failed';
}

/** How many rebuilds a reproducibility check runs when the command is not told (extension-side: the server's default is 1). */
export function checkRounds(): number {
  const c = vscode.workspace.getConfiguration(SECTION);
  const v = c.get<number>('check.rounds', 1);
  return Number.isInteger(v) && v >= 1 ? v : 1;
}

/**
 * Sets `nixBuilders.evaluation.arguments` for the workspace folder of `uri` (the quick fix of the
 * "needs arguments" diagnostic): asks for each missing argument's expression, starting from
 * `templates`, and keeps the folder's other arguments. False when the user cancelled.
 */
export async function setEvaluationArguments(uri: vscode.Uri, templates: Readonly<Record<string, string>>): Promise<boolean> {
  const c = vscode.workspace.getConfiguration(SECTION, uri);
  const folder = vscode.workspace.getWorkspaceFolder(uri);
  const inspected = c.inspect<Record<string, string>>('evaluation.arguments');
  const current = { ...((folder ? inspected?.workspaceFolderValue : inspected?.globalValue) ?? {}) };
  for (const [name, template] of Object.entries(templates)) {
    const value = await vscode.window.showInputBox({
      title: `Argument "${name}" of ${path.basename(uri.fsPath)}${folder ? ` (folder ${folder.name})` : ''}`,
      prompt: 'A Nix expression, as nix-build --arg takes it (a string is written "\\"1.0\\"")',
      value: current[name] ?? template,
      ignoreFocusOut: true,
      validateInput: (v) => (v.trim() === '' ? 'Write a Nix expression' : undefined),
    });
    if (value === undefined) return false;
    current[name] = value;
  }
  await c.update('evaluation.arguments', current, folder ? vscode.ConfigurationTarget.WorkspaceFolder : vscode.ConfigurationTarget.Global);
  return true;
}
