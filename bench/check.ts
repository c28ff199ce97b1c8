// Benchmark of a local reproducibility check (check.ts's checkDerivation: the outputs queried, the
// rebuild, every output compared, the rebuild's differing files kept) against raw `nix-build
// --check` of the same derivation, alternately on this machine. Each derivation works for a
// second and writes 501 files of 4 KiB; in the nondeterministic one a file changes every build. Prints:
//   check-vs-nix-build-check: <ratio> ratio (goal: <= 1.1), a deterministic derivation (no diff)
//   check-diff: <ms> ms, what a nondeterministic one costs more than raw nix-build --check (the diff)
import { randomUUID } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CheckCopies, checkDerivation } from '../language-server/check/check';
import { Nix } from '../language-server/nix/nix';
import { ExecaRunner } from '../language-server/nix/runner';

const RUNS = 5;
const FILES = 500;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

const script = (changing: boolean) =>
  [
    '/bin/sleep 1',
    'mkdir $out',
    `i=0; while [ $i -lt ${FILES} ]; do head -c 4096 /dev/zero > $out/f$i; i=$((i+1)); done`,
    changing ? 'read u < /proc/sys/kernel/random/uuid; echo $u > $out/stamp' : 'echo same > $out/stamp',
  ].join('; ');

export async function benchCheck(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nb-bench-check-'));
  const env = { NIX_CONF_DIR: dir };
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', ''].join('\n'));
  const nix = new Nix(new ExecaRunner(), { binDir: '', env });
  const copies = new CheckCopies();
  const times = { ours: [] as number[], raw: [] as number[], oursDiff: [] as number[], rawDiff: [] as number[] };
  const outs: string[] = [];
  const nixEnv = { ...process.env, ...env };
  /** One derivation built, then checked raw and by checkDerivation. */
  const measure = async (changing: boolean, ours: number[], raw: number[]) => {
    const expr = `derivation { name = "bench-check-${randomUUID()}"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" ${JSON.stringify(script(changing))} ]; }`;
    const drv = execFileSync('nix-instantiate', ['-E', expr], { env: nixEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    outs.push(execFileSync('nix-store', ['--realise', drv], { env: nixEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    // Raw: what a user types; for the changing one it exits 104 and says only that.
    let t = performance.now();
    const r = spawnSync('nix-build', ['--no-out-link', '--check', drv], { env: nixEnv, stdio: ['ignore', 'ignore', 'ignore'] });
    raw.push(performance.now() - t);
    if (r.status !== (changing ? 104 : 0)) throw new Error(`nix-build --check exited ${r.status}`);
    t = performance.now();
    const result = await checkDerivation(nix, drv, { rounds: 1, signal: new AbortController().signal, report: () => undefined, copies });
    ours.push(performance.now() - t);
    if (result.status !== (changing ? 'differs' : 'reproducible') || (changing && result.outputs[0]?.files?.length !== 1)) throw new Error(`the check said ${result.summary}`);
  };
  try {
    for (let run = 0; run < RUNS; run++) {
      await measure(false, times.ours, times.raw);
      await measure(true, times.oursDiff, times.rawDiff);
    }
  } finally {
    await copies.dispose();
    spawnSync('nix-store', ['--delete', ...outs], { env: nixEnv, stdio: 'ignore' });
    await rm(dir, { recursive: true, force: true });
  }
  const m = (xs: number[]) => median(xs).toFixed(0);
  console.log(`check-vs-nix-build-check: ${(median(times.ours) / median(times.raw)).toFixed(2)} ratio (goal: <= 1.1; a deterministic derivation of ${FILES + 1} files: ours ${m(times.ours)} ms, raw ${m(times.raw)} ms; median of ${RUNS})`);
  console.log(
    `check-diff: ${(median(times.oursDiff) - median(times.rawDiff)).toFixed(0)} ms (what a check of a nondeterministic one costs more than raw nix-build --check, which only says it differs: comparing ${FILES + 1} files, listing the 1 that differs, keeping its rebuild; ours ${m(times.oursDiff)} ms, raw ${m(times.rawDiff)} ms, ratio ${(median(times.oursDiff) / median(times.rawDiff)).toFixed(2)})`,
  );
}
if (require.main === module) {
  benchCheck().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
