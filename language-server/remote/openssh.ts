// The fallback for what ssh2 cannot do: the real OpenSSH client, run the way Nix runs it.
//
// ssh2 follows no ProxyJump/ProxyCommand, verifies no host certificates (it does not negotiate
// `*-cert-v01@openssh.com`), signs with no security key (sk-…), and lacks several ssh_config
// options. For such hosts the doctor must not report an error where Nix's own ssh would succeed,
// so it asks that ssh: `ssh <options Nix passes> host 'exec /bin/sh -s'` with the script on stdin,
// through the process runner (argument arrays; only ssh itself runs a ProxyCommand through a
// shell, see jumpProxyCommand). The outcome is read from ssh's own debug log (`-E file
// -oLogLevel=DEBUG1`, which holds only this ssh's messages; each jump host's ssh has its own) and
// mapped onto the same report as an ssh2 connection, so the checks say the same things either way.
//
// Options added to what Nix passes (`ssh host -x -a $NIX_SSHOPTS [-i col3] [-oUserKnownHostsFile=col8]`):
//   BatchMode=yes                 never wait for a prompt;
//   StrictHostKeyChecking=yes     never accept (and write) an unknown key: the doctor does not log
//                                 in to an unverified host; a lenient setting is judged from `ssh -G`;
//   UpdateHostKeys=no             never write known_hosts;
//   ControlMaster=no, ControlPath=none
//                                 never use a connection master (`ControlMaster auto` of the user's
//                                 config: its log would hold no handshake, and nothing would be
//                                 checked) and never leave one behind (ControlPersist);
//   ConnectTimeout                the doctor's TCP timeout.
// The environment gets SSH_ASKPASS_REQUIRE=never and loses DISPLAY, WAYLAND_DISPLAY and
// SSH_ASKPASS: no ssh started here (nor one a ProxyCommand of the user's starts) opens a window.
//
// ProxyJump: OpenSSH gives the inner ssh of a ProxyJump only -l, -p, -J, -F and -v, so the options
// above would not reach the jump host (an `accept-new` jump host would get its key written to
// known_hosts, an `ask` one would run SSH_ASKPASS). So the fallback replaces ProxyJump by the
// equivalent ProxyCommand (jumpProxyCommand), whose ssh gets the same options and its own debug
// log, and each jump host's key is judged like the builder's.
import { mkdtemp, readFile as fsReadFile, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ProcessRunner, RunResult } from '../nix/runner';
import { blobKeyType, hostPatternsMatch, knownHostsLine, machinesColumnEntries, parseKnownHosts, privateKeyType, sshString, type KnownHostEntry, type PublicKey } from './hostKeys';
import { REMOTE_COMMAND, shellQuote } from './shellQuote';
import { splitNixSshOpts, sshG, type EffectiveSshConfig, type SshDestination } from './sshConfig';
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

/**
 * A log line as ssh meant it: ssh writes its log through strnvis (VIS_SAFE|VIS_OCTAL), so a
 * backslash is `\\\\` and every byte that is not printable ASCII (each byte of a UTF-8 name too)
 * is `\\ooo`; a known_hosts path in the log must be the real file.
 */
export function unvis(line: string): string {
  if (!line.includes('\\')) return line;
  const bytes: Buffer[] = [];
  let last = 0;
  for (const m of line.matchAll(/\\(\\|[0-7]{3})/g)) {
    bytes.push(Buffer.from(line.slice(last, m.index), 'utf8'), Buffer.from([m[1] === '\\' ? 0x5c : parseInt(m[1] as string, 8)]));
    last = (m.index ?? 0) + m[0].length;
  }
  bytes.push(Buffer.from(line.slice(last), 'utf8'));
  return Buffer.concat(bytes).toString('utf8');
}

/** Read what OpenSSH (9.x) logs at DEBUG1. Total: lines it does not know are skipped. */
export function parseOpenSshLog(text: string): OpenSshLog {
  const log: OpenSshLog = { connected: false, handshakeStarted: false, offending: [], attempts: [], authenticated: false };
  const at = (s: string) => {
    const m = /^(.*):(\d+)$/.exec(s.trim());
    return m ? { file: m[1] as string, line: Number(m[2]) } : undefined;
  };
  for (const raw of text.split('\n')) {
    const line = unvis(raw.trim());
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

/** What every ssh of the fallback gets first (command-line options win over the ssh config), jump hosts' too. */
const STRICT_OPTIONS = ['-oBatchMode=yes', '-oStrictHostKeyChecking=yes', '-oUpdateHostKeys=no', '-oControlMaster=no', '-oControlPath=none'];

/** Added to the environment of every ssh of the fallback. */
export const FALLBACK_ENV: Readonly<Record<string, string>> = { SSH_ASKPASS_REQUIRE: 'never' };
/** Removed from it: what older clients (before SSH_ASKPASS_REQUIRE, OpenSSH 8.4) need to run SSH_ASKPASS. */
export const FALLBACK_UNSET_ENV: readonly string[] = ['DISPLAY', 'WAYLAND_DISPLAY', 'SSH_ASKPASS'];

const connectTimeout = (t: SshTimeouts) => `-oConnectTimeout=${Math.max(1, Math.ceil(t.tcpMs / 1000))}`;

/**
 * NIX_SSHOPTS without what would undo STRICT_OPTIONS or clash with them: `-M` and `-S path` (they
 * override ControlMaster/ControlPath of -o), and, when the jump chain replaces ProxyJump, `-J host`
 * (ssh refuses -J after a ProxyCommand). Options bundled behind another flag (`-qM`) are not split.
 */
function withoutOverrides(tokens: readonly string[], jump: boolean): string[] {
  const withArg = jump ? ['-S', '-J'] : ['-S'];
  const drop = (t: string | undefined) => t === '-M' || t === '-MM' || (t !== undefined && withArg.some((o) => t.startsWith(o)));
  return tokens.filter((t, i) => !drop(t) && !withArg.includes(tokens[i - 1] ?? ''));
}

/** The ssh config file of `-F` in NIX_SSHOPTS (the last one, as ssh takes it), which OpenSSH also gives a jump host's ssh. */
export function configFileOf(tokens: readonly string[]): string | undefined {
  let file: string | undefined;
  tokens.forEach((t, i) => {
    if (t === '-F' && tokens[i + 1] !== undefined) file = tokens[i + 1];
    else if (t.startsWith('-F') && t.length > 2) file = t.slice(2);
  });
  return file;
}

/**
 * A path as the value of an -o option: ssh splits the value into words (argv_split: quotes,
 * backslash escapes, `#`) and expands %-tokens in it; a plain path (the usual temporary folder)
 * stays as it is.
 */
function optionPath(file: string): string {
  return /^[A-Za-z0-9_@+:,./-]+$/.test(file) ? file : `"${file.replace(/%/g, '%%').replace(/[\\"]/g, '\\$&')}"`;
}

/**
 * The ssh arguments for one run; `hostKeyFile`: the known_hosts file Nix writes for column 8;
 * `proxyCommand`: the one that replaces the builder's ProxyJump (jumpProxyCommand).
 */
export function opensshArgs(
  opts: Pick<OpenSshOptions, 'dest' | 'nixSshOpts' | 'timeouts'>,
  logFile: string,
  hostKeyFile: string | undefined,
  proxyCommand?: string,
): string[] {
  const { dest } = opts;
  const nixSshOpts = splitNixSshOpts(opts.nixSshOpts);
  return [
    ...STRICT_OPTIONS,
    connectTimeout(opts.timeouts),
    '-oLogLevel=DEBUG1',
    '-E',
    logFile,
    ...(proxyCommand !== undefined ? [`-oProxyCommand=${proxyCommand}`] : []),
    '-x',
    '-a',
    ...withoutOverrides(nixSshOpts, proxyCommand !== undefined),
    ...(dest.identityFile ? ['-i', dest.identityFile] : []),
    ...(hostKeyFile ? [`-oUserKnownHostsFile=${optionPath(hostKeyFile)}`] : []),
    '--',
    dest.user ? `${dest.user}@${dest.host}` : dest.host,
    REMOTE_COMMAND,
  ];
}

// ---------------------------------------------------------------------------------------------
// ProxyJump as a ProxyCommand that carries the fallback's options

export interface JumpSpec {
  user?: string;
  host: string;
  port?: number;
}

/**
 * A ProxyJump value (as `ssh -G` prints it or as written: `[ssh://][user@]host[:port]`, comma
 * separated, `[…]` around a numeric host) in connection order; undefined when malformed.
 */
export function parseProxyJump(value: string): JumpSpec[] | undefined {
  const specs: JumpSpec[] = [];
  for (const raw of value.split(',')) {
    const item = raw.trim().replace(/^ssh:\/\//, '').replace(/\/$/, '');
    const at = item.lastIndexOf('@');
    const rest = item.slice(at + 1);
    const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest) ?? /^([^:[\]]+)(?::(\d+))?$/.exec(rest);
    if (!m || at === 0) return undefined;
    const spec: JumpSpec = { host: m[1] as string };
    if (at > 0) spec.user = item.slice(0, at);
    if (m[2] !== undefined) spec.port = Number(m[2]);
    specs.push(spec);
  }
  return specs;
}

const jumpLabel = (j: JumpSpec) => `${j.user !== undefined ? `${j.user}@` : ''}${j.host}${j.port !== undefined ? `:${j.port}` : ''}`;

/** One jump host, with the ssh config its ssh uses. */
export interface JumpHop {
  spec: JumpSpec;
  /** `[user@]host[:port]` as in ProxyJump. */
  label: string;
  config: EffectiveSshConfig;
  /** The jump hosts before it, through which its ssh reaches it. */
  via?: JumpHop;
}

/** A loop of ProxyJump configs would otherwise never end. */
const MAX_JUMP_HOSTS = 16;
const SSH_G_TIMEOUT_MS = 15_000;

type JumpOptions = Pick<OpenSshOptions, 'runner' | 'env' | 'nixSshOpts' | 'signal' | 'sshBinary'>;

/**
 * The jump hosts of a ProxyJump value, each resolved with `ssh -G` as OpenSSH's inner ssh sees it
 * (`-F` of NIX_SSHOPTS, -l, -p); returns the last one (next to the builder). As with OpenSSH, the
 * hosts before it in the list are how it is reached; the first one is reached as its own config
 * says (its own ProxyJump, followed here too, or ProxyCommand).
 */
export async function resolveJumpChain(specs: readonly JumpSpec[], opts: JumpOptions, depth = 0): Promise<{ ok: true; hop: JumpHop } | { ok: false; message: string; cancelled?: boolean }> {
  const spec = specs[specs.length - 1];
  if (spec === undefined) return { ok: false, message: 'ProxyJump names no host' };
  if (depth >= MAX_JUMP_HOSTS) return { ok: false, message: `more than ${MAX_JUMP_HOSTS} jump hosts: does a ProxyJump of the ssh config lead back to itself?` };
  const configFile = configFileOf(splitNixSshOpts(opts.nixSshOpts));
  const args = [...(configFile !== undefined ? ['-F', configFile] : []), ...(spec.user !== undefined ? ['-l', spec.user] : []), ...(spec.port !== undefined ? ['-p', String(spec.port)] : []), '--', spec.host];
  const resolved = await sshG(opts.runner, spec.host, args, { env: opts.env, timeoutMs: SSH_G_TIMEOUT_MS, ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.sshBinary ? { sshBinary: opts.sshBinary } : {}) });
  if (!resolved.ok) return resolved;
  const hop: JumpHop = { spec, label: jumpLabel(spec), config: resolved.config };
  const ownJump = resolved.config.proxyJump;
  const before = specs.length > 1 ? specs.slice(0, -1) : ownJump !== undefined ? parseProxyJump(ownJump) : [];
  if (before === undefined) return { ok: false, message: `the ProxyJump of the jump host ${hop.label} cannot be read: ${ownJump}` };
  if (before.length > 0) {
    const via = await resolveJumpChain(before, opts, depth + 1);
    if (!via.ok) return via;
    hop.via = via.hop;
  }
  return { ok: true, hop };
}

/** The hops of a chain in connection order (the first one is reached directly). */
export function jumpHops(last: JumpHop): JumpHop[] {
  const hops: JumpHop[] = [];
  for (let h: JumpHop | undefined = last; h !== undefined; h = h.via) hops.unshift(h);
  return hops;
}

/**
 * A literal word of a ProxyCommand: `%` doubled (ssh expands %-tokens first), then quoted for
 * /bin/sh with shellQuote, except that a backslash is written `\\` between the quoted parts: ssh
 * also splits an -o value into words (argv_split, where a backslash escapes `'`, `"` and `\` even
 * inside quotes) and refuses it ("invalid quotes") when a quoted backslash seems to escape the quote.
 */
const proxyWord = (value: string) => value.replace(/%/g, '%%').split('\\').map(shellQuote).join('\\\\');

export interface JumpCommandContext {
  ssh: string;
  /** `-F` of NIX_SSHOPTS: OpenSSH passes it on to a jump host's ssh. */
  configFile?: string;
  timeouts: SshTimeouts;
  /** The debug log of that jump host's ssh. */
  logFile: (hop: JumpHop) => string;
  /** SHELL of the environment Nix's ssh runs in. */
  userShell?: string;
}

/**
 * The ProxyCommand that reaches the builder through `hop` as OpenSSH's ProxyJump does (`ssh [-l
 * user] [-p port] [-J …] [-F file] -W '[%h]:%p' host`), with STRICT_OPTIONS, a debug log of its
 * own, and the hops before it as a nested ProxyCommand built the same way instead of -J.
 *
 * ssh runs a ProxyCommand as `$SHELL -c 'exec <command>'` (sshconnect.c), and these words are
 * quoted for /bin/sh (proxyWord). fish would read them alike (no backslash is ever inside quotes,
 * where fish reads `\\` and `\'` as escapes), but nushell, elvish or xonsh would not; so the ssh
 * that runs this command runs with SHELL=/bin/sh (see runSsh), which every ssh of the chain
 * inherits. Only a jump host whose own ssh config names a ProxyCommand (the user's, written for
 * the user's shell) gets the user's SHELL back, with `env SHELL=…`, as Nix's ssh would run it.
 */
export function jumpProxyCommand(hop: JumpHop, ctx: JumpCommandContext): string {
  const ownProxyCommand = hop.via === undefined && hop.config.proxyCommand !== undefined;
  const words = [
    ...(ownProxyCommand && ctx.userShell !== undefined ? ['env', `SHELL=${ctx.userShell}`] : []),
    ctx.ssh,
    ...STRICT_OPTIONS,
    connectTimeout(ctx.timeouts),
    '-oLogLevel=DEBUG1',
    '-E',
    ctx.logFile(hop),
    ...(hop.via !== undefined ? [`-oProxyCommand=${jumpProxyCommand(hop.via, ctx)}`] : []),
    ...(ctx.configFile !== undefined ? ['-F', ctx.configFile] : []),
    ...(hop.spec.user !== undefined ? ['-l', hop.spec.user] : []),
    ...(hop.spec.port !== undefined ? ['-p', String(hop.spec.port)] : []),
    '-W',
  ];
  return [...words.map(proxyWord), "'[%h]:%p'", '--', proxyWord(hop.spec.host)].join(' ');
}

/** The ProxyCommand OpenSSH itself makes of the builder's ProxyJump, %h and %p expanded (for messages). */
function openSshJumpCommand(config: EffectiveSshConfig, ssh: string, configFile: string | undefined): string {
  const value = config.proxyJump ?? '';
  const comma = value.lastIndexOf(',');
  const last = parseProxyJump(value.slice(comma + 1))?.[0];
  return [
    ssh,
    ...(last?.user !== undefined ? ['-l', last.user] : []),
    ...(last?.port !== undefined ? ['-p', String(last.port)] : []),
    ...(comma > 0 ? ['-J', value.slice(0, comma)] : []),
    ...(configFile !== undefined ? ['-F', configFile] : []),
    '-W',
    `'[${config.hostName}]:${config.port}'`,
    last?.host ?? value,
  ].join(' ');
}

/** What a run of the fallback knows before it starts: the jump chain that replaces ProxyJump. */
interface Plan {
  jump?: { hop: JumpHop; display: string };
}

/** A jump host's part of a run. */
interface JumpRun {
  hop: JumpHop;
  log: OpenSshLog;
  text: string;
}

interface Run {
  result: RunResult;
  log: OpenSshLog;
  /** The column-8 file's path in the log (gone after the run). */
  hostKeyFile?: string;
  /** In connection order. */
  jumps: JumpRun[];
}

/** A jump host as the report shows it. */
export interface JumpHostReport {
  /** As in ProxyJump (`[user@]host[:port]`). */
  alias: string;
  spec: JumpSpec;
  config: EffectiveSshConfig;
  /** Its key as its ssh judged it; absent when it was not reached. */
  hostKey?: HostKeyReport;
}

async function runSsh(opts: OpenSshOptions, plan: Plan, script: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<Run> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nix-builders-ssh-'));
  try {
    const logFile = path.join(dir, 'ssh.log');
    let hostKeyFile: string | undefined;
    if (opts.machinesKeys && opts.machinesKeys.length > 0) {
      hostKeyFile = path.join(dir, 'host-key');
      await writeFile(hostKeyFile, opts.machinesKeys.map((k) => `${knownHostsLine(opts.uriHost, k)}\n`).join(''));
    }
    const ssh = opts.sshBinary ?? 'ssh';
    const hops = plan.jump ? jumpHops(plan.jump.hop) : [];
    const jumpLog = (hop: JumpHop) => path.join(dir, `jump-${hops.indexOf(hop) + 1}.log`);
    const userShell = opts.env.SHELL ?? process.env.SHELL;
    const configFile = configFileOf(splitNixSshOpts(opts.nixSshOpts));
    const proxyCommand = plan.jump
      ? jumpProxyCommand(plan.jump.hop, { ssh, timeouts: opts.timeouts, logFile: jumpLog, ...(configFile !== undefined ? { configFile } : {}), ...(userShell !== undefined ? { userShell } : {}) })
      : undefined;
    const result = await opts.runner.run({
      file: ssh,
      args: opensshArgs(opts, logFile, hostKeyFile, proxyCommand),
      // SHELL: the shell ssh runs our ProxyCommand with (see jumpProxyCommand).
      env: { ...opts.env, ...FALLBACK_ENV, ...(proxyCommand !== undefined ? { SHELL: '/bin/sh' } : {}) },
      unsetEnv: FALLBACK_UNSET_ENV,
      input: script,
      timeoutMs,
      signal,
    });
    const read = (file: string) => fsReadFile(file, 'utf8').catch(() => '');
    const text = await read(logFile);
    const jumps = await Promise.all(hops.map(async (hop) => {
      const hopText = await read(jumpLog(hop));
      return { hop, log: parseOpenSshLog(hopText), text: hopText };
    }));
    return { result, log: parseOpenSshLog(text), jumps, ...(hostKeyFile ? { hostKeyFile } : {}) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The known_hosts entry at file:line, as ssh read it (`hostKeyFile`: the column-8 file of the run). */
async function entryAt(where: { file: string; line: number }, hostKeyFile: string | undefined, opts: OpenSshOptions): Promise<KnownHostEntry | undefined> {
  if (where.file === hostKeyFile) return machinesColumnEntries(opts.uriHost, opts.machinesKeys ?? [], COLUMN_LABEL)[where.line - 1];
  try {
    const text = await (opts.readFile ?? ((p: string) => fsReadFile(p)))(where.file);
    return parseKnownHosts(text.toString('utf8'), where.file).entries.find((e) => e.line === where.line);
  } catch {
    return undefined;
  }
}

/** The last lines of a log that are not debug output. */
const lastLines = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('debug'))
    .slice(-3)
    .join(' / ');

/**
 * The host key of `config`'s host as ssh judged it in `log`, and the failure when ssh refused it
 * (`who`: how messages name the host).
 */
async function judgeHostKey(
  log: OpenSshLog,
  config: EffectiveSshConfig,
  who: string,
  hostKeyFile: string | undefined,
  opts: OpenSshOptions,
): Promise<{ hk: HostKeyReport; failure?: SessionFailure } | undefined> {
  if (!log.serverKey) return undefined;
  // A certificate that is not trusted is checked as the plain key inside it (same fingerprint).
  const trustedCertificate = log.certificate !== undefined && log.found?.ca === true;
  const plainType = log.serverKey.type.replace(/-cert-v01@openssh\.com$/, '');
  const presented: HostKeyFingerprint = { type: trustedCertificate ? log.serverKey.type : plainType, fingerprint: log.serverKey.fingerprint };
  const hk: HostKeyReport = {
    presented,
    lookupName: config.hostKeyAlias ?? (config.port === 22 ? config.hostName : `[${config.hostName}]:${config.port}`),
    verdict: { kind: 'unknown' },
    usedMachinesColumn: hostKeyFile !== undefined,
    filesRead: [],
    badLines: [],
    accepted: false,
    durationMs: 0,
  };
  if (trustedCertificate && log.certificate) hk.certificate = { id: log.certificate.id, ca: log.certificate.ca };
  if (log.certificate && !trustedCertificate) {
    hk.certificateProblem = log.certificateProblem ?? `it is signed by the CA ${log.certificate.ca}, which no @cert-authority line for '${hk.lookupName}' trusts`;
  }
  const found = log.found ? await entryAt(log.found, hostKeyFile, opts) : undefined;
  if (log.found && found) {
    hk.verdict = { kind: 'match', entry: found };
    hk.accepted = true;
    return { hk };
  }
  if (log.hostKeyProblem === 'changed') {
    const expected = (await Promise.all(log.offending.map((o) => entryAt(o, hostKeyFile, opts)))).filter((e): e is KnownHostEntry => e !== undefined);
    hk.verdict = { kind: 'mismatch', expected, sameType: expected.some((e) => e.key.type === plainType) };
    return { hk, failure: { kind: 'host-key-changed', presented, expected, message: `${who} presented the host key ${presented.fingerprint}, which is not the one ssh knows (REMOTE HOST IDENTIFICATION HAS CHANGED!)` } };
  }
  if (log.hostKeyProblem === 'revoked') return { hk, failure: { kind: 'host-key-revoked', presented, message: `ssh says the host key of ${who} (${presented.fingerprint}) is revoked` } };
  if (!log.authenticated) return { hk, failure: { kind: 'host-key-unknown', presented, message: `ssh does not know the host key of ${who} (${presented.type} ${presented.fingerprint}) under '${hk.lookupName}'` } };
  return { hk };
}

/** The connection report and, if ssh failed before running the script, why. */
async function interpret(run: Run, opts: OpenSshOptions, plan: Plan): Promise<{ report: ConnectReport; failure?: SessionFailure }> {
  const { log, result } = run;
  const { config } = opts;
  const alias = config.alias;
  const report: ConnectReport = { openssh: { reasons: [...opts.reasons] } };
  const address = `${config.hostName}:${config.port}`;
  const proxy = plan.jump?.display ?? log.proxy;
  if (proxy ? log.handshakeStarted : log.connected) report.tcp = { ok: true, address, durationMs: 0, ...(proxy ? { via: proxy } : {}) };
  const fail = (failure: SessionFailure) => ({ report, failure });
  if (result.kind === 'cancelled') return fail({ kind: 'cancelled', message: `cancelled while talking to ${alias}` });
  if (result.kind === 'spawn-failed') {
    return fail({ kind: 'handshake-failed', message: result.code === 'ENOENT' ? 'the OpenSSH client (ssh) was not found: install openssh-client' : `ssh could not be started: ${result.message}` });
  }
  // The jump hosts, in connection order: the first one whose key ssh refused is the cause.
  if (run.jumps.length > 0) {
    const jumpHosts: JumpHostReport[] = [];
    if (report.openssh) report.openssh.jumpHosts = jumpHosts;
    for (const j of run.jumps) {
      const jr: JumpHostReport = { alias: j.hop.label, spec: j.hop.spec, config: j.hop.config };
      jumpHosts.push(jr);
      const judged = await judgeHostKey(j.log, j.hop.config, `the jump host ${j.hop.label}`, undefined, opts);
      if (!judged) break;
      jr.hostKey = judged.hk;
      if (judged.failure) return fail(judged.failure);
    }
  }
  if (log.connectError) {
    const e = log.connectError;
    if (/Connection refused/.test(e)) return fail({ kind: 'connection-refused', message: `ssh: ${e}` });
    if (/Could not resolve hostname/.test(e)) return fail({ kind: 'dns', message: `ssh: ${e}` });
    if (/timed out/i.test(e)) return fail({ kind: 'timed-out', phase: 'tcp', message: `ssh: ${e}` });
    if (/unreachable|No route/i.test(e)) return fail({ kind: 'unreachable', message: `ssh: ${e}` });
    return fail({ kind: 'connection-lost', message: `ssh: ${e}` });
  }
  if (proxy && !log.handshakeStarted) {
    if (result.kind === 'timed-out') return fail({ kind: 'timed-out', phase: 'tcp', message: `ssh through \`${proxy}\` did not reach ${alias} within ${Math.round(result.timeoutMs / 1000)} s` });
    // The jump host that did not get through (its own ssh's log): the first not logged in, else the last.
    const stuck = run.jumps.find((j) => !j.log.authenticated) ?? run.jumps[run.jumps.length - 1];
    const jumpSaid = stuck ? lastLines(stuck.text) : '';
    const said = (jumpSaid && `${stuck?.hop.label}: ${jumpSaid}`) || lastLines(result.stderr) || log.handshakeError || `ssh exited with ${result.kind === 'exit' ? result.exitCode : 0}`;
    return fail({ kind: 'proxy-failed', proxy, message: said });
  }
  const judged = await judgeHostKey(log, config, alias, run.hostKeyFile, opts);
  if (judged) {
    report.hostKey = judged.hk;
    if (judged.failure) return fail(judged.failure);
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
  const plan: Plan = {};
  const { proxyJump } = opts.config;
  if (proxyJump !== undefined) {
    const display = openSshJumpCommand(opts.config, opts.sshBinary ?? 'ssh', configFileOf(splitNixSshOpts(opts.nixSshOpts)));
    const specs = parseProxyJump(proxyJump);
    const chain = specs ? await resolveJumpChain(specs, opts) : { ok: false as const, message: `ProxyJump ${proxyJump} cannot be read` };
    const report: ConnectReport = { openssh: { reasons: [...opts.reasons] } };
    if (!chain.ok && chain.cancelled) return { ok: false, report, failure: { kind: 'cancelled', message: `cancelled while talking to ${opts.config.alias}` } };
    if (!chain.ok) return { ok: false, report, failure: { kind: 'proxy-failed', proxy: display, message: chain.message } };
    plan.jump = { hop: chain.hop, display };
  }
  const run = await runSsh(opts, plan, '', runTimeout(opts.timeouts, 0), opts.signal);
  const { report, failure } = await interpret(run, opts, plan);
  if (failure) return { ok: false, report, failure };
  return { ok: true, report, session: new OpenSshSession(opts, plan) };
}

/** Scripts run by one ssh each (a new connection every time, checked like the first). */
export class OpenSshSession implements RemoteSession {
  readonly alias: string;

  constructor(
    private readonly opts: OpenSshOptions,
    private readonly plan: Plan,
  ) {
    this.alias = opts.config.alias;
  }

  async run(script: string, exec: ExecOptions): Promise<ExecResult> {
    const started = performance.now();
    const run = await runSsh(this.opts, this.plan, script, runTimeout(this.opts.timeouts, exec.timeoutMs), exec.signal);
    const { result } = run;
    const out = { stdout: result.stdout, stderr: result.stderr, durationMs: performance.now() - started };
    if (result.kind === 'cancelled') return { kind: 'cancelled', ...out };
    if (result.kind === 'timed-out') return { kind: 'timed-out', ...out };
    const { failure } = await interpret(run, this.opts, this.plan);
    if (failure || !run.log.authenticated) return { kind: 'failed', message: failure?.message ?? 'ssh did not log in', ...out };
    const code = run.log.exitStatus ?? (result.kind === 'ok' ? 0 : result.kind === 'exit' ? result.exitCode : undefined);
    return { kind: 'exit', code, ...out };
  }

  close(): void {
    // Nothing stays open between runs.
  }
}
