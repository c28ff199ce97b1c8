// The effective Nix configuration, as `nix show-config` / `nix config show` prints it
// (`key = value` lines; values are space-separated lists where the setting is a list).

export interface NixConfig {
  system: string;
  extraPlatforms: string[];
  systemFeatures: string[];
  /** `auto` is resolved by Nix to the number of CPUs; we keep the number Nix printed. */
  maxJobs: number;
  /** 0 means "all cores". */
  cores: number;
  /** Raw value of `builders`: inline machines text or `@file`s. */
  builders: string;
  buildersUseSubstitutes: boolean;
  substituters: string[];
  trustedPublicKeys: string[];
  /** Keys Nix signs locally built paths with. */
  secretKeyFiles: string[];
  trustedUsers: string[];
  /** Everything, for settings we do not type. */
  raw: ReadonlyMap<string, string>;
}

export function parseConfigText(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf(' = ');
    if (eq <= 0) {
      // `key =` with an empty value.
      const m = /^([A-Za-z0-9-]+) =\s*$/.exec(line);
      if (m) map.set(m[1] as string, '');
      continue;
    }
    map.set(line.slice(0, eq).trim(), line.slice(eq + 3).trim());
  }
  return map;
}

const words = (s: string | undefined) => (s ?? '').split(/\s+/).filter((w) => w.length > 0);

export function toNixConfig(raw: ReadonlyMap<string, string>): NixConfig {
  const num = (key: string, fallback: number) => {
    const n = Number(raw.get(key));
    return Number.isFinite(n) ? n : fallback;
  };
  return {
    system: raw.get('system') ?? 'unknown',
    extraPlatforms: words(raw.get('extra-platforms')),
    systemFeatures: words(raw.get('system-features')),
    maxJobs: num('max-jobs', 1),
    cores: num('cores', 0),
    builders: raw.get('builders') ?? '',
    buildersUseSubstitutes: raw.get('builders-use-substitutes') === 'true',
    substituters: words(raw.get('substituters')),
    trustedPublicKeys: words(raw.get('trusted-public-keys')),
    secretKeyFiles: words(raw.get('secret-key-files')),
    trustedUsers: words(raw.get('trusted-users')),
    raw,
  };
}
