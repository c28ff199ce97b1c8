// Where things are, for the e2e harness (runs in Node with tsx, never inside VS Code).
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';

export const repoRoot = path.resolve(__dirname, '..', '..');

/** Screenshots and logs of runs; gitignored. */
export const resultsDir = path.join(repoRoot, 'test-results');

export function ensureResultsDir(): string {
  mkdirSync(resultsDir, { recursive: true });
  return resultsDir;
}

let codeServerBin: string | undefined;

/**
 * The code-server executable: $CODE_SERVER_BIN when set, else the one that
 * scripts/ensure-code-server.sh installs (a no-op taking milliseconds once it is installed, about
 * 2.5 minutes on a cold cache).
 */
export function codeServerExecutable(): string {
  if (codeServerBin) return codeServerBin;
  if (process.env.CODE_SERVER_BIN) return (codeServerBin = process.env.CODE_SERVER_BIN);
  const script = path.join(repoRoot, 'scripts', 'ensure-code-server.sh');
  const out = execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const last = out.trim().split('\n').pop();
  if (!last) throw new Error(`${script} printed no code-server path`);
  return (codeServerBin = last);
}

/** Debian's Chromium (playwright-core drives it; it downloads no browser of its own). */
export function chromiumExecutable(): string {
  return process.env.E2E_CHROMIUM ?? '/usr/bin/chromium';
}
