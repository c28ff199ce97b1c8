// The builders listing: this machine (from the effective Nix configuration) and every configured
// builder with its source, plus the problems found reading them and the files to watch.
import * as os from 'node:os';
import { nixConfFiles } from '../config';
import type { Nix } from '../nix/nix';
import type { BuildersListing, NixStatus, ServerSettings } from '../protocol';
import { collectBuilders } from './collect';

export async function nixStatus(nix: Nix, workspaceTrusted: boolean): Promise<NixStatus> {
  const caps = await nix.detect();
  return caps.ok
    ? { version: caps.value.version.text, implementation: caps.value.version.implementation, workspaceTrusted }
    : { problem: caps.message, workspaceTrusted };
}

/** The listing, and the files it was read from (machines files, nix.conf files): watch those. */
export async function computeListing(nix: Nix, settings: ServerSettings, status: NixStatus): Promise<{ listing: BuildersListing; files: string[] }> {
  const config = await nix.config();
  const nixConfBuilders = config.ok ? config.value.builders : '';
  const collected = await collectBuilders(nixConfBuilders, settings);
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
