// The standalone push worker's command line and its systemd user unit.
import * as os from 'node:os';
import * as path from 'node:path';

export interface StandaloneArgs {
  to: string;
  queue?: string;
  nixBinDir?: string;
  /** The secret key pushes sign with (else nix.conf's secret-key-files). */
  keyFile?: string;
  systemdUnit: boolean;
}

/** `--to STORE [--queue DIR] [--key-file FILE] [--nix-bin-dir DIR] [--systemd-unit]`, checked. */
export function standaloneArgs(argv: readonly string[]): StandaloneArgs | { error: string } {
  const out: Partial<StandaloneArgs> = { systemdUnit: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--systemd-unit') {
      out.systemdUnit = true;
      continue;
    }
    const key = ({ '--to': 'to', '--queue': 'queue', '--key-file': 'keyFile', '--nix-bin-dir': 'nixBinDir' } as const)[a as '--to'];
    const value = argv[i + 1];
    if (!key) return { error: `unknown argument '${a}'` };
    if (value === undefined || value.startsWith('--')) return { error: `${a} needs a value` };
    if (key !== 'to' && !path.isAbsolute(value)) return { error: `${a} must be an absolute path` };
    out[key] = value;
    i++;
  }
  if (!out.to) return { error: '--to STORE is needed: the store to push to (file://…, ssh://…, ssh-ng://…, s3://…)' };
  return out as StandaloneArgs;
}

/** One word of a systemd command line: plain, or double-quoted with `\` and `"` escaped; `%` and `$` are doubled (specifiers, variables). */
function unitWord(w: string): string {
  const escaped = w.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /^[A-Za-z0-9_@+:,./=-]+$/.test(escaped) ? escaped : `"${escaped.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Where the user unit goes: $XDG_CONFIG_HOME/systemd/user/nix-builders-push.service. */
export function systemdUnitFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config'), 'systemd', 'user', 'nix-builders-push.service');
}

/** The unit that runs the standalone worker for the user, restarted when it fails. */
export function systemdUnit(o: { node: string; script: string; queue: string; to: string; keyFile?: string; nixBinDir?: string }, env: NodeJS.ProcessEnv = process.env): { file: string; text: string } {
  const command = [o.node, o.script, '--to', o.to, '--queue', o.queue, ...(o.keyFile ? ['--key-file', o.keyFile] : []), ...(o.nixBinDir ? ['--nix-bin-dir', o.nixBinDir] : [])].map(unitWord).join(' ');
  const text = `[Unit]
Description=Nix Builders push worker: pushes what the post-build-hook queued to ${o.to.replace(/%/g, '%%')}
After=network-online.target

[Service]
ExecStart=${command}
Restart=on-failure
RestartSec=10

[Install]
WantedBy=default.target
`;
  return { file: systemdUnitFile(env), text };
}
