// Self-test of the builder lab against real Nix: routing, trust and PATH traps, parallel builds,
// and that stopping leaves nothing behind. One lab for the whole file.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { builderMarker, nixBuild, runClient, saltedDerivation, startLab, type ClientRun, type Lab } from './lab';
import { isRunning } from './processes';

const root = path.join(__dirname, '../..');
let lab: Lab;

before(async () => {
  const started = Date.now();
  lab = await startLab();
  console.log(`lab started in ${Date.now() - started} ms at ${lab.dir}`);
});

after(() => lab?.stop());

const x86 = () => saltedDerivation({ system: 'x86_64-linux' });
const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Asserts a successful build, on the machine with that URI, whose output exists in exactly that
 * builder's store (besides the client's) and holds the builder's marker.
 */
function assertBuiltOn(run: ClientRun, builder: string, uri = lab.builder(builder).uri): void {
  assert.equal(run.code, 0, run.stderr);
  const out = run.stdout.trim();
  assert.match(run.stderr, new RegExp(`building '/nix/store/\\S+\\.drv' on '${escapeRegExp(uri)}'`));
  assert.equal(readFileSync(out, 'utf8'), `${builderMarker(builder)}\n`);
  for (const b of lab.builders) assert.equal(lab.hasStorePath(b.name, out), b.name === builder, `${out} in ${b.name}'s store`);
  console.log(`built on ${uri} in ${run.ms} ms`);
}

test('the machines file, ssh config and client nix.conf point at the running builders', () => {
  assert.deepEqual(
    lab.builders.map((b) => b.name),
    ['b1', 'b2', 'b3', 'b4'],
  );
  const machines = readFileSync(lab.machinesFile, 'utf8').split('\n');
  assert.match(machines[0]!, /^# /);
  assert.deepEqual(machines.slice(1, -1), lab.builders.map((b) => b.machinesLine));
  for (const b of lab.builders) {
    assert.equal(b.machinesLine.split(' ').length, 8);
    assert.match(Buffer.from(b.hostKeyBase64, 'base64').toString(), /^ssh-ed25519 AAAA\S+$/);
  }
  assert.match(readFileSync(`${lab.clientConfDir}/nix.conf`, 'utf8'), new RegExp(`^builders = @${lab.machinesFile}$`, 'm'));
  assert.equal(lab.env.NIX_SSHOPTS, `-F ${lab.sshConfig}`);
  assert.equal(readFileSync(lab.sshConfig, 'utf8').match(/^Host b\d$/gm)?.length, 4);
});

test('without --builders the client uses the machines file from its nix.conf', async () => {
  const drv = saltedDerivation({ system: 'x86_64-linux', features: ['kvm'] });
  assertBuiltOn(await runClient(lab, 'nix-build', ['--no-out-link', '--max-jobs', '0', '-E', drv]), 'b1');
});

test('a build routed to one trusted builder runs there and only there', async () => {
  assertBuiltOn(await nixBuild(lab, x86(), [lab.builder('b1')]), 'b1');
  assertBuiltOn(await nixBuild(lab, x86(), [lab.builder('b2')]), 'b2');
});

/**
 * A derivation that marks in `dir` (a folder of the host's, which builds see: the lab's builds run
 * without a sandbox) that it runs, and ends only once `other` has marked it runs too; it gives up
 * after a minute (600 waits of 0.1 s), so builds that do not overlap fail instead of hanging.
 */
function rendezvous(dir: string, me: string, other: string): string {
  const script = [
    `: > ${dir}/${me}`,
    `i=0; while [ ! -e ${dir}/${other} ]; do i=$((i + 1)); if [ $i -gt 600 ]; then echo "${other} never started" >&2; exit 1; fi; /bin/sleep 0.1; done`,
    'read -r line < /etc/nix/nix.conf',
    `printf '%s\\n' "$line" > "$out"`,
  ].join('; ');
  return `derivation { name = "rendezvous-${me}"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" ${JSON.stringify(script)} ]; salt = "${randomUUID()}"; }`;
}

test('two builds on two builders at the same time both succeed (no shared build users)', async () => {
  // Each build waits until the other has started: both succeed only if they really ran at once.
  const dir = await mkdtemp(path.join(lab.dir, 'rendezvous-'));
  try {
    const [one, two] = await Promise.all([nixBuild(lab, rendezvous(dir, 'one', 'two'), [lab.builder('b1')]), nixBuild(lab, rendezvous(dir, 'two', 'one'), [lab.builder('b2')])]);
    assertBuiltOn(one, 'b1');
    assertBuiltOn(two, 'b2');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an aarch64-linux derivation goes to the builder with extra-platforms aarch64-linux', async () => {
  assertBuiltOn(await nixBuild(lab, saltedDerivation({ system: 'aarch64-linux' }), [lab.builder('b1'), lab.builder('b2')]), 'b2');
});

test('a kvm derivation goes to the builder with the kvm feature, wherever it is listed', async () => {
  assertBuiltOn(await nixBuild(lab, saltedDerivation({ system: 'x86_64-linux', features: ['kvm'] }), [lab.builder('b2'), lab.builder('b1')]), 'b1');
});

test('a user missing from trusted-users gets Nix\'s "not privileged" error', async () => {
  const run = await nixBuild(lab, x86(), [lab.builder('b3')]);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /you are not privileged to build (input-addressed )?derivations/);
  console.log(`untrusted b3 refused in ${run.ms} ms`);
});

test('nix missing from the remote PATH fails with "command not found"; remote-program fixes it', async () => {
  const b4 = lab.builder('b4');
  const broken = await nixBuild(lab, x86(), [b4]);
  assert.notEqual(broken.code, 0);
  assert.match(broken.stderr, /nix-store: command not found/);
  console.log(`nopath@b4 failed in ${broken.ms} ms`);

  const [, ...columns] = b4.machinesLine.split(' ');
  const fixedUri = `${b4.uri}?remote-program=/usr/bin/nix-store`;
  assertBuiltOn(await nixBuild(lab, x86(), [[fixedUri, ...columns].join(' ')]), 'b4', fixedUri);
});

test('without root, the lab and the set-up refuse at once and say what they need', () => {
  // As nobody, with the same Node, tsx and checkout.
  const asNobody = (file: string, args: string[]) =>
    spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--', file, ...args], { cwd: root, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: '/nonexistent', TMPDIR: tmpdir() } });
  const lab = asNobody(process.execPath, ['--import', 'tsx', '-e', "require('./test/lab/lab').startLab().catch((e) => { console.error(e.message); process.exit(3); })"]);
  assert.equal(lab.status, 3, lab.stderr);
  assert.match(lab.stderr, /^the builder lab needs root: .*Run as root, or with sudo \(sudo npm test, sudo npm run lab -- up\)\.$/m);
  const setup = asNobody('bash', ['scripts/setup.sh']);
  assert.equal(setup.status, 1, setup.stderr);
  assert.match(setup.stderr, /^setup: needs root .*\nsetup: .*run it as root, or with sudo: sudo npm test, sudo npm start$/m);
  assert.equal(setup.stdout, '', 'nothing was installed');
});

test('after stop() no process of the lab remains and its folder is gone', async () => {
  const pids = lab.processIds();
  // Per builder: the spawned root and sshd (PID 1 of its namespace); b3 and b4 also a nix-daemon.
  assert.ok(pids.length >= 10, `lab processes: ${pids.join(' ')}`);
  const started = Date.now();
  await lab.stop();
  console.log(`lab stopped in ${Date.now() - started} ms`);
  assert.deepEqual(lab.processIds(), []);
  assert.deepEqual(
    pids.filter((pid) => isRunning(pid)),
    [],
  );
  // Independently of the lab's own bookkeeping: no process mentions the lab folder any more.
  const mentioning = readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry) && isRunning(Number(entry)))
    .filter((entry) => {
      try {
        return readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(lab.dir);
      } catch {
        return false;
      }
    });
  assert.deepEqual(mentioning, []);
  assert.equal(existsSync(lab.dir), false);
  await lab.stop(); // idempotent
});
