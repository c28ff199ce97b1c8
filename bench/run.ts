// `npm run bench`: performance figures, each a ratio against the raw `nix` command doing the same
// work, measured side by side in one run. Prints one line per figure:
//   name: value unit (goal: …)
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient } from '../test/server/lspClient';
import { benchDoctor } from './doctor';
import { benchLogParser } from './logParser';
import { benchBigBuild } from './bigBuild';
import { benchLabBuilds } from './labBuilds';
import { benchCheck } from './check';
import { benchPush } from './push';
import { benchHook } from './hook';

const RUNS = 5;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

/** A file of `n` derivations in nested attribute sets, salted so every run evaluates fresh text. */
function generatedFile(n: number, salt: string): string {
  const lines = ['{'];
  for (let g = 0; g < n / 20; g++) {
    lines.push(`  group${g} = {`);
    for (let i = 0; i < 20; i++) {
      const sys = i % 5 === 0 ? 'aarch64-linux' : 'x86_64-linux';
      lines.push(
        `    pkg${i} = derivation { name = "bench-${g}-${i}-${salt}"; system = "${sys}"; builder = "/bin/sh"; args = [ "-c" ": > $out" ]; requiredSystemFeatures = [ ${i % 7 === 0 ? '"kvm"' : ''} ]; };`,
      );
    }
    lines.push('  };');
  }
  lines.push('}', '');
  return lines.join('\n');
}

async function benchDiagnostics(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nb-bench-'));
  const env = { NIX_CONF_DIR: dir };
  await writeFile(path.join(dir, 'machines'), 'ssh://b1 x86_64-linux - 1 1 kvm\nssh://b2 aarch64-linux\n');
  await writeFile(path.join(dir, 'nix.conf'), `build-users-group =\nsubstituters =\nbuilders = @${path.join(dir, 'machines')}\n`);
  const client = new StdioLspClient({ ...process.env });
  await client.initialize({ settings: { env } });
  await client.request('nixBuilders/listBuilders');
  const ours: number[] = [];
  const raw: number[] = [];
  const cached: number[] = [];
  try {
    for (let run = 0; run < RUNS; run++) {
      // Raw: nix-instantiate of the same 200 attributes (nested sets: nix-instantiate needs the paths).
      const rawFile = path.join(dir, `raw${run}.nix`);
      const rawText = generatedFile(200, `r${run}`);
      await writeFile(rawFile, rawText);
      const attrs: string[] = [];
      for (let g = 0; g < 10; g++) for (let i = 0; i < 20; i++) attrs.push('-A', `group${g}.pkg${i}`);
      let t = performance.now();
      execFileSync('nix-instantiate', [rawFile, ...attrs], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'ignore'] });
      raw.push(performance.now() - t);

      // Ours: open the document, time until its diagnostics arrive (no debounce on open).
      const file = path.join(dir, `ours${run}.nix`);
      const text = generatedFile(200, `o${run}`);
      await writeFile(file, text);
      const uri = pathToFileURL(file).href;
      t = performance.now();
      client.open(uri, text);
      const ds = await client.diagnostics(uri);
      ours.push(performance.now() - t);
      if (ds.length === 0) throw new Error('the benchmark file produced no diagnostics');

      // Cached re-serve: the same content again, answered from the cache.
      t = performance.now();
      const again = await client.request<{ state: string; derivations: unknown[] }>('nixBuilders/derivations', { uri });
      cached.push(performance.now() - t);
      if (again.derivations.length !== 200) throw new Error(`expected 200 derivations, got ${again.derivations.length}`);
    }
  } finally {
    await client.shutdown();
    await rm(dir, { recursive: true, force: true });
  }
  const ratio = median(ours) / median(raw);
  console.log(`diagnostics-vs-nix-instantiate: ${ratio.toFixed(2)} ratio (goal: <= 1.2; ours ${median(ours).toFixed(0)} ms, raw ${median(raw).toFixed(0)} ms, 200 derivations, median of ${RUNS})`);
  console.log(`diagnostics-cached-reserve: ${median(cached).toFixed(2)} ms (goal: < 5 ms)`);
}

async function main(): Promise<void> {
  await benchDiagnostics();
  await benchLogParser();
  await benchDoctor();
  await benchLabBuilds();
  await benchBigBuild();
  await benchCheck();
  await benchPush();
  await benchHook();
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
