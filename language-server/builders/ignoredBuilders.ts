// Which builders Nix really uses. Builds pass every listed builder with `--builders` (but the
// daemon's own that the user's nix.conf or NIX_CONFIG replaces), but a local nix-daemon that does
// not trust this user ignores that silently, and the user's nix.conf and NIX_CONFIG too: it uses
// only its own `builders` setting (the system nix.conf's, by default /etc/nix/machines). The
// doctor's local check (`checkLocal`) finds this out; every prediction of where a derivation builds
// (diagnostics, the hover, the scheduling preview, the plan) then counts only the daemon's builders
// (by their provenance) and says why the others are left out. Pure.
import type { BuilderSource, CheckResult } from '../protocol';

/** The local nix-daemon ignores the builders this user passes: why, and what to do. */
export interface BuildersIgnored {
  why: string;
  fix?: string;
}

/** What the local check says about `--builders`; undefined when they apply. */
export function buildersIgnoredBy(local: CheckResult<'local-daemon'> | undefined): BuildersIgnored | undefined {
  if (!local?.ignoresBuilders) return undefined;
  const ignored: BuildersIgnored = { why: `${local.summary} and uses only its own \`builders\` setting (the system nix.conf, /etc/nix/machines)` };
  if (local.fix) ignored.fix = local.fix;
  return ignored;
}

type Sourced = { source: Pick<BuilderSource, 'provenance'> };

/** A builder the daemon reads itself: from the system nix.conf's `builders` and its machines files. */
const readByDaemon = (b: Sourced) => b.source.provenance?.kind === 'system-machines' || b.source.provenance?.kind === 'nix-conf-system';

/** A builder this client passes with --builders: all but the daemon's own that the user's `builders` replaces. */
export const passedWithBuilders = (b: Sourced) => b.source.provenance?.replaced !== true;

/** The builders Nix uses and those it ignores (none, unless the daemon ignores `--builders`). */
export function splitBuilders<B extends Sourced>(builders: readonly B[], ignored: BuildersIgnored | undefined): { used: B[]; ignored: B[] } {
  if (!ignored) return { used: builders.filter(passedWithBuilders), ignored: [] };
  return { used: builders.filter(readByDaemon), ignored: builders.filter((b) => !readByDaemon(b)) };
}

/** "b2 could build it, but the local nix-daemon does not trust …" (with the fix on its own line). */
export function ignoredNote(names: readonly string[], ignored: BuildersIgnored): string {
  return `${names.join(' and ')} could build it, but ${ignored.why}.${ignored.fix ? `\nFix: ${ignored.fix}.` : ''}`;
}
