// Benchmark of a local reproducibility check (check.ts's checkDerivation: the outputs queried, the
// rebuild, every output compared, the differing tree copied) against raw `nix-build --check` of
// the same derivation, alternately on this machine. The derivation works for a second and writes
// 500 files of 4 KiB and one that changes every build: the diff reads the whole output, copies one file.
// Prints:
//   check-vs-nix-build-check: <ratio> ratio (goal: <= 1.1 plus the diff)
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

const script = [
  '/bin/sleep 1',
  'mkdir $out',
  `i=0; while [ $i -lt ${FILES} ]; do head -c 4096 /dev/zero > $out/f$i; i=$((i+1)); done`,
  'read u < /proc/sys/kernel/random/uuid; echo $u > $out/stamp',
].join('; ');

export async function benchCheck(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nb-bench-check-'));
  const env = { NIX_CONF_DIR: dir };
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', ''].join('\n'));
  const nix = new Nix(new ExecaRunner(), { binDir: '', env });
  const copies = new CheckCopies();
  const ours: number[] = [];
  const raw: number[] = [];
  let files = 0;
  const outs: string[] = [];
  try {
    for (let run = 0; run < RUNS; run++) {
      const expr = `derivation { name = "bench-check-${randomUUID()}"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" ${JSON.stringify(script)} ]; }`;
      const drv = execFileSync('nix-instantiate', ['-E', expr], { env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      outs.push(execFileSync('nix-store', ['--realise', drv], { env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
      // Raw: what a user types; it exits 104 (the output differs) and says only that.
      let t = performance.now();
      const r = spawnSync('nix-build', ['--no-out-link', '--check', drv], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'ignore'] });
      raw.push(performance.now() - t);
      if (r.status !== 104) throw new Error(`nix-build --check exited ${r.status}, not 104 (not deterministic)`);
      t = performance.now();
      const result = await checkDerivation(nix, drv, { rounds: 1, signal: new AbortController().signal, report: () => undefined, copies });
      ours.push(performance.now() - t);
      if (result.status !== 'differs') throw new Error(`the check said ${result.summary}`);
      files = result.outputs[0]?.files?.length ?? 0;
    }
  } finally {
    await copies.dispose();
    spawnSync('nix-store', ['--delete', ...outs], { env: { ...process.env, ...env }, stdio: 'ignore' });
    await rm(dir, { recursive: true, force: true });
  }
  console.log(
    `check-vs-nix-build-check: ${(median(ours) / median(raw)).toFixed(2)} ratio (goal: <= 1.1 plus the diff; ours ${median(ours).toFixed(0)} ms with ${files} differing file listed and kept, raw ${median(raw).toFixed(0)} ms; ${FILES + 1} files, median of ${RUNS})`,
  );
}

if (require.main === module) {
  benchCheck().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
