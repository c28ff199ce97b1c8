// The build settings nixBuilders.build.remoteOnly / cores / maxJobs reach the argv of the real
// `nix-store --realise` the server runs, and real Nix acts on them. The server runs over stdio with
// a runner that records every process it starts (recordingServer.ts) and then runs it for real.
// This machine's nix.conf says `max-jobs = 1` and `cores = 1`, so what the builds show can only
// come from the arguments.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { StdioLspClient, type Message } from './lspClient';
import { hostStorePath, NIX_BIN, nixCommand } from './nixUnderTest';

const execFileAsync = promisify(execFile);
const RECORDING_SERVER = path.join(__dirname, 'recordingServer.ts');

let dir: string;
let argvLog: string;
let client: StdioLspClient;

// Pushed settings replace the server's whole settings: they name the Nix under test too.
const settings = (build: Record<string, unknown>) => ({ ...(NIX_BIN ? { nixBinDir: NIX_BIN } : {}), env: { NIX_CONF_DIR: dir }, build });

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-build-settings-'));
  argvLog = path.join(dir, 'argv.jsonl');
  await writeFile(argvLog, '');
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', 'max-jobs = 1', 'cores = 1', ''].join('\n'));
  client = new StdioLspClient({ ...process.env, NB_ARGV_LOG: argvLog }, ['--import', 'tsx', RECORDING_SERVER]);
  await client.initialize({ settings: settings({}) });
});

after(async () => {
  await client?.shutdown();
  await rm(dir, { recursive: true, force: true });
});

/** Settings as an editor pushes them (workspace/didChangeConfiguration). */
function configure(build: Record<string, unknown>): void {
  client.notify('workspace/didChangeConfiguration', { settings: { nixBuilders: settings(build) } });
}

interface Info {
  buildId: string;
  status: string;
  targets: Array<{ drvPath: string }>;
  problems?: string[];
  snapshot?: { derivations: Array<{ drvPath: string; state: string; failure?: string }> };
}

/** Starts a build of some attributes of a file and waits for its end. */
async function build(name: string, text: string, attrPaths: string[][]): Promise<Info> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  client.open(uri, text);
  const started = await client.request<Info>('nixBuilders/startBuild', { uri, attrPaths });
  const done = await client.waitForNotification(
    (m: Message) => m.method === 'nixBuilders/buildProgress' && (m.params as Info).buildId === started.buildId && (m.params as Info).status !== 'running',
    300_000,
  );
  return { ...started, ...(done.params as Info) };
}

/** The argv of the real (not dry-run) `nix-store --realise` of these derivations. */
async function realiseArgv(drvPaths: string[]): Promise<string[]> {
  const runs = (await readFile(argvLog, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as string[]);
  const found = runs.filter((argv) => path.basename(argv[0] ?? '') === 'nix-store' && argv.includes('--realise') && !argv.includes('--dry-run') && drvPaths.every((d) => argv.includes(d)));
  assert.equal(found.length, 1, `one nix-store --realise of ${drvPaths.join(' ')} in ${JSON.stringify(runs)}`);
  return found[0]!;
}

/** The values an option has in an argv (`--max-jobs 2` → ['2']). */
const valuesOf = (argv: string[], option: string) => argv.flatMap((a, i) => (a === option ? [argv[i + 1]] : []));

const salted = (s: string) => `${s}-${Date.now()}-${process.pid}`;

test('cores and maxJobs: the build runs with --cores 3 --max-jobs 2; two derivations build at once and each sees NIX_BUILD_CORES=3', async () => {
  configure({ cores: 3, maxJobs: 2 });
  const rendezvous = path.join(dir, 'rendezvous');
  await mkdir(rendezvous);
  // Each derivation waits (boundedly) for the other to have started: with nix.conf's max-jobs 1
  // the first would never see the second and fail; with --max-jobs 2 both run at once.
  const half = (self: string, other: string) => `derivation {
    name = "${salted(`settings-${self}`)}"; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" ''
      /bin/mkdir ${rendezvous}/${self}
      i=0
      while [ ! -e ${rendezvous}/${other} ]; do
        i=$((i + 1))
        if [ $i -gt 1200 ]; then echo "${other} did not start while ${self} ran: the builds did not run at once" >&2; exit 1; fi
        /bin/sleep 0.1
      done
      echo $NIX_BUILD_CORES > $out
    '' ];
  }`;
  const info = await build('parallel.nix', `{\n  a = ${half('a', 'b')};\n  b = ${half('b', 'a')};\n}\n`, [['a'], ['b']]);
  assert.equal(info.status, 'built', JSON.stringify(info.problems ?? info.snapshot));
  const drvPaths = info.targets.map((t) => t.drvPath);
  const argv = await realiseArgv(drvPaths);
  assert.deepEqual(valuesOf(argv, '--cores'), ['3']);
  assert.deepEqual(valuesOf(argv, '--max-jobs'), ['2']);
  for (const drv of drvPaths) {
    assert.equal((await readFile(hostStorePath(await outputOf(drv)), 'utf8')).trim(), '3', `NIX_BUILD_CORES of ${drv}`);
  }
});

test('unset cores and maxJobs leave nix.conf in charge: no --cores, no --max-jobs', async () => {
  configure({});
  const text = `{\n  plain = derivation { name = "${salted('settings-plain')}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo $NIX_BUILD_CORES > $out" ]; };\n}\n`;
  const info = await build('plain.nix', text, [['plain']]);
  assert.equal(info.status, 'built', JSON.stringify(info.problems ?? info.snapshot));
  const argv = await realiseArgv(info.targets.map((t) => t.drvPath));
  assert.deepEqual(valuesOf(argv, '--cores'), []);
  assert.deepEqual(valuesOf(argv, '--max-jobs'), []);
  // nix.conf's cores = 1.
  assert.equal((await readFile(hostStorePath(await outputOf(info.targets[0]!.drvPath)), 'utf8')).trim(), '1');
});

test('remoteOnly: the build runs with --max-jobs 0 and Nix refuses to build on this machine', async () => {
  configure({ remoteOnly: true, maxJobs: 4 });
  const text = `{\n  remote = derivation { name = "${salted('settings-remote')}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" ": > $out" ]; };\n}\n`;
  const info = await build('remote.nix', text, [['remote']]);
  const argv = await realiseArgv(info.targets.map((t) => t.drvPath));
  // remoteOnly wins over maxJobs.
  assert.deepEqual(valuesOf(argv, '--max-jobs'), ['0']);
  // No builder is configured: real Nix says it cannot start any build ("Unable" from 2.2x on).
  assert.equal(info.status, 'failed');
  assert.match((info.problems ?? []).join('\n'), /[uU]nable to start any build; either increase '--max-jobs' or enable remote builds/);
});

/** The output path of a built derivation, as Nix records it. */
async function outputOf(drvPath: string): Promise<string> {
  const { stdout } = await execFileAsync(nixCommand('nix-store'), ['--query', '--outputs', drvPath], { env: { ...process.env, NIX_CONF_DIR: dir } });
  return stdout.trim();
}

test('a build evaluates afresh: after a source file (read without parsing) changes, Build builds the new derivation, not the cached one', async () => {
  configure({});
  const folder = path.join(dir, salted('fresh'));
  await mkdir(folder);
  const sourceFile = path.join(folder, 'VERSION');
  await writeFile(sourceFile, 'one\n');
  const file = path.join(folder, 'default.nix');
  const text = `{ app = derivation { name = "app"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; version = builtins.readFile ./VERSION; }; }\n`;
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  client.open(uri, text);
  const before = await client.request<{ derivations: Array<{ drvPath: string }> }>('nixBuilders/derivations', { uri });
  // Nix names only the files it parses: a file read with readFile (or a src folder) changes silently.
  await writeFile(sourceFile, 'two\n');
  const fresh = (await execFileAsync(nixCommand('nix-instantiate'), [file, '-A', 'app'], { env: { ...process.env, NIX_CONF_DIR: dir } })).stdout.trim();
  assert.notEqual(fresh, before.derivations[0]?.drvPath, 'the change makes another derivation');
  const started = await client.request<Info>('nixBuilders/startBuild', { uri, attrPaths: [['app']] });
  assert.deepEqual(started.targets.map((t) => t.drvPath), [fresh]);
  await client.waitForNotification((m: Message) => m.method === 'nixBuilders/buildProgress' && (m.params as Info).buildId === started.buildId && (m.params as Info).status !== 'running', 300_000);
});
