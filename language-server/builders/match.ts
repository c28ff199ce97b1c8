// Which machines can build a derivation, by Nix's own rules (Nix 2.8 `Machine::allSupported`,
// `mandatoryMet`, and `canBuildLocally`):
// - a builder: one of its systems is the derivation's (no systems listed = the local system), every
//   required feature is among its supported or mandatory features, and every mandatory feature is
//   required by the derivation;
// - this machine: the system is `system`, one of `extra-platforms` or `builtin`, every required
//   feature is in `system-features`, and max-jobs is not 0.

export interface BuildRequirements {
  system: string;
  requiredSystemFeatures: readonly string[];
}

export interface MachineCapabilities {
  systems: readonly string[];
  supportedFeatures: readonly string[];
  mandatoryFeatures: readonly string[];
}

export interface LocalCapabilities {
  system: string;
  extraPlatforms: readonly string[];
  systemFeatures: readonly string[];
  maxJobs: number;
}

export type Refusal =
  | { reason: 'system'; systems: readonly string[] }
  | { reason: 'features'; missing: string[] }
  | { reason: 'mandatory'; unmet: string[] }
  | { reason: 'max-jobs-0' };

export function builderRefusal(m: MachineCapabilities, drv: BuildRequirements, localSystem: string): Refusal | undefined {
  const systems = m.systems.length > 0 ? m.systems : [localSystem];
  if (!systems.includes(drv.system)) return { reason: 'system', systems };
  const missing = drv.requiredSystemFeatures.filter((f) => !m.supportedFeatures.includes(f) && !m.mandatoryFeatures.includes(f));
  if (missing.length > 0) return { reason: 'features', missing };
  const unmet = m.mandatoryFeatures.filter((f) => !drv.requiredSystemFeatures.includes(f));
  if (unmet.length > 0) return { reason: 'mandatory', unmet };
  return undefined;
}

export function localRefusal(l: LocalCapabilities, drv: BuildRequirements): Refusal | undefined {
  const systems = [l.system, ...l.extraPlatforms];
  if (drv.system !== 'builtin' && !systems.includes(drv.system)) return { reason: 'system', systems };
  const missing = drv.requiredSystemFeatures.filter((f) => !l.systemFeatures.includes(f));
  if (missing.length > 0) return { reason: 'features', missing };
  if (l.maxJobs === 0) return { reason: 'max-jobs-0' };
  return undefined;
}

/** `{a, b}` as Nix prints feature sets. */
export const featureSet = (xs: readonly string[]) => `{${xs.join(', ')}}`;
