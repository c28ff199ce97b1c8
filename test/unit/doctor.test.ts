// The doctor's pure decisions, fed with outputs recorded from real builders (Nix 2.8.0, OpenSSH
// 9.2; test/fixtures/nix-2.8.0/doctor-*, made by record-doctor.ts). Newer-Nix outputs that this
// machine cannot produce (`Trusted:` from 2.15) are written from the release notes and say so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  completeChecks,
  connectChecks,
  decideLocal,
  decideTrust,
  remoteChecks,
  usesDaemon,
  userListMatches,
  withRemoteProgram,
  worstStatus,
  DEFAULT_THRESHOLDS,
  type ConnectContext,
  type RemoteInput,
} from '../../language-server/builders/doctor';
import { buildLocations, interpretTestBuild, testDerivation } from '../../language-server/builders/testBuild';
import { parseMachineLine } from '../../language-server/nix/machines';
import { parseSshStoreUri } from '../../language-server/nix/storeUri';
import type { BuilderInfo } from '../../language-server/protocol';
import { discoveryScript, parseDf, parseDiscovery, parseLoad, parseNixReport, parseSections, sectionsScript } from '../../language-server/remote/probe';
import { REMOTE_COMMAND } from '../../language-server/remote/shellQuote';
import { parseSshG, sshGArgs, splitNixSshOpts, invalidDestination } from '../../language-server/remote/sshConfig';

const fixture = (name: string) => readFileSync(path.join(__dirname, '..', 'fixtures', 'nix-2.8.0', name), 'utf8');

function builderOf(line: string): BuilderInfo {
  const { machine, error } = parseMachineLine(line);
  assert.ok(machine, error);
  return { ...machine, id: 'test', name: parseSshStoreUri(machine.uri)?.host ?? machine.uri, source: { label: '/etc/nix/machines' } };
}

function remote(line: string, discoveryFile: string, configFile?: string): RemoteInput {
  const builder = builderOf(line);
  const store = parseSshStoreUri(builder.uri);
  assert.ok(store);
  const input: RemoteInput = {
    builder,
    name: store.host,
    store,
    discovery: parseDiscovery(fixture(discoveryFile)),
    discoveryMs: 50,
    nixMs: 20,
    thresholds: DEFAULT_THRESHOLDS,
  };
  if (configFile) input.nixReport = parseNixReport(fixture(configFile));
  return input;
}

const byId = (checks: ReturnType<typeof remoteChecks>, id: string) => {
  const c = checks.find((x) => x.id === id);
  assert.ok(c, id);
  return c;
};

test('ssh -G output (OpenSSH 9.2) gives the effective HostName, Port, User, keys and known_hosts', () => {
  const c = parseSshG(fixture('doctor-ssh-G-b3-openssh-9.2.txt'), 'b3', { home: '/root', localUser: 'root' });
  assert.equal(c.hostName, '127.0.0.1');
  assert.ok(c.port > 1024);
  assert.equal(c.user, 'nixremote');
  assert.equal(c.hostKeyAlias, 'b3');
  assert.deepEqual(c.identityFiles, ['$LAB/id_ed25519', '$LAB/id_ed25519']);
  assert.equal(c.identitiesOnly, true);
  assert.deepEqual(c.userKnownHostsFiles, ['$LAB/known_hosts']);
  assert.deepEqual(c.globalKnownHostsFiles, ['/dev/null']);
  assert.equal(c.strictHostKeyChecking, 'yes');
  assert.equal(c.batchMode, true);
  assert.equal(c.proxyJump, undefined);
  assert.equal(c.connectTimeout, undefined);
});

test('ssh -G defaults: ~ expanded, "none" and missing keys handled', () => {
  const c = parseSshG('user root\nhostname foo\nport 22\nidentityfile ~/.ssh/id_ed25519\nidentityfile %d/.ssh/id_%r\nuserknownhostsfile ~/.ssh/known_hosts ~/.ssh/known_hosts2\nstricthostkeychecking ask\nproxyjump none\nhostkeyalias none\nconnecttimeout 7\n', 'foo', {
    home: '/home/me',
    localUser: 'me',
  });
  assert.deepEqual(c.identityFiles, ['/home/me/.ssh/id_ed25519', '/home/me/.ssh/id_root']);
  assert.deepEqual(c.userKnownHostsFiles, ['/home/me/.ssh/known_hosts', '/home/me/.ssh/known_hosts2']);
  assert.equal(c.proxyJump, undefined);
  assert.equal(c.hostKeyAlias, undefined);
  assert.equal(c.connectTimeout, 7);
  assert.equal(c.strictHostKeyChecking, 'ask');
  const empty = parseSshG('', 'x', { home: '/h', localUser: 'u' });
  assert.equal(empty.hostName, 'x');
  assert.equal(empty.port, 22);
  assert.equal(empty.user, 'u');
});

test('ssh -G gets the arguments Nix gives ssh, and hostile hosts are refused', () => {
  assert.deepEqual(splitNixSshOpts(' -F /a/ssh_config\t-o  Foo=bar '), ['-F', '/a/ssh_config', '-o', 'Foo=bar']);
  assert.deepEqual(sshGArgs({ host: 'b3', user: 'nixremote', identityFile: '/k' }, '-F /c'), ['-F', '/c', '-i', '/k', '--', 'nixremote@b3']);
  assert.match(invalidDestination({ host: '-oProxyCommand=touch /tmp/x' }) ?? '', /not a usable host name/);
  assert.match(invalidDestination({ host: 'b1', user: '-l' }) ?? '', /not a usable user name/);
  assert.equal(invalidDestination({ host: 'b1.example.org', user: 'nix-remote_1' }), undefined);
});

test('store URIs: scheme, user, host and parameters', () => {
  const u = parseSshStoreUri('ssh-ng://nopath@b4?remote-program=/usr/bin/nix-daemon&ssh-key=%2Fk');
  assert.deepEqual(u && { ...u, params: Object.fromEntries(u.params) }, { scheme: 'ssh-ng', authority: 'nopath@b4', user: 'nopath', host: 'b4', hostname: 'b4', path: '', params: { 'remote-program': '/usr/bin/nix-daemon', 'ssh-key': '/k' } });
  assert.equal(parseSshStoreUri('daemon'), undefined);
  assert.equal(parseSshStoreUri('https://cache.example.org'), undefined);
  assert.equal(withRemoteProgram('ssh://nopath@b4', '/usr/bin/nix-store'), 'ssh://nopath@b4?remote-program=/usr/bin/nix-store');
  assert.equal(withRemoteProgram('ssh://b4?compress=true&remote-program=x', '/p'), 'ssh://b4?compress=true&remote-program=/p');
});

test('discovery of a healthy root builder (b1): Nix on PATH, local store', () => {
  const d = parseDiscovery(fixture('doctor-discovery-b1-root-local-store.txt'));
  assert.equal(d.onPath, '/usr/bin/nix-store');
  assert.equal(d.chosen, '/usr/bin/nix-store');
  assert.equal(d.nix, '/usr/bin/nix');
  assert.equal(d.version?.text, '2.8.0');
  assert.equal(d.user, 'root');
  assert.deepEqual(d.groups, ['root']);
  assert.equal(d.store?.writable, true);
  assert.equal(d.cores && d.cores > 0, true);
  assert.equal(d.load?.length, 3);
  assert.equal(d.disk?.mount, '/nix');
  const checks = remoteChecks(remote('ssh://b1 x86_64-linux - 2 2 kvm', 'doctor-discovery-b1-root-local-store.txt'));
  assert.equal(byId(checks, 'remote-nix').status, 'ok');
  assert.equal(byId(checks, 'trust').status, 'ok');
  assert.equal(byId(checks, 'trust').summary, 'root opens the store directly (no daemon): trusted');
  assert.equal(byId(checks, 'system').status, 'skipped', 'no configuration was given');
});

test('discovery of b4: nix-store not on the non-interactive PATH, found by a login shell', () => {
  const input = remote('ssh://nopath@b4 x86_64-linux', 'doctor-discovery-b4-nix-not-on-path.txt');
  assert.equal(input.discovery.onPath, undefined);
  assert.equal(input.discovery.viaLogin, '/usr/bin/nix-store');
  assert.equal(input.discovery.env.PATH, '/usr/local/nothing');
  const c = byId(remoteChecks(input), 'remote-nix');
  assert.equal(c.status, 'error');
  assert.equal(c.summary, 'nix-store is not on the non-interactive PATH of nopath@b4');
  assert.match(c.cause ?? '', /PATH is `\/usr\/local\/nothing`, which has no nix-store, although a login shell finds it at \/usr\/bin\/nix-store/);
  assert.match(c.fix ?? '', /`ssh:\/\/nopath@b4\?remote-program=\/usr\/bin\/nix-store`/);
  // For ssh-ng, Nix runs nix-daemon --stdio: the message names that program.
  const ng = remote('ssh-ng://nopath@b4 x86_64-linux', 'doctor-discovery-b4-nix-not-on-path.txt');
  assert.match(byId(remoteChecks(ng), 'remote-nix').cause ?? '', /Nix runs `nix-daemon --stdio`/);
});

test('untrusted user (b3, Nix 2.8: trusted-users and groups)', () => {
  const input = remote('ssh://nixremote@b3 x86_64-linux', 'doctor-discovery-b3-nixremote-daemon.txt', 'doctor-config-b3-untrusted.txt');
  assert.equal(input.discovery.store?.writable, false);
  assert.equal(input.discovery.store?.socketExists, true);
  assert.equal(input.nixReport?.trusted, undefined, 'Nix 2.8 does not report Trusted:');
  const c = byId(remoteChecks(input), 'trust');
  assert.equal(c.status, 'error');
  assert.equal(`${c.cause}: ${c.fix}`, 'user nixremote is not in trusted-users on b3: add `trusted-users = root nixremote` to /etc/nix/nix.conf on b3 and restart nix-daemon');
});

test('trust decisions: @group, *, allowed-users, NixOS, local store, Nix 2.15+ Trusted:', () => {
  const store = { writable: false, socketExists: true, socket: '/nix/var/nix/daemon-socket/socket', stateDir: '/nix/var/nix', nixos: false };
  const config = (trusted: string, allowed = '*') => new Map([['trusted-users', trusted], ['allowed-users', allowed]]);
  const base = { host: 'b9', user: 'alice', groups: ['alice', 'wheel'], nixRemote: '', store };
  assert.equal(decideTrust({ ...base, config: config('root @wheel') }).summary, 'alice is a trusted user of the nix-daemon (via @wheel)');
  assert.equal(decideTrust({ ...base, config: config('*') }).status, 'ok');
  assert.equal(decideTrust({ ...base, config: config('root') }).fix, 'add `trusted-users = root alice` to /etc/nix/nix.conf on b9 and restart nix-daemon');
  assert.equal(decideTrust({ ...base, config: config('') }).fix, 'add `trusted-users = alice` to /etc/nix/nix.conf on b9 and restart nix-daemon');
  assert.match(decideTrust({ ...base, config: config('root', 'root @nixers') }).cause ?? '', /not in allowed-users \(root @nixers\) on b9: the daemon refuses the connection/);
  assert.equal(
    decideTrust({ ...base, store: { ...store, nixos: true }, config: config('root') }).fix,
    'add "alice" to nix.settings.trusted-users in the NixOS configuration of b9 and run `nixos-rebuild switch`',
  );
  // `nix store info` / `store ping` of Nix 2.15+ print `Trusted: 0|1` (release notes 2.15): it wins.
  const report = parseNixReport('@@nbp config 0\ntrusted-users = root\n@@nbp.\n@@nbp trust 0\nStore URL: daemon\nVersion: 2.24.9\nTrusted: 1\n@@nbp.\n');
  assert.equal(report.trusted, true);
  assert.equal(decideTrust({ ...base, groups: ['alice'], config: report.config ?? new Map(), reported: report.trusted ?? false }).status, 'ok');
  assert.equal(decideTrust({ ...base, reported: false }).status, 'error');
  // Local store: root, or NIX_REMOTE forcing the daemon.
  assert.equal(decideTrust({ ...base, store: { ...store, writable: true } }).trusted, true);
  assert.equal(usesDaemon('daemon', { writable: true, socketExists: true }), true);
  assert.equal(usesDaemon('', { writable: true, socketExists: true }), false);
  assert.equal(usesDaemon('', { writable: false, socketExists: false }), false);
  assert.equal(decideTrust({ ...base, store: { ...store, socketExists: false } }).status, 'error');
  assert.equal(userListMatches(['@wheel'], 'bob', ['users']), undefined);
});

test('systems and features vs the remote configuration (b2)', () => {
  const ok = remoteChecks(remote('ssh://b2 x86_64-linux,aarch64-linux - 2 1 big-parallel,benchmark', 'doctor-discovery-b1-root-local-store.txt', 'doctor-config-b2-extra-platforms.txt'));
  assert.equal(byId(ok, 'system').status, 'ok');
  assert.equal(byId(ok, 'features').status, 'ok');
  assert.match(byId(ok, 'features').detail ?? '', /also offers nixos-test/);
  const bad = remoteChecks(remote('ssh://b2 x86_64-linux,riscv64-linux - 2 1 kvm,big-parallel gpu', 'doctor-discovery-b1-root-local-store.txt', 'doctor-config-b2-extra-platforms.txt'));
  const system = byId(bad, 'system');
  assert.equal(system.status, 'warning');
  assert.equal(system.summary, 'b2 does not build for riscv64-linux');
  assert.match(system.cause ?? '', /claims x86_64-linux, riscv64-linux, but b2's Nix builds for x86_64-linux, aarch64-linux only \(system = x86_64-linux, extra-platforms = aarch64-linux\)/);
  const features = byId(bad, 'features');
  assert.equal(features.status, 'warning');
  assert.equal(features.summary, 'b2 lacks kvm, gpu');
  assert.match(features.cause ?? '', /claims kvm, gpu, but b2's Nix reports system-features = benchmark big-parallel nixos-test/);
  // No systems column: Nix assumes the local system.
  const noSystems = remote('ssh://b2', 'doctor-discovery-b1-root-local-store.txt', 'doctor-config-b2-extra-platforms.txt');
  noSystems.localSystem = 'aarch64-darwin';
  assert.match(byId(remoteChecks(noSystems), 'system').cause ?? '', /no systems column, so Nix assumes this machine's aarch64-darwin/);
});

test('load and disk thresholds', () => {
  const input = remote('ssh://b1 x86_64-linux', 'doctor-discovery-b1-root-local-store.txt');
  input.discovery = { ...input.discovery, load: [9, 8, 7], cores: 2, disk: { mount: '/nix', totalKiB: 100 * 1024 * 1024, availableKiB: 512 * 1024 } };
  const checks = remoteChecks(input);
  assert.equal(byId(checks, 'load').status, 'warning');
  assert.match(byId(checks, 'load').summary, /^b1 is busy: load 9\.00 8\.00 7\.00 on 2 cores$/);
  assert.equal(byId(checks, 'disk').status, 'error');
  assert.match(byId(checks, 'disk').summary, /out of disk space: 512 MiB free on \/nix/);
  assert.match(byId(checks, 'disk').fix ?? '', /nix-collect-garbage/);
});

test('probe output parsing is total', () => {
  assert.equal(parseSections('').size, 0);
  assert.equal(parseSections('junk\n@@nbp.\nmore junk').size, 0);
  const s = parseSections('@@nbp a 0\nx\n@@nbp b 3\ny\nz');
  assert.deepEqual([...s.entries()], [
    ['a', { exitCode: 0, text: 'x' }],
    ['b', { exitCode: 3, text: 'y\nz' }],
  ]);
  const d = parseDiscovery('complete garbage\n\x00\n');
  assert.deepEqual(d.candidates, []);
  assert.equal(d.version, undefined);
  assert.deepEqual(parseLoad('{ 0.52 0.40 0.31 }'), [0.52, 0.4, 0.31]);
  assert.equal(parseLoad('nope'), undefined);
  assert.deepEqual(parseDf('Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/disk3s5 488245288 101 2000 5% /nix\n'), { totalKiB: 488245288, availableKiB: 2000, mount: '/nix' });
  assert.equal(parseDf('df: /nix: No such file or directory'), undefined);
  assert.deepEqual(parseNixReport(''), {});
});

test('the probe scripts run under the login shells dash, bash, zsh and fish (here, with this machine as the builder)', () => {
  for (const shell of ['/bin/sh', '/bin/bash', '/usr/bin/zsh', '/usr/bin/fish']) {
    const r = spawnSync(shell, ['-c', REMOTE_COMMAND], { input: discoveryScript('nix-store'), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const d = parseDiscovery(r.stdout);
    assert.ok(d.chosen?.endsWith('/nix-store'), r.stdout);
    assert.equal(d.version?.major, 2);
    assert.ok(d.user);
    const s = parseSections(spawnSync(shell, ['-c', REMOTE_COMMAND], { input: sectionsScript([{ name: 'echo', words: ['printf', '%s\n', "it's = $(x)"] }]), encoding: 'utf8' }).stdout);
    assert.deepEqual(s.get('echo'), { exitCode: 0, text: "it's = $(x)" });
  }
});

const ctx = (over: Partial<ConnectContext> = {}): ConnectContext => ({
  name: 'b1',
  uri: 'ssh://b1',
  sourceLabel: '/etc/nix/machines',
  columnSet: false,
  config: parseSshG('hostname 10.0.0.1\nport 22\nuser root\nuserknownhostsfile /root/.ssh/known_hosts\nstricthostkeychecking ask\n', 'b1', { home: '/root', localUser: 'root' }),
  ...over,
});

test('connection failures: each says the cause and the fix', () => {
  const refused = connectChecks({ tcp: { ok: false, address: '10.0.0.1:22', durationMs: 1 } }, { kind: 'connection-refused', message: 'connection to 10.0.0.1:22 refused' }, ctx());
  assert.equal(refused[0]?.summary, 'b1 is down: nothing listens on 10.0.0.1:22');
  const dns = connectChecks({ tcp: { ok: false, address: 'nowhere:22', durationMs: 1 } }, { kind: 'dns', message: 'could not resolve host name nowhere (ENOTFOUND)' }, ctx());
  assert.match(dns[0]?.fix ?? '', /HostName/);
  const timeout = connectChecks({ tcp: { ok: false, address: '10.0.0.1:22', durationMs: 5000 } }, { kind: 'timed-out', phase: 'tcp', message: 'no TCP connection to 10.0.0.1:22 within 5 s' }, ctx());
  assert.match(timeout[0]?.cause ?? '', /firewall/);
  const proxy = connectChecks({}, { kind: 'proxy-failed', proxy: "ssh -W '[10.0.0.1]:22' j", message: 'channel 0: open failed: connect failed: Connection refused' }, ctx());
  assert.equal(proxy[0]?.status, 'error');
  assert.equal(proxy[0]?.summary, "b1 cannot be reached through `ssh -W '[10.0.0.1]:22' j`");
  assert.match(proxy[0]?.cause ?? '', /it failed: channel 0: open failed: connect failed: Connection refused\. Nix's ssh fails the same way/);
  const noKeys = connectChecks(
    {
      tcp: { ok: true, address: '10.0.0.1:22', durationMs: 1 },
      auth: { ok: false, user: 'root', attempts: [{ method: 'publickey', source: '/root/.ssh/id_ed25519', outcome: 'encrypted' }], durationMs: 3 },
    },
    { kind: 'auth-failed', message: 'refused' },
    ctx({ sshKey: '/etc/nix/missing', sshKeyMissing: true }),
  );
  const auth = noKeys.find((c) => c.id === 'ssh-auth');
  assert.match(auth?.cause ?? '', /No usable key: \/root\/.ssh\/id_ed25519: encrypted\..*passphrase.*Column 3 names \/etc\/nix\/missing, which does not exist/);
  assert.match(auth?.fix ?? '', /ssh-keygen -t ed25519 -N ''/);
});

test('completeChecks and worstStatus', () => {
  const all = completeChecks([{ id: 'tcp', status: 'error', summary: 'x', durationMs: 1 }], 'unreachable');
  assert.equal(all.length, 11);
  assert.equal(all[0]?.id, 'ssh-config');
  assert.equal(all[0]?.status, 'skipped');
  assert.equal(worstStatus(all), 'error');
  assert.equal(worstStatus(completeChecks([], 'x')), 'skipped');
});

test('test build: the derivation, where it ran (recorded internal-json), and failures', () => {
  const expr = testDerivation({ system: 'x86_64-linux', features: ['benchmark'], salt: 'a"b${c}' });
  assert.match(expr, /name = "nix-builders-test-build";/);
  assert.match(expr, /requiredSystemFeatures = \[ "benchmark" \];/);
  assert.match(expr, /salt = "a\\"b\\\$\{c\}";/);
  const r = spawnSync('nix-instantiate', ['--eval', '--strict', '--json', '-E', `(${expr}).salt`], { encoding: 'utf8' });
  assert.equal(r.stdout.trim(), JSON.stringify('a"b${c}'), r.stderr);

  const stderr = fixture('doctor-test-build-b1.jsonl');
  assert.deepEqual(
    buildLocations(stderr).map((l) => l.machine),
    ['ssh://b1'],
  );
  // ssh-ng: the remote daemon's build activity is forwarded with machine "" after ours.
  const ng = fixture('remote-build-ssh-ng.jsonl').replace(/remote-logs-ng\.drv/g, 'nix-builders-test-build.drv');
  assert.deepEqual(buildLocations(ng).map((l) => l.machine), ['ssh-ng://b1', '']);
  const ngResult = interpretTestBuild({ builder: builderOf('ssh-ng://b1 x86_64-linux'), exit: 'ok', stdout: '/nix/store/x\n', stderr: ng, output: 'm\n' });
  assert.equal(ngResult.ranOn, 'ssh-ng://b1');
  assert.equal(ngResult.status, 'ok');
  const b1 = builderOf('ssh://b1 x86_64-linux');
  const ok = interpretTestBuild({ builder: b1, exit: 'ok', stdout: '/nix/store/x-nix-builders-test-build\n', stderr, output: '# marker\nuuid-1\n' });
  assert.equal(ok.status, 'ok');
  assert.equal(ok.summary, "built on ssh://b1: '# marker'");
  assert.equal(ok.buildUuid, 'uuid-1');
  const elsewhere = interpretTestBuild({ builder: builderOf('ssh://b2 x86_64-linux'), exit: 'ok', stdout: '/nix/store/x\n', stderr, output: 'm\n' });
  assert.equal(elsewhere.status, 'error');
  assert.equal(elsewhere.summary, 'the test build ran on ssh://b1, not on b2');
  const failed = interpretTestBuild({ builder: builderOf('ssh://nopath@b4 x86_64-linux'), exit: 'failed', stdout: '', stderr: fixture('remote-command-not-found-build.stderr.txt') });
  assert.equal(failed.problem?.kind, 'cannot-connect');
  assert.match(failed.summary, /^the test build on b4 failed: cannot build on 'ssh:\/\/nopath@b4'/);
});

test('local check: an untrusted user of the local daemon is told that --builders is ignored', () => {
  const store = { writable: false, socketExists: true, socket: '/nix/var/nix/daemon-socket/socket', stateDir: '/nix/var/nix', nixos: false };
  const d = decideLocal({ host: 'this machine', user: 'alice', uid: 1000, groups: ['alice', 'users'], nixRemote: '', store, config: new Map([['trusted-users', 'root @wheel']]) });
  assert.equal(d.status, 'error');
  assert.equal(d.summary, 'the local nix-daemon does not trust alice: it silently ignores --builders');
  assert.equal(
    d.cause,
    "user alice is not in trusted-users on this machine: the daemon ignores the builders this user passes (--builders, the extension's builders setting) and uses only its own `builders` setting (/etc/nix/machines).",
  );
  assert.equal(d.fix, 'add `trusted-users = root @wheel alice` to /etc/nix/nix.conf and restart nix-daemon');
  assert.match(d.detail ?? '', /runs ssh as root/);
  const trusted = decideLocal({ host: 'this machine', user: 'alice', uid: 1000, groups: ['wheel'], nixRemote: '', store, config: new Map([['trusted-users', 'root @wheel']]) });
  assert.equal(trusted.status, 'ok');
  assert.equal(trusted.summary, 'alice is a trusted user of the nix-daemon (via @wheel)');
  const local = decideLocal({ host: 'this machine', user: 'root', uid: 0, groups: [], nixRemote: '', store: { ...store, writable: true } });
  assert.equal(local.summary, 'root opens the Nix store directly (no daemon): --builders and NIX_SSHOPTS of this environment apply');
});

test('local check: can this machine build at all — build users as root without a daemon, which store, sandbox', () => {
  const store = { writable: true, socketExists: false, socket: '/nix/var/nix/daemon-socket/socket', stateDir: '/nix/var/nix', nixos: false };
  const root = { host: 'this machine', user: 'root', uid: 0, groups: [], nixRemote: '', store };
  const conf = (lines: Record<string, string>) => new Map(Object.entries({ sandbox: 'true', 'trusted-users': 'root', ...lines }));

  // Debian's nix-bin alone: Nix's default build-users-group, and no such group.
  const missing = decideLocal({ ...root, config: conf({ 'build-users-group': 'nixbld' }), buildUsers: { exists: false } });
  assert.equal(missing.status, 'error');
  assert.equal(missing.summary, "local builds fail: the group 'nixbld' named by build-users-group does not exist");
  assert.match(missing.cause ?? '', /Nix on this machine builds as root, so it runs each build as one of the build users/);
  assert.match(missing.fix ?? '', /install Debian's `nix-setup-systemd` \(`apt-get install nix-setup-systemd`/);
  assert.match(missing.fix ?? '', /for a single-user set-up .* put `build-users-group =` in \/etc\/nix\/nix\.conf \(or the nix\.conf in NIX_CONF_DIR\)/);
  assert.match(missing.detail ?? '', /Store: \/nix\/var\/nix, writable by root; no nix-daemon\./);
  assert.match(missing.detail ?? '', /Sandbox: `sandbox = true`: builds see only their declared inputs\./);

  const empty = decideLocal({ ...root, config: conf({ 'build-users-group': 'nogroup' }), buildUsers: { exists: true, members: [] } });
  assert.equal(empty.status, 'error');
  assert.equal(empty.summary, "local builds fail: the build users group 'nogroup' has no members");
  assert.match(empty.fix ?? '', /add build users to 'nogroup'/);

  const members = decideLocal({ ...root, config: conf({ 'build-users-group': 'nixbld' }), buildUsers: { exists: true, members: ['nixbld1', 'nixbld2'] } });
  assert.equal(members.status, 'ok');
  assert.equal(members.summary, 'root opens the Nix store directly (no daemon): --builders and NIX_SSHOPTS of this environment apply');
  assert.match(members.detail ?? '', /Build users: nixbld1, nixbld2 \(group 'nixbld'\)\./);

  const single = decideLocal({ ...root, config: conf({ 'build-users-group': '', sandbox: 'false' }) });
  assert.equal(single.status, 'ok');
  assert.match(single.detail ?? '', /Build users: none \(`build-users-group` is empty: a single-user set-up\)\. Sandbox: `sandbox = false`: builds see the whole machine\./);

  const unknown = decideLocal({ ...root, config: conf({ 'build-users-group': 'nixbld' }), buildUsers: { error: 'getent group nixbld: timed out' } });
  assert.equal(unknown.status, 'warning');
  assert.equal(unknown.cause, 'getent group nixbld: timed out.');

  // Build users do not apply to a user other than root (it builds as itself) nor through a daemon.
  assert.equal(decideLocal({ ...root, user: 'alice', uid: 1000, config: conf({ 'build-users-group': 'nixbld' }) }).status, 'ok');
  const viaDaemon = decideLocal({ ...root, store: { ...store, writable: false, socketExists: true }, config: conf({ 'build-users-group': 'nixbld' }) });
  assert.equal(viaDaemon.summary, 'root is a trusted user of the nix-daemon');
  assert.match(viaDaemon.detail ?? '', /Store: through the nix-daemon at \/nix\/var\/nix\/daemon-socket\/socket\./);
});

test('local check: several problems are all reported, the worst first, one paragraph each', () => {
  const store = { writable: true, socketExists: false, socket: '/nix/var/nix/daemon-socket/socket', stateDir: '/nix/var/nix', nixos: false };
  // A store that root cannot open is an error; build users that could not be looked up a warning.
  const d = decideLocal({
    host: 'this machine',
    user: 'root',
    uid: 0,
    groups: [],
    nixRemote: '',
    store: { ...store, writable: false },
    config: new Map([['build-users-group', 'nixbld']]),
    buildUsers: { error: 'getent group nixbld: exit code 1' },
  });
  assert.equal(d.status, 'error');
  assert.equal(d.summary, "root cannot open the Nix store on this machine; could not tell whether the build users group 'nixbld' exists");
  assert.deepEqual(d.cause?.split('\n'), ['/nix/var/nix is not writable by root and no nix-daemon listens on /nix/var/nix/daemon-socket/socket.', 'getent group nixbld: exit code 1.']);
  assert.deepEqual(d.fix?.split('\n'), ['Start nix-daemon on this machine (`systemctl start nix-daemon`).']);
});
