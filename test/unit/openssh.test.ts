// The OpenSSH fallback without a network: what to hand to OpenSSH, the arguments Nix's ssh gets,
// and ssh's own debug log read back into the doctor's report. The logs below were recorded from
// OpenSSH 9.2p1 against the lab (`-oLogLevel=DEBUG1 -E <file>`; lines the reader ignores, such as
// key exchange details, left out; the lab folder written as $LAB).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ExecaRunner, type ProcessRunner, type RunRequest } from '../../language-server/nix/runner';
import { parseKnownHosts, parsePublicKeyLine, privateKeyType } from '../../language-server/remote/hostKeys';
import {
  agentKeyTypes,
  connectOpenSsh,
  identityKeyType,
  jumpProxyCommand,
  opensshOnlyLogins,
  opensshOnlyReasons,
  parseOpenSshLog,
  parseProxyJump,
  unvis,
  type JumpHop,
  type OpenSshOptions,
} from '../../language-server/remote/openssh';
import { REMOTE_COMMAND, shellQuote } from '../../language-server/remote/shellQuote';
import { parseSshG } from '../../language-server/remote/sshConfig';
import { writeSecurityKey } from '../lab/securityKey';

const OPENSSH_9_2P1_LOGS = {
  certok: `debug1: Connecting to 127.0.0.1 [127.0.0.1] port 39579.
debug1: Connection established.
debug1: Remote protocol version 2.0, remote software version OpenSSH_9.2p1 Debian-2+deb12u10
debug1: Authenticating to 127.0.0.1:39579 as 'root'
debug1: Server host certificate: ssh-ed25519-cert-v01@openssh.com SHA256:wf2DF8ELmhZmk7Smi/w3tu41uiU9a/E83yo3xZ0gzGk, serial 0 ID "lab builder b1" CA ssh-ed25519 SHA256:ePXOWqOayo6gUny5Z95an2ICezsvV4DXdy76nfh94qc valid forever
debug1: Host 'b1' is known and matches the ED25519-CERT host certificate.
debug1: Found CA key in $LAB/ca_kh:1
debug1: Authentications that can continue: publickey
debug1: Offering public key: $LAB/id_ed25519 ED25519 SHA256:yl7Hk/tCvodI1Jw5BKVpqNiC4SziYSBSrdtlmOwC9Fs explicit
debug1: Server accepts key: $LAB/id_ed25519 ED25519 SHA256:yl7Hk/tCvodI1Jw5BKVpqNiC4SziYSBSrdtlmOwC9Fs explicit
Authenticated to 127.0.0.1 ([127.0.0.1]:39579) using "publickey".
debug1: Sending command: exec /bin/sh -s
debug1: Exit status 0
`,
  certother: `debug1: Connecting to 127.0.0.1 [127.0.0.1] port 39579.
debug1: Connection established.
debug1: Remote protocol version 2.0, remote software version OpenSSH_9.2p1 Debian-2+deb12u10
debug1: Authenticating to 127.0.0.1:39579 as 'root'
debug1: Server host certificate: ssh-ed25519-cert-v01@openssh.com SHA256:wf2DF8ELmhZmk7Smi/w3tu41uiU9a/E83yo3xZ0gzGk, serial 0 ID "lab builder b1" CA ssh-ed25519 SHA256:ePXOWqOayo6gUny5Z95an2ICezsvV4DXdy76nfh94qc valid forever
debug1: No matching CA found. Retry with plain key
No ED25519 host key is known for b1 and you have requested strict checking.
Host key verification failed.
`,
  certprincipal: `debug1: Connecting to 127.0.0.1 [127.0.0.1] port 39579.
debug1: Connection established.
debug1: Remote protocol version 2.0, remote software version OpenSSH_9.2p1 Debian-2+deb12u10
debug1: Authenticating to 127.0.0.1:39579 as 'root'
debug1: Server host certificate: ssh-ed25519-cert-v01@openssh.com SHA256:wf2DF8ELmhZmk7Smi/w3tu41uiU9a/E83yo3xZ0gzGk, serial 0 ID "lab builder b1" CA ssh-ed25519 SHA256:ePXOWqOayo6gUny5Z95an2ICezsvV4DXdy76nfh94qc valid forever
debug1: Host 'b9' is known and matches the ED25519-CERT host certificate.
debug1: Found CA key in $LAB/ca_b9_kh:1
Certificate invalid: name is not a listed principal
debug1: No matching CA found. Retry with plain key
No ED25519 host key is known for b9 and you have requested strict checking.
Host key verification failed.
`,
  changed: `debug1: Connecting to 127.0.0.1 [127.0.0.1] port 39579.
debug1: Connection established.
debug1: Remote protocol version 2.0, remote software version OpenSSH_9.2p1 Debian-2+deb12u10
debug1: Authenticating to 127.0.0.1:39579 as 'root'
debug1: Server host certificate: ssh-ed25519-cert-v01@openssh.com SHA256:wf2DF8ELmhZmk7Smi/w3tu41uiU9a/E83yo3xZ0gzGk, serial 0 ID "lab builder b1" CA ssh-ed25519 SHA256:ePXOWqOayo6gUny5Z95an2ICezsvV4DXdy76nfh94qc valid forever
debug1: No matching CA found. Retry with plain key
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:wf2DF8ELmhZmk7Smi/w3tu41uiU9a/E83yo3xZ0gzGk.
Please contact your system administrator.
Add correct host key in $LAB/changed_kh to get rid of this message.
Offending ED25519 key in $LAB/changed_kh:1
  remove with:
  ssh-keygen -f "$LAB/changed_kh" -R "b1"
Host key for b1 has changed and you have requested strict checking.
Host key verification failed.
`,
  denied: `debug1: Connecting to 127.0.0.1 [127.0.0.1] port 39579.
debug1: Connection established.
debug1: Remote protocol version 2.0, remote software version OpenSSH_9.2p1 Debian-2+deb12u10
debug1: Authenticating to 127.0.0.1:39579 as 'root'
debug1: Server host certificate: ssh-ed25519-cert-v01@openssh.com SHA256:wf2DF8ELmhZmk7Smi/w3tu41uiU9a/E83yo3xZ0gzGk, serial 0 ID "lab builder b1" CA ssh-ed25519 SHA256:ePXOWqOayo6gUny5Z95an2ICezsvV4DXdy76nfh94qc valid forever
debug1: No matching CA found. Retry with plain key
debug1: Host 'b1' is known and matches the ED25519 host key.
debug1: Found key in $LAB/known_hosts:1
debug1: Authentications that can continue: publickey
debug1: Offering public key: $LAB/otherca ED25519 SHA256:1VW+UG2aJsC1i10D/JvRV4AZhbJH8vTVH26XRw4RfCQ explicit
debug1: Authentications that can continue: publickey
debug1: No more authentication methods to try.
root@127.0.0.1: Permission denied (publickey).
`,
  refused: `debug1: Connecting to 127.0.0.1 [127.0.0.1] port 1.
debug1: connect to address 127.0.0.1 port 1: Connection refused
ssh: connect to host 127.0.0.1 port 1: Connection refused
`,
  dns: `ssh: Could not resolve hostname nonexistent.invalid: Name or service not known
`,
  jumpbad: `debug1: Setting implicit ProxyCommand from ProxyJump: ssh -F $LAB/ssh_config -W '[%h]:%p' b2
debug1: Executing proxy command: exec ssh -F $LAB/ssh_config -W '[lab-b1-behind-b2]:1' b2
kex_exchange_identification: Connection closed by remote host
Connection closed by UNKNOWN port 65535
`,
};

const K1 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICheyNS+5lzd/FAxVj5aHbqeoGbSjBotu4U9T+300Ech';
const config = (extra = '') =>
  parseSshG(`host b1\nhostname 127.0.0.1\nport 39579\nuser root\nhostkeyalias b1\nuserknownhostsfile $LAB/known_hosts\n${extra}`, 'b1', { home: '/root', localUser: 'root' });

/** A runner that plays ssh: writes a recorded log where `-E` says and answers with `result`. */
function fakeSsh(log: string, result: { exitCode: number; stdout?: string; stderr?: string }): { runner: ProcessRunner; requests: RunRequest[] } {
  const requests: RunRequest[] = [];
  const runner: ProcessRunner = {
    run: async (req) => {
      requests.push(req);
      const logFile = req.args[req.args.indexOf('-E') + 1] as string;
      writeFileSync(logFile, log);
      const out = { command: [req.file, ...req.args], stdout: result.stdout ?? '', stderr: result.stderr ?? '', durationMs: 1 };
      return result.exitCode === 0 ? { ...out, kind: 'ok' } : { ...out, kind: 'exit', exitCode: result.exitCode, signal: undefined };
    },
  };
  return { runner, requests };
}

const files: Record<string, string> = {
  '$LAB/known_hosts': `b1 ${K1}\n`,
  '$LAB/ca_kh': `@cert-authority b1 ${K1}\n`,
  '$LAB/changed_kh': `b1 ${K1}\n`,
};
const readFile = async (p: string) => {
  const text = files[p];
  if (text === undefined) throw Object.assign(new Error(`ENOENT ${p}`), { code: 'ENOENT' });
  return Buffer.from(text);
};

function options(runner: ProcessRunner, over: Partial<OpenSshOptions> = {}): OpenSshOptions {
  return {
    runner,
    env: {},
    dest: { host: 'b1', identityFile: '$LAB/id_ed25519' },
    nixSshOpts: '-F $LAB/ssh_config',
    config: config(),
    uriHost: 'b1',
    timeouts: { tcpMs: 5000, handshakeMs: 10_000, authMs: 10_000 },
    reasons: ['a reason'],
    readFile,
    ...over,
  };
}

test('fallback reasons: ProxyJump/ProxyCommand, @cert-authority for the name ssh looks up, security keys, options ssh2 lacks', () => {
  const none = { knownHosts: [], lookupName: 'b1', identityTypes: new Map<string, string>() };
  assert.deepEqual(opensshOnlyReasons({ ...none, config: config() }), []);
  assert.deepEqual(opensshOnlyReasons({ ...none, config: config('proxyjump jump.example.org\n') }), ['it is reached through ProxyJump jump.example.org']);
  assert.deepEqual(opensshOnlyReasons({ ...none, config: config('proxycommand nc -X 5 %h %p\n') }), ['it is reached through ProxyCommand nc -X 5 %h %p']);
  const ca = parseKnownHosts(`@cert-authority *.lab,b1 ${K1}\nb2 ${K1}\n`, '/kh').entries;
  assert.deepEqual(opensshOnlyReasons({ ...none, config: config(), knownHosts: ca }), ["host certificates are trusted for 'b1' (@cert-authority in /kh:1)"]);
  assert.deepEqual(opensshOnlyReasons({ ...none, config: config(), knownHosts: ca, lookupName: 'b2' }), [], 'a CA for other names does not count');
  const sk = new Map([['/root/.ssh/id_ed25519_sk', 'sk-ssh-ed25519@openssh.com'], ['/root/.ssh/id_ed25519', 'ssh-ed25519']]);
  assert.deepEqual(opensshOnlyReasons({ ...none, config: config(), identityTypes: sk }), ['/root/.ssh/id_ed25519_sk is a security-key (sk-ssh-ed25519@openssh.com) key']);
  assert.deepEqual(opensshOnlyReasons({ ...none, config: config('certificatefile /root/.ssh/id-cert.pub\nverifyhostkeydns false\ngssapiauthentication yes\n') }), ['the ssh config uses user certificates (CertificateFile)']);
  assert.deepEqual(opensshOnlyReasons({ ...none, config: config('verifyhostkeydns yes\n') }), ['the ssh config uses host keys from DNS (VerifyHostKeyDNS)']);
  assert.deepEqual(opensshOnlyReasons({ ...none, config: config('setenv NIX_REMOTE=daemon\nbindaddress 10.0.0.2\n') }), [
    'the ssh config uses a local source address (BindAddress)',
    'the ssh config uses variables for the remote environment (SetEnv)',
  ]);
});

test('login methods only OpenSSH has count once ssh2\'s keys were refused, and only where the config enables them', () => {
  const methods = ['publickey', 'gssapi-with-mic'];
  assert.deepEqual(opensshOnlyLogins(config('gssapiauthentication yes\n'), methods), ['the server also accepts Kerberos (GSSAPIAuthentication), which ssh2 cannot use']);
  assert.deepEqual(opensshOnlyLogins(config('gssapiauthentication no\n'), methods), []);
  assert.deepEqual(opensshOnlyLogins(config('gssapiauthentication yes\n'), ['publickey']), []);
  const sk = ['ssh-ed25519', 'sk-ssh-ed25519@openssh.com'];
  assert.deepEqual(opensshOnlyLogins(config(), ['publickey'], sk), ['the ssh agent holds a security-key (sk-ssh-ed25519@openssh.com) key, which ssh2 cannot use']);
  assert.deepEqual(opensshOnlyLogins(config(), undefined, sk).length, 1, 'ssh2 never asked the server: it had no key to offer');
  assert.deepEqual(opensshOnlyLogins(config(), ['password'], sk), []);
  assert.deepEqual(opensshOnlyLogins(config(), ['publickey'], ['ssh-ed25519']), []);
});

test('the key types an ssh agent holds, security keys included (ssh2 skips those)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nbp-agent-'));
  const socket = path.join(dir, 'agent.sock');
  const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 200 && !existsSync(socket); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(await agentKeyTypes(socket, 5000), []);
    const plain = path.join(dir, 'id');
    assert.equal(spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', plain]).status, 0);
    writeSecurityKey(path.join(dir, 'id_sk'), 'test security key');
    const env = { ...process.env, SSH_AUTH_SOCK: socket };
    for (const key of [plain, path.join(dir, 'id_sk')]) assert.equal(spawnSync('ssh-add', ['-q', key], { env }).status, 0);
    assert.deepEqual(await agentKeyTypes(socket, 5000), ['ssh-ed25519', 'sk-ssh-ed25519@openssh.com']);
    assert.equal(await agentKeyTypes(path.join(dir, 'no-agent.sock'), 5000), undefined);
  } finally {
    agent.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the key type of an identity: from its .pub, else from the OpenSSH private key (also with a passphrase)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nbp-openssh-'));
  try {
    const key = path.join(dir, 'id');
    const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret passphrase', '-f', key], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(privateKeyType(readFileSync(key)), 'ssh-ed25519');
    rmSync(`${key}.pub`);
    assert.equal(await identityKeyType(key, async (p) => readFileSync(p)), 'ssh-ed25519');
    // A security key (ssh-keygen -t ed25519-sk needs the device), by its .pub and by the key itself.
    const sk = path.join(dir, 'id_sk');
    writeSecurityKey(sk, 'test security key');
    assert.equal(await identityKeyType(sk, async (p) => readFileSync(p)), 'sk-ssh-ed25519@openssh.com');
    assert.equal(privateKeyType(readFileSync(sk)), 'sk-ssh-ed25519@openssh.com');
    assert.equal(privateKeyType(Buffer.from('not a key')), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ssh gets what Nix gives it (NIX_SSHOPTS, -i, column 8 as UserKnownHostsFile) plus batch mode, the shell-neutral command and the script on stdin', async () => {
  const { runner, requests } = fakeSsh(OPENSSH_9_2P1_LOGS.certok, { exitCode: 0 });
  let written = '';
  const spy: ProcessRunner = {
    run: async (req) => {
      const file = req.args.find((a) => a.startsWith('-oUserKnownHostsFile='));
      written = file ? readFileSync(file.slice('-oUserKnownHostsFile='.length), 'utf8') : '';
      return runner.run(req);
    },
  };
  const key = parsePublicKeyLine(K1);
  assert.ok(key);
  const conn = await connectOpenSsh(options(spy, { machinesKeys: [key], dest: { host: 'b1', user: 'nixremote', identityFile: '$LAB/id_ed25519' } }));
  assert.ok(conn.ok);
  const args = requests[0]!.args;
  const logFile = args[args.indexOf('-E') + 1];
  const hostKeyFile = args.find((a) => a.startsWith('-oUserKnownHostsFile='));
  assert.deepEqual(args, [
    '-oBatchMode=yes',
    '-oStrictHostKeyChecking=yes',
    '-oUpdateHostKeys=no',
    '-oControlMaster=no',
    '-oControlPath=none',
    '-oConnectTimeout=5',
    '-oLogLevel=DEBUG1',
    '-E',
    logFile,
    '-x',
    '-a',
    '-F',
    '$LAB/ssh_config',
    '-i',
    '$LAB/id_ed25519',
    hostKeyFile,
    '--',
    'nixremote@b1',
    REMOTE_COMMAND,
  ]);
  assert.equal(written, `b1 ${K1}\n`, 'column 8 under the URI host, as Nix writes it');
  assert.equal(requests[0]!.input, '');
  // Never a window: askpass off, and what older clients need for it gone.
  assert.equal(requests[0]!.env?.SSH_ASKPASS_REQUIRE, 'never');
  assert.deepEqual(requests[0]!.unsetEnv, ['DISPLAY', 'WAYLAND_DISPLAY', 'SSH_ASKPASS']);
  assert.equal(requests[0]!.env?.SHELL, undefined, 'no ProxyCommand of the doctor: SHELL as it is');
  // -M and -S in NIX_SSHOPTS would override ControlMaster=no / ControlPath=none.
  const mux = fakeSsh(OPENSSH_9_2P1_LOGS.certok, { exitCode: 0 });
  await connectOpenSsh(options(mux.runner, { nixSshOpts: '-F $LAB/ssh_config -M -S /tmp/cm-%C -Mq -oCompression=yes -S/tmp/cm2' }));
  const muxArgs = mux.requests[0]!.args;
  assert.deepEqual(muxArgs.slice(muxArgs.indexOf('-a') + 1, muxArgs.indexOf('-i')), ['-F', '$LAB/ssh_config', '-Mq', '-oCompression=yes']);
  const run = await conn.session.run('echo hi', { timeoutMs: 1000 });
  assert.equal(requests[1]!.input, 'echo hi');
  assert.equal(run.kind, 'exit');
  assert.equal(run.kind === 'exit' ? run.code : -1, 0);
});

test('a trusted host certificate: verdict match on the @cert-authority line, the certificate and its CA named', async () => {
  const conn = await connectOpenSsh(options(fakeSsh(OPENSSH_9_2P1_LOGS.certok, { exitCode: 0 }).runner));
  assert.ok(conn.ok);
  const hk = conn.report.hostKey;
  assert.equal(hk?.verdict.kind, 'match');
  assert.equal(hk?.verdict.kind === 'match' ? `${hk.verdict.entry.source}:${hk.verdict.entry.line}:${hk.verdict.entry.marker}` : '', '$LAB/ca_kh:1:cert-authority');
  assert.deepEqual(hk?.certificate, { id: 'lab builder b1', ca: 'ssh-ed25519 SHA256:ePXOWqOayo6gUny5Z95an2ICezsvV4DXdy76nfh94qc' });
  assert.deepEqual(hk?.presented, { type: 'ssh-ed25519-cert-v01@openssh.com', fingerprint: 'SHA256:wf2DF8ELmhZmk7Smi/w3tu41uiU9a/E83yo3xZ0gzGk' });
  assert.deepEqual(conn.report.tcp, { ok: true, address: '127.0.0.1:39579', durationMs: 0 });
  assert.deepEqual(conn.report.auth?.attempts, [{ method: 'publickey', source: '$LAB/id_ed25519', outcome: 'accepted', fingerprint: 'SHA256:yl7Hk/tCvodI1Jw5BKVpqNiC4SziYSBSrdtlmOwC9Fs' }]);
  assert.deepEqual(conn.report.openssh, { reasons: ['a reason'] });
});

test('a certificate of an untrusted CA, or for another principal: the plain key is unknown, and why the certificate did not help', async () => {
  const other = await connectOpenSsh(options(fakeSsh(OPENSSH_9_2P1_LOGS.certother, { exitCode: 255 }).runner));
  assert.equal(other.ok, false);
  assert.equal(!other.ok && other.failure.kind, 'host-key-unknown');
  assert.deepEqual(other.report.hostKey?.presented, { type: 'ssh-ed25519', fingerprint: 'SHA256:wf2DF8ELmhZmk7Smi/w3tu41uiU9a/E83yo3xZ0gzGk' });
  assert.equal(other.report.hostKey?.certificateProblem, "it is signed by the CA ssh-ed25519 SHA256:ePXOWqOayo6gUny5Z95an2ICezsvV4DXdy76nfh94qc, which no @cert-authority line for 'b1' trusts");
  const principal = parseOpenSshLog(OPENSSH_9_2P1_LOGS.certprincipal);
  assert.equal(principal.certificateProblem, 'name is not a listed principal');
  assert.equal(principal.found, undefined, 'the CA line matched, but the certificate was refused');
  assert.equal(principal.hostKeyProblem, 'unknown');
});

test('host key changed: mismatch with the offending known_hosts entry', async () => {
  const conn = await connectOpenSsh(options(fakeSsh(OPENSSH_9_2P1_LOGS.changed, { exitCode: 255 }).runner));
  assert.equal(!conn.ok && conn.failure.kind, 'host-key-changed');
  const v = conn.report.hostKey?.verdict;
  assert.equal(v?.kind, 'mismatch');
  assert.deepEqual(v?.kind === 'mismatch' ? v.expected.map((e) => `${e.source}:${e.line}`) : [], ['$LAB/changed_kh:1']);
  assert.ok(v?.kind === 'mismatch' && v.sameType);
});

test('permission denied: every offered key rejected, the same auth-failed as with ssh2', async () => {
  const conn = await connectOpenSsh(options(fakeSsh(OPENSSH_9_2P1_LOGS.denied, { exitCode: 255 }).runner));
  assert.equal(conn.ok, false);
  assert.deepEqual(!conn.ok && conn.failure, { kind: 'auth-failed', message: 'the server refused every key (Permission denied (publickey))' });
  assert.equal(conn.report.hostKey?.verdict.kind, 'match');
  assert.deepEqual(conn.report.auth?.attempts, [{ method: 'publickey', source: '$LAB/otherca', outcome: 'rejected', fingerprint: 'SHA256:1VW+UG2aJsC1i10D/JvRV4AZhbJH8vTVH26XRw4RfCQ' }]);
});

test('TCP failures and a failing jump host map to the ssh2 failure kinds', async () => {
  const refused = await connectOpenSsh(options(fakeSsh(OPENSSH_9_2P1_LOGS.refused, { exitCode: 255 }).runner));
  assert.deepEqual(!refused.ok && refused.failure, { kind: 'connection-refused', message: 'ssh: connect to host 127.0.0.1 port 1: Connection refused' });
  const dns = await connectOpenSsh(options(fakeSsh(OPENSSH_9_2P1_LOGS.dns, { exitCode: 255 }).runner));
  assert.equal(!dns.ok && dns.failure.kind, 'dns');
  const jump = await connectOpenSsh(options(fakeSsh(OPENSSH_9_2P1_LOGS.jumpbad, { exitCode: 255, stderr: 'channel 0: open failed: connect failed: Connection refused\nstdio forwarding failed\n' }).runner));
  assert.deepEqual(!jump.ok && jump.failure, {
    kind: 'proxy-failed',
    proxy: "ssh -F $LAB/ssh_config -W '[lab-b1-behind-b2]:1' b2",
    message: 'channel 0: open failed: connect failed: Connection refused / stdio forwarding failed',
  });
  assert.equal(jump.report.tcp, undefined);
});

test('ProxyJump values: hops in connection order, user@host:port, [numeric] hosts, ssh:// URIs', () => {
  assert.deepEqual(parseProxyJump('b2'), [{ host: 'b2' }]);
  assert.deepEqual(parseProxyJump('ssh://u@a:2222,root@[10.0.0.1]:22,[::1],b'), [{ user: 'u', host: 'a', port: 2222 }, { user: 'root', host: '10.0.0.1', port: 22 }, { host: '::1' }, { host: 'b' }]);
  assert.equal(parseProxyJump('a,@b'), undefined);
  assert.equal(parseProxyJump('a:b:c'), undefined);
});

/** The ProxyCommand as ssh runs it: %-tokens expanded, `exec ` in front, by `sh -c`; here with a `ssh` that prints its arguments. */
function runAsSsh(command: string, host: string, port: number, printArgs: string): string[] {
  const expanded = `exec ${command}`.replace(/%([%hp])/g, (_m, c: string) => (c === '%' ? '%' : c === 'h' ? host : String(port)));
  const r = spawnSync('/bin/sh', ['-c', expanded.replace(/^exec (\S+)/, () => `exec ${shellQuote(printArgs)}`)], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\0').slice(0, -1);
}

test('jump hosts get the strict options: a chain of ProxyCommands, each word exact after ssh\'s %-expansion and /bin/sh, the user\'s SHELL only for a hop with its own ProxyCommand', () => {
  // Quotes, %-tokens and backslashes, which ssh's own -o parsing also reads.
  const dir = mkdtempSync(path.join(tmpdir(), "nbp-jump-%h 'q' \\\\-\\'\""));
  try {
    const printArgs = path.join(dir, 'print-args');
    writeFileSync(printArgs, '#!/bin/sh\nfor a in "$@"; do printf \'%s\\0\' "$a"; done\n', { mode: 0o755 });
    const hop = (label: string, g: string, via?: JumpHop): JumpHop => ({ spec: parseProxyJump(label)![0]!, label, config: parseSshG(g, label, { home: '/root', localUser: 'root' }), ...(via ? { via } : {}) });
    const first = hop('a', 'hostname 10.0.0.5\nport 22\nproxycommand nc -X 5 %h %p\n');
    const last = hop('u@b:2200', 'hostname b.example.org\nport 2200\n', first);
    const configFile = path.join(dir, 'ssh_config %p');
    const ctx = { ssh: 'ssh', configFile, timeouts: { tcpMs: 5000, handshakeMs: 1, authMs: 1 }, logFile: (h: JumpHop) => path.join(dir, `${h.label}.log`), userShell: '/usr/bin/fish' };
    // ssh accepts it as an -o value and keeps it as it is.
    const g = spawnSync('ssh', ['-G', '-F', '/dev/null', `-oProxyCommand=${jumpProxyCommand(last, ctx)}`, 'x'], { encoding: 'utf8' });
    assert.equal(g.status, 0, g.stderr);
    assert.ok(g.stdout.split('\n').includes(`proxycommand ${jumpProxyCommand(last, ctx)}`), g.stdout);
    const outer = runAsSsh(jumpProxyCommand(last, ctx), 'lab-b1', 22, printArgs);
    const strict = ['-oBatchMode=yes', '-oStrictHostKeyChecking=yes', '-oUpdateHostKeys=no', '-oControlMaster=no', '-oControlPath=none', '-oConnectTimeout=5', '-oLogLevel=DEBUG1'];
    assert.deepEqual(outer, [...strict, '-E', path.join(dir, 'u@b:2200.log'), `-oProxyCommand=${jumpProxyCommand(first, ctx)}`, '-F', configFile, '-l', 'u', '-p', '2200', '-W', '[lab-b1]:22', '--', 'b']);
    // The hop before it, as b's ssh runs it: its own ProxyCommand (the user's) needs the user's shell.
    const inner = runAsSsh(jumpProxyCommand(first, ctx), 'b.example.org', 2200, printArgs);
    assert.deepEqual(inner, ['SHELL=/usr/bin/fish', 'ssh', ...strict, '-E', path.join(dir, 'a.log'), '-F', configFile, '-W', '[b.example.org]:2200', '--', 'a']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a jump host whose key ssh does not know: the failure names the jump host, -J leaves NIX_SSHOPTS, the ProxyCommand runs under /bin/sh', async () => {
  const requests: RunRequest[] = [];
  const jumpLog = `debug1: Connecting to 127.0.0.1 [127.0.0.1] port 39580.
debug1: Connection established.
debug1: Remote protocol version 2.0, remote software version OpenSSH_9.2p1 Debian-2+deb12u10
debug1: Authenticating to 127.0.0.1:39580 as 'root'
debug1: Server host key: ssh-ed25519 SHA256:wf2DF8ELmhZmk7Smi/w3tu41uiU9a/E83yo3xZ0gzGk
No ED25519 host key is known for jumphost and you have requested strict checking.
Host key verification failed.
`;
  const runner: ProcessRunner = {
    run: async (req) => {
      requests.push(req);
      const out = { command: [req.file, ...req.args], stderr: '', durationMs: 1 };
      if (req.args[0] === '-G') return { ...out, kind: 'ok', stdout: 'hostname 127.0.0.1\nport 39580\nuser root\nhostkeyalias jumphost\nuserknownhostsfile $LAB/jump_kh\nstricthostkeychecking accept-new\n' };
      const proxy = req.args.find((a) => a.startsWith('-oProxyCommand=')) ?? '';
      writeFileSync(/-E (\S+jump-1\.log)/.exec(proxy)![1]!, jumpLog);
      writeFileSync(req.args[req.args.indexOf('-E') + 1]!, `debug1: Executing proxy command: exec ${proxy.slice('-oProxyCommand='.length)}\nkex_exchange_identification: Connection closed by remote host\n`);
      return { ...out, kind: 'exit', stdout: '', exitCode: 255, signal: undefined };
    },
  };
  const conn = await connectOpenSsh(options(runner, { config: config('proxyjump jumphost\n'), nixSshOpts: '-F $LAB/ssh_config -J jumphost', env: { SHELL: '/usr/bin/fish' } }));
  assert.equal(conn.ok, false);
  assert.deepEqual(!conn.ok && conn.failure, {
    kind: 'host-key-unknown',
    presented: { type: 'ssh-ed25519', fingerprint: 'SHA256:wf2DF8ELmhZmk7Smi/w3tu41uiU9a/E83yo3xZ0gzGk' },
    message: "ssh does not know the host key of the jump host jumphost (ssh-ed25519 SHA256:wf2DF8ELmhZmk7Smi/w3tu41uiU9a/E83yo3xZ0gzGk) under 'jumphost'",
  });
  const jump = conn.report.openssh?.jumpHosts?.[0];
  assert.equal(jump?.alias, 'jumphost');
  assert.equal(jump?.config.strictHostKeyChecking, 'accept-new');
  assert.equal(jump?.hostKey?.verdict.kind, 'unknown');
  assert.deepEqual(requests[0]!.args, ['-G', '-F', '$LAB/ssh_config', '--', 'jumphost']);
  const main = requests[1]!;
  assert.equal(main.args.filter((a) => a === '-J' || a === 'jumphost').length, 0, main.args.join(' '));
  assert.equal(main.env?.SHELL, '/bin/sh');
  assert.equal(main.env?.SSH_ASKPASS_REQUIRE, 'never');
});

test('the environment ssh really gets (through the process runner): SSH_ASKPASS_REQUIRE=never, no DISPLAY, WAYLAND_DISPLAY nor SSH_ASKPASS, also when the server\'s own environment has them', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nbp-openssh-env-'));
  const saved = process.env.WAYLAND_DISPLAY;
  process.env.WAYLAND_DISPLAY = 'wayland-1';
  try {
    const fakeSshBinary = path.join(dir, 'ssh');
    const envFile = path.join(dir, 'env');
    writeFileSync(fakeSshBinary, `#!/bin/sh\nenv > ${shellQuote(envFile)}\nexit 255\n`, { mode: 0o755 });
    const env = { DISPLAY: ':99', SSH_ASKPASS: '/usr/bin/ssh-askpass', SSH_ASKPASS_REQUIRE: 'force', NBP_KEPT: 'yes' };
    const conn = await connectOpenSsh(options(new ExecaRunner(), { env, sshBinary: fakeSshBinary }));
    assert.equal(conn.ok, false);
    const seen = readFileSync(envFile, 'utf8').split('\n');
    assert.ok(seen.includes('SSH_ASKPASS_REQUIRE=never'));
    assert.ok(seen.includes('NBP_KEPT=yes'));
    assert.deepEqual(seen.filter((l) => /^(DISPLAY|WAYLAND_DISPLAY|SSH_ASKPASS)=/.test(l)), []);
  } finally {
    if (saved === undefined) delete process.env.WAYLAND_DISPLAY;
    else process.env.WAYLAND_DISPLAY = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ssh\'s log escapes (strnvis VIS_SAFE|VIS_OCTAL): a backslash doubled, other bytes in octal, UTF-8 names too', () => {
  assert.equal(unvis('debug1: Found key in /home/j\\303\\266rg/.ssh/known_hosts:3'), 'debug1: Found key in /home/jörg/.ssh/known_hosts:3');
  assert.equal(unvis("debug1: Found key in /tmp/a\\\\\\\\-\\\\'/host-key:1"), "debug1: Found key in /tmp/a\\\\-\\'/host-key:1");
  const log = parseOpenSshLog('debug1: Found key in /home/j\\303\\266rg/kh:1\n');
  assert.deepEqual(log.found, { file: '/home/jörg/kh', line: 1, ca: false });
});
