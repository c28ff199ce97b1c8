// Nix 2.26 for the tests: the folder scripts/ensure-nix.sh makes (a Debian 13 root with its own
// /nix, and wrappers in bin/), made here if needed, or why it cannot be (for `{ skip }`).
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

const ENSURE = path.resolve(__dirname, '../../scripts/ensure-nix.sh');

export type Nix226 = { dir: string; bin: string; skip?: undefined } | { skip: string };

let found: Nix226 | undefined;

/** Runs ensure-nix.sh once per process (quick when the root is complete, ~1 min when not). */
export function nix226(): Nix226 {
  found ??= (() => {
    try {
      const out = execFileSync('bash', [ENSURE], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
      const bin = out.trim().split('\n').pop()!;
      return { dir: path.dirname(bin), bin };
    } catch (error) {
      const stderr = String((error as { stderr?: unknown }).stderr ?? (error as Error).message).trim();
      return { skip: `Nix 2.26 is not available: ${stderr || 'scripts/ensure-nix.sh failed'}` };
    }
  })();
  return found;
}
