// An SSH connection to one builder with ssh2, set up the way Nix's ssh would be, and checked at
// every step: TCP, host key, authentication. Commands run through `exec`, i.e. the user's login
// shell without a terminal, exactly like `ssh host 'nix-store --serve --write'` (the command is
// always shellQuote.REMOTE_COMMAND, the script goes to its stdin).
//
// Host keys are never accepted silently. The presented key must match what Nix's ssh would accept
// (machines column 8, else the known_hosts files, see hostKeys.ts); a different key is a loud
// `host-key-changed` failure and an unknown one a `host-key-unknown` failure that carries the key
// and its fingerprint, so the user can compare and pin it.
//
// Private keys are read only to hand them to ssh2; they are never logged or kept.
import { readFile as fsReadFile } from 'node:fs/promises';
import * as net from 'node:net';
import { Client, OpenSSHAgent, utils, type ClientChannel, type ConnectConfig, type AnyAuthMethod, type AuthenticationType, type IdentityCallback, type NextAuthHandler, type ParsedKey } from 'ssh2';
import {
  fingerprintSha256,
  keyFromBlob,
  knownHostsLine,
  knownHostsName,
  machinesColumnEntries,
  machinesHostKeyColumn,
  parseKnownHosts,
  preferredHostKeyAlgorithms,
  publicKeyLine,
  sameKey,
  verifyHostKey,
  type HostKeyVerdict,
  type KnownHostEntry,
  type PublicKey,
} from './hostKeys';
import type { HostKeyFingerprint, PresentedHostKey } from '../protocol';
import { agentKeyTypes, identityKeyType, opensshOnlyLogins, opensshOnlyReasons, type JumpHostReport } from './openssh';
import { REMOTE_COMMAND } from './shellQuote';
import type { EffectiveSshConfig } from './sshConfig';

export type ReadFile = (path: string) => Promise<Buffer>;

export interface SshTimeouts {
  /** TCP connect. */
  tcpMs: number;
  /** From TCP connected to the host key checked. */
  handshakeMs: number;
  /** From the host key accepted to logged in. */
  authMs: number;
}

export interface ConnectOptions {
  config: EffectiveSshConfig;
  /** The host of the store URI: Nix writes column 8 under this name. */
  uriHost: string;
  /** Keys of machines column 8 (or the URI's base64-ssh-public-host-key), if any. */
  machinesKeys?: readonly PublicKey[];
  /** SSH_AUTH_SOCK of the environment Nix's ssh runs in. */
  agentSocket?: string;
  timeouts: SshTimeouts;
  signal?: AbortSignal;
  /** Default: fs.readFile. */
  readFile?: ReadFile;
}

export interface HostKeyReport {
  /** The whole key from ssh2; only type and fingerprint from the OpenSSH fallback. */
  presented: PresentedHostKey | HostKeyFingerprint;
  /** The name ssh looks up: HostKeyAlias, or HostName / `[HostName]:Port`. */
  lookupName: string;
  /** What Nix's ssh concludes. */
  verdict: HostKeyVerdict;
  /** Whether column 8 was used (it replaces the user's known_hosts files). */
  usedMachinesColumn: boolean;
  /**
   * Column 8 holds the presented key, but under the URI host, which is not the name ssh looks up:
   * Nix's ssh will not find it (the doctor still connects: the key itself is the pinned one).
   */
  columnNameMismatch?: { uriHost: string; lookupName: string };
  /** Files consulted, in order (missing ones left out). */
  filesRead: string[];
  /** Unreadable lines, as "file:line". */
  badLines: string[];
  accepted: boolean;
  /** The host certificate OpenSSH accepted (its ID and the CA that signed it, `type SHA256:…`). */
  certificate?: { id: string; ca: string };
  /** Why OpenSSH did not accept the host certificate (then it checked the plain key). */
  certificateProblem?: string;
  durationMs: number;
}

/** Whether the UI can pin this key (ssh2 saw all of it). */
export function isPinnable(key: PresentedHostKey | HostKeyFingerprint): key is PresentedHostKey {
  return 'machinesColumn' in key;
}

export interface AuthAttempt {
  method: 'agent' | 'publickey';
  /** The identity file (publickey) or the agent socket. */
  source: string;
  outcome: 'accepted' | 'rejected' | 'missing' | 'encrypted' | 'unreadable';
  /** Fingerprint of the key's public half, when known. */
  fingerprint?: string;
  /** agent: how many keys it offered (with IdentitiesOnly: those matching an IdentityFile). */
  keys?: number;
}

export interface AuthReport {
  ok: boolean;
  user: string;
  attempts: AuthAttempt[];
  /** Methods the server offered after a failure (e.g. ["publickey"]). */
  serverMethods?: string[];
  durationMs: number;
}

export interface ConnectReport {
  /** `via`: the proxy command that reached the address. */
  tcp?: { ok: boolean; address: string; via?: string; durationMs: number };
  /** Set when OpenSSH's ssh did the checks, with the reasons ssh2 could not, and the jump hosts it went through. */
  openssh?: { reasons: string[]; jumpHosts?: JumpHostReport[] };
  hostKey?: HostKeyReport;
  auth?: AuthReport;
}

export type SessionFailure =
  /** ssh2 cannot do what Nix's ssh would do here: check with OpenSSH (openssh.ts). */
  | { kind: 'needs-openssh'; reasons: string[]; message: string }
  | { kind: 'proxy-failed'; proxy: string; message: string }
  | { kind: 'dns'; message: string }
  | { kind: 'connection-refused'; message: string }
  | { kind: 'unreachable'; message: string }
  | { kind: 'timed-out'; phase: 'tcp' | 'handshake' | 'auth'; message: string }
  | { kind: 'cancelled'; message: string }
  | { kind: 'host-key-changed'; message: string; presented: PresentedHostKey | HostKeyFingerprint; expected: KnownHostEntry[] }
  | { kind: 'host-key-unknown'; message: string; presented: PresentedHostKey | HostKeyFingerprint }
  | { kind: 'host-key-revoked'; message: string; presented: PresentedHostKey | HostKeyFingerprint }
  | { kind: 'auth-failed'; message: string }
  | { kind: 'handshake-failed'; message: string }
  | { kind: 'connection-lost'; message: string };

/** An authenticated way to run scripts on the builder. */
export interface RemoteSession {
  readonly alias: string;
  /** Run a /bin/sh script (from shellQuote.shScript) as `ssh host 'exec /bin/sh -s' <script` does. */
  run(script: string, opts: ExecOptions): Promise<ExecResult>;
  close(): void;
}

export type ConnectOutcome = { ok: true; session: RemoteSession; report: ConnectReport } | { ok: false; failure: SessionFailure; report: ConnectReport };

export type ExecResult =
  | { kind: 'exit'; code: number | undefined; signal?: string; stdout: string; stderr: string; durationMs: number }
  | { kind: 'timed-out' | 'cancelled'; stdout: string; stderr: string; durationMs: number }
  | { kind: 'failed'; message: string; stdout: string; stderr: string; durationMs: number };

export interface ExecOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Output beyond this is dropped (a probe prints a few KiB). */
const MAX_OUTPUT = 4 * 1024 * 1024;
/** ssh2's final authentication error (every method tried). */
const ALL_FAILED = 'All configured authentication methods failed';

/** Read every known_hosts source Nix's ssh reads, in its order. */
async function knownHostEntries(opts: ConnectOptions, read: ReadFile): Promise<{ entries: KnownHostEntry[]; filesRead: string[]; badLines: string[] }> {
  const entries: KnownHostEntry[] = [];
  const filesRead: string[] = [];
  const badLines: string[] = [];
  const useColumn = opts.machinesKeys !== undefined && opts.machinesKeys.length > 0;
  if (useColumn) entries.push(...machinesColumnEntries(opts.uriHost, opts.machinesKeys ?? []));
  const files = [...(useColumn ? [] : opts.config.userKnownHostsFiles), ...opts.config.globalKnownHostsFiles];
  for (const file of files) {
    let text: string;
    try {
      text = (await read(file)).toString('utf8');
    } catch {
      continue; // missing or unreadable: ssh skips it too
    }
    filesRead.push(file);
    const parsed = parseKnownHosts(text, file);
    entries.push(...parsed.entries);
    badLines.push(...parsed.badLines.map((n) => `${file}:${n}`));
  }
  return { entries, filesRead, badLines };
}

function presentedKey(key: PublicKey, lookupName: string): PresentedHostKey {
  return {
    type: key.type,
    fingerprint: fingerprintSha256(key),
    publicKeyLine: publicKeyLine(key),
    machinesColumn: machinesHostKeyColumn(key),
    knownHostsLine: knownHostsLine(lookupName, key),
  };
}

function tcpConnect(host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<{ ok: true; socket: net.Socket } | { ok: false; failure: SessionFailure }> {
  return new Promise((resolve) => {
    const where = `${host}:${port}`;
    if (signal?.aborted) return resolve({ ok: false, failure: { kind: 'cancelled', message: 'cancelled before connecting' } });
    const socket = net.connect({ host, port });
    let settled = false;
    const finish = (value: { ok: true; socket: net.Socket } | { ok: false; failure: SessionFailure }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.removeAllListeners('connect');
      socket.removeListener('error', onError);
      if (!value.ok) socket.destroy();
      resolve(value);
    };
    const onAbort = () => finish({ ok: false, failure: { kind: 'cancelled', message: `cancelled while connecting to ${where}` } });
    const onError = (e: NodeJS.ErrnoException) => {
      const code = e.code ?? '';
      if (code === 'ECONNREFUSED') finish({ ok: false, failure: { kind: 'connection-refused', message: `connection to ${where} refused` } });
      else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME') {
        finish({ ok: false, failure: { kind: 'dns', message: `could not resolve host name ${host} (${code})` } });
      } else if (['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EADDRNOTAVAIL'].includes(code)) {
        finish({ ok: false, failure: { kind: 'unreachable', message: `${where} is unreachable (${code})` } });
      } else finish({ ok: false, failure: { kind: 'connection-lost', message: `connecting to ${where} failed: ${e.message}` } });
    };
    const timer = setTimeout(
      () => finish({ ok: false, failure: { kind: 'timed-out', phase: 'tcp', message: `no TCP connection to ${where} within ${Math.round(timeoutMs / 100) / 10} s` } }),
      timeoutMs,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      // ssh2 adds its own listener; until then a late error must not go unhandled.
      socket.on('error', () => {});
      finish({ ok: true, socket });
    });
    socket.on('error', onError);
  });
}

interface IdentityCandidate {
  file: string;
  /** undefined when the file could not be used; then `outcome` says why. */
  key?: Buffer;
  outcome?: AuthAttempt['outcome'];
  fingerprint?: string;
  /** The public half (from the key, or from `<file>.pub` when the key is encrypted or missing). */
  publicBlob?: Buffer;
}

async function publicHalf(file: string, read: ReadFile): Promise<Buffer | undefined> {
  try {
    const parsed = utils.parseKey(await read(`${file}.pub`));
    return parsed instanceof Error ? undefined : parsed.getPublicSSH();
  } catch {
    return undefined;
  }
}

async function identityCandidates(files: readonly string[], read: ReadFile): Promise<IdentityCandidate[]> {
  const out: IdentityCandidate[] = [];
  for (const file of [...new Set(files)]) {
    let data: Buffer;
    try {
      data = await read(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const c: IdentityCandidate = { file, outcome: code === 'ENOENT' ? 'missing' : 'unreadable' };
      const pub = await publicHalf(file, read);
      if (pub) c.publicBlob = pub;
      out.push(c);
      continue;
    }
    const parsed = utils.parseKey(data);
    if (parsed instanceof Error || !parsed.isPrivateKey()) {
      const encrypted = parsed instanceof Error && /encrypted|passphrase/i.test(parsed.message);
      const c: IdentityCandidate = { file, outcome: encrypted ? 'encrypted' : 'unreadable' };
      const pub = await publicHalf(file, read);
      if (pub) c.publicBlob = pub;
      out.push(c);
      continue;
    }
    const publicBlob = parsed.getPublicSSH();
    out.push({ file, key: data, fingerprint: fingerprintSha256(publicBlob), publicBlob });
  }
  return out;
}

/** The agent socket ssh would use, or undefined. */
export function agentFor(config: EffectiveSshConfig, envSocket: string | undefined): string | undefined {
  const agent = config.identityAgent;
  if (agent === 'none') return undefined;
  if (agent === undefined || agent === 'SSH_AUTH_SOCK') return envSocket || undefined;
  return agent;
}

/**
 * The ssh agent, counting the keys it offers; with `allowed`, only those keys (ssh's
 * IdentitiesOnly: agent keys that match an IdentityFile).
 */
class CountingAgent extends OpenSSHAgent {
  constructor(
    socket: string,
    private readonly allowed: readonly Buffer[] | undefined,
    private readonly onOffered: (count: number) => void,
  ) {
    super(socket);
  }

  override getIdentities(cb: IdentityCallback<ParsedKey>): void {
    super.getIdentities((err, keys) => {
      if (err) return cb(err);
      const blob = (k: unknown) => (k && typeof k === 'object' && 'getPublicSSH' in k ? (k as ParsedKey).getPublicSSH() : undefined);
      const offered = (keys ?? []).filter((k) => !this.allowed || this.allowed.some((b) => b.equals(blob(k) ?? Buffer.alloc(0))));
      this.onOffered(offered.length);
      cb(undefined, offered);
    });
  }
}

/**
 * Connect, verify the host key and log in. On success the session is open: close it when done.
 */
export async function connectSsh(opts: ConnectOptions): Promise<ConnectOutcome> {
  const report: ConnectReport = {};
  const { config } = opts;
  const read = opts.readFile ?? ((p: string) => fsReadFile(p));
  const lookupName = knownHostsName(config.hostName, config.port, config.hostKeyAlias);
  const known = await knownHostEntries(opts, read);
  const identities = await identityCandidates(config.identityFiles, read);
  const agent = agentFor(config, opts.agentSocket);
  const agentTypes = agent ? await agentKeyTypes(agent, opts.timeouts.authMs) : undefined;
  const identityTypes = new Map<string, string>();
  for (const id of identities) {
    if (id.outcome === 'missing') continue;
    const type = await identityKeyType(id.file, read);
    if (type) identityTypes.set(id.file, type);
  }
  const reasons = opensshOnlyReasons({ config, knownHosts: known.entries, lookupName, identityTypes });
  if (reasons.length > 0) {
    return { ok: false, report, failure: { kind: 'needs-openssh', reasons, message: `only OpenSSH can check ${config.alias}: ${reasons.join('; ')}` } };
  }

  const tcpStarted = performance.now();
  const tcp = await tcpConnect(config.hostName, config.port, opts.timeouts.tcpMs, opts.signal);
  report.tcp = { ok: tcp.ok, address: `${config.hostName}:${config.port}`, durationMs: performance.now() - tcpStarted };
  if (!tcp.ok) return { ok: false, failure: tcp.failure, report };

  return new Promise<ConnectOutcome>((resolve) => {
    const client = new Client();
    const started = performance.now();
    let phaseStarted = started;
    let settled = false;
    let hostKeyFailure: SessionFailure | undefined;
    let timer: NodeJS.Timeout | undefined;
    const attempts: AuthAttempt[] = [];
    let serverMethods: string[] | undefined;
    let current: AuthAttempt | undefined;

    const finish = (outcome: ConnectOutcome) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (!outcome.ok) {
        client.removeAllListeners('ready');
        client.on('error', () => {}); // late errors of a connection we gave up on
        client.end();
        tcp.socket.destroy();
      }
      resolve(outcome);
    };
    const authReport = (ok: boolean): AuthReport => {
      const r: AuthReport = { ok, user: config.user, attempts, durationMs: performance.now() - phaseStarted };
      if (serverMethods) r.serverMethods = serverMethods;
      return r;
    };
    const startTimer = (phase: 'handshake' | 'auth', ms: number) => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        if (phase === 'auth') report.auth = authReport(false);
        finish({ ok: false, report, failure: { kind: 'timed-out', phase, message: `the SSH ${phase === 'auth' ? 'login' : 'handshake'} with ${config.alias} did not finish within ${Math.round(ms / 100) / 10} s` } });
      }, ms);
    };
    const onAbort = () => finish({ ok: false, report, failure: { kind: 'cancelled', message: `cancelled while talking to ${config.alias}` } });
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    startTimer('handshake', opts.timeouts.handshakeMs);

    const hostVerifier = (blob: Buffer): boolean => {
      const key = keyFromBlob(blob);
      const durationMs = performance.now() - phaseStarted;
      if (!key) {
        hostKeyFailure = { kind: 'handshake-failed', message: 'the server presented a host key that could not be read' };
        return false;
      }
      const verdict = verifyHostKey(key, known.entries, lookupName);
      const presented = presentedKey(key, lookupName);
      const usedMachinesColumn = opts.machinesKeys !== undefined && opts.machinesKeys.length > 0;
      const hk: HostKeyReport = {
        presented,
        lookupName,
        verdict,
        usedMachinesColumn,
        filesRead: known.filesRead,
        badLines: known.badLines,
        accepted: false,
        durationMs,
      };
      // The pinned key itself is right, only the name differs: authentic, so we may go on (the
      // host-key check still reports that Nix's ssh will not find it).
      const columnHolds = usedMachinesColumn && (opts.machinesKeys ?? []).some((k) => sameKey(k, key));
      if (columnHolds && verdict.kind !== 'match' && verdict.kind !== 'revoked' && opts.uriHost.toLowerCase() !== lookupName.toLowerCase()) {
        hk.columnNameMismatch = { uriHost: opts.uriHost, lookupName };
      }
      hk.accepted = verdict.kind === 'match' || (hk.columnNameMismatch !== undefined && verdict.kind === 'unknown');
      report.hostKey = hk;
      if (!hk.accepted) {
        if (verdict.kind === 'revoked') {
          hostKeyFailure = { kind: 'host-key-revoked', presented, message: `the host key of ${config.alias} (${presented.fingerprint}) is marked @revoked in ${verdict.entry.source}:${verdict.entry.line}` };
        } else if (verdict.kind === 'mismatch') {
          const where = verdict.expected.map((e) => `${e.source}${e.source.startsWith('/') ? `:${e.line}` : ''}`);
          hostKeyFailure = {
            kind: 'host-key-changed',
            presented,
            expected: verdict.expected,
            message: `${config.alias} presented the host key ${presented.fingerprint}, but ${[...new Set(where)].join(', ')} expects ${verdict.expected.map((e) => fingerprintSha256(e.key)).join(', ')}`,
          };
        } else {
          hostKeyFailure = { kind: 'host-key-unknown', presented, message: `the host key of ${config.alias} (${presented.type} ${presented.fingerprint}) is not known under '${lookupName}'` };
        }
        return false;
      }
      phaseStarted = performance.now();
      startTimer('auth', opts.timeouts.authMs);
      return true;
    };

    // Like ssh: agent keys first (with IdentitiesOnly only those matching an IdentityFile), then
    // the identity files in order.
    const plan: Array<() => AnyAuthMethod | undefined> = [];
    const onlyThese = identities.map((i) => i.publicBlob).filter((b): b is Buffer => b !== undefined);
    if (agent && (!config.identitiesOnly || onlyThese.length > 0)) {
      plan.push(() => {
        const attempt: AuthAttempt = { method: 'agent', source: agent, outcome: 'rejected' };
        const counting = new CountingAgent(agent, config.identitiesOnly ? onlyThese : undefined, (n) => (attempt.keys = n));
        current = attempt;
        attempts.push(attempt);
        return { type: 'agent', username: config.user, agent: counting };
      });
    }
    for (const id of identities) {
      plan.push(() => {
        if (!id.key) {
          attempts.push({ method: 'publickey', source: id.file, outcome: id.outcome ?? 'unreadable' });
          return undefined;
        }
        current = { method: 'publickey', source: id.file, outcome: 'rejected' };
        if (id.fingerprint) current.fingerprint = id.fingerprint;
        attempts.push(current);
        return { type: 'publickey', username: config.user, key: id.key };
      });
    }
    const authHandler = (methodsLeft: AuthenticationType[] | null, _partial: boolean | null, next: NextAuthHandler) => {
      if (methodsLeft) serverMethods = [...methodsLeft];
      while (plan.length > 0) {
        const method = plan.shift()?.();
        if (!method) continue;
        if (methodsLeft && !methodsLeft.includes('publickey')) break;
        return next(method);
      }
      current = undefined;
      return next(false as unknown as AnyAuthMethod);
    };

    const connectConfig: ConnectConfig = {
      sock: tcp.socket,
      username: config.user,
      hostVerifier,
      authHandler: authHandler as unknown as ConnectConfig['authHandler'],
      readyTimeout: 0,
      keepaliveInterval: 0,
      algorithms: {
        serverHostKey: preferredHostKeyAlgorithms(
          known.entries.filter((e) => e.marker === undefined).map((e) => e.key),
          ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
        ) as NonNullable<ConnectConfig['algorithms']>['serverHostKey'],
      },
    };

    client.on('ready', () => {
      if (current) current.outcome = 'accepted';
      report.auth = authReport(true);
      finish({ ok: true, report, session: new SshSession(client, config.alias) });
    });
    client.on('error', (err: Error & { level?: string }) => {
      if (hostKeyFailure) return finish({ ok: false, report, failure: hostKeyFailure });
      // ssh2 reports an unusable agent or a key that cannot sign, then goes on with the next method.
      if (err.level === 'agent' || (err.level === 'client-authentication' && err.message !== ALL_FAILED)) {
        if (current) current.outcome = 'unreadable';
        return;
      }
      if (err.level === 'client-authentication') {
        report.auth = authReport(false);
        const logins = opensshOnlyLogins(config, serverMethods, agentTypes);
        if (logins.length > 0) return finish({ ok: false, report, failure: { kind: 'needs-openssh', reasons: logins, message: `only OpenSSH can check ${config.alias}: ${logins.join('; ')}` } });
        return finish({ ok: false, report, failure: { kind: 'auth-failed', message: `the server refused every key (Permission denied (publickey))` } });
      }
      if (report.hostKey?.accepted) {
        report.auth = authReport(false);
        return finish({ ok: false, report, failure: { kind: 'connection-lost', message: `the connection to ${config.alias} failed during login: ${err.message}` } });
      }
      // An algorithm ssh2 lacks (OpenSSH has more): let OpenSSH judge, as for Nix's ssh.
      if (/no matching/i.test(err.message)) {
        const reason = `ssh2 and the server share no algorithm (${err.message})`;
        return finish({ ok: false, report, failure: { kind: 'needs-openssh', reasons: [reason], message: `only OpenSSH can check ${config.alias}: ${reason}` } });
      }
      finish({ ok: false, report, failure: { kind: 'handshake-failed', message: `the SSH handshake with ${config.alias} failed: ${err.message}` } });
    });
    client.on('close', () => {
      if (hostKeyFailure) return finish({ ok: false, report, failure: hostKeyFailure });
      finish({ ok: false, report, failure: { kind: 'connection-lost', message: `${config.alias} closed the connection before the login finished` } });
    });
    try {
      client.connect(connectConfig);
    } catch (e) {
      finish({ ok: false, report, failure: { kind: 'handshake-failed', message: `could not start SSH: ${(e as Error).message}` } });
    }
  });
}

/** One open, authenticated connection. */
export class SshSession implements RemoteSession {
  private closed = false;

  constructor(
    private readonly client: Client,
    readonly alias: string,
  ) {
    client.on('error', () => {
      // Reported through exec results; a late error must not crash the server.
    });
    client.on('close', () => {
      this.closed = true;
    });
  }

  /**
   * Run a /bin/sh script (from shellQuote.shScript) through the remote login shell (no terminal,
   * no environment sent), like `ssh host 'exec /bin/sh -s' <script`.
   */
  run(script: string, opts: ExecOptions): Promise<ExecResult> {
    const started = performance.now();
    return new Promise<ExecResult>((resolve) => {
      let stdout = '';
      let stderr = '';
      let settled = false;
      let channel: ClientChannel | undefined;
      let code: number | undefined;
      let signal: string | undefined;
      const elapsed = () => performance.now() - started;
      const finish = (r: ExecResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        resolve(r);
      };
      const stop = (kind: 'timed-out' | 'cancelled') => {
        try {
          channel?.signal('KILL');
        } catch {
          // not supported by every server
        }
        channel?.close();
        finish({ kind, stdout, stderr, durationMs: elapsed() });
      };
      const onAbort = () => stop('cancelled');
      const timer = setTimeout(() => stop('timed-out'), opts.timeoutMs);
      if (opts.signal?.aborted) return stop('cancelled');
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      if (this.closed) return finish({ kind: 'failed', message: 'the SSH connection is closed', stdout, stderr, durationMs: 0 });
      try {
        this.client.exec(REMOTE_COMMAND, (err, ch) => {
          if (err) return finish({ kind: 'failed', message: err.message, stdout, stderr, durationMs: elapsed() });
          channel = ch;
          if (settled) {
            ch.close();
            return;
          }
          ch.on('data', (d: Buffer) => {
            if (stdout.length < MAX_OUTPUT) stdout += d.toString('utf8');
          });
          ch.stderr.on('data', (d: Buffer) => {
            if (stderr.length < MAX_OUTPUT) stderr += d.toString('utf8');
          });
          ch.on('exit', (c: number | null, s?: string) => {
            if (typeof c === 'number') code = c;
            if (s) signal = s;
          });
          ch.on('close', () => {
            const r: ExecResult = { kind: 'exit', code, stdout, stderr, durationMs: elapsed() };
            if (signal) r.signal = signal;
            finish(r);
          });
          ch.end(script);
        });
      } catch (e) {
        finish({ kind: 'failed', message: (e as Error).message, stdout, stderr, durationMs: elapsed() });
      }
    });
  }

  close(): void {
    this.closed = true;
    this.client.end();
  }
}
