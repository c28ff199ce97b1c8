// The e2e entry point: the extension in a real VS Code (code-server) against the builder lab.
//
//   node --import tsx test/e2e/run.ts [--only=extension|ui] [--vsix[=FILE]]
//
// 1. builds the extension (scripts/build.mjs) and the mocha suite (dist/e2e-suite/), and makes
//    sure code-server is installed (scripts/ensure-code-server.sh);
// 2. starts the builder lab once (test/lab/lab.ts);
// 3. makes a temporary workspace: a copy of demo/ with .vscode/settings.json pointing
//    nixBuilders.env and nixBuilders.machinesFiles at the lab;
// 4. runs the mocha extension tests (test/e2e/suite/) with @vscode/test-electron's runTests(),
//    whose "VS Code executable" is test/e2e/launcher.sh (code-server + headless Chromium);
// 5. runs the UI tests (test/e2e/ui/*.test.ts, node:test + playwright) against one code-server;
// 6. stops everything, prints a summary, exits 1 on any failure.
//
// The UI phase loads the extension from the repo as a development extension; with --vsix it
// installs a packaged .vsix instead (default dist/nix-builders.vsix, made by `npm run package`).
// Screenshots and code-server logs go to test-results/. Environment: see launcher.ts.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runTests } from '@vscode/test-electron';
import { startLab, type Lab } from '../lab/lab';
import { buildSuite } from './buildSuite';
import { killQuietly, onTeardown, pidsWithEnv } from './cleanup';
import { startCodeServer, type CodeServer } from './codeServer';
import { codeServerExecutable, repoRoot, resultsDir } from './paths';

interface PhaseResult {
  name: string;
  test: boolean;
  ok: boolean;
  /** Tests the phase ran, read from its runner's report (mocha's spec or node:test). */
  counts?: { passed: number; failed: number };
  seconds: number;
  detail?: string;
}

const results: PhaseResult[] = [];
const t0 = Date.now();
const elapsed = (since: number) => (Date.now() - since) / 1000;
const say = (msg: string) => console.log(`\n=== e2e: ${msg} (${elapsed(t0).toFixed(1)} s)`);

/** Test counts in a runner's report: mocha's "N passing"/"N failing", node:test's "ℹ pass N"/"ℹ fail N". */
function countTests(report: string): { passed: number; failed: number } | undefined {
  const last = (re: RegExp) => {
    const all = [...report.matchAll(re)];
    return all.length ? Number(all[all.length - 1]?.[1]) : undefined;
  };
  const passed = last(/^(?:\[e2e\] )?\s*(\d+) passing/gm) ?? last(/^ℹ pass (\d+)$/gm);
  const failed = last(/^(?:\[e2e\] )?\s*(\d+) failing/gm) ?? last(/^ℹ fail (\d+)$/gm) ?? 0;
  return passed === undefined ? undefined : { passed, failed };
}

/** Runs `fn` while copying what it writes to stdout (child processes' output included). */
async function capturingStdout(fn: () => Promise<void>): Promise<string> {
  let text = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write;
  try {
    await fn();
  } finally {
    process.stdout.write = write;
  }
  return text;
}

async function phase(name: string, fn: () => Promise<void>, test = true): Promise<boolean> {
  const start = Date.now();
  say(`${name}…`);
  let report = '';
  try {
    report = await capturingStdout(fn);
    results.push({ name, test, ok: true, seconds: elapsed(start), counts: test ? countTests(report) : undefined });
    return true;
  } catch (e) {
    const detail = e instanceof Error ? e.message : String(e);
    results.push({ name, test, ok: false, seconds: elapsed(start), detail, counts: test ? countTests(report) : undefined });
    console.error(`e2e: ${name} failed: ${detail}`);
    return false;
  }
}

/** Runs a process with inherited stdio; resolves with its exit code. */
function runProcess(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolve, reject) => {
    // stdout goes through this process (so that the phase can read the report), stderr straight.
    const child = spawn(cmd, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.on('data', (d: Buffer) => process.stdout.write(d));
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

function parseArgs(argv: string[]) {
  let only: 'extension' | 'ui' | undefined;
  let vsix: string | undefined;
  for (const a of argv) {
    const m = /^--only=(extension|ui)$/.exec(a);
    if (m) only = m[1] as 'extension' | 'ui';
    else if (a === '--vsix') vsix = path.join(repoRoot, 'dist', 'nix-builders.vsix');
    else if (a.startsWith('--vsix=')) vsix = path.resolve(a.slice('--vsix='.length));
    else throw new Error(`unknown argument ${a} (use --only=extension|ui, --vsix[=FILE])`);
  }
  if (process.env.E2E_VSIX) vsix = path.resolve(process.env.E2E_VSIX);
  return { only, vsix };
}

/**
 * The UI test files to run: every ui/*.test.ts, or those that E2E_UI_TESTS names (comma-separated
 * base names, e.g. `buildOn,picker`).
 */
function uiTestFiles(uiDir: string): string[] {
  const all = readdirSync(uiDir).filter((f) => f.endsWith('.test.ts')).sort();
  if (all.length === 0) throw new Error(`no *.test.ts in ${uiDir}`);
  const wanted = process.env.E2E_UI_TESTS?.split(',').map((n) => n.trim()).filter(Boolean);
  if (!wanted?.length) return all.map((f) => path.join(uiDir, f));
  const unknown = wanted.filter((n) => !all.includes(`${n}.test.ts`));
  if (unknown.length > 0) throw new Error(`E2E_UI_TESTS names ${unknown.join(', ')}: no such test in ${uiDir} (have ${all.map((f) => f.replace(/\.test\.ts$/, '')).join(', ')})`);
  return wanted.map((n) => path.join(uiDir, `${n}.test.ts`));
}

/** A copy of demo/ (or a one-file workspace) whose settings point the extension at the lab. */
function makeWorkspace(lab: Lab): string {
  const ws = path.join(os.tmpdir(), 'demo'); // os.tmpdir() is this run's own folder
  mkdirSync(ws);
  const demo = path.join(repoRoot, 'demo');
  if (existsSync(demo)) cpSync(demo, ws, { recursive: true });
  else writeFileSync(path.join(ws, 'default.nix'), 'derivation { name = "hello"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo hi > $out" ]; }\n');
  const settingsFile = path.join(ws, '.vscode', 'settings.json');
  mkdirSync(path.dirname(settingsFile), { recursive: true });
  const existing = existsSync(settingsFile) ? (JSON.parse(readFileSync(settingsFile, 'utf8')) as Record<string, unknown>) : {};
  const settings = {
    ...existing,
    // lab.env is {NIX_CONF_DIR, NIX_SSHOPTS, TMPDIR}: the lab's own TMPDIR collects what Nix's
    // build hook leaves behind after a failed remote build.
    'nixBuilders.env': lab.env,
    'nixBuilders.machinesFiles': [lab.machinesFile],
  };
  writeFileSync(settingsFile, JSON.stringify(settings, null, 2) + '\n');
  return ws;
}

const RUN_PREFIX = 'nb-e2e-run-';

/**
 * Cleans up after runs that were killed outright (SIGKILL runs no handler): their processes
 * (marked with NIX_BUILDERS_E2E_RUN) and their temporary folder.
 */
function sweepAbandonedRuns(): void {
  const tmp = os.tmpdir();
  for (const entry of readdirSync(tmp)) {
    if (!entry.startsWith(RUN_PREFIX)) continue;
    const dir = path.join(tmp, entry);
    let info: { pid: number; marker: string };
    try {
      info = JSON.parse(readFileSync(path.join(dir, 'run.json'), 'utf8')) as typeof info;
    } catch {
      continue; // not ours, or just being created
    }
    if (isAlive(info.pid)) continue;
    for (const pid of pidsWithEnv('NIX_BUILDERS_E2E_RUN', info.marker)) killQuietly(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    console.log(`e2e: removed ${dir}, left by a run that was killed`);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes what earlier runs of this harness left in test-results/ (other tiers' files stay). */
function clearOldResults(): void {
  if (!existsSync(resultsDir)) return;
  for (const f of readdirSync(resultsDir)) {
    if (/^(code-server-.*\.log|extension-tests-failure\.png|ui-.*\.png|builders-view\.png)$/.test(f)) rmSync(path.join(resultsDir, f), { force: true });
  }
}

async function main(): Promise<number> {
  const { only, vsix } = parseArgs(process.argv.slice(2));
  clearOldResults();
  let lab: Lab | undefined;
  let workspace: string | undefined;
  let suiteIndex = '';
  // Every process this run starts (launcher, code-server, Chromium, lab) inherits this marker: on
  // SIGINT/SIGTERM the ones still running are terminated, then killed.
  const marker = randomUUID();
  process.env.NIX_BUILDERS_E2E_RUN = marker;
  // One temporary folder for the whole run (the lab, the workspace, the browsers' profiles and
  // playwright's artifacts: everyone inherits TMPDIR), removed at the end even when interrupted.
  // Searchable by others: the lab's sshd checks the folders above its users' homes.
  sweepAbandonedRuns();
  const runTmp = mkdtempSync(path.join(os.tmpdir(), RUN_PREFIX));
  chmodSync(runTmp, 0o755);
  writeFileSync(path.join(runTmp, 'run.json'), JSON.stringify({ pid: process.pid, marker }));
  process.env.TMPDIR = runTmp;
  const children = () => pidsWithEnv('NIX_BUILDERS_E2E_RUN', marker);
  const unregister = onTeardown(
    () => {
      for (const pid of children()) killQuietly(pid, 'SIGKILL');
      rmSync(runTmp, { recursive: true, force: true, maxRetries: 3 });
    },
    async () => {
      // The launcher stops its code-server and browser on SIGTERM.
      for (const pid of children()) killQuietly(pid, 'SIGTERM');
      for (let i = 0; i < 50 && children().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
      await lab?.stop();
    },
  );

  const prepared = await phase('prepare (build, code-server, lab)', async () => {
    // code-server first and alone: a cold install takes minutes and prints its progress.
    codeServerExecutable();
    const build = runProcess(process.execPath, [path.join(repoRoot, 'scripts', 'build.mjs')]).then((code) => {
      if (code !== 0) throw new Error(`node scripts/build.mjs exited with ${code}`);
    });
    const [, index, startedLab] = await Promise.all([build, buildSuite(), startLab()]);
    suiteIndex = index;
    lab = startedLab;
    if (vsix && !existsSync(vsix)) throw new Error(`no ${vsix}: run \`npm run package\` first`);
    workspace = makeWorkspace(lab);
    console.log(`lab: ${lab.builders.map((b) => b.uri).join(' ')}\nworkspace: ${workspace}`);
  }, false);

  if (prepared && lab && workspace) {
    const labUris = JSON.stringify(lab.builders.map((b) => b.uri));
    const labBuilders = JSON.stringify(lab.builders.map((b) => ({ name: b.name, uri: b.uri, systems: b.systems, storeRoot: b.storeRoot })));

    if (only !== 'ui') {
      await phase('extension tests (mocha in the extension host)', async () => {
        const launcher = path.join(__dirname, 'launcher.sh');
        try {
          await runTests({
            vscodeExecutablePath: launcher,
            extensionDevelopmentPath: repoRoot,
            extensionTestsPath: suiteIndex,
            launchArgs: [workspace!],
            extensionTestsEnv: { NIX_BUILDERS_TEST_LAB_URIS: labUris },
          });
        } catch (e) {
          throw new Error(`${e instanceof Error ? e.message : e} (screenshot: test-results/extension-tests-failure.png)`);
        }
      });
    }

    if (only !== 'extension') {
      await phase(`UI tests (playwright${vsix ? `, ${path.basename(vsix)}` : ''})`, async () => {
        let cs: CodeServer | undefined;
        try {
          cs = await startCodeServer({
            folder: workspace!,
            logName: 'code-server-ui-tests.log',
            // The Remote settings, where machine-scoped settings go (the tests write them: E2E_MACHINE_SETTINGS).
            machineSettings: {},
            ...(vsix ? { installExtensions: [vsix] } : {}),
          });
          const payload: Array<[string, string]> | undefined = vsix ? undefined : [['extensionDevelopmentPath', cs.remoteUri(repoRoot)]];
          const uiDir = path.join(__dirname, 'ui');
          const files = uiTestFiles(uiDir);
          const code = await runProcess(
            process.execPath,
            ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=1', ...files],
            {
              ...process.env,
              E2E_CODE_SERVER_URL: cs.url,
              E2E_WORKSPACE: workspace!,
              E2E_FOLDER_URL: cs.workbenchUrl({ folder: workspace! }),
              E2E_WORKBENCH_URL: cs.workbenchUrl(payload ? { folder: workspace!, payload } : { folder: workspace! }),
              E2E_LAB_BUILDERS: labBuilders,
              E2E_MACHINE_SETTINGS: path.join(cs.userDataDir, 'Machine', 'settings.json'),
            },
          );
          if (code !== 0) throw new Error(`UI tests exited with ${code} (screenshots and ${path.relative(repoRoot, cs.logFile)} in test-results/)`);
        } finally {
          await cs?.stop();
        }
      });
    }
  }

  // Last: the demo packages the extension (a production build into dist/) and runs its own lab.
  if (!only) {
    await phase('run command (npm start)', async () => {
      const code = await runProcess(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', path.join(__dirname, 'demo.test.ts')]);
      if (code !== 0) throw new Error(`the demo test exited with ${code} (screenshots in test-results/)`);
    });
  }

  await phase('stop', async () => {
    await lab?.stop();
    rmSync(runTmp, { recursive: true, force: true, maxRetries: 3 });
    unregister();
  }, false);

  // Tests count as their runners report them; a phase that failed without a failing test (it
  // could not start, or prepare/stop failed) counts as one failure.
  const passed = results.reduce((n, r) => n + (r.counts?.passed ?? 0), 0);
  const failed = results.reduce((n, r) => n + (r.counts?.failed || (r.ok ? 0 : 1)), 0);
  console.log('\n=== e2e summary');
  for (const r of results) console.log(`  ${r.ok ? 'ok  ' : 'FAIL'} ${r.name} (${r.seconds.toFixed(1)} s)${r.detail ? `: ${r.detail}` : ''}`);
  console.log(`  total ${elapsed(t0).toFixed(1)} s`);
  console.log(`e2e: ${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error('e2e:', e instanceof Error ? e.stack : e);
    process.exit(1);
  },
);
