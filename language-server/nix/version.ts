// Which Nix is installed and how each command is spelt for it.
// Nix 2.3 has no experimental-feature gate; 2.4 introduced `nix-command`; commands were renamed
// over the 2.x series (see the release notes summarised in shared/NIX-FACTS.md).

export interface NixVersion {
  major: number;
  minor: number;
  patch: number;
  /** As printed, e.g. "2.8.0" or "2.18.1pre-git". */
  text: string;
  /** Lix and other forks print their own name; we keep it for messages. */
  implementation: string;
}

/** Parse the output of `nix --version`: "nix (Nix) 2.8.0", "nix (Lix, like Nix) 2.91.1". */
export function parseNixVersion(output: string): NixVersion | undefined {
  const m = /^nix \(([^)]*)\)\s+(\d+)\.(\d+)(?:\.(\d+))?(\S*)/m.exec(output.trim());
  if (!m) return undefined;
  const [, impl, major, minor, patch, rest] = m;
  const text = `${major}.${minor}${patch !== undefined ? `.${patch}` : ''}${rest ?? ''}`;
  return {
    major: Number(major),
    minor: Number(minor),
    patch: Number(patch ?? 0),
    text,
    implementation: impl ?? 'Nix',
  };
}

export function atLeast(v: NixVersion, major: number, minor: number): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

/** How to spell things for one Nix version. Derived from the version, never assumed. */
export interface NixCapabilities {
  version: NixVersion;
  /** Arguments to put before a `nix` subcommand so that it runs at all. */
  nixCommandPrefix: readonly string[];
  /** Same with flakes enabled too. */
  flakesPrefix: readonly string[];
  /** `nix store ping` (2.4+) or `nix ping-store` (2.3), `nix store info` from 2.19. */
  storeInfo: readonly string[];
  /** `nix show-derivation` or `nix derivation show` (2.15+). */
  showDerivation: readonly string[];
  /** JSON of `derivation show` is wrapped ({version, derivations}) from 2.33. */
  showDerivationWrapped: boolean;
  /** `nix show-config` or `nix config show` (2.20+). */
  showConfig: readonly string[];
  /** `nix show-config --json` exists in every 2.x; `store ping --json` from 2.14. */
  storeInfoJson: boolean;
  /** `Trusted:` in store info from 2.15. */
  reportsTrust: boolean;
  /** `--log-format internal-json` from 2.4 (2.3 has only --log-type). */
  internalJsonLog: boolean;
  /** `nix store sign` (2.4+) or `nix sign-paths` (2.3). */
  signPaths: readonly string[];
  /** `repeat` setting, removed in 2.13. */
  repeatSetting: boolean;
  /** post-build-hooks run asynchronously, without holding up the build loop, from 2.35. */
  asyncPostBuildHook: boolean;
  /** `nix path-info --json` is a map from 2.19 (a list before). */
  pathInfoJsonIsMap: boolean;
  /** `nix store cat` (2.4+) or `nix cat-store` (2.3): a store file's contents through Nix. */
  storeCat: readonly string[];
  /** `nix store verify` (2.4+) or `nix verify` (2.3): signatures (and contents) of store paths. */
  storeVerify: readonly string[];
}

export function capabilitiesFor(version: NixVersion): NixCapabilities {
  const gated = atLeast(version, 2, 4);
  const nixCommandPrefix = gated ? ['--extra-experimental-features', 'nix-command'] : [];
  const flakesPrefix = gated ? ['--extra-experimental-features', 'nix-command flakes'] : [];
  return {
    version,
    nixCommandPrefix,
    flakesPrefix,
    storeInfo: atLeast(version, 2, 19) ? ['store', 'info'] : gated ? ['store', 'ping'] : ['ping-store'],
    showDerivation: atLeast(version, 2, 15) ? ['derivation', 'show'] : ['show-derivation'],
    showDerivationWrapped: atLeast(version, 2, 33),
    showConfig: atLeast(version, 2, 20) ? ['config', 'show'] : ['show-config'],
    storeInfoJson: atLeast(version, 2, 14),
    reportsTrust: atLeast(version, 2, 15),
    internalJsonLog: gated,
    signPaths: gated ? ['store', 'sign'] : ['sign-paths'],
    repeatSetting: !atLeast(version, 2, 13),
    asyncPostBuildHook: atLeast(version, 2, 35),
    pathInfoJsonIsMap: atLeast(version, 2, 19),
    storeCat: gated ? ['store', 'cat'] : ['cat-store'],
    storeVerify: gated ? ['store', 'verify'] : ['verify'],
  };
}
