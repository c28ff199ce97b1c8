// Benchmark of builds on two lab builders at once (the lab's self-test only proves that they
// overlap, test/lab/lab.test.ts): two 2-second builds, one on b1 and one on b2, at the same time,
// against one such build alone. Prints:
//   lab-two-builds-at-once: <ratio> ratio (goal: ~1)
import { nixBuild, saltedDerivation, startLab } from '../test/lab/lab';

const RUNS = 3;
const SECONDS = 2;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

export async function benchLabBuilds(): Promise<void> {
  const lab = await startLab();
  try {
    const slow = () => saltedDerivation({ system: 'x86_64-linux', seconds: SECONDS });
    const ok = (run: { code: number | null; stderr: string }) => {
      if (run.code !== 0) throw new Error(`a lab build failed: ${run.stderr}`);
    };
    const alone: number[] = [];
    const together: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      let t = performance.now();
      ok(await nixBuild(lab, slow(), [lab.builder('b1')]));
      alone.push(performance.now() - t);
      t = performance.now();
      const both = await Promise.all([nixBuild(lab, slow(), [lab.builder('b1')]), nixBuild(lab, slow(), [lab.builder('b2')])]);
      together.push(performance.now() - t);
      both.forEach(ok);
    }
    console.log(
      `lab-two-builds-at-once: ${(median(together) / median(alone)).toFixed(2)} ratio (goal: ~1, one after the other would be 2; two ${SECONDS}-s builds on b1 and b2 at once ${median(together).toFixed(0)} ms, one alone ${median(alone).toFixed(0)} ms; median of ${RUNS})`,
    );
  } finally {
    await lab.stop();
  }
}

if (require.main === module) {
  benchLabBuilds().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
