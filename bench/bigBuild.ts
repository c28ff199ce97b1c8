// Benchmark of a large real build through the language server, against raw `nix-store --realise`
// of the same work: N trivial derivations (default 1000) and one that prints 1 M log lines (≈ 100 MB
// of internal-json). Prints the wall-time ratio, what the editor received (updates, bytes) and what
// merging them cost the extension's side, and the server's peak memory.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient, type Message } from '../test/server/lspClient';
import { chattyBuildFile } from '../test/server/chattyBuild';
import { BuildStore } from '../extension/buildState';
import type { BuildProgress } from '../language-server/protocol';

const DERIVATIONS = Number(process.env.BENCH_BUILD_DERIVATIONS ?? 1000);
const LOG_LINES = 1_000_000;

const bigFile = (salt: string) => chattyBuildFile({ attribute: 'big', derivations: DERIVATIONS, lines: LOG_LINES, salt });

/** Peak resident memory of a process (VmHWM), MiB. */
function peakRss(pid: number | undefined): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export async function benchBigBuild(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nb-bench-build-'));
  await writeFile(path.join(dir, 'nix.conf'), 'build-users-group =\nsubstituters =\nsandbox = false\nbuilders =\n');
  const env = { ...process.env, NIX_CONF_DIR: dir };
  const salt = `${Date.now()}`;
  const client = new StdioLspClient();
  try {
    await client.initialize({ settings: { env: { NIX_CONF_DIR: dir } } });
    // Raw, twice, with the same derivations (other salts): its log read from a pipe and dropped (as
    // a terminal reads it: Nix writes a line at a time, so the reader wakes ~400 000 times), and
    // its log to /dev/null (nobody reads it).
    const rawDrv = async (name: string) => {
      const rawFile = path.join(dir, `${name}.nix`);
      await writeFile(rawFile, bigFile(`${name}-${salt}`));
      return execFileSync('nix-instantiate', [rawFile, '-A', 'big'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    };
    const args = (drv: string) => ['--realise', drv, '--log-format', 'internal-json', '-v'];
    const piped = await rawDrv('raw-piped');
    let t = performance.now();
    await new Promise<void>((resolve, reject) => {
      const child = spawn('nix-store', args(piped), { env, stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr.resume();
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`nix-store exited with ${code}`))));
    });
    const raw = performance.now() - t;
    const devNull = await rawDrv('raw-devnull');
    t = performance.now();
    execFileSync('nix-store', args(devNull), { env, stdio: ['ignore', 'ignore', 'ignore'] });
    const rawDevNull = performance.now() - t;

    const file = path.join(dir, 'ours.nix');
    const text = bigFile(`ours-${salt}`);
    await writeFile(file, text);
    const uri = pathToFileURL(file).href;
    client.open(uri, text);
    await client.diagnostics(uri);
    // The plan (dry run + where each derivation builds) vs the raw dry run of the same derivation.
    const oursDrv = execFileSync('nix-instantiate', [file, '-A', 'big'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    t = performance.now();
    execFileSync('nix-store', ['--realise', '--dry-run', oursDrv], { env, stdio: ['ignore', 'ignore', 'ignore'] });
    const rawPlan = performance.now() - t;
    t = performance.now();
    const plan = await client.request<{ builds: unknown[] }>('nixBuilders/planBuild', { uri, attrPaths: [['big']] });
    const oursPlan = performance.now() - t;
    if (plan.builds.length !== DERIVATIONS + 1) throw new Error(`the plan has ${plan.builds.length} derivations`);
    console.log(
      `plan-${DERIVATIONS + 1}-drvs-vs-dry-run: ${(oursPlan / rawPlan).toFixed(2)} ratio (ours ${oursPlan.toFixed(0)} ms with where each derivation builds, raw nix-store --realise --dry-run ${rawPlan.toFixed(0)} ms)`,
    );

    t = performance.now();
    const info = await client.request<{ buildId: string }>('nixBuilders/startBuild', { uri, attrPaths: [['big']] });
    const mine = (m: Message) => m.method === 'nixBuilders/buildProgress' && (m.params as BuildProgress).buildId === info.buildId;
    await client.waitForNotification((m) => mine(m) && (m.params as BuildProgress).status !== 'running', 1_800_000);
    const ours = performance.now() - t;

    const received = client.notifications.filter(mine);
    const bytes = received.reduce((n, m) => n + JSON.stringify(m.params).length, 0);
    const store = new BuildStore();
    t = performance.now();
    for (const m of received) store.apply(m.params as BuildProgress);
    const merge = performance.now() - t;
    const end = store.get(info.buildId);
    if (end?.status !== 'built' || end.snapshot?.derivations.length !== DERIVATIONS + 1) throw new Error(`the build did not end as expected: ${end?.status}`);
    console.log(
      `build-${DERIVATIONS + 1}-drvs-1M-lines-vs-nix-store: ${(ours / raw).toFixed(2)} ratio (goal: ≈ 1; ours ${(ours / 1000).toFixed(1)} s incl. the plan, raw with its log piped ${(raw / 1000).toFixed(1)} s; raw with its log to /dev/null ${(rawDevNull / 1000).toFixed(1)} s, ratio ${(ours / rawDevNull).toFixed(2)})`,
    );
    console.log(
      `build-updates-to-editor: ${received.length} notifications, ${(bytes / 1024).toFixed(0)} KiB in all, merged in ${merge.toFixed(0)} ms (goal: ≤ 5/s, bytes follow changes, not the 100 MB log)`,
    );
    console.log(`build-server-peak-rss: ${peakRss(client.child.pid).toFixed(0)} MiB (goal: flat in log size)`);
  } finally {
    await client.shutdown();
    await rm(dir, { recursive: true, force: true });
  }
}
