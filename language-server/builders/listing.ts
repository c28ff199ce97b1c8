// The builders listing: this machine (from the effective Nix configuration) and every configured
// builder with its source, plus the problems found reading them and the files to watch.
import * as os from 'node:os';
import { nixConfFiles } from '../config';
import type { Nix } from '../nix/nix';
import type { BuildersListing, NixStatus, ServerSettings } from '../protocol';
import { collectBuilders, type NixConfBuilders } from './collect';
import { localStore } from './doctor';

export async function nixStatus(nix: Nix, workspaceTrusted: boolean): Promise<NixStatus> {
  const caps = await nix.detect();
  return caps.ok
    ? { version: caps.value.version.text, implementation: caps.value.version.implementation, workspaceTrusted }
    : { problem: caps.message, workspaceTrusted };
}

/**
 * nix.conf's `builders` as this client sees it, where that value comes from, and the local
 * nix-daemon's own (the system nix.conf's, which the daemon reads without the user's nix.conf and
 * NIX_CONFIG). Unknown layers count as the system's.
 */
async function nixConfBuilders(nix: Nix, client: string): Promise<string | NixConfBuilders> {
  // Without a daemon (a single-user store) the client's value is all there is.
  if (!(await localStore(nix.env)).daemon) return client;
  const daemon = await nix.config(undefined, 'system');
  if (!daemon.ok || daemon.value.builders === client) return client;
  // Not the system's: the user's nix.conf, unless NIX_CONFIG (read last) changed it again.
  const withoutEnv = await nix.config(undefined, 'no-env');
  const clientKind = !withoutEnv.ok || withoutEnv.value.builders === client ? 'nix-conf-user' : 'nix-config-env';
  return { client, clientKind, daemon: daemon.value.builders };
}

/** The listing, and the files it was read from (machines files, nix.conf files): watch those. */
export async function computeListing(nix: Nix, settings: ServerSettings, status: NixStatus): Promise<{ listing: BuildersListing; files: string[] }> {
  const config = await nix.config();
  const collected = await collectBuilders(config.ok ? await nixConfBuilders(nix, config.value.builders) : '', settings);
  const problems = collected.problems;
  if (!config.ok && status.version) problems.unshift({ message: config.message });
  const listing: BuildersListing = {
    nix: status,
    local: config.ok
      ? {
          system: config.value.system,
          extraPlatforms: config.value.extraPlatforms,
          systemFeatures: config.value.systemFeatures,
          maxJobs: config.value.maxJobs,
          cores: config.value.cores,
          buildCores: config.value.cores > 0 ? config.value.cores : os.availableParallelism(),
          substituters: config.value.substituters,
        }
      : undefined,
    builders: collected.builders,
    problems,
  };
  return { listing, files: [...collected.files, ...nixConfFiles(settings)] };
}
