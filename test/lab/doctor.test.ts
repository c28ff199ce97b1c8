// The builder doctor and the test build against real builders (one lab for the whole file): every
// state a builder can be in, each with its cause and fix. Where the doctor judges something ssh
// also judges (host keys, logins), real ssh is asked too, to prove both agree.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as net from 'node:net';
import * as path from 'node:path';
import { once } from 'node:events';
import { adHocBuilder } from '../../language-server/builders/collect';
import { checkAll, checkBuilder, checkLocal, type DoctorDeps } from '../../language-server/builders/doctor';
import { testBuild } from '../../language-server/builders/testBuild';
import { classify, mostImportant } from '../../language-server/nix/classifier';
import { parseMachineLine } from '../../language-server/nix/machines';
import { Nix } from '../../language-server/nix/nix';
import { ExecaRunner } from '../../language-server/nix/runner';
import type { BuilderHealth, BuilderInfo, CheckId } from '../../language-server/protocol';
import { builderMarker, startLab, type Lab } from './lab';
import { writeSecurityKey } from './securityKey';

let lab: Lab;
let nix: Nix;
let deps: DoctorDeps;
let sshConfig: string;
let silent: net.Server;
const held: net.Socket[] = [];
/** Files this test adds to the lab folder (removed before the lab stops). */
const extraFiles: string[] = [];
let knownHostsBefore = '';
let agent: ChildProcess | undefined;
let agentSocket = '';

const file = (name: string) => {
  const f = path.join(lab.dir, name);
  extraFiles.push(f);
  return f;
};

function sshKeygen(args: string[]): string {
  const r = spawnSync('ssh-keygen', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/** A Host block like the lab's, with overrides. */
function hostBlock(alias: string, port: number, opts: { identityFile?: string; knownHosts?: string; hostKeyAlias?: string | null; identitiesOnly?: boolean }): string {
  return [
    `Host ${alias}`,
    '  HostName 127.0.0.1',
    `  Port ${port}`,
    '  User root',
    ...(opts.hostKeyAlias === null ? [] : [`  HostKeyAlias ${opts.hostKeyAlias ?? alias}`]),
    `  IdentityFile ${opts.identityFile ?? lab.clientKey}`,
    `  IdentitiesOnly ${opts.identitiesOnly === false ? 'no' : 'yes'}`,
    `  UserKnownHostsFile ${opts.knownHosts ?? path.join(lab.dir, 'known_hosts')}`,
    '  GlobalKnownHostsFile /dev/null',
    '  StrictHostKeyChecking yes',
    '  BatchMode yes',
    '',
  ].join('\n');
}

before(async () => {
  const started = Date.now();
  lab = await startLab();
  const b1 = lab.builder('b1');
  const wrongKey = file('doctor-wrong-key');
  extraFiles.push(`${wrongKey}.pub`);
  sshKeygen(['-q', '-t', 'ed25519', '-N', '', '-C', 'not authorized anywhere', '-f', wrongKey]);
  const emptyKnownHosts = file('doctor-empty-known_hosts');
  await writeFile(emptyKnownHosts, '');
  // An ssh agent holding the lab's client key; `doctor-agent-only` is only the public half of it.
  agentSocket = file('doctor-agent.sock');
  agent = spawn('ssh-agent', ['-D', '-a', agentSocket], { stdio: 'ignore' });
  for (let i = 0; i < 200 && !existsSync(agentSocket); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  const added = spawnSync('ssh-add', ['-q', lab.clientKey], { encoding: 'utf8', env: { ...process.env, SSH_AUTH_SOCK: agentSocket } });
  assert.equal(added.status, 0, added.stderr);
  const agentOnlyKey = file('doctor-agent-only');
  extraFiles.push(`${agentOnlyKey}.pub`);
  await writeFile(`${agentOnlyKey}.pub`, readFileSync(`${lab.clientKey}.pub`));
  // Accepts TCP connections and never says a word.
  silent = net.createServer((socket) => held.push(socket)).listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const caKnownHosts = file('doctor-ca-known_hosts');
  await writeFile(caKnownHosts, `@cert-authority b1 ${lab.hostCa}\n`);
  const otherCa = file('doctor-other-ca');
  extraFiles.push(`${otherCa}.pub`);
  sshKeygen(['-q', '-t', 'ed25519', '-N', '', '-C', 'a CA that signed nothing here', '-f', otherCa]);
  const otherCaKnownHosts = file('doctor-other-ca-known_hosts');
  await writeFile(otherCaKnownHosts, `@cert-authority b1 ${readFileSync(`${otherCa}.pub`, 'utf8').trim()}\n`);
  sshConfig = file('doctor-ssh_config');
  await writeFile(
    sshConfig,
    [
      readFileSync(lab.sshConfig, 'utf8'),
      hostBlock('down', await freePort(), {}),
      hostBlock('wrongkey', b1.port, { identityFile: wrongKey }),
      hostBlock('unknownkey', b1.port, { knownHosts: emptyKnownHosts }),
      hostBlock('noalias', b1.port, { hostKeyAlias: null }),
      hostBlock('silent', (silent.address() as net.AddressInfo).port, {}),
      hostBlock('viaagent', b1.port, { identityFile: path.join(lab.dir, 'doctor-no-such-key'), identitiesOnly: false }),
      hostBlock('agentfiltered', b1.port, { identityFile: agentOnlyKey }),
      // b1's host certificate (principal b1), trusted only through @cert-authority lines.
      hostBlock('certb1', b1.port, { knownHosts: caKnownHosts, hostKeyAlias: 'b1' }),
      hostBlock('otherca', b1.port, { knownHosts: otherCaKnownHosts, hostKeyAlias: 'b1' }),
    ].join('\n'),
  );
  knownHostsBefore = readFileSync(path.join(lab.dir, 'known_hosts'), 'utf8');
  nix = new Nix(new ExecaRunner(), { binDir: '', env: { ...lab.env, NIX_SSHOPTS: `-F ${sshConfig}` } });
  // The test machine's load must not turn checks into warnings.
  deps = { nix, thresholds: { busyLoadPerCore: 1000, lowDiskKiB: 0, criticalDiskKiB: 0 } };
  console.log(`lab started in ${Date.now() - started} ms at ${lab.dir}`);
});

after(async () => {
  agent?.kill();
  for (const s of held) s.destroy();
  await new Promise((resolve) => (silent ? silent.close(resolve) : resolve(undefined)));
  for (const f of extraFiles) await rm(f, { force: true });
  await lab?.stop();
});

/** A builder as the server lists it, from a machines line. */
function builderOf(line: string): BuilderInfo {
  const { machine, error } = parseMachineLine(line);
  assert.ok(machine, error);
  return adHocBuilder(machine, `test:${machine.uri}`, 'the test machines line');
}

const labBuilder = (name: string) => builderOf(lab.builder(name).machinesLine);
/** A machines line for an extra Host alias of the test's ssh config. */
const line = (host: string, opts: { key?: string; column8?: string } = {}) =>
  `ssh://${host} x86_64-linux ${opts.key ?? lab.clientKey} 1 1 - - ${opts.column8 ?? '-'}`;

function check(h: BuilderHealth, id: CheckId) {
  const c = h.checks.find((x) => x.id === id);
  assert.ok(c, `no check ${id}`);
  return c;
}

function show(h: BuilderHealth): string {
  return h.checks.map((c) => `${c.id}=${c.status}${c.status !== 'ok' ? ` (${c.summary}; ${c.cause ?? ''}; ${c.fix ?? ''})` : ''}`).join('\n  ');
}

function assertAllOk(h: BuilderHealth): void {
  assert.equal(h.status, 'ok', show(h));
  for (const c of h.checks) assert.equal(c.status, 'ok', `${h.name} ${c.id}: ${c.summary} ${c.cause ?? ''}`);
}

/** What real ssh says for this alias (with extra options), as Nix's ssh would run. */
function realSsh(alias: string, extra: string[] = []): { code: number | null; stderr: string } {
  const r = spawnSync('ssh', ['-F', sshConfig, ...extra, alias, 'true'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
  return { code: r.status, stderr: r.stderr };
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('healthy builders (b1, b2): every check is ok, with the facts the builder reports', async () => {
  const report = await checkAll([labBuilder('b1'), labBuilder('b2')], deps);
  const [b1, b2] = report.builders as [BuilderHealth, BuilderHealth];
  assertAllOk(b1);
  assertAllOk(b2);
  assert.match(check(b1, 'host-key').summary, /^ssh-ed25519 SHA256:\S+ matches column 8 of the machines line$/);
  assert.match(check(b1, 'ssh-auth').summary, new RegExp(`^logged in as root with ${escape(lab.clientKey)} \\(SHA256:`));
  assert.equal(check(b1, 'remote-nix').summary, 'nix-store is on the non-interactive PATH of b1: /usr/bin/nix-store');
  assert.equal(check(b1, 'nix-version').summary, 'Nix 2.8.0');
  assert.match(check(b1, 'trust').summary, /no daemon.*trusted/);
  assert.match(check(b2, 'system').summary, /^x86_64-linux, aarch64-linux: b2 builds for x86_64-linux, aarch64-linux$/);
  assert.equal(b1.facts.nixVersion, '2.8.0');
  assert.deepEqual(b2.facts.extraPlatforms, ['aarch64-linux']);
  assert.ok(b1.facts.systemFeatures?.includes('kvm'));
  assert.equal(b1.facts.trusted, true);
  assert.ok((b1.facts.cores ?? 0) >= 1 && b1.facts.load?.length === 3 && (b1.facts.diskAvailableKiB ?? 0) > 0);
  assert.equal(b1.presentedHostKey, undefined, 'nothing to pin');
  assert.equal(report.local.status, 'ok', report.local.summary);
  console.log(`b1 ${b1.durationMs} ms, b2 ${b2.durationMs} ms, both ${report.durationMs} ms`);
});

test('down: nothing listens on the port', async () => {
  const h = await checkBuilder(builderOf(line('down')), deps);
  const tcp = check(h, 'tcp');
  assert.equal(tcp.status, 'error');
  assert.match(tcp.summary, /^down is down: nothing listens on 127\.0\.0\.1:\d+$/);
  assert.match(tcp.cause ?? '', /refused: no sshd runs there/);
  assert.match(tcp.fix ?? '', /^Start sshd on down\. .*`ssh -G down`/);
  for (const id of ['host-key', 'ssh-auth', 'remote-nix', 'trust'] as const) {
    assert.equal(check(h, id).status, 'skipped');
    assert.equal(check(h, id).cause, 'down could not be reached');
  }
  assert.equal(h.status, 'error');
});

test('auth refused: a key the builder does not know', async () => {
  const wrongKey = path.join(lab.dir, 'doctor-wrong-key');
  const h = await checkBuilder(builderOf(line('wrongkey', { key: wrongKey, column8: lab.builder('b1').hostKeyBase64 })), deps);
  assert.equal(check(h, 'tcp').status, 'ok');
  assert.equal(check(h, 'host-key').status, 'ok');
  const auth = check(h, 'ssh-auth');
  assert.equal(auth.status, 'error', show(h));
  assert.equal(auth.summary, 'wrongkey refused the login of root');
  assert.match(auth.cause ?? '', new RegExp(`Permission denied \\(publickey\\)\\): ${escape(wrongKey)}: rejected`));
  assert.equal(
    auth.fix,
    `Add ${wrongKey}.pub to ~root/.ssh/authorized_keys on wrongkey (\`ssh-copy-id -i ${wrongKey}.pub root@wrongkey\`), or set column 3 of wrongkey's machines line (the test machines line) to a key wrongkey accepts.`,
  );
  assert.equal(check(h, 'remote-nix').cause, 'the login on wrongkey failed');
  // Real ssh agrees (with the known_hosts file Nix writes from column 8).
  const pinned = file('doctor-pinned-wrongkey');
  await writeFile(pinned, `wrongkey ${Buffer.from(lab.builder('b1').hostKeyBase64, 'base64').toString()}\n`);
  const ssh = realSsh('wrongkey', ['-i', wrongKey, `-oUserKnownHostsFile=${pinned}`]);
  assert.equal(ssh.code, 255);
  assert.match(ssh.stderr, /Permission denied \(publickey\)/);
});

test('ssh agent: its keys are used, and with IdentitiesOnly only those matching an IdentityFile', async () => {
  const b1 = lab.builder('b1');
  const withAgent: DoctorDeps = { ...deps, nix: new Nix(new ExecaRunner(), { binDir: '', env: { ...nix.env, SSH_AUTH_SOCK: agentSocket } }) };
  const viaAgent = await checkBuilder(builderOf(line('viaagent', { key: '-', column8: b1.hostKeyBase64 })), withAgent);
  assert.equal(check(viaAgent, 'ssh-auth').status, 'ok', show(viaAgent));
  assert.equal(check(viaAgent, 'ssh-auth').summary, `logged in as root with a key of the ssh agent (${agentSocket})`);
  assertAllOk(viaAgent);
  const filtered = await checkBuilder(builderOf(line('agentfiltered', { key: '-', column8: b1.hostKeyBase64 })), withAgent);
  assert.equal(check(filtered, 'ssh-auth').summary, `logged in as root with a key of the ssh agent (${agentSocket})`);
  // IdentitiesOnly with a key the agent does not hold: the agent's key is not offered.
  const wrongKey = path.join(lab.dir, 'doctor-wrong-key');
  const refused = await checkBuilder(builderOf(line('wrongkey', { key: wrongKey, column8: b1.hostKeyBase64 })), withAgent);
  assert.equal(check(refused, 'ssh-auth').status, 'error', show(refused));
  assert.match(check(refused, 'ssh-auth').cause ?? '', /agent \S+: no key matching an IdentityFile \(IdentitiesOnly\); \S+doctor-wrong-key: rejected\.$/);
  // Without the agent, viaagent has no key at all.
  const noAgent = await checkBuilder(builderOf(line('viaagent', { key: '-', column8: b1.hostKeyBase64 })), { ...deps, nix: new Nix(new ExecaRunner(), { binDir: '', env: { ...nix.env, SSH_AUTH_SOCK: '' } }) });
  assert.equal(check(noAgent, 'ssh-auth').status, 'error');
  assert.match(check(noAgent, 'ssh-auth').cause ?? '', /^No usable key: \S+doctor-no-such-key: missing\./);
  // Real ssh agrees.
  const pinned = file('doctor-pinned-viaagent');
  await writeFile(pinned, `viaagent ${Buffer.from(b1.hostKeyBase64, 'base64').toString()}\n`);
  const r = spawnSync('ssh', ['-F', sshConfig, `-oUserKnownHostsFile=${pinned}`, 'viaagent', 'true'], { encoding: 'utf8', env: { ...process.env, SSH_AUTH_SOCK: agentSocket } });
  assert.equal(r.status, 0, r.stderr);
});

test('host key changed: column 8 pins another key; loud failure, no login, the new key offered', async () => {
  const b1 = lab.builder('b1');
  const b2Key = lab.builder('b2').hostKeyBase64;
  const h = await checkBuilder(builderOf(b1.machinesLine.replace(b1.hostKeyBase64, b2Key)), deps);
  const hk = check(h, 'host-key');
  assert.equal(hk.status, 'error', show(h));
  assert.equal(hk.summary, "b1's host key has changed");
  const b1Fp = fingerprintOf(b1.hostKeyBase64);
  const b2Fp = fingerprintOf(b2Key);
  assert.match(hk.cause ?? '', new RegExp(`^b1 presented ssh-ed25519 ${escape(b1Fp)}, but column 8 of the machines line expects ssh-ed25519 ${escape(b2Fp)}\\.`));
  assert.match(hk.cause ?? '', /someone is intercepting the connection.*REMOTE HOST IDENTIFICATION HAS CHANGED!/);
  assert.match(hk.fix ?? '', new RegExp(`Only if it is ${escape(b1Fp)}, set column 8 of b1's machines line \\(the test machines line\\) to ${escape(b1.hostKeyBase64)}\\.$`));
  assert.equal(check(h, 'ssh-auth').status, 'skipped');
  assert.match(check(h, 'ssh-auth').cause ?? '', /not the pinned one: the doctor does not log in/);
  assert.equal(h.presentedHostKey?.machinesColumn, b1.hostKeyBase64);
  assert.equal(h.presentedHostKey?.fingerprint, b1Fp);
  // Real ssh with the known_hosts file Nix writes from column 8 refuses too.
  const pinned = file('doctor-pinned-wrong');
  await writeFile(pinned, `b1 ${Buffer.from(b2Key, 'base64').toString()}\n`);
  const ssh = realSsh('b1', [`-oUserKnownHostsFile=${pinned}`]);
  assert.equal(ssh.code, 255);
  assert.match(ssh.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED!/);
});

/** `ssh-keygen -lf` of a column-8 value: OpenSSH's own fingerprint. */
function fingerprintOf(column8: string): string {
  const pub = file(`doctor-fp-${Math.random().toString(36).slice(2)}.pub`);
  writeFileSync(pub, `${Buffer.from(column8, 'base64').toString()}\n`);
  return sshKeygen(['-lf', pub]).split(' ')[1] as string;
}

test('unknown host key: no column 8 and an empty known_hosts; the key and its fingerprint offered for pinning', async () => {
  const b1 = lab.builder('b1');
  const h = await checkBuilder(builderOf(line('unknownkey')), deps);
  const hk = check(h, 'host-key');
  assert.equal(hk.status, 'error', show(h));
  assert.equal(hk.summary, "unknownkey's host key is not known");
  const fp = fingerprintOf(b1.hostKeyBase64);
  assert.match(hk.cause ?? '', new RegExp(`^unknownkey presented ssh-ed25519 ${escape(fp)}, and no key for 'unknownkey' is in the known_hosts files \\(\\S+doctor-empty-known_hosts, /dev/null\\)\\. Nix's ssh cannot ask anyone and fails with "Host key verification failed\\."`));
  assert.match(hk.fix ?? '', new RegExp(`^Compare ${escape(fp)} with the fingerprint on unknownkey itself \\(\`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key\\.pub\`\\); if they are equal, pin it: set column 8 of unknownkey's machines line \\(the test machines line\\) to ${escape(b1.hostKeyBase64)}\\.$`));
  assert.deepEqual(
    { fingerprint: h.presentedHostKey?.fingerprint, column: h.presentedHostKey?.machinesColumn, line: h.presentedHostKey?.knownHostsLine },
    { fingerprint: fp, column: b1.hostKeyBase64, line: `unknownkey ${Buffer.from(b1.hostKeyBase64, 'base64').toString()}` },
  );
  assert.equal(check(h, 'ssh-auth').cause, 'the host key of unknownkey is not pinned: compare and pin it first');
  const ssh = realSsh('unknownkey');
  assert.equal(ssh.code, 255);
  assert.match(ssh.stderr, /Host key verification failed\./);
  // Pinning the offered key makes it healthy.
  const pinned = await checkBuilder(builderOf(line('unknownkey', { column8: h.presentedHostKey?.machinesColumn ?? '' })), deps);
  assert.equal(check(pinned, 'host-key').status, 'ok', show(pinned));
  assert.equal(check(pinned, 'ssh-auth').status, 'ok', show(pinned));
});

test('column 8 right, but ssh looks the host up under another name (no HostKeyAlias)', async () => {
  const b1 = lab.builder('b1');
  const h = await checkBuilder(builderOf(line('noalias', { column8: b1.hostKeyBase64 })), deps);
  const hk = check(h, 'host-key');
  assert.equal(hk.status, 'error', show(h));
  assert.equal(hk.summary, "Nix's ssh will not find noalias's pinned host key");
  assert.match(hk.cause ?? '', new RegExp(`under the name 'noalias', but ssh looks noalias up as '\\[127\\.0\\.0\\.1\\]:${b1.port}'`));
  assert.equal(hk.fix, 'Add `HostKeyAlias noalias` to the `Host noalias` block of the ssh config Nix uses.');
  // The key itself is the pinned one, so the doctor goes on.
  assert.equal(check(h, 'ssh-auth').status, 'ok');
  assert.equal(check(h, 'trust').status, 'ok');
  const pinned = file('doctor-pinned-noalias');
  await writeFile(pinned, `noalias ${Buffer.from(b1.hostKeyBase64, 'base64').toString()}\n`);
  const ssh = realSsh('noalias', [`-oUserKnownHostsFile=${pinned}`]);
  assert.equal(ssh.code, 255);
  assert.match(ssh.stderr, /Host key verification failed\./);
});

test('Nix not on the non-interactive PATH (b4): the fix names the program a login shell finds, and works', async () => {
  const h = await checkBuilder(labBuilder('b4'), deps);
  const remote = check(h, 'remote-nix');
  assert.equal(remote.status, 'error', show(h));
  assert.equal(remote.summary, 'nix-store is not on the non-interactive PATH of nopath@b4');
  assert.equal(
    remote.cause,
    'Nix runs `nix-store --serve --write` over ssh without a login shell; there PATH is `/usr/local/nothing`, which has no nix-store, although a login shell finds it at /usr/bin/nix-store. Nix fails with "nix-store: command not found".',
  );
  assert.equal(remote.fix, 'Append ?remote-program=/usr/bin/nix-store to the URI in the test machines line: `ssh://nopath@b4?remote-program=/usr/bin/nix-store` (or put Nix on the PATH of non-interactive ssh sessions of nopath@b4).');
  // The other checks still ran with the Nix the login shell found.
  assert.equal(check(h, 'nix-version').summary, 'Nix 2.8.0');
  assert.equal(check(h, 'trust').status, 'ok');
  // Applying the fix: the doctor is happy and a real build runs on b4.
  const fixed = builderOf(lab.builder('b4').machinesLine.replace('ssh://nopath@b4', 'ssh://nopath@b4?remote-program=/usr/bin/nix-store'));
  const again = await checkBuilder(fixed, deps);
  assert.equal(check(again, 'remote-nix').summary, 'remote-program /usr/bin/nix-store exists on b4');
  assertAllOk(again);
  const built = await testBuild(fixed, { nix });
  assert.equal(built.status, 'ok', `${built.summary} ${built.cause ?? ''}`);
  assert.ok(lab.hasStorePath('b4', built.outPath ?? ''));
});

test('untrusted user (b3): cause and fix name the user, the host and the setting', async () => {
  const h = await checkBuilder(labBuilder('b3'), deps);
  const trust = check(h, 'trust');
  assert.equal(trust.status, 'error', show(h));
  assert.equal(trust.summary, 'nixremote is not trusted on b3');
  assert.equal(`${trust.cause}: ${trust.fix}`, 'user nixremote is not in trusted-users on b3: add `trusted-users = root nixremote` to /etc/nix/nix.conf on b3 and restart nix-daemon');
  assert.equal(h.facts.trusted, false);
  assert.deepEqual(h.facts.groups, ['nixremote']);
  for (const id of ['tcp', 'host-key', 'ssh-auth', 'remote-nix', 'nix-version', 'system', 'features'] as const) assert.equal(check(h, id).status, 'ok', show(h));
});

test('feature mismatch: a machines line claiming kvm on b2', async () => {
  const b2 = lab.builder('b2');
  const h = await checkBuilder(builderOf(b2.machinesLine.replace('big-parallel,benchmark,nixos-test', 'kvm,big-parallel,benchmark,nixos-test')), deps);
  const features = check(h, 'features');
  assert.equal(features.status, 'warning', show(h));
  assert.equal(features.summary, 'b2 lacks kvm');
  assert.equal(
    features.cause,
    "The machines line claims kvm, but b2's Nix reports system-features = benchmark big-parallel nixos-test. Derivations that require kvm are sent there and fail.",
  );
  assert.equal(
    features.fix,
    "Remove kvm from column 6/7 of b2's machines line (the test machines line), or add kvm to system-features in /etc/nix/nix.conf on b2 if it really has it (kvm needs /dev/kvm on the builder).",
  );
  assert.equal(h.status, 'warning');
});

test('system mismatch: a machines line claiming aarch64-linux on b1', async () => {
  const b1 = lab.builder('b1');
  const h = await checkBuilder(builderOf(b1.machinesLine.replace(' x86_64-linux ', ' x86_64-linux,aarch64-linux ')), deps);
  const system = check(h, 'system');
  assert.equal(system.status, 'warning', show(h));
  assert.equal(system.summary, 'b1 does not build for aarch64-linux');
  assert.match(system.cause ?? '', /^the machines line claims x86_64-linux, aarch64-linux, but b1's Nix builds for x86_64-linux, i686-linux\S* .* only \(system = x86_64-linux, extra-platforms = /);
  assert.match(system.fix ?? '', /^Remove aarch64-linux from column 2 .* or add `extra-platforms = aarch64-linux` to \/etc\/nix\/nix.conf on b1/);
});

test('a port that accepts TCP but never speaks SSH: the handshake has its own timeout', async () => {
  const h = await checkBuilder(builderOf(line('silent')), { ...deps, timeouts: { handshakeMs: 700 } });
  assert.equal(check(h, 'tcp').status, 'ok');
  const hk = check(h, 'host-key');
  assert.equal(hk.status, 'error', show(h));
  assert.equal(hk.summary, 'no SSH handshake with silent');
  // Only the handshake timer's expiry words it so: the configured 0.7 s, not the default 10 s, ended it.
  assert.match(hk.cause ?? '', /did not finish within 0\.7 s: something accepts TCP connections on 127\.0\.0\.1:\d+ but does not speak SSH in time/);
});

test('cancellation stops every builder check at once, whatever step each is in', async () => {
  const builders = ['b1', 'b2', 'b3', 'b4'].map(labBuilder).concat(builderOf(line('silent')));
  for (const delay of [0, 30, 120, 250]) {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), delay);
    const report = await checkAll(builders, { ...deps, signal: controller.signal });
    // The silent port ends only by its 10 s handshake timeout or by cancellation: checkAll
    // returned because the abort stopped it, not because it waited.
    const silentChecks = (report.builders[4] as BuilderHealth).checks;
    assert.ok(silentChecks.some((c) => c.cause === 'cancelled'), `silent after ${delay} ms: ${show(report.builders[4] as BuilderHealth)}`);
    assert.ok(!silentChecks.some((c) => /did not finish within/.test(c.cause ?? '')), show(report.builders[4] as BuilderHealth));
    const all = report.builders.flatMap((h) => h.checks);
    assert.ok(all.some((c) => c.cause === 'cancelled'), `after ${delay} ms: ${report.builders.map(show).join('\n')}`);
    // Being cancelled is not a fault of the builder.
    for (const c of all) assert.ok(!(c.status === 'error' && /cancel/i.test(`${c.summary} ${c.cause}`)), `${c.id}: ${c.summary} ${c.cause}`);
    assert.notEqual(check(report.builders[4]!, 'host-key').status, 'ok');
  }
});

test('local check: root with a writable store uses no daemon, so --builders applies', async () => {
  const local = await checkLocal(deps);
  assert.equal(local.status, 'ok');
  assert.equal(local.summary, 'root opens the Nix store directly (no daemon): --builders and NIX_SSHOPTS of this environment apply');
});

test('local check: a nix.conf whose build-users-group names a missing group — Nix really cannot build, and the check says why', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nix-builders-doctor-conf-'));
  try {
    const withConf = async (conf: string) => {
      await writeFile(path.join(dir, 'nix.conf'), `${conf}\nsubstituters =\nsandbox = false\n`);
      const local = new Nix(new ExecaRunner(), { binDir: '', env: { ...lab.env, NIX_CONF_DIR: dir } });
      return { local, check: await checkLocal({ ...deps, nix: local }) };
    };
    const group = `nix-builders-no-such-group-${process.pid}`;
    const missing = await withConf(`build-users-group = ${group}`);
    assert.equal(missing.check.status, 'error');
    assert.equal(missing.check.summary, `local builds fail: the group '${group}' named by build-users-group does not exist`);
    assert.match(missing.check.fix ?? '', /`nix-setup-systemd`.*`build-users-group =`/);
    // Nix agrees: a build with that configuration fails, and the classifier names the same group.
    const build = await missing.local.run('nix-build', ['--no-out-link', '-E', `derivation { name = "doctor-no-build-users"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${process.pid}-${Date.now()} > $out" ]; }`], { timeoutMs: 60_000 });
    assert.notEqual(build.kind, 'ok', build.stderr);
    const problem = mostImportant(classify(build.stderr));
    assert.equal(problem?.kind, 'build-users', build.stderr);
    assert.deepEqual(problem?.kind === 'build-users' ? problem.details : undefined, { group, reason: 'group-missing' });

    // Debian's nogroup exists and lists no members.
    const empty = await withConf('build-users-group = nogroup');
    assert.equal(empty.check.status, 'error');
    assert.equal(empty.check.summary, "local builds fail: the build users group 'nogroup' has no members");

    // A single-user set-up: root builds as itself.
    const single = await withConf('build-users-group =');
    assert.equal(single.check.status, 'ok', single.check.summary);
    assert.match(single.check.detail ?? '', /Build users: none .* Sandbox: `sandbox = false`/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('local check through a nix-daemon (b3\'s, by its socket): trust read from the configuration', async () => {
  const socket = path.join(lab.builder('b3').storeRoot, 'var/nix/daemon-socket/socket');
  const through = (extra: Record<string, string>) =>
    checkLocal({ ...deps, nix: new Nix(new ExecaRunner(), { binDir: '', env: { ...nix.env, NIX_REMOTE: 'daemon', NIX_DAEMON_SOCKET_PATH: socket, ...extra } }) });
  const trusted = await through({});
  assert.equal(trusted.status, 'ok', `${trusted.summary} ${trusted.cause ?? ''}`);
  assert.equal(trusted.summary, 'root is a trusted user of the nix-daemon');
  assert.match(trusted.detail ?? '', /runs ssh as root, with root's ssh config/);
  // Nix 2.8 does not report trust, so the configuration decides: one without root in trusted-users.
  const untrusted = await through({ NIX_CONFIG: 'trusted-users = nixremote' });
  assert.equal(untrusted.status, 'error');
  assert.equal(untrusted.summary, 'the local nix-daemon does not trust root: it silently ignores --builders');
  assert.equal(untrusted.fix, 'add `trusted-users = nixremote root` to /etc/nix/nix.conf and restart nix-daemon');
});

test('test build: runs in exactly that builder\'s store and says so', async () => {
  for (const name of ['b1', 'b2']) {
    const builder = labBuilder(name);
    const r = await testBuild(builder, { nix });
    assert.equal(r.status, 'ok', `${r.summary} ${r.cause ?? ''}`);
    assert.equal(r.ranOn, builder.uri);
    assert.ok(r.ranOnThisBuilder);
    assert.equal(r.marker, builderMarker(name));
    assert.match(r.buildUuid ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(r.summary, `built on ${builder.uri}: '${builderMarker(name)}'`);
    assert.ok(r.outPath);
    for (const b of lab.builders) assert.equal(lab.hasStorePath(b.name, r.outPath), b.name === name, `${r.outPath} in ${b.name}'s store`);
    assert.ok(r.command.includes('internal-json'));
    console.log(`test build on ${name}: ${r.durationMs} ms`);
  }
});

test('test build failures carry the classified problem', async () => {
  const b3 = await testBuild(labBuilder('b3'), { nix });
  assert.equal(b3.status, 'error');
  assert.equal(b3.problem?.kind, 'not-privileged');
  assert.equal(b3.summary, 'the test build on b3 failed: you are not privileged to build input-addressed derivations');
  assert.match(b3.fix ?? '', /trusted-users/);
  const b4 = await testBuild(labBuilder('b4'), { nix });
  assert.equal(b4.status, 'error');
  assert.equal(b4.problem?.kind, 'cannot-connect');
  assert.equal(b4.summary, "the test build on b4 failed: cannot build on 'ssh://nopath@b4': error: cannot connect to 'nopath@b4': bash: line 1: nix-store: command not found");
  assert.match(b4.fix ?? '', /remote-program=/);
  assert.ok(!b4.ranOnThisBuilder);
  const down = await testBuild(builderOf(line('down')), { nix });
  assert.equal(down.status, 'error');
  assert.equal(down.problem?.kind, 'cannot-connect');
});

test('every state at once: checkAll runs the builders in parallel', async () => {
  const b1 = lab.builder('b1');
  const all = [
    ...['b1', 'b2', 'b3', 'b4'].map(labBuilder),
    builderOf(line('down')),
    builderOf(line('wrongkey', { key: path.join(lab.dir, 'doctor-wrong-key'), column8: b1.hostKeyBase64 })),
    builderOf(b1.machinesLine.replace(b1.hostKeyBase64, lab.builder('b2').hostKeyBase64)),
    builderOf(line('unknownkey')),
  ];
  // Each builder's check begins with `ssh -G`: record those starts and each builder's end, in order.
  const events: string[] = [];
  const runner = new ExecaRunner();
  const recording = new Nix(
    {
      run: (req) => {
        if (req.file === 'ssh' && req.args.includes('-G')) events.push('start');
        return runner.run(req);
      },
    },
    { binDir: '', env: nix.env },
  );
  const report = await checkAll(all, { ...deps, nix: recording, onBuilderChecked: () => events.push('done') });
  assert.deepEqual(
    report.builders.map((h) => h.status),
    ['ok', 'ok', 'error', 'error', 'error', 'error', 'error', 'error'],
  );
  // In parallel: every builder's check had started before the first one finished (one after the
  // other, each would start only after the previous one's end). The time it saves: npm run bench.
  const firstDone = events.indexOf('done');
  assert.equal(events.slice(0, firstDone).length, all.length, events.join(' '));
  assert.equal(events.filter((e) => e === 'done').length, all.length);
  console.log(`${all.length} builders in parallel: ${report.durationMs} ms`);
});

test('twelve builders at once under one signal (as the server passes it): no MaxListenersExceededWarning', async () => {
  // Every step of every builder listens on the signal: all on the one signal would pass Node's
  // limit of 10 listeners and print a warning on the server's stderr.
  const warnings: string[] = [];
  const onWarning = (w: Error) => void warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  try {
    const many = Array.from({ length: 12 }, (_, i) => labBuilder(i % 2 ? 'b1' : 'b2'));
    const report = await checkAll(many, { ...deps, signal: new AbortController().signal });
    assert.deepEqual(report.builders.map((h) => h.status), many.map(() => 'ok'));
    // Warnings are emitted on the next tick.
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('warning', onWarning);
  }
  assert.deepEqual(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning')), []);
});

test('ssh-ng builders: Nix starts nix-daemon --stdio, so that is the program checked', async () => {
  const b1 = lab.builder('b1');
  const ng = builderOf(b1.machinesLine.replace('ssh://b1', 'ssh-ng://b1'));
  const h = await checkBuilder(ng, deps);
  assertAllOk(h);
  assert.equal(check(h, 'remote-nix').summary, 'nix-daemon is on the non-interactive PATH of b1: /usr/bin/nix-daemon');
  const b4 = await checkBuilder(builderOf(lab.builder('b4').machinesLine.replace('ssh://', 'ssh-ng://')), deps);
  assert.equal(check(b4, 'remote-nix').summary, 'nix-daemon is not on the non-interactive PATH of nopath@b4');
  assert.match(check(b4, 'remote-nix').fix ?? '', /`ssh-ng:\/\/nopath@b4\?remote-program=\/usr\/bin\/nix-daemon`/);
  const built = await testBuild(ng, { nix });
  assert.equal(built.status, 'ok', `${built.summary} ${built.cause ?? ''}`);
  assert.equal(built.ranOn, 'ssh-ng://b1');
  assert.ok(lab.hasStorePath('b1', built.outPath ?? ''));
});

test('the doctor never writes to known_hosts', () => {
  assert.equal(readFileSync(path.join(lab.dir, 'known_hosts'), 'utf8'), knownHostsBefore);
});

test('login shells bash, dash, zsh and fish (users of b4): the doctor works under each, and a hostile remote-program is data, never code', async () => {
  const b4 = lab.builder('b4');
  const users = b4.extraUsers ?? [];
  assert.deepEqual(users.map((u) => u.shell), ['/bin/bash', '/usr/bin/dash', '/usr/bin/zsh', '/usr/bin/fish']);
  // Folders whose names would run `touch nbp-injected` (in the remote user's home) if any shell read
  // them as code; each holds nix-store and nix, so a doctor that passes them as data finds Nix there.
  const root = file('doctor-hostile');
  const names = [
    // fish read `\'` inside POSIX single quotes as an escaped quote: this closed the quote.
    "x\n\\';touch nbp-injected;#",
    "it's \\'q\\' \"$(touch nbp-injected)\" ;touch nbp-injected;# (touch nbp-injected) `touch nbp-injected` $HOME %s \\\\",
  ];
  for (const name of names) {
    await mkdir(path.join(root, name), { recursive: true });
    await symlink('/usr/bin/nix-store', path.join(root, name, 'nix-store'));
    await symlink('/usr/bin/nix', path.join(root, name, 'nix'));
  }
  const lineFor = (user: string, program?: string) =>
    b4.machinesLine.replace('ssh://nopath@b4', `ssh://${user}@b4${program === undefined ? '' : `?remote-program=${encodeURIComponent(program)}`}`);
  const cases = users.flatMap((u) => [
    { user: u, program: undefined },
    ...names.map((n) => ({ user: u, program: path.join(root, n, 'nix-store') })),
    // Not found: the program name also goes through the login shell's own lookup.
    { user: u, program: path.join(root, names[0]!, 'missing') },
  ]);
  try {
    // At most 4 at once: sshd drops unauthenticated connections beyond MaxStartups (10).
    const report = await checkAll(cases.map((c) => builderOf(lineFor(c.user.name, c.program))), { ...deps, concurrency: 4 });
    report.builders.forEach((h, i) => {
      const { user, program } = cases[i]!;
      const what = `${user.name} (${user.shell}) ${JSON.stringify(program)}`;
      if (program === undefined) {
        assertAllOk(h);
        assert.equal(check(h, 'remote-nix').summary, `nix-store is on the non-interactive PATH of ${user.name}@b4: /usr/bin/nix-store`, what);
      } else if (program.endsWith('/nix-store')) {
        // Found at exactly that path, --version and `nix show-config` ran from its folder.
        assertAllOk(h);
        assert.equal(check(h, 'remote-nix').summary, `remote-program ${program} exists on b4`, what);
        assert.equal(h.facts.remoteProgram, program, what);
      } else {
        assert.equal(check(h, 'remote-nix').status, 'error', `${what}: ${show(h)}`);
        assert.equal(check(h, 'remote-nix').summary, `remote-program ${program} does not exist on b4`, what);
      }
      assert.equal(h.facts.user, user.name, what);
    });
    for (const u of users) assert.ok(!existsSync(path.join(lab.dir, 'builders', 'b4', 'home', u.name, 'nbp-injected')), `an injected command ran under ${u.shell}`);
    // Nix's own ssh agrees: a build as the fish user lands in b4's store.
    const built = await testBuild(builderOf(lineFor('shfish')), { nix });
    assert.equal(built.status, 'ok', `${built.summary} ${built.cause ?? ''}`);
    assert.ok(lab.hasStorePath('b4', built.outPath ?? ''));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('ProxyJump (b1-via-b2, whose HostName only the jump host b2 resolves): checked with OpenSSH through the jump host, every check ok, and Nix builds there', async () => {
  const { alias, via, target, machinesLine } = lab.behindJump;
  const h = await checkBuilder(builderOf(machinesLine), deps);
  assertAllOk(h);
  const tcp = check(h, 'tcp');
  assert.match(tcp.summary, new RegExp(`^lab-b1-behind-b2:${lab.builder(target).port} reached through \`ssh -F ${escape(sshConfig)} -W '\\[lab-b1-behind-b2\\]:\\d+' ${via}\`$`));
  assert.equal(tcp.detail, `checked with OpenSSH's ssh as Nix runs it, because it is reached through ProxyJump ${via}`);
  assert.match(check(h, 'host-key').summary, new RegExp(`^ssh-ed25519 ${escape(fingerprintOf(lab.builder(target).hostKeyBase64))} matches column 8 of the machines line$`));
  assert.match(check(h, 'ssh-auth').summary, new RegExp(`^logged in as root with ${escape(lab.clientKey)} \\(SHA256:`));
  assert.equal(check(h, 'remote-nix').summary, `nix-store is on the non-interactive PATH of ${alias}: /usr/bin/nix-store`);
  // Only through the jump host: without it the name does not even resolve.
  const direct = realSsh(alias, ['-oProxyJump=none']);
  assert.equal(direct.code, 255);
  assert.match(direct.stderr, /Could not resolve hostname lab-b1-behind-b2/);
  // Nix's own ssh agrees: a build through the jump host lands in the target's store.
  const built = await testBuild(builderOf(machinesLine), { nix });
  assert.equal(built.status, 'ok', `${built.summary} ${built.cause ?? ''}`);
  assert.ok(lab.hasStorePath(target, built.outPath ?? ''));
});

test('ProxyJump to a port where nothing listens: the jump host\'s answer is the cause', async () => {
  const { alias } = lab.behindJump;
  const broken = file('doctor-jump-broken-ssh_config');
  await writeFile(broken, `Host ${alias}\n  Port 1\n\n${readFileSync(sshConfig, 'utf8')}`);
  const h = await checkBuilder(builderOf(lab.behindJump.machinesLine), { ...deps, nix: new Nix(new ExecaRunner(), { binDir: '', env: { ...nix.env, NIX_SSHOPTS: `-F ${broken}` } }) });
  const tcp = check(h, 'tcp');
  assert.equal(tcp.status, 'error', show(h));
  assert.match(tcp.summary, new RegExp(`^${alias} cannot be reached through \`ssh -F \\S+ -W '\\[lab-b1-behind-b2\\]:1' b2\`$`));
  assert.match(tcp.cause ?? '', /and it failed: .*connect failed: Connection refused.*Nix's ssh fails the same way/);
  assert.equal(check(h, 'ssh-auth').status, 'skipped');
});

test('host certificate trusted through @cert-authority (b1 as certb1): checked with OpenSSH, every check ok; signed by another CA: refused', async () => {
  const b1 = lab.builder('b1');
  const fp = fingerprintOf(b1.hostKeyBase64);
  const ca = (() => {
    const pub = file('doctor-lab-ca.pub');
    writeFileSync(pub, `${lab.hostCa}\n`);
    return sshKeygen(['-lf', pub]).split(' ')[1] as string;
  })();
  const h = await checkBuilder(builderOf(line('certb1')), deps);
  assertAllOk(h);
  assert.equal(check(h, 'host-key').summary, `host certificate "lab builder b1" (${fp}) is signed by ssh-ed25519 ${ca}, trusted by @cert-authority in ${path.join(lab.dir, 'doctor-ca-known_hosts')}:1`);
  assert.match(check(h, 'tcp').detail ?? '', /because host certificates are trusted for 'b1' \(@cert-authority in \S+doctor-ca-known_hosts:1\)$/);
  assert.equal(realSsh('certb1').code, 0);

  const other = await checkBuilder(builderOf(line('otherca')), deps);
  const hk = check(other, 'host-key');
  assert.equal(hk.status, 'error', show(other));
  assert.equal(hk.summary, "otherca's host key is not known");
  assert.match(hk.cause ?? '', new RegExp(`^otherca presented ssh-ed25519 ${escape(fp)}, and no key for 'b1' is in the known_hosts files \\(\\S+doctor-other-ca-known_hosts, /dev/null\\)\\. Its host certificate is not accepted either: it is signed by the CA ssh-ed25519 ${escape(ca)}, which no @cert-authority line for 'b1' trusts\\. Nix's ssh cannot ask anyone and fails with "Host key verification failed\\."\\.$`));
  assert.match(hk.fix ?? '', /set column 8 of otherca's machines line \(the test machines line\) to the output of `cut -d' ' -f1,2 \/etc\/ssh\/ssh_host_ed25519_key\.pub \| base64 -w0` on otherca\.$/);
  assert.equal(check(other, 'ssh-auth').status, 'skipped');
  assert.equal(other.presentedHostKey, undefined, 'OpenSSH names only the fingerprint: nothing to pin');
  const ssh = realSsh('otherca');
  assert.equal(ssh.code, 255);
  assert.match(ssh.stderr, /Host key verification failed\./);
});

test('an ssh agent holding only a security key (sk-ssh-ed25519): ssh2 cannot use it, so OpenSSH is asked and its verdict reported', async () => {
  const b1 = lab.builder('b1');
  const skKey = file('doctor-sk');
  extraFiles.push(`${skKey}.pub`);
  writeSecurityKey(skKey, 'lab security key');
  const socket = file('doctor-sk-agent.sock');
  const skAgent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 200 && !existsSync(socket); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    const added = spawnSync('ssh-add', ['-q', skKey], { encoding: 'utf8', env: { ...process.env, SSH_AUTH_SOCK: socket } });
    assert.equal(added.status, 0, added.stderr);
    const withSk: DoctorDeps = { ...deps, nix: new Nix(new ExecaRunner(), { binDir: '', env: { ...nix.env, SSH_AUTH_SOCK: socket } }) };
    const h = await checkBuilder(builderOf(line('viaagent', { key: '-', column8: b1.hostKeyBase64 })), withSk);
    assert.match(check(h, 'tcp').detail ?? '', /because the ssh agent holds a security-key \(sk-ssh-ed25519@openssh\.com\) key, which ssh2 cannot use$/);
    assert.equal(check(h, 'host-key').status, 'ok', show(h));
    // This key is in no authorized_keys: OpenSSH offers it, and b1 refuses it, as for Nix's ssh.
    const auth = check(h, 'ssh-auth');
    assert.equal(auth.status, 'error', show(h));
    assert.match(auth.cause ?? '', new RegExp(`^viaagent refused every key offered for root \\(Permission denied \\(publickey\\)\\): .*agent ${escape(socket)}: 1 key rejected`));
    const pinned = file('doctor-pinned-viaagent-sk');
    await writeFile(pinned, `viaagent ${Buffer.from(b1.hostKeyBase64, 'base64').toString()}\n`);
    const r = spawnSync('ssh', ['-F', sshConfig, `-oUserKnownHostsFile=${pinned}`, 'viaagent', 'true'], { encoding: 'utf8', env: { ...process.env, SSH_AUTH_SOCK: socket } });
    assert.equal(r.status, 255);
    assert.match(r.stderr, /Permission denied \(publickey\)/);
  } finally {
    skAgent.kill();
  }
});

/** Every ssh connection master (and socket) whose ControlPath starts with `prefix`. */
function muxLeftovers(prefix: string): { sockets: string[]; pids: number[] } {
  const dir = path.dirname(prefix);
  const sockets = readdirSync(dir)
    .map((f) => path.join(dir, f))
    .filter((f) => f.startsWith(prefix));
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue; // ended meanwhile
    }
    // A master renames itself `ssh: <ControlPath> [mux]`.
    if (cmdline.includes(prefix) || (cmdline.includes('[mux]') && cmdline.includes(lab.dir))) pids.push(Number(entry));
  }
  return { sockets, pids };
}

test('ControlMaster auto + ControlPersist in the ssh config: the OpenSSH fallback (BindAddress, ProxyJump) neither uses nor leaves a connection master, and says the same twice', async () => {
  const b1 = lab.builder('b1');
  const prefix = path.join(lab.dir, 'doctor-cm-');
  const muxConfig = file('doctor-mux-ssh_config');
  await writeFile(
    muxConfig,
    [
      'Host *',
      '  ControlMaster auto',
      `  ControlPath ${prefix}%C`,
      '  ControlPersist 60',
      '',
      hostBlock('bindaddr', b1.port, {}).replace('  BatchMode yes\n', '  BatchMode yes\n  BindAddress 127.0.0.1\n'),
      readFileSync(sshConfig, 'utf8'),
    ].join('\n'),
  );
  const withMux: DoctorDeps = { ...deps, nix: new Nix(new ExecaRunner(), { binDir: '', env: { ...nix.env, NIX_SSHOPTS: `-F ${muxConfig}` } }) };
  const builders = [builderOf(line('bindaddr', { column8: b1.hostKeyBase64 })), builderOf(lab.behindJump.machinesLine)];
  try {
    for (const round of [1, 2]) {
      const report = await checkAll(builders, withMux);
      for (const h of report.builders) {
        assert.match(check(h, 'tcp').detail ?? '', /checked with OpenSSH's ssh/, `round ${round}: ${h.name}`);
        assertAllOk(h);
      }
    }
    assert.deepEqual(muxLeftovers(prefix), { sockets: [], pids: [] });
  } finally {
    for (const pid of muxLeftovers(prefix).pids) process.kill(pid, 'SIGTERM');
  }
});

/** A Host block that reaches b1 (as the jump host b2 names it) through `jump`, as the lab's b1-via-b2. */
function behindJumpBlock(alias: string, jump: string): string {
  return [
    `Host ${alias}`,
    `  HostName lab-b1-behind-b2`,
    `  Port ${lab.builder('b1').port}`,
    `  ProxyJump ${jump}`,
    '  User root',
    `  HostKeyAlias ${alias}`,
    `  IdentityFile ${lab.clientKey}`,
    '  IdentitiesOnly yes',
    `  UserKnownHostsFile ${path.join(lab.dir, 'known_hosts')}`,
    '  GlobalKnownHostsFile /dev/null',
    '  StrictHostKeyChecking yes',
    '  BatchMode yes',
    '',
  ].join('\n');
}

const behindJumpLine = (alias: string) => builderOf(lab.behindJump.machinesLine.replace(`ssh://${lab.behindJump.alias}`, `ssh://${alias}`));

test('a jump host with an unknown key and StrictHostKeyChecking accept-new: reported as a host-key problem of that jump host, known_hosts untouched; once pinned, all ok', async () => {
  const b2 = lab.builder('b2');
  const b2Key = Buffer.from(b2.hostKeyBase64, 'base64').toString();
  const jumpKnownHosts = file('doctor-jumpnew-known_hosts');
  const before = `# the jump host's own known_hosts, without its key\nb1 ${Buffer.from(lab.builder('b1').hostKeyBase64, 'base64').toString()}\n`;
  await writeFile(jumpKnownHosts, before);
  const config = file('doctor-jumpnew-ssh_config');
  await writeFile(
    config,
    [
      hostBlock('jumpnew', b2.port, { knownHosts: jumpKnownHosts }).replace('StrictHostKeyChecking yes', 'StrictHostKeyChecking accept-new').replace('  BatchMode yes\n', ''),
      behindJumpBlock('b1-via-jumpnew', 'jumpnew'),
      // Two jump hosts: b1 (known), then jumpnew (from b1).
      behindJumpBlock('b1-via-b1-jumpnew', 'b1,jumpnew'),
      readFileSync(sshConfig, 'utf8'),
    ].join('\n'),
  );
  const jumpDeps: DoctorDeps = { ...deps, nix: new Nix(new ExecaRunner(), { binDir: '', env: { ...nix.env, NIX_SSHOPTS: `-F ${config}` } }) };
  const fp = fingerprintOf(b2.hostKeyBase64);
  const report = await checkAll([behindJumpLine('b1-via-jumpnew'), behindJumpLine('b1-via-b1-jumpnew')], jumpDeps);
  for (const h of report.builders) {
    const hk = check(h, 'host-key');
    assert.equal(hk.status, 'warning', show(h));
    assert.equal(hk.summary, 'the host key of the jump host jumpnew is not known');
    assert.equal(
      hk.cause,
      `${h.name} is reached through the jump host jumpnew (ProxyJump); jumpnew presented ssh-ed25519 ${fp}, and no key for 'jumpnew' is in its known_hosts files (${jumpKnownHosts}, /dev/null). Nix's ssh would accept it unchecked on first use (StrictHostKeyChecking accept-new for jumpnew) and write it to known_hosts, so nobody would notice an impostor; the doctor does not, so it did not check ${h.name} behind it.`,
    );
    assert.match(hk.fix ?? '', new RegExp(`^Compare ${escape(fp)} with the fingerprint on jumpnew itself .*run \`ssh -F ${escape(config)} -oBatchMode=no -oStrictHostKeyChecking=ask jumpnew true\` in a terminal`));
    assert.equal(check(h, 'ssh-auth').status, 'skipped');
    assert.equal(check(h, 'ssh-auth').cause, 'the host key of the jump host jumpnew is not verified: the doctor does not go through it');
  }
  assert.equal(readFileSync(jumpKnownHosts, 'utf8'), before, 'the jump host key was written');
  assert.equal(readFileSync(path.join(lab.dir, 'known_hosts'), 'utf8'), knownHostsBefore);

  // The fix, done as the user would (ssh asks, the user compares and answers yes): both pass, and
  // the jump hosts' verdicts are shown.
  const fixCommand = /run `([^`]+)` in a terminal/.exec(check(report.builders[0]!, 'host-key').fix ?? '')?.[1]?.split(' ') ?? [];
  const yes = file('doctor-askpass-yes');
  await writeFile(yes, '#!/bin/sh\necho yes\n', { mode: 0o755 });
  const fixed = spawnSync(fixCommand[0]!, fixCommand.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DISPLAY: ':0', SSH_ASKPASS: yes, SSH_ASKPASS_REQUIRE: 'force' }, timeout: 20_000 });
  assert.equal(fixed.status, 0, fixed.stderr);
  assert.equal(readFileSync(jumpKnownHosts, 'utf8'), `${before}jumpnew ${b2Key}\n`);
  const pinned = await checkAll([behindJumpLine('b1-via-jumpnew'), behindJumpLine('b1-via-b1-jumpnew')], jumpDeps);
  for (const h of pinned.builders) assertAllOk(h);
  const [one, two] = pinned.builders as [BuilderHealth, BuilderHealth];
  assert.match(check(one, 'host-key').detail ?? '', new RegExp(`; jump host jumpnew: ssh-ed25519 ${escape(fp)} matches ${escape(jumpKnownHosts)}:3$`));
  assert.match(check(two, 'host-key').detail ?? '', new RegExp(`; jump host b1: ssh-ed25519 ${escape(fingerprintOf(lab.builder('b1').hostKeyBase64))} matches ${escape(path.join(lab.dir, 'known_hosts'))}:1; jump host jumpnew: ssh-ed25519 ${escape(fp)} matches`));
});

test('DISPLAY and SSH_ASKPASS set, a jump host whose ssh would ask (StrictHostKeyChecking ask): SSH_ASKPASS never runs, through ProxyJump nor a ProxyCommand of the user', async () => {
  const b2 = lab.builder('b2');
  const marker = file('doctor-askpass-ran');
  const askpass = file('doctor-askpass');
  // It would answer yes: ssh would then accept the key and write it.
  await writeFile(askpass, `#!/bin/sh\ntouch ${marker}\necho yes\n`, { mode: 0o755 });
  const jumpKnownHosts = file('doctor-jumpask-known_hosts');
  await writeFile(jumpKnownHosts, '');
  const config = file('doctor-jumpask-ssh_config');
  await writeFile(
    config,
    [
      hostBlock('jumpask', b2.port, { knownHosts: jumpKnownHosts }).replace('StrictHostKeyChecking yes', 'StrictHostKeyChecking ask').replace('  BatchMode yes\n', ''),
      behindJumpBlock('b1-via-jumpask', 'jumpask'),
      behindJumpBlock('b1-proxycommand-jumpask', 'none').replace('  ProxyJump none\n', `  ProxyCommand ssh -F ${config} -W %h:%p jumpask\n`),
      readFileSync(sshConfig, 'utf8'),
    ].join('\n'),
  );
  const env = { ...nix.env, NIX_SSHOPTS: `-F ${config}`, DISPLAY: ':99', SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force' };
  const askDeps: DoctorDeps = { ...deps, nix: new Nix(new ExecaRunner(), { binDir: '', env }) };
  const [jump, command] = (await checkAll([behindJumpLine('b1-via-jumpask'), behindJumpLine('b1-proxycommand-jumpask')], askDeps)).builders as [BuilderHealth, BuilderHealth];
  assert.equal(existsSync(marker), false, 'SSH_ASKPASS ran');
  assert.equal(readFileSync(jumpKnownHosts, 'utf8'), '');
  assert.equal(check(jump, 'host-key').status, 'error', show(jump));
  assert.equal(check(jump, 'host-key').summary, 'the host key of the jump host jumpask is not known');
  assert.match(check(jump, 'host-key').cause ?? '', /Nix's ssh cannot ask anyone and fails with "Host key verification failed\."\.$/);
  // The user's own ProxyCommand gets no options of the doctor, only its environment.
  assert.equal(check(command, 'tcp').status, 'error', show(command));
  assert.match(check(command, 'tcp').cause ?? '', /Host key verification failed/);
});

test('a temporary folder with backslashes and quotes in its name, SHELL=/usr/bin/fish: ssh\'s -o parsing, its log\'s escaping and fish\'s quotes change nothing (ProxyJump)', async () => {
  // ssh splits -o values on its own quoting rules and writes `\\` for a backslash in its log;
  // fish reads `\\` and `\'` inside single quotes as escapes, /bin/sh does not.
  const tmp = path.join(lab.dir, "doctor-tmp-ö-\\\\-\\'");
  await mkdir(tmp);
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
  try {
    const h = await checkBuilder(builderOf(lab.behindJump.machinesLine), { ...deps, nix: new Nix(new ExecaRunner(), { binDir: '', env: { ...nix.env, SHELL: '/usr/bin/fish' } }) });
    assertAllOk(h);
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
    await rm(tmp, { recursive: true, force: true });
  }
});
