// Benchmark of Push to Cache (nixBuilders.pushToCache) against raw `nix copy --to file://…` of the
// same closure: 20 paths of 256 KiB each (BENCH_PUSH_PATHS sets how many), plus the top one, into a
// new file:// cache each run.
// Ours closes the closure, asks the cache what it has, signs it, copies with the internal-json log
// read for progress; it is timed until its verification starts (the push itself) and until it
// answers (push and verification: signatures, trusted key, a fresh store substituting everything),
// each against the raw copy. The key is trusted in the bench's nix.conf, as a consumer's would be.
//   push-vs-nix-copy: <ratio> ratio (goal: <= 1.1)
//   push-and-verify-vs-nix-copy: <ratio> ratio
import { execFileSync } from 'node:child_process';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient } from '../test/server/lspClient';
import { ServerCommands, type PushToCacheResult } from '../language-server/protocol';

const RUNS = 7;
const PATHS = Number(process.env.BENCH_PUSH_PATHS ?? 20);
const SERVER = path.join(__dirname, '../language-server/main.ts');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

/** A closure of PATHS text outputs (compressible, as most are) under one top. */
function closureText(salt: string): string {
  const deps = Array.from({ length: PATHS }, (_, i) => `  d${i} = derivation { name = "bench-push-${i}"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "i=0; while [ $i -lt 4096 ]; do echo ${salt}-${i}-line-$i-of-some-text-that-compresses-well; i=$((i+1)); done > $out" ]; };`);
  const refs = Array.from({ length: PATHS }, (_, i) => `\${d${i}}`).join(' ');
  return ['let', ...deps, `in { top = derivation { name = "bench-push-top"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo ${refs} > $out" ]; }; }`, ''].join('\n');
}

export async function benchPush(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nb-bench-push-'));
  await writeFile(path.join(dir, 'nix.conf'), 'build-users-group =\nsubstituters =\nsandbox = false\nbuilders =\nexperimental-features = nix-command\n');
  const env = { ...process.env, NIX_CONF_DIR: dir };
  const nix = (args: string[], input?: string) => execFileSync('nix', args, { env, encoding: 'utf8', stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'ignore'], ...(input !== undefined ? { input } : {}) });
  const client = new StdioLspClient(process.env, ['--import', 'tsx', SERVER]);
  try {
    await client.initialize({ settings: { env: { NIX_CONF_DIR: dir } } }, dir, { window: { workDoneProgress: true } });
    const key = path.join(dir, 'bench.sec');
    const secret = nix(['key', 'generate-secret', '--key-name', 'bench-push-1']);
    await writeFile(key, secret, { mode: 0o600 });
    await appendFile(path.join(dir, 'nix.conf'), `trusted-public-keys = ${nix(['key', 'convert-secret-to-public'], secret).trim()}\n`);
    const file = path.join(dir, 'closure.nix');
    const text = closureText(`${Date.now()}`);
    await writeFile(file, text);
    const uri = pathToFileURL(file).href;
    client.open(uri, text);
    const top = execFileSync('nix-build', ['--no-out-link', file, '-A', 'top'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const raw: number[] = [];
    const ours: number[] = [];
    const verification: number[] = [];
    const total: number[] = [];
    const rawRun = (run: number) => {
      const t = performance.now();
      nix(['copy', '--to', `file://${path.join(dir, `raw-${run}`)}`, top]);
      raw.push(performance.now() - t);
    };
    const oursRun = async (run: number) => {
      const token = `bench-push-${run}`;
      const t = performance.now();
      const answer = client.request<PushToCacheResult>('workspace/executeCommand', { command: ServerCommands.pushToCache, arguments: [{ uri, attribute: 'top', to: `file://${path.join(dir, `ours-${run}`)}`, keyFile: key }], workDoneToken: token });
      await client.waitForNotification((m) => m.method === '$/progress' && (m.params as { token: string; value: { message?: string } }).token === token && /^verifying /.test((m.params as { value: { message?: string } }).value.message ?? ''), 600_000, false);
      const pushed = performance.now();
      ours.push(pushed - t);
      const r = await answer;
      verification.push(performance.now() - pushed);
      total.push(performance.now() - t);
      if (r.status !== 'pushed' || r.pushed.length !== PATHS + 1 || r.verification?.status !== 'verified') throw new Error(`the push did not work: ${r.summary}`);
    };
    // Alternating which goes first, so that neither always finds the other's work in the page cache.
    for (let run = 0; run < RUNS; run++) {
      if (run % 2 === 0) {
        rawRun(run);
        await oursRun(run);
      } else {
        await oursRun(run);
        rawRun(run);
      }
    }
    // Each run's pair side by side: the machine's load drifts between runs far more than within one.
    const ratios = ours.map((x, i) => x / (raw[i] as number));
    console.log(
      `push-vs-nix-copy: ${median(ratios).toFixed(2)} ratio (goal: <= 1.1; median of ${RUNS} runs' ours/raw; ours ${median(ours).toFixed(0)} ms to push ${PATHS + 1} paths signed with progress, raw nix copy --to file:// ${median(raw).toFixed(0)} ms; per run ${ours.map((x, i) => `${x.toFixed(0)}/${(raw[i] as number).toFixed(0)}`).join(' ')})`,
    );
    const totalRatios = total.map((x, i) => x / (raw[i] as number));
    console.log(
      `push-and-verify-vs-nix-copy: ${median(totalRatios).toFixed(2)} ratio (median of ${RUNS} runs' (push + verification)/raw; push and verification ${median(total).toFixed(0)} ms, of which the verification ${median(verification).toFixed(0)} ms: signatures, trusted key, a fresh store substituting all ${PATHS + 1} paths; per run ${total.map((x, i) => `${x.toFixed(0)}/${(raw[i] as number).toFixed(0)}`).join(' ')})`,
    );
  } finally {
    await client.shutdown();
    await rm(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  benchPush().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
