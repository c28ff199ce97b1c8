// Which builders Nix really uses. Builds pass every listed builder with `--builders`, but a local
// nix-daemon that does not trust this user ignores that silently and uses only its own `builders`
// setting (nix.conf `builders`, by default /etc/nix/machines). The doctor's local check
// (`checkLocal`) finds this out; every prediction of where a derivation builds (diagnostics, the
// hover, the scheduling preview, the plan) then counts only the daemon's builders and says why the
// others are left out. Pure.
import type { CheckResult } from '../protocol';

/** The local nix-daemon ignores the builders this user passes: why, and what to do. */
export interface BuildersIgnored {
  why: string;
  fix?: string;
}

/** What the local check says about `--builders`; undefined when they apply. */
export function buildersIgnoredBy(local: CheckResult<'local-daemon'> | undefined): BuildersIgnored | undefined {
  if (!local?.ignoresBuilders) return undefined;
  const ignored: BuildersIgnored = { why: `${local.summary} and uses only its own \`builders\` setting (nix.conf, /etc/nix/machines)` };
  if (local.fix) ignored.fix = local.fix;
  return ignored;
}

/** A builder the daemon reads itself: from the Nix configuration, not from the extension's settings. */
const fromNixConfiguration = (label: string) => label === '/etc/nix/machines' || label.startsWith('nix.conf builders');

/** The builders Nix uses and those it ignores (none, unless the daemon ignores `--builders`). */
export function splitBuilders<B extends { source: { label: string } }>(builders: readonly B[], ignored: BuildersIgnored | undefined): { used: B[]; ignored: B[] } {
  if (!ignored) return { used: [...builders], ignored: [] };
  return { used: builders.filter((b) => fromNixConfiguration(b.source.label)), ignored: builders.filter((b) => !fromNixConfiguration(b.source.label)) };
}

/** "b2 could build it, but the local nix-daemon does not trust …" (with the fix on its own line). */
export function ignoredNote(names: readonly string[], ignored: BuildersIgnored): string {
  return `${names.join(' and ')} could build it, but ${ignored.why}.${ignored.fix ? `\nFix: ${ignored.fix}.` : ''}`;
}
