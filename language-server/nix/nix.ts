// The Nix CLI as the rest of the server sees it: finds `nix`, detects its version once per
// settings change, chooses spellings from it and reads the effective configuration.
import * as path from 'node:path';
import { describeResult, type ProcessRunner, type RunRequest, type RunResult } from './runner';
import { capabilitiesFor, parseNixVersion, type NixCapabilities } from './version';
import { parseConfigText, toNixConfig, type NixConfig } from './nixConf';

export interface NixSettings {
  /** Folder holding `nix`, `nix-instantiate`…; empty: look them up on PATH. */
  binDir: string;
  /** Extra environment for every process (NIX_CONF_DIR, NIX_SSHOPTS, …). */
  env: Readonly<Record<string, string>>;
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; message: string; result?: RunResult };

const VERSION_TIMEOUT_MS = 15_000;
const CONFIG_TIMEOUT_MS = 20_000;

export class Nix {
  private capabilities: Promise<Outcome<NixCapabilities>> | undefined;

  constructor(
    private readonly runner: ProcessRunner,
    private settings: NixSettings,
  ) {}

  updateSettings(settings: NixSettings): void {
    this.settings = settings;
    this.capabilities = undefined;
  }

  get env(): Readonly<Record<string, string>> {
    return this.settings.env;
  }

  /** Path of a Nix executable, honouring `binDir`. */
  bin(name: 'nix' | 'nix-instantiate' | 'nix-store' | 'nix-build'): string {
    return this.settings.binDir ? path.join(this.settings.binDir, name) : name;
  }

  /** `opts.env` is added to the settings' env. */
  run(file: string, args: readonly string[], opts: Pick<RunRequest, 'timeoutMs' | 'signal' | 'onStderr' | 'cwd' | 'input' | 'env' | 'unsetEnv'>) {
    return this.runner.run({ file, args, ...opts, env: { ...this.settings.env, ...opts.env } });
  }

  /** Version and spellings, detected once per settings. */
  detect(): Promise<Outcome<NixCapabilities>> {
    this.capabilities ??= this.detectNow();
    return this.capabilities;
  }

  private async detectNow(): Promise<Outcome<NixCapabilities>> {
    const result = await this.run(this.bin('nix'), ['--version'], { timeoutMs: VERSION_TIMEOUT_MS });
    if (result.kind !== 'ok') {
      // Do not cache a failure forever: the user may install Nix and retry.
      this.capabilities = undefined;
      const message =
        result.kind === 'spawn-failed' && result.code === 'ENOENT'
          ? `Nix was not found (${this.bin('nix')}). Install Nix, or set "nixBuilders.nixBinDir" to the folder that holds the nix executables.`
          : `Could not run '${this.bin('nix')} --version': ${describeResult(result)}. ${result.stderr.trim()}`.trim();
      return { ok: false, message, result };
    }
    const version = parseNixVersion(result.stdout);
    if (!version) {
      this.capabilities = undefined;
      return { ok: false, message: `Could not read the Nix version from '${result.stdout.trim()}'.` };
    }
    return { ok: true, value: capabilitiesFor(version) };
  }

  /**
   * The effective configuration (nix.conf files, NIX_CONFIG, defaults) as this Nix sees it.
   * `system`: only the system nix.conf (NIX_CONF_DIR's or /etc/nix's, with what it includes), as
   * the local nix-daemon reads it; `no-env`: without NIX_CONFIG.
   */
  async config(signal?: AbortSignal, layers: 'all' | 'system' | 'no-env' = 'all'): Promise<Outcome<NixConfig>> {
    const caps = await this.detect();
    if (!caps.ok) return caps;
    // Set and empty, these variables name no user nix.conf and no extra settings (unset, Nix reads its defaults).
    const without: Record<string, string> = layers === 'system' ? { NIX_USER_CONF_FILES: '', NIX_CONFIG: '' } : layers === 'no-env' ? { NIX_CONFIG: '' } : {};
    const result = await this.runner.run({
      file: this.bin('nix'),
      args: [...caps.value.nixCommandPrefix, ...caps.value.showConfig],
      env: { ...this.settings.env, ...without },
      timeoutMs: CONFIG_TIMEOUT_MS,
      signal,
    });
    if (result.kind !== 'ok') {
      return { ok: false, message: `Could not read the Nix configuration: ${describeResult(result)}. ${result.stderr.trim()}`.trim(), result };
    }
    return { ok: true, value: toNixConfig(parseConfigText(result.stdout)) };
  }
}
