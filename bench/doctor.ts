// Benchmark of the builder doctor: checking 20 builders in parallel should take about as long as
// the slowest single check, not the sum. 20 builders = the lab's four, five times each (every copy
// is a separate SSH connection and probe). Prints:
//   doctor-parallel-vs-slowest: <ratio> ratio (goal: ~1)
// and how soon checkAll returns after an abort:
//   doctor-cancel-latency: <ms> ms (goal: < 1500 ms)
// Note: in the lab every "remote" builder shares this machine's CPUs, so the ratio is pessimistic
// compared with real builders, which do their part of the work on their own machines.
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { adHocBuilder } from '../language-server/builders/collect';
import { checkAll, checkBuilder, type DoctorDeps } from '../language-server/builders/doctor';
import { parseMachineLine } from '../language-server/nix/machines';
import { Nix } from '../language-server/nix/nix';
import { ExecaRunner } from '../language-server/nix/runner';
import type { BuilderInfo } from '../language-server/protocol';
import { startLab } from '../test/lab/lab';

const BUILDERS = 20;
const RUNS = 3;

/** Busy and total jiffies of all CPUs (Linux /proc/stat). */
function cpuTimes(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  return { busy: total - (fields[3] ?? 0) - (fields[4] ?? 0), total };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

export async function benchDoctor(): Promise<void> {
  const lab = await startLab();
  try {
    const nix = new Nix(new ExecaRunner(), { binDir: '', env: lab.env });
    const deps: DoctorDeps = { nix };
    const builders: BuilderInfo[] = Array.from({ length: BUILDERS }, (_, i) => {
      const labBuilder = lab.builders[i % lab.builders.length]!;
      const machine = parseMachineLine(labBuilder.machinesLine).machine!;
      return adHocBuilder(machine, `bench:${i}`, 'benchmark');
    });
    // Warm up (ssh, nix and the lab's daemons).
    await checkBuilder(builders[0]!, deps);

    const ratios: number[] = [];
    const parallels: number[] = [];
    const slowests: number[] = [];
    const sums: number[] = [];
    const busy: number[] = [];
    const ownMs: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      // The slowest of the single checks, each run alone.
      let slowest = 0;
      const sequentialStarted = performance.now();
      for (const b of builders) {
        const t = performance.now();
        await checkBuilder(b, deps);
        slowest = Math.max(slowest, performance.now() - t);
      }
      sums.push(performance.now() - sequentialStarted);
      const cpuBefore = cpuTimes();
      const ownBefore = process.cpuUsage();
      const t = performance.now();
      const report = await checkAll(builders, deps);
      const parallel = performance.now() - t;
      const cpuAfter = cpuTimes();
      const own = process.cpuUsage(ownBefore);
      busy.push((cpuAfter.busy - cpuBefore.busy) / (cpuAfter.total - cpuBefore.total));
      ownMs.push((own.user + own.system) / 1000 / BUILDERS);
      if (report.builders.length !== BUILDERS) throw new Error(`checked ${report.builders.length} builders, not ${BUILDERS}`);
      ratios.push(parallel / slowest);
      parallels.push(parallel);
      slowests.push(slowest);
    }
    // Cancellation: from abort() to checkAll's return, with every check somewhere in its steps.
    const cancelMs: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const controller = new AbortController();
      const pending = checkAll(builders, { ...deps, signal: controller.signal });
      await new Promise((resolve) => setTimeout(resolve, 100 * (run + 1)));
      const t = performance.now();
      controller.abort();
      await pending;
      cancelMs.push(performance.now() - t);
    }
    console.log(`doctor-cancel-latency: ${median(cancelMs).toFixed(0)} ms (goal: < 1500 ms; ${BUILDERS} builders, aborted 100, 200, 300 ms in, median of ${RUNS})`);
    console.log(
      `doctor-parallel-vs-slowest: ${median(ratios).toFixed(2)} ratio (goal: ~1; ${BUILDERS} builders in parallel ${median(parallels).toFixed(0)} ms, slowest single ${median(slowests).toFixed(0)} ms, one after the other ${median(sums).toFixed(0)} ms; the ${os.cpus().length} CPUs, shared with the lab's builders, were ${(median(busy) * 100).toFixed(0)}% busy, the doctor's own process used ${median(ownMs).toFixed(1)} ms CPU per builder; median of ${RUNS})`,
    );
  } finally {
    await lab.stop();
  }
}

if (require.main === module) {
  benchDoctor().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
