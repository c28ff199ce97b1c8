// The one place that reads VS Code settings. Typed getters; paths validated before use.
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
    },
    build: {
      remoteOnly: c.get<boolean>('build.remoteOnly', false),
      maxJobs: c.get<number | null>('build.maxJobs', null) ?? undefined,
      cores: c.get<number | null>('build.cores', null) ?? undefined,
    },
  };
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
