// The diff-hook set-up (`nixBuilders.server.setUpDiffHook`) from a plain LSP client, then real Nix
// with the nix.conf it wrote: a rebuild of a nondeterministic derivation runs the hook, whose report
// is in the build's log and in the reports folder. Nix 2.8 also gets `repeat = 1`, whose second
// round runs the hook on a plain build.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { StdioLspClient } from './lspClient';
import { NIX_BIN, nixCommand } from './nixUnderTest';
import { ServerCommands, type NixConfSetUpResult } from '../../language-server/protocol';
import { diffReportsDir, SYSTEM_HOOKS_DIR } from '../../language-server/check/diffHook';

const SERVER = path.join(__dirname, '../../language-server/main.ts');
// The hook is written on this machine; a Nix in another root (the 2.26 tier) cannot run it there.
const hereOnly = NIX_BIN ? 'the hook script is written outside the root that Nix 2.26 runs in' : false;

let dir: string;
let client: StdioLspClient;
/** Reports this file's builds left in the shared reports folder. */
const made: string[] = [];
// The set-up as root writes the hook where build users reach it (SYSTEM_HOOKS_DIR, outside any
// temporary folder): removed after the tests when they made it, so a machine keeps nothing of them.
const SYSTEM_ROOT = path.dirname(SYSTEM_HOOKS_DIR);
const systemRootExisted = existsSync(SYSTEM_ROOT);
const salt = () => `${Date.now()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const CONF = ['# test nix.conf', 'build-users-group =', 'substituters =', 'sandbox = false', ''].join('\n');

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-diffhook-'));
  await writeFile(path.join(dir, 'nix.conf'), CONF);
  client = new StdioLspClient(process.env, ['--import', 'tsx', SERVER]);
  await client.initialize({ settings: { env: { NIX_CONF_DIR: dir, XDG_STATE_HOME: path.join(dir, 'state') } } }, dir);
});

after(async () => {
  await client?.shutdown();
  if (dir) await rm(dir, { recursive: true, force: true });
  for (const f of made) await rm(f, { force: true });
  if (!systemRootExisted) await rm(SYSTEM_ROOT, { recursive: true, force: true });
});

/** nix-build with the set-up's nix.conf: exit code and stderr. */
function nixBuild(expr: string, extra: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    execFile(nixCommand('nix-build'), ['--no-out-link', ...extra, '-E', expr], { env: { ...process.env, NIX_CONF_DIR: dir }, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

test('set-up writes the hook (0755) and the nix.conf lines (repeat = 1 before 2.13) with a backup, and says what needs a daemon restart', { skip: hereOnly }, async () => {
  const r = await client.request<NixConfSetUpResult>('workspace/executeCommand', { command: ServerCommands.setUpDiffHook, arguments: [{ nixConf: path.join(dir, 'nix.conf') }] });
  assert.equal(r.status, 'written', JSON.stringify(r));
  // Where the build users can run it: not in root's home (0700) but a folder open to them all.
  const script = path.join(SYSTEM_HOOKS_DIR, 'diff-hook');
  assert.equal(r.script, script);
  assert.equal(statSync(script).mode & 0o777, 0o755);
  for (let d = path.dirname(script); d !== '/'; d = path.dirname(d)) assert.equal(statSync(d).mode & 0o001, 0o001, `${d} can be passed through by other users`);
  assert.deepEqual(r.lines, [`diff-hook = ${script}`, 'run-diff-hook = true', 'repeat = 1']);
  assert.equal(await readFile(path.join(dir, 'nix.conf'), 'utf8'), `${CONF}diff-hook = ${script}\nrun-diff-hook = true\nrepeat = 1\n`);
  assert.equal(await readFile(path.join(dir, 'nix.conf.bak'), 'utf8'), CONF);
  assert.ok(r.notes.some((n) => /restart the daemon \(sudo systemctl restart nix-daemon/.test(n)), JSON.stringify(r.notes));
  assert.ok(r.notes.some((n) => /repeat = 1 builds every derivation twice/.test(n)), JSON.stringify(r.notes));
  assert.ok(r.notes.some((n) => n.includes(diffReportsDir())));
  assert.equal(statSync(diffReportsDir()).mode & 0o1777, 0o1777, 'the reports folder is world-writable and sticky');
});

test('with that nix.conf, nix-build --check of a nondeterministic derivation runs the hook: its report is in the log and in the reports folder; repeat = 1 runs it on the plain build', { skip: hereOnly }, async () => {
  const name = `dh-${salt()}`;
  const expr = `derivation { name = "${name}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "read u < /proc/sys/kernel/random/uuid; echo $u > $out" ]; }`;
  // repeat = 1 (Nix 2.8): the plain build already has two rounds, which differ.
  const rounds = await nixBuild(expr, []);
  assert.notEqual(rounds.code, 0);
  assert.match(rounds.stderr, /\(round 2\/2\)/);
  assert.match(rounds.stderr, /nix-builders diff-hook: \/nix\/store\/\S+\.drv is not reproducible/);
  // Built once (no rounds), then checked.
  const built = await nixBuild(expr, ['--option', 'repeat', '0']);
  assert.equal(built.code, 0, built.stderr);
  const out = built.stdout.trim();
  const check = await nixBuild(expr, ['--option', 'repeat', '0', '--check']);
  assert.equal(check.code, 104, check.stderr);
  assert.match(check.stderr, new RegExp(`nix-builders diff-hook: \\S+\\.drv is not reproducible: ${out} differs from ${out}\\.check`));
  assert.match(check.stderr, /^< [0-9a-f-]{36}$/m, 'the diff itself is in the log');
  const reports = diffReportsDir();
  const ours = (await readdir(reports)).filter((n) => n.startsWith(path.basename(out)));
  for (const n of ours) made.push(path.join(reports, n));
  const file = ours.find((n) => !n.includes('.check.'));
  assert.ok(file, `a report for ${out} in ${reports}: ${ours.join(', ')}`);
  assert.match(readFileSync(path.join(reports, file), 'utf8'), new RegExp(`is not reproducible: ${out} differs from ${out}\\.check\n1c1\n< `));
});

test('under a daemon that does not trust this user, a user nix.conf is not "written": its diff-hook would be ignored; the lines are to paste in the system nix.conf, with the fix', { skip: hereOnly, timeout: 120_000 }, async () => {
  const d = await mkdtemp(path.join(tmpdir(), 'nb-diffhook-daemon-'));
  const own = new StdioLspClient(process.env, ['--import', 'tsx', SERVER]);
  await writeFile(path.join(d, 'nix.conf'), ['build-users-group =', 'substituters =', 'trusted-users = nobody', ''].join('\n'));
  const socket = path.join(d, 'socket');
  const daemon = spawn(nixCommand('nix-daemon'), [], { env: { ...process.env, NIX_CONF_DIR: d, NIX_DAEMON_SOCKET_PATH: socket }, stdio: 'ignore' });
  try {
    for (let i = 0; !existsSync(socket); i++) {
      assert.ok(i < 400 && daemon.exitCode === null, 'nix-daemon listens');
      await new Promise((r) => setTimeout(r, 25));
    }
    await own.initialize({ settings: { env: { NIX_CONF_DIR: d, NIX_REMOTE: 'daemon', NIX_DAEMON_SOCKET_PATH: socket } } }, d);
    const userConf = path.join(d, 'user-nix.conf');
    await writeFile(userConf, CONF);
    const r = await own.request<NixConfSetUpResult>('workspace/executeCommand', { command: ServerCommands.setUpDiffHook, arguments: [{ nixConf: userConf }] });
    assert.equal(r.status, 'paste', JSON.stringify(r));
    assert.match(r.message ?? '', /does not trust you, so it ignores diff-hook in .*user-nix\.conf: put the lines in the system nix\.conf .*trusted-users/, JSON.stringify(r));
    assert.equal(await readFile(userConf, 'utf8'), CONF, 'not changed');
    assert.deepEqual(r.lines.slice(0, 2), [`diff-hook = ${path.join(SYSTEM_HOOKS_DIR, 'diff-hook')}`, 'run-diff-hook = true']);
  } finally {
    await own.shutdown();
    daemon.kill('SIGTERM');
    await rm(d, { recursive: true, force: true });
  }
});

// A user other than root: the server run as nobody (setpriv), its state folder in a home closed to others.
const asNobody = process.getuid?.() === 0 ? hereOnly : 'needs root, to run the server as nobody';

test('a user whose hook would sit under a folder closed to other users gets the lines to paste, with that folder and the fix, never "written"', { skip: asNobody, timeout: 120_000 }, async () => {
  const d = await mkdtemp(path.join(tmpdir(), 'nb-diffhook-user-'));
  await chmod(d, 0o755);
  const home = path.join(d, 'home');
  await mkdir(home, { mode: 0o700 });
  await chown(home, 65534, 65534);
  const conf = path.join(home, 'nix.conf');
  await writeFile(conf, CONF);
  await chown(conf, 65534, 65534);
  // The server under setpriv, speaking LSP on the launcher's stdio.
  const launcher = path.join(d, 'launch.js');
  await writeFile(launcher, `require('node:child_process').spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--import', 'tsx', ${JSON.stringify(SERVER)}, '--stdio'], { stdio: 'inherit', cwd: ${JSON.stringify(path.dirname(SERVER))} }).on('exit', (c) => process.exit(c ?? 1));\n`);
  const own = new StdioLspClient({ ...process.env, HOME: home }, [launcher]);
  try {
    await own.initialize({ settings: { env: { NIX_CONF_DIR: d, XDG_STATE_HOME: path.join(home, 'state') } } }, d);
    const r = await own.request<NixConfSetUpResult>('workspace/executeCommand', { command: ServerCommands.setUpDiffHook, arguments: [{ nixConf: conf }] });
    assert.equal(r.status, 'paste', JSON.stringify(r));
    assert.equal(r.script, path.join(home, 'state', 'nix-builders', 'hooks', 'diff-hook'));
    assert.match(r.message ?? '', new RegExp(`The build users cannot reach ${r.script}: ${home} is closed to other users\\. Open it \\(chmod o\\+x ${home}\\)`), JSON.stringify(r));
    assert.equal(await readFile(conf, 'utf8'), CONF, 'not changed');
  } finally {
    await own.shutdown();
    await rm(d, { recursive: true, force: true });
  }
});
