// The fallback for what ssh2 cannot do: the real OpenSSH client, run the way Nix runs it.
//
// ssh2 follows no ProxyJump/ProxyCommand, verifies no host certificates (it does not negotiate
// `*-cert-v01@openssh.com`), signs with no security key (sk-…), and lacks several ssh_config
// options. For such hosts the doctor must not report an error where Nix's own ssh would succeed,
// so it asks that ssh: `ssh <options Nix passes> host 'exec /bin/sh -s'` with the script on stdin,
// through the process runner (argument arrays, never a local shell). The outcome is read from
// ssh's own debug log (`-E file -oLogLevel=DEBUG1`, which holds only this ssh's messages: a
// ProxyJump's inner ssh logs to stderr) and mapped onto the same report as an ssh2 connection, so
// the checks say the same things either way.
//
// Options added to what Nix passes (`ssh host -x -a $NIX_SSHOPTS [-i col3] [-oUserKnownHostsFile=col8]`):
//   BatchMode=yes                 never wait for a prompt;
//   StrictHostKeyChecking=yes     never accept (and write) an unknown key: the doctor does not log
//                                 in to an unverified host; a lenient setting is judged from `ssh -G`;
//   UpdateHostKeys=no             never write known_hosts;
//   ConnectTimeout                the doctor's TCP timeout.
import { mkdtemp, readFile as fsReadFile, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ProcessRunner, RunResult } from '../nix/runner';
import { blobKeyType, hostPatternsMatch, knownHostsLine, machinesColumnEntries, parseKnownHosts, privateKeyType, sshString, type KnownHostEntry, type PublicKey } from './hostKeys';
import { REMOTE_COMMAND } from './shellQuote';
import { splitNixSshOpts, type EffectiveSshConfig, type SshDestination } from './sshConfig';
import type {
  AuthAttempt,
  ConnectOutcome,
  ConnectReport,
  ExecOptions,
  ExecResult,
  HostKeyReport,
  ReadFile,
  RemoteSession,
  SessionFailure,
  SshTimeouts,
} from './sshSession';
import type { HostKeyFingerprint } from '../protocol';

// ---------------------------------------------------------------------------------------------
// When to fall back (pure)

export interface FallbackInput {
  config: EffectiveSshConfig;
  /** Every known_hosts entry ssh reads for this connection (column 8 replaces the user's files). */
  knownHosts: readonly KnownHostEntry[];
  /** The name ssh looks up in known_hosts. */
  lookupName: string;
  /** Key types of the identity files that exist (file → e.g. "sk-ssh-ed25519@openssh.com"). */
  identityTypes: ReadonlyMap<string, string>;
}

/** `ssh -G` keys whose feature ssh2 lacks, and the values that leave the feature off. */
const UNSUPPORTED_OPTIONS: ReadonlyArray<{ key: string; off: readonly string[]; what: string }> = [
  { key: 'certificatefile', off: ['none'], what: 'user certificates (CertificateFile)' },
  { key: 'pkcs11provider', off: ['none'], what: 'PKCS#11 keys (PKCS11Provider)' },
  { key: 'knownhostscommand', off: ['none'], what: 'KnownHostsCommand' },
  { key: 'verifyhostkeydns', off: ['false', 'no'], what: 'host keys from DNS (VerifyHostKeyDNS)' },
  { key: 'bindaddress', off: [], what: 'a local source address (BindAddress)' },
  { key: 'bindinterface', off: [], what: 'a local interface (BindInterface)' },
  // The remote command's environment, i.e. what the probe sees (PATH, NIX_REMOTE, …).
  { key: 'setenv', off: [], what: 'variables for the remote environment (SetEnv)' },
];

/** Login methods ssh2 lacks, with the `ssh -G` key that enables each in OpenSSH. */
const UNSUPPORTED_LOGINS: ReadonlyArray<{ method: string; key: string; what: string }> = [
  { method: 'gssapi-with-mic', key: 'gssapiauthentication', what: 'Kerberos (GSSAPIAuthentication)' },
  { method: 'hostbased', key: 'hostbasedauthentication', what: 'host-based logins (HostbasedAuthentication)' },
];

/**
 * After ssh2's keys were refused: what Nix's ssh would still try and ssh2 cannot: login methods the
 * server offers (decided only then, since e.g. Fedora enables GSSAPI for every host), and
 * security-key keys of the ssh agent (ssh2 skips key types it does not know).
 */
export function opensshOnlyLogins(config: EffectiveSshConfig, serverMethods: readonly string[] | undefined, agentKeyTypes: readonly string[] = []): string[] {
  const reasons = UNSUPPORTED_LOGINS.filter((l) => serverMethods?.includes(l.method) && ['yes', 'true'].includes(config.raw.get(l.key)?.[0] ?? '')).map(
    (l) => `the server also accepts ${l.what}, which ssh2 cannot use`,
  );
  const sk = agentKeyTypes.find((t) => t.startsWith('sk-'));
  // Methods unknown: ssh2 never asked the server (it had no key to offer).
  if (sk && (serverMethods === undefined || serverMethods.includes('publickey'))) reasons.push(`the ssh agent holds a security-key (${sk}) key, which ssh2 cannot use`);
  return reasons;
}

/**
 * The key types an ssh agent holds (SSH2_AGENTC_REQUEST_IDENTITIES), or undefined when it does not
 * answer in time. Only the public blobs are read.
 */
export function agentKeyTypes(socket: string, timeoutMs: number): Promise<string[] | undefined> {
  return new Promise((resolve) => {
    const conn = net.connect({ path: socket });
    let data = Buffer.alloc(0);
    const done = (types: string[] | undefined) => {
      clearTimeout(timer);
      conn.destroy();
      resolve(types);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    conn.on('error', () => done(undefined));
    conn.on('connect', () => conn.write(Buffer.from([0, 0, 0, 1, 11])));
    conn.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (data.length < 4 || data.length < 4 + data.readUInt32BE(0)) return;
      // uint32 length, byte 12 (IDENTITIES_ANSWER), uint32 count, count × (string blob, string comment)
      if (data[4] !== 12 || data.length < 9) return done(undefined);
      const types: string[] = [];
      let offset = 9;
      for (let i = 0; i < data.readUInt32BE(5); i++) {
        const blob = sshString(data, offset);
        const comment = blob ? sshString(data, blob.next) : undefined;
        if (!blob || !comment) return done(undefined);
        const type = blobKeyType(blob.value);
        if (type) types.push(type);
        offset = comment.next;
      }
      done(types);
    });
  });
}

/** Why only OpenSSH can check this host as Nix's ssh would; empty when ssh2 can. */
export function opensshOnlyReasons(input: FallbackInput): string[] {
  const { config } = input;
  const reasons: string[] = [];
  if (config.proxyJump) reasons.push(`it is reached through ProxyJump ${config.proxyJump}`);
  else if (config.proxyCommand) reasons.push(`it is reached through ProxyCommand ${config.proxyCommand}`);
  const ca = input.knownHosts.find((e) => e.marker === 'cert-authority' && hostPatternsMatch(e.hostPatterns, input.lookupName));
  if (ca) reasons.push(`host certificates are trusted for '${input.lookupName}' (@cert-authority in ${ca.source}:${ca.line})`);
  for (const [file, type] of input.identityTypes) if (type.startsWith('sk-')) reasons.push(`${file} is a security-key (${type}) key`);
  for (const o of UNSUPPORTED_OPTIONS) {
    const value = config.raw.get(o.key)?.[0];
    if (value !== undefined && !o.off.includes(value.toLowerCase())) reasons.push(`the ssh config uses ${o.what}`);
  }
  return reasons;
}

/** The key type of an identity file (its `.pub`, else the public key inside an OpenSSH private key). */
export async function identityKeyType(file: string, read: ReadFile): Promise<string | undefined> {
  try {
    const type = (await read(`${file}.pub`)).toString('utf8').trim().split(/\s+/)[0];
    if (type) return type;
  } catch {
    // no .pub: look into the key itself
  }
  try {
    return privateKeyType(await read(file));
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// ssh's debug log (pure)

export interface OpenSshLog {
  /** The proxy command ssh ran (ProxyJump or ProxyCommand). */
  proxy?: string;
  /** A TCP connection was made (without a proxy). */
  connected: boolean;
  /** The SSH protocol started (a banner was received). */
  handshakeStarted: boolean;
  /** `ssh: connect to host … : Connection refused`, `ssh: Could not resolve hostname …`. */
  connectError?: string;
  /** `kex_exchange_identification: …`, `Connection closed by …` before the login. */
  handshakeError?: string;
  serverKey?: { type: string; fingerprint: string };
  certificate?: { type: string; id: string; ca: string };
  /** `Certificate invalid: name is not a listed principal` and the like. */
  certificateProblem?: string;
  /** Where the presented key (or, for a certificate, its CA) was found. */
  found?: { file: string; line: number; ca: boolean };
  hostKeyProblem?: 'unknown' | 'changed' | 'revoked';
  /** `Offending ED25519 key in file:line`. */
  offending: Array<{ file: string; line: number }>;
  attempts: Array<{ source: string; agent: boolean; fingerprint?: string; outcome: AuthAttempt['outcome'] }>;
  serverMethods?: string[];
  authenticated: boolean;
  /** `root@host: Permission denied (publickey).` */
  permissionDenied?: string;
  exitStatus?: number;
}

/** Read what OpenSSH (9.x) logs at DEBUG1. Total: lines it does not know are skipped. */
export function parseOpenSshLog(text: string): OpenSshLog {
  const log: OpenSshLog = { connected: false, handshakeStarted: false, offending: [], attempts: [], authenticated: false };
  const at = (s: string) => {
    const m = /^(.*):(\d+)$/.exec(s.trim());
    return m ? { file: m[1] as string, line: Number(m[2]) } : undefined;
  };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = /^debug1: Executing proxy command: (?:exec )?(.*)$/.exec(line))) log.proxy = m[1];
    else if (line === 'debug1: Connection established.') log.connected = true;
    else if (/^debug1: (Remote protocol version|Authenticating to) /.test(line)) log.handshakeStarted = true;
    else if ((m = /^ssh: (connect to host .*|Could not resolve hostname .*)$/.exec(line))) log.connectError = m[1];
    else if (/^(kex_exchange_identification: |Connection closed by |Connection reset by )/.test(line) && !log.authenticated) log.handshakeError ??= line;
    else if ((m = /^debug1: Server host key: (\S+) (SHA256:\S+)$/.exec(line))) log.serverKey = { type: m[1] as string, fingerprint: m[2] as string };
    else if ((m = /^debug1: Server host certificate: (\S+) (SHA256:[^,\s]+), serial \d+ ID "(.*)" CA (\S+ SHA256:\S+)/.exec(line))) {
      log.serverKey = { type: m[1] as string, fingerprint: m[2] as string };
      log.certificate = { type: m[1] as string, id: m[3] as string, ca: m[4] as string };
    } else if ((m = /^Certificate invalid: (.*)$/.exec(line))) log.certificateProblem = m[1];
    else if (line === 'debug1: No matching CA found. Retry with plain key') delete log.found;
    else if ((m = /^debug1: Found (CA )?key in (.*)$/.exec(line))) {
      const where = at(m[2] as string);
      if (where) log.found = { ...where, ca: m[1] !== undefined };
    } else if (/^No \S+ host key is known for .* and you have requested strict checking\.$/.test(line)) log.hostKeyProblem = 'unknown';
    else if (/REMOTE HOST IDENTIFICATION HAS CHANGED!/.test(line)) log.hostKeyProblem = 'changed';
    else if (/REVOKED HOST KEY DETECTED!|is marked as revoked/.test(line)) log.hostKeyProblem = 'revoked';
    else if ((m = /^Offending \S+ key in (.*)$/.exec(line))) {
      const where = at(m[1] as string);
      if (where) log.offending.push(where);
    } else if ((m = /^debug1: Authentications that can continue: (.*)$/.exec(line))) log.serverMethods = (m[1] as string).split(',');
    else if ((m = /^debug1: Offering public key: (.*) \S+ (SHA256:\S+)(.*)$/.exec(line))) {
      const [, source, fingerprint, rest] = m as unknown as [string, string, string, string];
      if (!log.attempts.some((a) => a.fingerprint === fingerprint && a.source === source)) {
        log.attempts.push({ source, agent: /\bagent\b/.test(rest), fingerprint, outcome: 'rejected' });
      }
    } else if ((m = /^debug1: Server accepts key: (.*) \S+ (SHA256:\S+)/.exec(line))) {
      const fingerprint = m[2];
      const attempt = log.attempts.find((a) => a.fingerprint === fingerprint);
      if (attempt) attempt.outcome = 'accepted';
    } else if ((m = /^debug1: Trying private key: (.*)$/.exec(line))) log.attempts.push({ source: m[1] as string, agent: false, outcome: 'rejected' });
    else if ((m = /^debug1: no such identity: (.*): No such file or directory$/.exec(line))) log.attempts.push({ source: m[1] as string, agent: false, outcome: 'missing' });
    else if ((m = /^Load key "(.*)": (.*)$/.exec(line))) {
      const [, source, why] = m as unknown as [string, string, string];
      const attempt = [...log.attempts].reverse().find((a) => a.source === source);
      if (attempt) attempt.outcome = /passphrase|incorrect/.test(why) ? 'encrypted' : 'unreadable';
    } else if (/^Authenticated to .* using /.test(line)) log.authenticated = true;
    else if ((m = /^(?:\S+: )?(Permission denied \(.*\))\.$/.exec(line))) log.permissionDenied = m[1];
    else if ((m = /^debug1: Exit status (-?\d+)$/.exec(line))) log.exitStatus = Number(m[1]);
  }
  return log;
}

// ---------------------------------------------------------------------------------------------
// Running ssh

export interface OpenSshOptions {
  runner: ProcessRunner;
  /** Environment added to the server's (SSH_AUTH_SOCK, …). */
  env: Readonly<Record<string, string>>;
  dest: SshDestination;
  /** NIX_SSHOPTS, split as Nix splits it. */
  nixSshOpts: string | undefined;
  config: EffectiveSshConfig;
  /** The host of the store URI: Nix writes column 8 under this name. */
  uriHost: string;
  machinesKeys?: readonly PublicKey[];
  agentSocket?: string;
  timeouts: SshTimeouts;
  /** Why ssh2 could not check this host (from opensshOnlyReasons). */
  reasons: readonly string[];
  signal?: AbortSignal;
  readFile?: ReadFile;
  /** Default "ssh". */
  sshBinary?: string;
}

const COLUMN_LABEL = 'column 8 of the machines line';

/** The ssh arguments for one run; `hostKeyFile`: the known_hosts file Nix writes for column 8. */
export function opensshArgs(opts: Pick<OpenSshOptions, 'dest' | 'nixSshOpts' | 'timeouts'>, logFile: string, hostKeyFile: string | undefined): string[] {
  const { dest } = opts;
  return [
    '-oBatchMode=yes',
    '-oStrictHostKeyChecking=yes',
    '-oUpdateHostKeys=no',
    `-oConnectTimeout=${Math.max(1, Math.ceil(opts.timeouts.tcpMs / 1000))}`,
    '-oLogLevel=DEBUG1',
    '-E',
    logFile,
    '-x',
    '-a',
    ...splitNixSshOpts(opts.nixSshOpts),
    ...(dest.identityFile ? ['-i', dest.identityFile] : []),
    ...(hostKeyFile ? [`-oUserKnownHostsFile=${hostKeyFile}`] : []),
    '--',
    dest.user ? `${dest.user}@${dest.host}` : dest.host,
    REMOTE_COMMAND,
  ];
}

interface Run {
  result: RunResult;
  log: OpenSshLog;
  /** The column-8 file's path in the log (gone after the run). */
  hostKeyFile?: string;
}

async function runSsh(opts: OpenSshOptions, script: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<Run> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nix-builders-ssh-'));
  try {
    const logFile = path.join(dir, 'ssh.log');
    let hostKeyFile: string | undefined;
    if (opts.machinesKeys && opts.machinesKeys.length > 0) {
      hostKeyFile = path.join(dir, 'host-key');
      await writeFile(hostKeyFile, opts.machinesKeys.map((k) => `${knownHostsLine(opts.uriHost, k)}\n`).join(''));
    }
    const result = await opts.runner.run({
      file: opts.sshBinary ?? 'ssh',
      args: opensshArgs(opts, logFile, hostKeyFile),
      env: { ...opts.env },
      input: script,
      timeoutMs,
      signal,
    });
    const text = await fsReadFile(logFile, 'utf8').catch(() => '');
    return { result, log: parseOpenSshLog(text), ...(hostKeyFile ? { hostKeyFile } : {}) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The known_hosts entry at file:line, as ssh read it. */
async function entryAt(where: { file: string; line: number }, run: Run, opts: OpenSshOptions): Promise<KnownHostEntry | undefined> {
  if (where.file === run.hostKeyFile) return machinesColumnEntries(opts.uriHost, opts.machinesKeys ?? [], COLUMN_LABEL)[where.line - 1];
  try {
    const text = await (opts.readFile ?? ((p: string) => fsReadFile(p)))(where.file);
    return parseKnownHosts(text.toString('utf8'), where.file).entries.find((e) => e.line === where.line);
  } catch {
    return undefined;
  }
}

const lastLines = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .slice(-3)
    .join(' / ');

/** The connection report and, if ssh failed before running the script, why. */
async function interpret(run: Run, opts: OpenSshOptions): Promise<{ report: ConnectReport; failure?: SessionFailure }> {
  const { log, result } = run;
  const { config } = opts;
  const alias = config.alias;
  const report: ConnectReport = { openssh: { reasons: [...opts.reasons] } };
  const address = `${config.hostName}:${config.port}`;
  if (log.proxy ? log.handshakeStarted : log.connected) report.tcp = { ok: true, address, durationMs: 0, ...(log.proxy ? { via: log.proxy } : {}) };
  const fail = (failure: SessionFailure) => ({ report, failure });
  if (result.kind === 'cancelled') return fail({ kind: 'cancelled', message: `cancelled while talking to ${alias}` });
  if (result.kind === 'spawn-failed') {
    return fail({ kind: 'handshake-failed', message: result.code === 'ENOENT' ? 'the OpenSSH client (ssh) was not found: install openssh-client' : `ssh could not be started: ${result.message}` });
  }
  if (log.connectError) {
    const e = log.connectError;
    if (/Connection refused/.test(e)) return fail({ kind: 'connection-refused', message: `ssh: ${e}` });
    if (/Could not resolve hostname/.test(e)) return fail({ kind: 'dns', message: `ssh: ${e}` });
    if (/timed out/i.test(e)) return fail({ kind: 'timed-out', phase: 'tcp', message: `ssh: ${e}` });
    if (/unreachable|No route/i.test(e)) return fail({ kind: 'unreachable', message: `ssh: ${e}` });
    return fail({ kind: 'connection-lost', message: `ssh: ${e}` });
  }
  if (log.proxy && !log.handshakeStarted) {
    if (result.kind === 'timed-out') return fail({ kind: 'timed-out', phase: 'tcp', message: `ssh through \`${log.proxy}\` did not reach ${alias} within ${Math.round(result.timeoutMs / 1000)} s` });
    const said = lastLines(result.stderr) || log.handshakeError || `ssh exited with ${result.kind === 'exit' ? result.exitCode : 0}`;
    return fail({ kind: 'proxy-failed', proxy: log.proxy, message: said });
  }
  if (log.serverKey) {
    // A certificate that is not trusted is checked as the plain key inside it (same fingerprint).
    const trustedCertificate = log.certificate !== undefined && log.found?.ca === true;
    const plainType = log.serverKey.type.replace(/-cert-v01@openssh\.com$/, '');
    const presented: HostKeyFingerprint = { type: trustedCertificate ? log.serverKey.type : plainType, fingerprint: log.serverKey.fingerprint };
    const hk: HostKeyReport = {
      presented,
      lookupName: config.hostKeyAlias ?? (config.port === 22 ? config.hostName : `[${config.hostName}]:${config.port}`),
      verdict: { kind: 'unknown' },
      usedMachinesColumn: run.hostKeyFile !== undefined,
      filesRead: [],
      badLines: [],
      accepted: false,
      durationMs: 0,
    };
    if (trustedCertificate && log.certificate) hk.certificate = { id: log.certificate.id, ca: log.certificate.ca };
    if (log.certificate && !trustedCertificate) {
      hk.certificateProblem = log.certificateProblem ?? `it is signed by the CA ${log.certificate.ca}, which no @cert-authority line for '${hk.lookupName}' trusts`;
    }
    report.hostKey = hk;
    const found = log.found ? await entryAt(log.found, run, opts) : undefined;
    if (log.found && found) {
      hk.verdict = { kind: 'match', entry: found };
      hk.accepted = true;
    } else if (log.hostKeyProblem === 'changed') {
      const expected = (await Promise.all(log.offending.map((o) => entryAt(o, run, opts)))).filter((e): e is KnownHostEntry => e !== undefined);
      hk.verdict = { kind: 'mismatch', expected, sameType: expected.some((e) => e.key.type === plainType) };
      return fail({ kind: 'host-key-changed', presented, expected, message: `${alias} presented the host key ${presented.fingerprint}, which is not the one ssh knows (REMOTE HOST IDENTIFICATION HAS CHANGED!)` });
    } else if (log.hostKeyProblem === 'revoked') {
      return fail({ kind: 'host-key-revoked', presented, message: `ssh says the host key of ${alias} (${presented.fingerprint}) is revoked` });
    } else if (!log.authenticated) {
      return fail({ kind: 'host-key-unknown', presented, message: `ssh does not know the host key of ${alias} (${presented.type} ${presented.fingerprint}) under '${hk.lookupName}'` });
    }
  } else if (!log.authenticated) {
    if (result.kind === 'timed-out') return fail({ kind: 'timed-out', phase: report.tcp ? 'handshake' : 'tcp', message: `ssh did not reach ${alias} within ${Math.round(result.timeoutMs / 1000)} s` });
    return fail({ kind: 'handshake-failed', message: `ssh: ${log.handshakeError ?? (lastLines(result.stderr) || 'no SSH handshake')}` });
  }
  const attempts: AuthAttempt[] = log.attempts.map((a) => {
    const attempt: AuthAttempt = { method: a.agent ? 'agent' : 'publickey', source: a.agent ? (opts.agentSocket ?? 'the ssh agent') : a.source, outcome: a.outcome };
    if (a.fingerprint) attempt.fingerprint = a.fingerprint;
    if (a.agent) attempt.keys = 1;
    return attempt;
  });
  report.auth = { ok: log.authenticated, user: config.user, attempts, durationMs: 0, ...(log.serverMethods ? { serverMethods: log.serverMethods } : {}) };
  if (log.authenticated) return { report };
  if (result.kind === 'timed-out') return fail({ kind: 'timed-out', phase: 'auth', message: `the SSH login on ${alias} did not finish within ${Math.round(result.timeoutMs / 1000)} s` });
  if (log.permissionDenied) return fail({ kind: 'auth-failed', message: `the server refused every key (${log.permissionDenied})` });
  return fail({ kind: 'connection-lost', message: `ssh: ${log.handshakeError ?? (lastLines(result.stderr) || `exited with ${result.kind === 'exit' ? result.exitCode : 0}`)}` });
}

/** Everything a run may take: connecting, the host key, the login, and then `extraMs`. */
const runTimeout = (t: SshTimeouts, extraMs: number) => t.tcpMs + t.handshakeMs + t.authMs + extraMs;

/**
 * Connect with OpenSSH's ssh (an empty script), report as connectSsh does. The session runs each
 * script with a new ssh.
 */
export async function connectOpenSsh(opts: OpenSshOptions): Promise<ConnectOutcome> {
  const run = await runSsh(opts, '', runTimeout(opts.timeouts, 0), opts.signal);
  const { report, failure } = await interpret(run, opts);
  if (failure) return { ok: false, report, failure };
  return { ok: true, report, session: new OpenSshSession(opts) };
}

/** Scripts run by one ssh each (a new connection every time, checked like the first). */
export class OpenSshSession implements RemoteSession {
  readonly alias: string;

  constructor(private readonly opts: OpenSshOptions) {
    this.alias = opts.config.alias;
  }

  async run(script: string, exec: ExecOptions): Promise<ExecResult> {
    const started = performance.now();
    const run = await runSsh(this.opts, script, runTimeout(this.opts.timeouts, exec.timeoutMs), exec.signal);
    const { result } = run;
    const out = { stdout: result.stdout, stderr: result.stderr, durationMs: performance.now() - started };
    if (result.kind === 'cancelled') return { kind: 'cancelled', ...out };
    if (result.kind === 'timed-out') return { kind: 'timed-out', ...out };
    const { failure } = await interpret(run, this.opts);
    if (failure || !run.log.authenticated) return { kind: 'failed', message: failure?.message ?? 'ssh did not log in', ...out };
    const code = run.log.exitStatus ?? (result.kind === 'ok' ? 0 : result.kind === 'exit' ? result.exitCode : undefined);
    return { kind: 'exit', code, ...out };
  }

  close(): void {
    // Nothing stays open between runs.
  }
}
