// Check Reproducibility (`nixBuilders.checkReproducibility`) from a plain LSP client against real
// Nix: derivations built with /bin/sh on this machine, salted per test, some reading
// /proc/sys/kernel/random/uuid so that each build differs. Every output is compared, not only the
// one Nix names.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient } from './lspClient';
import { NIX_BIN, nixCommand } from './nixUnderTest';
import { isRunning } from '../lab/processes';
import { ServerCommands, type CheckReproducibilityArgs, type CheckReproducibilityResult } from '../../language-server/protocol';

// Comparing reads both trees from this machine's /nix/store; the 2.26 tier's store is in another root
// (what the server answers there: the last test).
const readsTrees = NIX_BIN ? 'comparing reads the store at /nix/store: not for a Nix in another root (not done yet)' : false;

const SERVER = path.join(__dirname, '../../language-server/main.ts');

let dir: string;
let client: StdioLspClient;

const salt = () => `${Date.now()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
/** A derivation run by /bin/sh with the outputs given. */
const drv = (name: string, script: string, outputs = ['out']) =>
  `derivation { name = "${name}"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; outputs = ${JSON.stringify(outputs).replace(/,/g, ' ')}; args = [ "-c" ${JSON.stringify(script)} ]; }`;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-check-'));
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', ''].join('\n'));
  client = new StdioLspClient(process.env, ['--import', 'tsx', SERVER]);
  const init = (await client.initialize({ settings: { env: { NIX_CONF_DIR: dir } } }, dir, { window: { workDoneProgress: true } })) as { capabilities: { executeCommandProvider?: { commands: string[] } } };
  assert.ok(init.capabilities.executeCommandProvider?.commands.includes('nixBuilders.checkReproducibility'));
});

after(async () => {
  await client?.shutdown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function openFile(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  client.open(uri, text);
  return uri;
}

const check = (a: CheckReproducibilityArgs, workDoneToken?: string) =>
  client.request<CheckReproducibilityResult>('workspace/executeCommand', { command: ServerCommands.checkReproducibility, arguments: [a], ...(workDoneToken ? { workDoneToken } : {}) });

test('a deterministic derivation is reproducible; never built, it is built first (and said so), then not again', async () => {
  const uri = await openFile('same.nix', `{ pkgs.same = ${drv(`chk-same-${salt()}`, 'mkdir $out; echo same > $out/a; ln -s a $out/link')}; }\n`);
  const token = `check-${salt()}`;
  const first = await check({ uri, attribute: 'pkgs.same' }, token);
  assert.equal(first.status, 'reproducible', JSON.stringify(first));
  assert.equal(first.builtFirst, true);
  assert.deepEqual(first.outputs.map((o) => [o.name, o.status]), [['out', 'reproducible']]);
  const progress = client.notifications.filter((m) => m.method === '$/progress' && (m.params as { token: string }).token === token).map((m) => (m.params as { value: { kind: string; message?: string } }).value);
  assert.equal(progress[0]?.kind, 'begin');
  assert.ok(progress.some((v) => v.kind === 'report' && /building it first/.test(v.message ?? '')), JSON.stringify(progress));
  assert.equal(progress.at(-1)?.kind, 'end');
  const again = await check({ uri, attribute: ['pkgs', 'same'], rounds: 2 });
  assert.equal(again.status, 'reproducible', JSON.stringify(again));
  assert.equal(again.builtFirst, false);
  assert.equal(again.rounds, 2);
});

test('two outputs where only the second differs: the first is reproducible, the second differs with its file listed (sizes, hashes, a private copy of the rebuild)', { skip: readsTrees }, async () => {
  const script = 'read u < /proc/sys/kernel/random/uuid; mkdir $out $dev; echo same > $out/a; echo $out > $out/self; echo $u > $dev/b; echo kept > $dev/c';
  const name = `chk-two-${salt()}`;
  const uri = await openFile('two.nix', `{ two = ${drv(name, script, ['out', 'dev'])}; }\n`);
  const r = await check({ uri, attribute: 'two' });
  assert.equal(r.status, 'differs', JSON.stringify(r));
  const byName = Object.fromEntries(r.outputs.map((o) => [o.name, o]));
  assert.equal(byName.out?.status, 'reproducible', JSON.stringify(byName.out));
  const dev = byName.dev;
  assert.equal(dev?.status, 'differs', JSON.stringify(dev));
  assert.deepEqual(dev.files?.map((f) => [f.path, f.kind]), [['b', 'changed']]);
  const [b] = dev.files ?? [];
  assert.equal(b?.first?.size, 37);
  assert.equal(b?.rebuild?.size, 37);
  assert.notEqual(b?.first?.sha256, b?.rebuild?.sha256);
  assert.ok(dev.rebuildCopy && existsSync(path.join(dev.rebuildCopy, 'b')), `the rebuild is kept at ${dev.rebuildCopy}`);
  assert.notEqual(await readFile(path.join(dev.rebuildCopy, 'b'), 'utf8'), await readFile(path.join(dev.path, 'b'), 'utf8'));
  assert.equal(statSync(path.dirname(dev.rebuildCopy)).mode & 0o777, 0o700);
  // The first build's side is kept too: the output in the store is no GC root, and a collection takes it.
  const firstB = await readFile(path.join(dev.path, 'b'), 'utf8');
  execFileSync('nix-store', ['--delete', dev.path], { env: { ...process.env, NIX_CONF_DIR: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
  assert.equal(existsSync(dev.path), false, `${dev.path} was deleted`);
  assert.ok(dev.firstCopy, JSON.stringify(dev));
  assert.equal(await readFile(path.join(dev.firstCopy, 'b'), 'utf8'), firstB, 'the first build\'s differing file is still readable where the answer says');
  assert.deepEqual(readdirSync(dev.firstCopy), ['b'], 'only what differs');
  assert.match(r.summary, /1 of 2 outputs differs \(dev: 1 file\)/);
  // No build directory is left behind.
  assert.deepEqual(readdirSync(tmpdir()).filter((f) => f.startsWith(`nix-build-${name}.drv-`)), []);
});

test('two outputs that both differ: both are listed, though Nix names only the first and stops comparing there', { skip: readsTrees }, async () => {
  const script = 'read u < /proc/sys/kernel/random/uuid; mkdir $out $dev; echo $u > $out/a; echo $u > $dev/b';
  const uri = await openFile('both.nix', `{ both = ${drv(`chk-both-${salt()}`, script, ['out', 'dev'])}; }\n`);
  const r = await check({ uri, attribute: 'both' });
  assert.deepEqual(r.outputs.map((o) => [o.name, o.status, o.files?.map((f) => f.path)]).sort(), [['dev', 'differs', ['b']], ['out', 'differs', ['a']]], JSON.stringify(r));
  assert.match(r.summary, /2 of 2 outputs differ \(/);
});

test('a file that changes every build beside one that does not: only that file is listed', { skip: readsTrees }, async () => {
  const uri = await openFile('one.nix', `{ one = ${drv(`chk-one-${salt()}`, 'read u < /proc/sys/kernel/random/uuid; mkdir -p $out/sub; echo same > $out/sub/stable; echo $u > $out/sub/changing')}; }\n`);
  const r = await check({ uri, attribute: 'one' });
  assert.equal(r.status, 'differs', JSON.stringify(r));
  assert.deepEqual(r.outputs[0]?.files?.map((f) => [f.path, f.kind]), [['sub/changing', 'changed']]);
});

test('an output of many files where one differs: the copy folder keeps only that file (what differs, not the output\'s size)', { skip: readsTrees }, async () => {
  const script = 'read u < /proc/sys/kernel/random/uuid; mkdir -p $out/lib/deep; i=0; while [ $i -lt 200 ]; do echo $i > $out/lib/f$i; i=$((i+1)); done; echo same > $out/lib/deep/stable; echo $u > $out/lib/deep/changing';
  const uri = await openFile('many.nix', `{ many = ${drv(`chk-many-${salt()}`, script)}; }\n`);
  const r = await check({ uri, attribute: 'many' });
  const o = r.outputs[0];
  assert.deepEqual(o?.files?.map((f) => [f.path, f.kind]), [['lib/deep/changing', 'changed']], JSON.stringify(r));
  assert.ok(o.rebuildCopy, JSON.stringify(o));
  assert.deepEqual((readdirSync(o.rebuildCopy, { recursive: true }) as string[]).sort(), ['lib', 'lib/deep', 'lib/deep/changing']);
  assert.notEqual(await readFile(path.join(o.rebuildCopy, 'lib/deep/changing'), 'utf8'), await readFile(path.join(o.path, 'lib/deep/changing'), 'utf8'));
  assert.ok(o.firstCopy, JSON.stringify(o));
  assert.deepEqual((readdirSync(o.firstCopy, { recursive: true }) as string[]).sort(), ['lib', 'lib/deep', 'lib/deep/changing']);
  assert.deepEqual(readdirSync(path.dirname(o.rebuildCopy)).sort(), [path.basename(o.rebuildCopy), path.basename(o.firstCopy)].sort(), 'nothing else in the answer\'s folder');
});

test('a rebuild that fails: not checked, with Nix\'s reason; on a builder that cannot be reached: not checked, said why', async () => {
  const marker = path.join(dir, `marker-${salt()}`);
  const uri = await openFile('fails.nix', `{ fails = ${drv(`chk-fails-${salt()}`, `if [ -e ${marker} ]; then echo the marker is there >&2; exit 3; fi; echo ok > $out`)}; }\n`);
  const first = await check({ uri, attribute: 'fails' });
  assert.equal(first.status, 'reproducible', JSON.stringify(first));
  await writeFile(marker, '');
  const r = await check({ uri, attribute: 'fails' });
  assert.equal(r.status, 'not-checked', JSON.stringify(r));
  assert.equal(r.outputs[0]?.status, 'not-checked');
  assert.match(r.outputs[0]?.reason ?? '', /^the rebuild failed: \S*nix-store exited with code 100 \(a build failed\): .*the marker is there/s);
  const remote = await check({ uri, attribute: 'fails', builder: 'ssh://b1' });
  assert.equal(remote.status, 'not-checked');
  assert.match(remote.outputs[0]?.reason ?? '', /^the derivation could not be copied to b1: /);
  assert.deepEqual(remote.outputs.map((x) => [x.name, x.path]), first.outputs.map((x) => [x.name, x.path]));
});

test('under a daemon: its build folder is not left behind (no --keep-failed: a build user would own it), and the rebuild is found at its fallback path', { skip: readsTrees, timeout: 180_000 }, async () => {
  const d = await mkdtemp(path.join(tmpdir(), 'nb-check-daemon-'));
  // The daemon's own temporary folder, where it makes its build folders.
  const daemonTmp = path.join(d, 'tmp');
  await mkdir(daemonTmp);
  await writeFile(path.join(d, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', ''].join('\n'));
  const socket = path.join(d, 'socket');
  const daemon = spawn(nixCommand('nix-daemon'), [], { env: { ...process.env, NIX_CONF_DIR: d, NIX_DAEMON_SOCKET_PATH: socket, TMPDIR: daemonTmp }, stdio: 'ignore' });
  const own = new StdioLspClient(process.env, ['--import', 'tsx', SERVER]);
  try {
    await until(() => existsSync(socket) || daemon.exitCode !== null, 'nix-daemon listens', 400);
    assert.equal(daemon.exitCode, null, 'nix-daemon runs');
    await own.initialize({ settings: { env: { NIX_CONF_DIR: d, NIX_REMOTE: 'daemon', NIX_DAEMON_SOCKET_PATH: socket } } }, d);
    const file = path.join(d, 'daemon.nix');
    const name = `chk-daemon-${salt()}`;
    const text = `{ x = ${drv(name, 'read u < /proc/sys/kernel/random/uuid; mkdir $out; echo $u > $out/a; echo same > $out/b')}; }\n`;
    await writeFile(file, text);
    const uri = pathToFileURL(file).href;
    own.open(uri, text);
    const r = await own.request<CheckReproducibilityResult>('workspace/executeCommand', { command: ServerCommands.checkReproducibility, arguments: [{ uri, attribute: 'x' }] });
    assert.equal(r.status, 'differs', JSON.stringify(r));
    assert.deepEqual(r.outputs[0]?.files?.map((f) => [f.path, f.kind]), [['a', 'changed']]);
    assert.ok(r.outputs[0]?.rebuildCopy && existsSync(path.join(r.outputs[0].rebuildCopy, 'a')), JSON.stringify(r));
    assert.deepEqual(readdirSync(daemonTmp).filter((f) => f.startsWith(`nix-build-${name}.drv-`)), [], 'the daemon kept no build folder');
  } finally {
    await own.shutdown();
    daemon.kill('SIGTERM');
    await rm(d, { recursive: true, force: true });
  }
});

/** Polls `ok` every 100 ms, failing with `what` after `tries`. */
async function until(ok: () => boolean, what: string, tries = 1200): Promise<void> {
  for (let i = 0; !ok(); i++) {
    assert.ok(i < tries, what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('cancelling the check (window/workDoneProgress/cancel) ends the rebuild\'s process tree and answers cancelled', { timeout: 180_000 }, async () => {
  const marker = path.join(dir, `slow-${salt()}`);
  const pidFile = path.join(dir, `pids-${salt()}`);
  const uri = await openFile('slow.nix', `{ slow = ${drv(`chk-slow-${salt()}`, `if [ -e ${marker} ]; then echo $$ $PPID > ${pidFile}; exec /bin/sleep 600; fi; echo ok > $out`)}; }\n`);
  assert.equal((await check({ uri, attribute: 'slow' })).status, 'reproducible');
  await writeFile(marker, '');
  const token = `cancel-${salt()}`;
  const answer = check({ uri, attribute: 'slow' }, token).then(() => 'answered', (e: Error) => e.message);
  await until(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim().split(/\s+/).length === 2, 'the rebuild started its builder');
  const pids = readFileSync(pidFile, 'utf8').trim().split(/\s+/).map(Number);
  assert.ok(pids.every((p) => isRunning(p)));
  client.notify('window/workDoneProgress/cancel', { token });
  assert.match(await answer, /cancelled/);
  await until(() => !pids.some((p) => isRunning(p)), `the builder and its parent are gone: ${pids.join(' ')}`, 300);
});

test('the rebuild\'s copy lives while the server does: it is removed at the server\'s exit', { skip: readsTrees }, async () => {
  const own = new StdioLspClient(process.env, ['--import', 'tsx', SERVER]);
  let copy: string | undefined;
  try {
    await own.initialize({ settings: { env: { NIX_CONF_DIR: dir } } }, dir);
    const file = path.join(dir, 'exit.nix');
    const text = `{ x = ${drv(`chk-exit-${salt()}`, 'read u < /proc/sys/kernel/random/uuid; echo $u > $out')}; }\n`;
    await writeFile(file, text);
    const uri = pathToFileURL(file).href;
    own.open(uri, text);
    const r = await own.request<CheckReproducibilityResult>('workspace/executeCommand', { command: ServerCommands.checkReproducibility, arguments: [{ uri, attribute: 'x' }] });
    assert.deepEqual(r.outputs[0]?.files?.map((f) => [f.path, f.kind]), [['.', 'changed']]);
    copy = r.outputs[0]?.rebuildCopy;
    assert.ok(copy && existsSync(copy), `the copy ${copy} exists while the server runs`);
  } finally {
    await own.shutdown();
  }
  assert.equal(existsSync(path.dirname(copy)), false, `${copy} was removed at exit`);
});

// Only in the 2.26 tier: its store is in another root, which this process does not see at the store's paths.
test('a store this process cannot read at its paths: no output is called reproducible, and each says why', { skip: NIX_BIN ? false : 'only for a Nix whose store is in another root (NIX_BUILDERS_TEST_NIX_BIN)', timeout: 180_000 }, async () => {
  const own = new StdioLspClient(process.env, ['--import', 'tsx', SERVER]);
  const d = await mkdtemp(path.join(tmpdir(), 'nb-check-root-'));
  try {
    await writeFile(path.join(d, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', ''].join('\n'));
    await own.initialize({ settings: { env: { NIX_CONF_DIR: d } } }, d);
    const file = path.join(d, 'root.nix');
    const text = `{ x = ${drv(`chk-root-${salt()}`, 'read u < /proc/sys/kernel/random/uuid; mkdir $out $dev; echo $u > $out/a; echo $u > $dev/b', ['out', 'dev'])}; }\n`;
    await writeFile(file, text);
    const uri = pathToFileURL(file).href;
    own.open(uri, text);
    const r = await own.request<CheckReproducibilityResult>('workspace/executeCommand', { command: ServerCommands.checkReproducibility, arguments: [{ uri, attribute: 'x' }] });
    assert.equal(r.outputs.length, 2, JSON.stringify(r));
    for (const x of r.outputs) {
      assert.notEqual(x.status, 'reproducible', JSON.stringify(x));
      assert.match(x.reason ?? '', /this process cannot read .* so the trees were not compared/);
    }
  } finally {
    await own.shutdown();
    await rm(d, { recursive: true, force: true });
  }
});
