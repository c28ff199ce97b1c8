// Benchmark of the push queue's post-build-hook: what it adds to a build. The same trivial
// derivations (salted apart) are built one at a time with `nix-build`, alternately with a nix.conf
// without the hook and one with `post-build-hook = <the script the server writes>`, and the medians
// compared. On Nix 2.8 the hook also runs `nix-store -q --outputs` (OUT_PATHS is empty there).
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { findProgram, postBuildHookScript, writeScript } from '../language-server/cache/hookScript';
import { listEntries } from '../language-server/cache/queue';

const BUILDS = Number(process.env.BENCH_HOOK_BUILDS ?? 15);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

export async function benchHook(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nb-bench-hook-'));
  const queue = path.join(dir, 'queue');
  const script = path.join(dir, 'post-build-hook');
  const plain = path.join(dir, 'plain');
  const hooked = path.join(dir, 'hooked');
  try {
    await mkdir(queue);
    await mkdir(plain);
    await mkdir(hooked);
    const program = async (name: string) => (await findProgram(name)) ?? name;
    await writeScript(script, postBuildHookScript(queue, { nixStore: await program('nix-store'), mv: await program('mv'), rm: await program('rm') }));
    const conf = 'build-users-group =\nsubstituters =\nsandbox = false\nbuilders =\n';
    await writeFile(path.join(plain, 'nix.conf'), conf);
    await writeFile(path.join(hooked, 'nix.conf'), `${conf}post-build-hook = ${script}\n`);
    const salt = `${Date.now()}`;
    const build = (confDir: string, name: string): number => {
      const expr = `derivation { name = "${name}-${salt}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; }`;
      // Instantiated first: only the build (and the hook after it) is timed.
      const drv = execFileSync('nix-instantiate', ['-E', expr], { env: { ...process.env, NIX_CONF_DIR: confDir }, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
      const t = performance.now();
      execFileSync('nix-store', ['--realise', drv], { env: { ...process.env, NIX_CONF_DIR: confDir }, stdio: ['ignore', 'ignore', 'ignore'] });
      return performance.now() - t;
    };
    const without: number[] = [];
    const withHook: number[] = [];
    for (let i = 0; i < BUILDS; i++) {
      without.push(build(plain, `bench-hook-plain-${i}`));
      withHook.push(build(hooked, `bench-hook-hooked-${i}`));
    }
    const queued = (await listEntries(queue)).length;
    if (queued !== BUILDS) throw new Error(`the hook queued ${queued} entries for ${BUILDS} builds`);
    const added = median(withHook) - median(without);
    console.log(`post-build-hook-added: ${added.toFixed(1)} ms per build (goal: < 50 ms; build ${median(without).toFixed(0)} ms without the hook, ${median(withHook).toFixed(0)} ms with it, median of ${BUILDS})`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
