// The server's one reader of settings: what a client sends (initializationOptions, a pushed or
// pulled `nixBuilders` section) becomes typed ServerSettings, every value checked, anything else
// replaced by its default.
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_SETTINGS, type CacheSettings, type ServerSettings } from './protocol';
import { parseStoreUri } from './nix/storeUri';
import type { EvaluationOptions } from './eval/evaluator';
import { argumentProblem } from './eval/arguments';
import { searchPathEntryProblem } from './eval/searchPath';

/** Settings that were dropped, each with why: said to the user, never passed to a process. */
export type SettingsProblems = string[];

/** What a client sends: any part of the settings (a section's own fields may be missing too). */
export type SettingsOnTheWire = Partial<Omit<ServerSettings, 'cache'>> & { cache?: Partial<CacheSettings> };

export function parseSettings(s: SettingsOnTheWire | undefined, problems: SettingsProblems = []): ServerSettings {
  const strings = (x: unknown) => (Array.isArray(x) ? x.filter((v): v is string => typeof v === 'string') : []);
  const env: Record<string, string> = {};
  if (s?.env && typeof s.env === 'object') {
    for (const [k, v] of Object.entries(s.env)) if (typeof v === 'string') env[k] = v;
  }
  const number = (x: unknown, fallback: number, min: number) => (typeof x === 'number' && Number.isFinite(x) && x >= min ? x : fallback);
  const evaluation = DEFAULT_SETTINGS.evaluation;
  return {
    nixBinDir: typeof s?.nixBinDir === 'string' ? s.nixBinDir : '',
    env,
    machinesFiles: strings(s?.machinesFiles),
    builders: strings(s?.builders),
    evaluation: {
      depth: number(s?.evaluation?.depth, evaluation.depth, 1),
      timeoutSeconds: number(s?.evaluation?.timeoutSeconds, evaluation.timeoutSeconds, 1),
      allowImportFromDerivation: s?.evaluation?.allowImportFromDerivation === true,
      arguments: evaluationArguments(s?.evaluation?.arguments, problems),
      searchPath: searchPath(s?.evaluation?.searchPath, problems),
    },
    build: {
      remoteOnly: s?.build?.remoteOnly === true,
      maxJobs: typeof s?.build?.maxJobs === 'number' && s.build.maxJobs >= 0 ? Math.floor(s.build.maxJobs) : undefined,
      cores: typeof s?.build?.cores === 'number' && s.build.cores >= 0 ? Math.floor(s.build.cores) : undefined,
    },
    check: { diffoscopeIgnoreNoise: s?.check?.diffoscopeIgnoreNoise !== false },
    cache: cacheSettings(s?.cache, problems),
  };
}

/** `nixBuilders.cache`: push targets that are store URIs, a signing key file that is an absolute path (`~/`: the home folder), the push queue. */
function cacheSettings(x: Partial<CacheSettings> | undefined, problems: SettingsProblems): CacheSettings {
  const pushTargets = (Array.isArray(x?.pushTargets) ? x.pushTargets : []).filter((t): t is string => {
    const ok = typeof t === 'string' && parseStoreUri(t.trim()) !== undefined && t.trim() !== '';
    if (!ok) problems.push(`"nixBuilders.cache.pushTargets": ${JSON.stringify(t)} is not a store URI (file:///var/cache/nix, ssh://host, ssh-ng://host, s3://bucket?region=…); it is ignored.`);
    return ok;
  });
  const settings: CacheSettings = {
    pushTargets: pushTargets.map((t) => t.trim()),
    queue: { enabled: x?.queue?.enabled === true, dir: absolutePath(x?.queue?.dir, 'nixBuilders.cache.queue.dir', problems) },
  };
  const file = typeof x?.signingKeyFile === 'string' ? x.signingKeyFile.trim().replace(/^~(?=\/)/, os.homedir()) : '';
  if (file === '') return settings;
  if (!path.isAbsolute(file)) {
    problems.push(`"nixBuilders.cache.signingKeyFile": ${JSON.stringify(file)} is not an absolute path; it is ignored.`);
    return settings;
  }
  return { ...settings, signingKeyFile: file };
}

/** An absolute path setting ('' when unset); anything else is said and dropped. */
function absolutePath(x: unknown, name: string, problems: SettingsProblems): string {
  if (x === undefined || x === null || x === '') return '';
  if (typeof x === 'string' && path.isAbsolute(x)) return x;
  problems.push(`"${name}" must be an absolute path; it is ignored.`);
  return '';
}

/** `nixBuilders.evaluation.arguments`: the entries that can be passed as `--arg`. */
function evaluationArguments(x: unknown, problems: SettingsProblems): Record<string, string> {
  const args: Record<string, string> = {};
  if (x === undefined || x === null) return args;
  if (typeof x !== 'object' || Array.isArray(x)) {
    problems.push('"nixBuilders.evaluation.arguments" must be an object of argument name → Nix expression; it is ignored.');
    return args;
  }
  for (const [name, expr] of Object.entries(x)) {
    const problem = argumentProblem(name, expr);
    if (problem) problems.push(`"nixBuilders.evaluation.arguments": ${problem} It is ignored.`);
    else args[name] = expr as string;
  }
  return args;
}

/** `nixBuilders.evaluation.searchPath`: the entries that can be passed as `-I`. */
function searchPath(x: unknown, problems: SettingsProblems): string[] {
  if (x === undefined || x === null) return [];
  if (!Array.isArray(x)) {
    problems.push('"nixBuilders.evaluation.searchPath" must be a list of "name=/path" or "/path" entries; it is ignored.');
    return [];
  }
  return x.filter((e): e is string => {
    const problem = searchPathEntryProblem(e);
    if (problem) problems.push(`"nixBuilders.evaluation.searchPath": ${problem} It is ignored.`);
    return problem === undefined;
  });
}

export function evaluationOptions(settings: ServerSettings): EvaluationOptions {
  return {
    depth: settings.evaluation.depth,
    timeoutMs: settings.evaluation.timeoutSeconds * 1000,
    allowImportFromDerivation: settings.evaluation.allowImportFromDerivation,
    arguments: settings.evaluation.arguments,
    searchPath: settings.evaluation.searchPath,
  };
}

/** The nix.conf files Nix reads (NIX_CONF_DIR or /etc/nix, then the user's). */
export function nixConfFiles(settings: ServerSettings): string[] {
  const env = { ...process.env, ...settings.env };
  const files = [path.join(env.NIX_CONF_DIR ?? '/etc/nix', 'nix.conf')];
  if (env.NIX_USER_CONF_FILES) files.push(...env.NIX_USER_CONF_FILES.split(':').filter(Boolean));
  else files.push(path.join(env.XDG_CONFIG_HOME ?? path.join(os.homedir(), '.config'), 'nix', 'nix.conf'));
  return files;
}
