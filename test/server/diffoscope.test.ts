// diffoscope on a check's differing output (`nixBuilders.server.diffoscope`) from a plain LSP client
// against real Nix and the real diffoscope (Debian's diffoscope-minimal, scripts/setup.sh): the
// report names the differing file, time noise is ignored by default, only outputs of checks this
// server answered are compared, a server without diffoscope on its PATH says how to install it, and
// cancelling ends diffoscope's process tree.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient } from './lspClient';
import { NIX_BIN } from './nixUnderTest';
import { isRunning } from '../lab/processes';
import { ServerCommands, type CheckReproducibilityResult, type DiffoscopeArgs, type DiffoscopeResult } from '../../language-server/protocol';

const SERVER = path.join(__dirname, '../../language-server/main.ts');

/** The folder on PATH that holds `name`, if any. */
const onPath = (name: string) => (process.env.PATH ?? '').split(':').find((d) => d && existsSync(path.join(d, name)));

// diffoscope reads both trees at their paths: not for the 2.26 tier, whose store is in another root.
const skip = NIX_BIN ? 'the first build is read at /nix/store: not for a Nix in another root' : onPath('diffoscope') ? false : 'diffoscope is not installed (scripts/setup.sh installs diffoscope-minimal)';

let dir: string;
let client: StdioLspClient;

const salt = () => `${Date.now()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const drv = (name: string, script: string) =>
  `derivation { name = "${name}"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" ${JSON.stringify(script)} ]; }`;

async function server(env: NodeJS.ProcessEnv, settings: object = {}): Promise<StdioLspClient> {
  const c = new StdioLspClient(env, ['--import', 'tsx', SERVER]);
  await c.initialize({ settings: { env: { NIX_CONF_DIR: dir }, ...settings } }, dir);
  return c;
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-diffoscope-'));
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', ''].join('\n'));
  client = await server(process.env);
});

after(async () => {
  await client?.shutdown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function checked(c: StdioLspClient, name: string, text: string, attribute: string): Promise<CheckReproducibilityResult> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  c.open(uri, text);
  return c.request<CheckReproducibilityResult>('workspace/executeCommand', { command: ServerCommands.checkReproducibility, arguments: [{ uri, attribute }] });
}

const diffoscope = (c: StdioLspClient, a: DiffoscopeArgs, signal?: AbortSignal) => c.request<DiffoscopeResult>('workspace/executeCommand', { command: ServerCommands.diffoscope, arguments: [a] }, signal);

/** A derivation whose file `changing` differs in every build, beside `stable`. */
const nondeterministic = () => `{ x = ${drv(`dfs-${salt()}`, 'read u < /proc/sys/kernel/random/uuid; mkdir $out; echo same > $out/stable; echo $u > $out/changing')}; }\n`;

test('the report of a differing output names the differing file, is written beside the rebuild\'s private copy, and shows both contents', { skip }, async () => {
  const r = await checked(client, 'nd.nix', nondeterministic(), 'x');
  assert.equal(r.status, 'differs', JSON.stringify(r));
  const out = r.outputs[0]!;
  const answer = await diffoscope(client, { drvPath: r.drvPath, output: 'out' });
  assert.equal(answer.status, 'report', JSON.stringify(answer));
  assert.ok(answer.reportFile, JSON.stringify(answer));
  assert.equal(path.dirname(answer.reportFile), path.dirname(out.rebuildCopy!), 'in the answer\'s private folder');
  const report = await readFile(answer.reportFile, 'utf8');
  assert.match(report, /changing/);
  assert.doesNotMatch(report, /stable/);
  // Only the differing files are compared: the first build's of them copied beside the rebuild's.
  const first = `${out.rebuildCopy!}-first`;
  assert.ok(report.startsWith(`--- ${first}\n+++ ${out.rebuildCopy!}\n`), report);
  assert.deepEqual([readdirSync(first), readdirSync(out.rebuildCopy!)], [['changing'], ['changing']]);
  assert.ok(report.includes((await readFile(path.join(out.path, 'changing'), 'utf8')).trim()), report);
  assert.ok(report.includes((await readFile(path.join(out.rebuildCopy!, 'changing'), 'utf8')).trim()), report);
});

test('times of day are noise: ignored by default (nixBuilders.check.diffoscopeIgnoreNoise), shown with ignoreNoise false', { skip }, async () => {
  const marker = path.join(dir, `later-${salt()}`);
  const script = `mkdir $out; if [ -e ${marker} ]; then echo built at 13:05:01 > $out/stamp; else echo built at 12:00:00 > $out/stamp; fi`;
  const file = path.join(dir, 'stamp.nix');
  const text = `{ stamp = ${drv(`dfs-stamp-${salt()}`, script)}; }\n`;
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  client.open(uri, text);
  const run = () => client.request<CheckReproducibilityResult>('workspace/executeCommand', { command: ServerCommands.checkReproducibility, arguments: [{ uri, attribute: 'stamp' }] });
  assert.equal((await run()).status, 'reproducible');
  await writeFile(marker, '');
  const r = await run();
  assert.equal(r.status, 'differs', JSON.stringify(r));
  const quiet = await diffoscope(client, { drvPath: r.drvPath, output: 'out' });
  assert.equal(quiet.status, 'report', JSON.stringify(quiet));
  assert.match(quiet.message ?? '', /no differences once times and metadata are ignored/);
  assert.equal(readFileSync(quiet.reportFile!, 'utf8'), '');
  const all = await diffoscope(client, { drvPath: r.drvPath, output: 'out', ignoreNoise: false });
  assert.equal(all.status, 'report', JSON.stringify(all));
  assert.notEqual(all.reportFile, quiet.reportFile);
  assert.match(readFileSync(all.reportFile!, 'utf8'), /stamp[\s\S]*12:00:00[\s\S]*13:05:01/);
});

test('only outputs of checks this server answered: another path, an unknown output and a reproducible output are refused', { skip: NIX_BIN ? 'as above' : false }, async () => {
  const r = await checked(client, 'same.nix', `{ same = ${drv(`dfs-same-${salt()}`, 'echo same > $out')}; }\n`, 'same');
  assert.equal(r.status, 'reproducible', JSON.stringify(r));
  const unknown = `/nix/store/${'0'.repeat(32)}-never-checked.drv`;
  await assert.rejects(diffoscope(client, { drvPath: unknown, output: 'out' }), /this server answered no check of \/nix\/store\/0+-never-checked\.drv .*check it for reproducibility first/);
  await assert.rejects(diffoscope(client, { drvPath: r.drvPath, output: 'dev' }), /has no output 'dev' \(it has out\)/);
  const same = await diffoscope(client, { drvPath: r.drvPath, output: 'out' });
  assert.equal(same.status, 'failed');
  assert.match(same.message ?? '', /was reproducible: there is nothing to compare/);
  await assert.rejects(diffoscope(client, { drvPath: r.drvPath } as DiffoscopeArgs), /"drvPath" and "output" must be strings/);
});

test('without diffoscope on the server\'s PATH: not-installed, saying how to install it', { skip: NIX_BIN ? 'as above' : false }, async () => {
  const empty = path.join(dir, `empty-path-${salt()}`);
  await mkdir(empty);
  const nixDir = onPath('nix');
  assert.ok(nixDir, 'nix is on PATH');
  const own = await server({ ...process.env, PATH: empty }, { nixBinDir: nixDir });
  try {
    const r = await checked(own, 'nd-own.nix', nondeterministic(), 'x');
    assert.equal(r.status, 'differs', JSON.stringify(r));
    const answer = await diffoscope(own, { drvPath: r.drvPath, output: 'out' });
    assert.deepEqual(answer, { status: 'not-installed', message: 'diffoscope is not on PATH: install it: sudo apt-get install diffoscope-minimal (Debian/Ubuntu) or nix profile install nixpkgs#diffoscope.' });
  } finally {
    await own.shutdown();
  }
});

/** Polls `ok` every 100 ms, failing with `what` after `tries`. */
async function until(ok: () => boolean, what: string, tries = 600): Promise<void> {
  for (let i = 0; !ok(); i++) {
    assert.ok(i < tries, what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('cancelling the request ends diffoscope\'s process tree', { skip: NIX_BIN ? 'as above' : false, timeout: 120_000 }, async () => {
  // A diffoscope that starts a child and waits: what a long comparison looks like to the runner.
  const bin = path.join(dir, `slow-bin-${salt()}`);
  const pids = path.join(dir, `pids-${salt()}`);
  await mkdir(bin);
  await writeFile(path.join(bin, 'diffoscope'), `#!/bin/sh\n/bin/sleep 600 &\necho $$ $! > ${pids}\nwait\n`);
  await chmod(path.join(bin, 'diffoscope'), 0o755);
  const own = await server({ ...process.env, PATH: bin }, { nixBinDir: onPath('nix') });
  try {
    const r = await checked(own, 'nd-slow.nix', nondeterministic(), 'x');
    assert.equal(r.status, 'differs', JSON.stringify(r));
    const abort = new AbortController();
    const answer = diffoscope(own, { drvPath: r.drvPath, output: 'out' }, abort.signal).then(() => 'answered', (e: Error) => e.message);
    await until(() => existsSync(pids) && readFileSync(pids, 'utf8').trim().split(/\s+/).length === 2, 'diffoscope started');
    const started = readFileSync(pids, 'utf8').trim().split(/\s+/).map(Number);
    assert.ok(started.every((p) => isRunning(p)));
    abort.abort();
    assert.match(await answer, /diffoscope was cancelled/);
    await until(() => !started.some((p) => isRunning(p)), `diffoscope and its child are gone: ${started.join(' ')}`, 300);
  } finally {
    await own.shutdown();
  }
});
