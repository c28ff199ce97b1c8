// The builder health check ("doctor"): for each configured builder, every step Nix's remote build
// depends on, each with a status, and for a problem its cause and fix in plain words.
//
//   ssh-config  what `ssh -G` makes of the builder (HostName, Port, User, keys, known_hosts)
//   tcp         the port accepts connections
//   host-key    the presented key matches column 8 / known_hosts under the name ssh looks up
//   ssh-auth    the login succeeds with the keys Nix's ssh would offer
//   remote-nix  Nix's remote program is on the non-interactive PATH
//   nix-version the remote Nix version
//   system      the systems the machines line claims are ones the remote Nix builds for
//   features    the features it claims are in the remote `system-features`
//   trust       the remote user may build (trusted-users, or the store is its own)
//   load, disk  load per core, free space of /nix
// plus one local check: whether this machine can build at all (which store Nix opens; as root
// without a daemon, whether the build users exist; the sandbox setting) and whether the local
// nix-daemon (if builds go through one) trusts this user, since an untrusted client's `--builders`
// is silently ignored. Every problem it finds is in its one result, the worst first.
//
// The SSH steps use ssh2 (remote/sshSession.ts); where ssh2 cannot do what Nix's ssh does
// (ProxyJump, host certificates, security keys, …) they use OpenSSH's ssh itself, run as Nix runs it
// (remote/openssh.ts), and give the same checks. Remote scripts never depend on the login shell.
//
// Layout: pure decisions (`decide*`, `connectChecks`, `remoteChecks`: parsed facts → results) are
// separate from the I/O that gathers the facts (`checkBuilder`, `checkLocal`, `checkAll`), so the
// decisions are unit-tested with outputs recorded from real builders.
import { constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import * as os from 'node:os';
import type { Nix } from '../nix/nix';
import { buildUsersAdvice } from '../nix/classifier';
import { parseConfigText } from '../nix/nixConf';
import { describeResult, type ProcessRunner } from '../nix/runner';
import { parseSshStoreUri, type SshStoreUri } from '../nix/storeUri';
import { capabilitiesFor } from '../nix/version';
import type { BuilderFacts, BuilderHealth, BuilderInfo, CheckId, CheckResult, CheckStatus, DoctorReport, PresentedHostKey } from '../protocol';
import { fingerprintSha256, parseMachinesHostKey, type PublicKey } from '../remote/hostKeys';
import { discoveryScript, nixSections, parseDiscovery, parseNixReport, sectionsScript, type Discovery, type NixReport } from '../remote/probe';
import { resolveSshConfig, splitNixSshOpts, type EffectiveSshConfig } from '../remote/sshConfig';
import { configFileOf, connectOpenSsh, type JumpHostReport } from '../remote/openssh';
import { connectSsh, isPinnable, type ConnectReport, type HostKeyReport, type ReadFile, type SessionFailure } from '../remote/sshSession';
import { forEachLimited } from '../util/pool';

/** The checks of one builder, in the order they run and are shown. */
export const BUILDER_CHECKS: readonly CheckId[] = ['ssh-config', 'tcp', 'host-key', 'ssh-auth', 'remote-nix', 'nix-version', 'system', 'features', 'trust', 'load', 'disk'];

export interface DoctorTimeouts {
  sshConfigMs: number;
  tcpMs: number;
  handshakeMs: number;
  authMs: number;
  /** Each remote probe round trip. */
  probeMs: number;
  /** Each local command of the local check. */
  localMs: number;
}

export const DEFAULT_TIMEOUTS: DoctorTimeouts = {
  sshConfigMs: 5_000,
  tcpMs: 5_000,
  handshakeMs: 10_000,
  authMs: 10_000,
  probeMs: 20_000,
  localMs: 15_000,
};

export interface DoctorThresholds {
  /** Load per core from which the builder counts as busy. */
  busyLoadPerCore: number;
  /** Free KiB on /nix below which a warning is given. */
  lowDiskKiB: number;
  /** Free KiB on /nix below which builds are likely to fail. */
  criticalDiskKiB: number;
}

export const DEFAULT_THRESHOLDS: DoctorThresholds = {
  busyLoadPerCore: 2,
  lowDiskKiB: 5 * 1024 * 1024,
  criticalDiskKiB: 1024 * 1024,
};

export interface DoctorDeps {
  /** The local Nix (its runner, environment with NIX_SSHOPTS/NIX_CONF_DIR, binaries, version). */
  nix: Nix;
  signal?: AbortSignal;
  timeouts?: Partial<DoctorTimeouts>;
  thresholds?: Partial<DoctorThresholds>;
  /** The local system, for machines lines without a systems column (default: from `nix show-config`). */
  localSystem?: string;
  /** Reads known_hosts and identity files; default fs.readFile. */
  readFile?: ReadFile;
  /** Called as soon as each builder is done (checkAll). */
  onBuilderChecked?: (health: BuilderHealth) => void;
  /** At most this many builders are checked at once (default 32). */
  concurrency?: number;
}

// ---------------------------------------------------------------------------------------------
// Store URIs

/** The program Nix starts on the builder (before its arguments). */
export function remoteProgramOf(store: SshStoreUri): { program: string; fromUri: boolean; args: string } {
  const given = store.params.get('remote-program');
  const fallback = store.scheme === 'ssh-ng' ? 'nix-daemon' : 'nix-store';
  return { program: given || fallback, fromUri: Boolean(given), args: store.scheme === 'ssh-ng' ? '--stdio' : '--serve --write' };
}

/** The URI with `remote-program` set (kept the other parameters). */
export function withRemoteProgram(uri: string, program: string): string {
  const [base, query = ''] = uri.split('?', 2) as [string, string?];
  const params = query.split('&').filter((p) => p.length > 0 && !p.startsWith('remote-program='));
  params.push(`remote-program=${program}`);
  return `${base}?${params.join('&')}`;
}

// ---------------------------------------------------------------------------------------------
// Pure decisions

const ms = (n: number) => Math.max(0, Math.round(n));

function result(id: CheckId, status: CheckStatus, summary: string, durationMs: number, more: { cause?: string; fix?: string; detail?: string } = {}): CheckResult {
  const r: CheckResult = { id, status, summary, durationMs: ms(durationMs) };
  if (more.cause !== undefined) r.cause = more.cause;
  if (more.fix !== undefined) r.fix = more.fix;
  if (more.detail !== undefined) r.detail = more.detail;
  return r;
}

export function skipped(id: CheckId, reason: string): CheckResult {
  return { id, status: 'skipped', summary: 'not checked', cause: reason, durationMs: 0 };
}

/** Every check not in `results` becomes skipped with `reason`; the list comes back in BUILDER_CHECKS order. */
export function completeChecks(results: readonly CheckResult[], reason: string): CheckResult[] {
  return BUILDER_CHECKS.map((id) => results.find((r) => r.id === id) ?? skipped(id, reason));
}

export function worstStatus(checks: readonly CheckResult<string>[]): CheckStatus {
  const order: CheckStatus[] = ['error', 'warning', 'ok'];
  for (const s of order) if (checks.some((c) => c.status === s)) return s;
  return 'skipped';
}

const list = (xs: readonly string[]) => (xs.length > 0 ? xs.join(', ') : 'none');
const kib = (n: number) => (n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} GiB` : `${Math.round(n / 1024)} MiB`);

export function sshConfigCheck(config: EffectiveSshConfig, args: readonly string[], durationMs: number): CheckResult {
  const via = config.hostKeyAlias ? `, host key looked up as '${config.hostKeyAlias}'` : '';
  return result('ssh-config', 'ok', `${config.alias} is ${config.user}@${config.hostName}:${config.port}${via}`, durationMs, {
    detail: `from \`ssh -G ${args.join(' ')}\`; identity files: ${list([...new Set(config.identityFiles)])}; known_hosts: ${list(config.userKnownHostsFiles)}`,
  });
}

export interface ConnectContext {
  /** Builder name (URI host) as the user knows it. */
  name: string;
  uri: string;
  /** Where the machines line comes from (for fixes). */
  sourceLabel: string;
  config: EffectiveSshConfig;
  /** Machines column 8 was set (valid or not). */
  columnSet: boolean;
  /** Why column 8 cannot be used, when it is set but malformed. */
  columnError?: string;
  /** Machines column 3, if set. */
  sshKey?: string;
  /** Column 3 names a file that does not exist. */
  sshKeyMissing?: boolean;
  agentSocket?: string;
  /** `-F` of NIX_SSHOPTS, for the ssh commands of fixes. */
  configFile?: string;
}

/** The jump host (OpenSSH fallback) whose key ssh refused, if one did. */
const refusedJumpHost = (report: ConnectReport) => report.openssh?.jumpHosts?.find((j) => j.hostKey && !j.hostKey.accepted);

/**
 * A jump host's key that ssh refused. Column 8 is only for the builder itself (Nix writes it for
 * the builder's name only): a jump host's key belongs in its known_hosts.
 */
function jumpHostKeyCheck(jump: JumpHostReport, hk: HostKeyReport, ctx: ConnectContext): CheckResult {
  const { name } = ctx;
  const j = jump.alias;
  const p = hk.presented;
  const keyFile = `/etc/ssh/ssh_host_${p.type.replace(/^ssh-|-sha2-nistp\d+$/g, '')}_key.pub`;
  const compare = `Compare ${p.fingerprint} with the fingerprint on ${j} itself (\`ssh-keygen -lf ${keyFile}\`)`;
  // ssh's own question, answered by the user after comparing, writes the line where ssh looks.
  const ssh = [
    'ssh',
    ...(ctx.configFile ? ['-F', ctx.configFile] : []),
    '-oBatchMode=no',
    '-oStrictHostKeyChecking=ask',
    ...(jump.spec.port !== undefined ? ['-p', String(jump.spec.port)] : []),
    `${jump.spec.user !== undefined ? `${jump.spec.user}@` : ''}${jump.spec.host}`,
    'true',
  ].join(' ');
  const pin = `run \`${ssh}\` in a terminal and answer yes when it shows that fingerprint (it adds ${j}'s key under '${hk.lookupName}' to ${jump.config.userKnownHostsFiles[0] ?? 'the user known_hosts file'})`;
  const via = `${name} is reached through the jump host ${j} (ProxyJump)`;
  const v = hk.verdict;
  if (v.kind === 'revoked') {
    return result('host-key', 'error', `the host key of the jump host ${j} is revoked`, 0, {
      cause: `${via}; ${j} presented ${p.fingerprint}, which ${v.entry.source}:${v.entry.line} marks @revoked. Nix's ssh refuses it.`,
      fix: `Give ${j} a new host key, then add it to its known_hosts.`,
    });
  }
  if (v.kind === 'mismatch') {
    const sources = [...new Set(v.expected.map((e) => `${e.source}:${e.line}`))].join(', ');
    return result('host-key', 'error', `the host key of the jump host ${j} has changed`, 0, {
      cause: `${via}; ${j} presented ${p.type} ${p.fingerprint}, but ${sources || 'known_hosts'} expects another key. Either ${j} was reinstalled or its key regenerated, or someone is intercepting the connection. Nix's ssh refuses it ("REMOTE HOST IDENTIFICATION HAS CHANGED!").`,
      fix: `${compare}. Only if it is ${p.fingerprint}, remove the old entry (\`ssh-keygen -R '${hk.lookupName}'${jump.config.userKnownHostsFiles[0] ? ` -f ${jump.config.userKnownHostsFiles[0]}` : ''}\`), then ${pin}.`,
    });
  }
  // Not known (a refused key is never a match).
  const strict = jump.config.strictHostKeyChecking;
  const lenient = strict === 'no' || strict === 'accept-new';
  const nixSays = lenient
    ? `Nix's ssh would accept it unchecked on first use (StrictHostKeyChecking ${strict} for ${j}) and write it to known_hosts, so nobody would notice an impostor; the doctor does not, so it did not check ${name} behind it.`
    : `Nix's ssh cannot ask anyone and fails with "Host key verification failed.".`;
  const certNote = hk.certificateProblem ? ` Its host certificate is not accepted either: ${hk.certificateProblem}.` : '';
  return result('host-key', lenient ? 'warning' : 'error', `the host key of the jump host ${j} is not known`, 0, {
    cause: `${via}; ${j} presented ${p.type} ${p.fingerprint}, and no key for '${hk.lookupName}' is in its known_hosts files (${list(jump.config.userKnownHostsFiles.concat(jump.config.globalKnownHostsFiles))}).${certNote} ${nixSays}`,
    fix: `${compare}; if they are equal, ${pin}.`,
  });
}

/** `jump host b2: ssh-ed25519 SHA256:… matches file:line` for each jump host passed. */
function jumpHostsDetail(report: ConnectReport): string {
  return (report.openssh?.jumpHosts ?? [])
    .map((j) => (j.hostKey?.verdict.kind === 'match' ? `; jump host ${j.alias}: ${j.hostKey.presented.type} ${j.hostKey.presented.fingerprint} matches ${j.hostKey.verdict.entry.source}:${j.hostKey.verdict.entry.line}` : ''))
    .join('');
}

function hostKeyCheck(report: ConnectReport, failure: SessionFailure | undefined, ctx: ConnectContext): CheckResult | undefined {
  const hk = report.hostKey;
  const { name, config } = ctx;
  const jump = refusedJumpHost(report);
  if (jump?.hostKey) return jumpHostKeyCheck(jump, jump.hostKey, ctx);
  const jumpDetail = jumpHostsDetail(report);
  if (ctx.columnError) {
    const presented = hk ? `; the builder presents ${hk.presented.type} ${hk.presented.fingerprint}${isPinnable(hk.presented) ? `, whose column 8 value is ${hk.presented.machinesColumn}` : ''}` : '';
    return result('host-key', 'error', `column 8 of ${name}'s machines line is malformed`, hk?.durationMs ?? 0, {
      cause: `${ctx.columnError}. Nix writes it into a known_hosts file for ssh, which then cannot verify ${name}${presented}.`,
      fix: `Verify the key on ${name} (\`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\`) and correct column 8 in ${ctx.sourceLabel}, or set it to '-' to use known_hosts.`,
    });
  }
  if (!hk) {
    if (failure?.kind === 'handshake-failed') {
      return result('host-key', 'error', `no SSH handshake with ${name}`, 0, {
        cause: `${failure.message}. The port may not be an SSH server, or the server offers no algorithm in common.`,
        fix: `Check that ${config.hostName}:${config.port} is ${name}'s sshd (\`ssh -v ${name}\`).`,
      });
    }
    if (failure?.kind === 'timed-out' && failure.phase === 'handshake') {
      return result('host-key', 'error', `no SSH handshake with ${name}`, 0, {
        cause: `${failure.message}: something accepts TCP connections on ${config.hostName}:${config.port} but does not speak SSH in time.`,
        fix: `Check that ${config.hostName}:${config.port} is ${name}'s sshd and that it is not overloaded.`,
      });
    }
    return undefined;
  }
  const p = hk.presented;
  const keyFile = `/etc/ssh/ssh_host_${p.type.replace(/^ssh-|-sha2-nistp\d+$/g, '')}_key.pub`;
  // The value for column 8: known when ssh2 saw the key; else how to make it on the builder.
  const column8 = isPinnable(p) ? p.machinesColumn : `the output of \`cut -d' ' -f1,2 ${keyFile} | base64 -w0\` on ${name}`;
  const where = hk.usedMachinesColumn ? `column 8 of the machines line (${ctx.sourceLabel})` : `the known_hosts files (${list(config.userKnownHostsFiles.concat(config.globalKnownHostsFiles))})`;
  if (hk.columnNameMismatch) {
    return result('host-key', 'error', `Nix's ssh will not find ${name}'s pinned host key`, hk.durationMs, {
      cause: `Column 8 holds ${name}'s key (${p.fingerprint}), and Nix passes it to ssh under the name '${hk.columnNameMismatch.uriHost}', but ssh looks ${name} up as '${hk.lookupName}' (its HostName${config.port !== 22 ? ' and Port' : ''} from the ssh config): ssh fails with "Host key verification failed.".`,
      fix: `Add \`HostKeyAlias ${hk.columnNameMismatch.uriHost}\` to the \`Host ${name}\` block of the ssh config Nix uses.`,
    });
  }
  switch (hk.verdict.kind) {
    case 'match': {
      const e = hk.verdict.entry;
      const from = e.source.startsWith('/') ? `${e.source}:${e.line}` : e.source;
      if (hk.certificate) {
        return result('host-key', 'ok', `host certificate "${hk.certificate.id}" (${p.fingerprint}) is signed by ${hk.certificate.ca}, trusted by @cert-authority in ${from}`, hk.durationMs, {
          detail: `looked up as '${hk.lookupName}'; checked by OpenSSH's ssh${jumpDetail}`,
        });
      }
      return result('host-key', 'ok', `${p.type} ${p.fingerprint} matches ${from}`, hk.durationMs, { detail: `looked up as '${hk.lookupName}'${jumpDetail}` });
    }
    case 'revoked':
      return result('host-key', 'error', `${name}'s host key is revoked`, hk.durationMs, {
        cause: `${name} presented ${p.fingerprint}, which ${hk.verdict.entry.source}:${hk.verdict.entry.line} marks @revoked. Nix's ssh refuses it.`,
        fix: `Give ${name} a new host key, then pin it (column 8 or known_hosts).`,
      });
    case 'mismatch': {
      const expected = [...new Set(hk.verdict.expected.map((e) => `${e.key.type} ${fingerprintSha256(e.key)}`))].join(', ');
      const sources = [...new Set(hk.verdict.expected.map((e) => (e.source.startsWith('/') ? `${e.source}:${e.line}` : e.source)))].join(', ');
      const typeNote = hk.verdict.sameType ? '' : ` (a key of another type: ${name} no longer offers the pinned type)`;
      const fix = hk.usedMachinesColumn
        ? `Compare with the fingerprint on ${name} itself (\`ssh-keygen -lf ${keyFile}\`). Only if it is ${p.fingerprint}, set column 8 of ${name}'s machines line (${ctx.sourceLabel}) to ${column8}.`
        : `Compare with the fingerprint on ${name} itself (\`ssh-keygen -lf ${keyFile}\`). Only if it is ${p.fingerprint}, remove the old entry (\`ssh-keygen -R ${hk.lookupName}\`${config.userKnownHostsFiles[0] ? ` -f ${config.userKnownHostsFiles[0]}` : ''}) and pin the new key (column 8: ${column8}).`;
      return result('host-key', 'error', `${name}'s host key has changed`, hk.durationMs, {
        cause: `${name} presented ${p.type} ${p.fingerprint}, but ${sources} expects ${expected}${typeNote}. Either ${name} was reinstalled or its key regenerated, or someone is intercepting the connection. Nix's ssh refuses it ("REMOTE HOST IDENTIFICATION HAS CHANGED!").`,
        fix,
      });
    }
    case 'unknown': {
      const lenient = config.strictHostKeyChecking === 'no' || config.strictHostKeyChecking === 'accept-new';
      const nixSays = lenient
        ? `Nix's ssh would accept it unchecked on first use (StrictHostKeyChecking ${config.strictHostKeyChecking}), so nobody would notice an impostor.`
        : `Nix's ssh cannot ask anyone and fails with "Host key verification failed.".`;
      const certNote = hk.certificateProblem ? ` Its host certificate is not accepted either: ${hk.certificateProblem}.` : '';
      return result('host-key', lenient ? 'warning' : 'error', `${name}'s host key is not known`, hk.durationMs, {
        cause: `${name} presented ${p.type} ${p.fingerprint}, and no key for '${hk.lookupName}' is in ${where}.${certNote} ${nixSays}`,
        fix: `Compare ${p.fingerprint} with the fingerprint on ${name} itself (\`ssh-keygen -lf ${keyFile}\`); if they are equal, pin it: set column 8 of ${name}'s machines line (${ctx.sourceLabel}) to ${column8}.`,
      });
    }
  }
}

function tcpCheck(report: ConnectReport, failure: SessionFailure | undefined, ctx: ConnectContext): CheckResult | undefined {
  const { name, config } = ctx;
  const addr = `${config.hostName}:${config.port}`;
  const d = report.tcp?.durationMs ?? 0;
  if (report.tcp?.ok) {
    const checkedBy = report.openssh ? { detail: `checked with OpenSSH's ssh as Nix runs it, because ${report.openssh.reasons.join('; ')}` } : {};
    if (report.tcp.via) return result('tcp', 'ok', `${addr} reached through \`${report.tcp.via}\``, d, checkedBy);
    return result('tcp', 'ok', `${addr} accepts connections`, d, checkedBy);
  }
  if (!failure) return undefined;
  const fixHost = `If ${name} is up, check HostName/Port of \`Host ${name}\` in the ssh config (\`ssh -G ${name}\` shows what ssh uses).`;
  switch (failure.kind) {
    case 'connection-refused':
      return result('tcp', 'error', `${name} is down: nothing listens on ${addr}`, d, {
        cause: `The connection to ${addr} was refused: no sshd runs there (or the port is wrong). Nix fails with "cannot connect to '${name}'" and builds elsewhere or locally.`,
        fix: `Start sshd on ${name}. ${fixHost}`,
      });
    case 'dns':
      return result('tcp', 'error', `${config.hostName} does not resolve`, d, {
        cause: `${failure.message}.`,
        fix: `Fix the name in the machines line or add \`HostName <address>\` to a \`Host ${name}\` block of the ssh config.`,
      });
    case 'unreachable':
      return result('tcp', 'error', `${addr} is unreachable`, d, { cause: `${failure.message}: no route to the host.`, fix: `Check the network (VPN?) between this machine and ${name}. ${fixHost}` });
    case 'timed-out':
      if (failure.phase !== 'tcp') return undefined;
      return result('tcp', 'error', `${addr} does not answer`, d, {
        cause: `${failure.message}: the host is down, or a firewall drops the connection.`,
        fix: `Check that ${name} is running and that port ${config.port} is open to this machine. ${fixHost}`,
      });
    case 'proxy-failed':
      return result('tcp', 'error', `${name} cannot be reached through \`${failure.proxy}\``, d, {
        cause: `ssh runs \`${failure.proxy}\` to reach ${addr}, and it failed: ${failure.message}. Nix's ssh fails the same way ("cannot connect to '${name}'").`,
        fix: `Check the jump host and that it can reach ${addr} (\`ssh -v ${name}\`); ${fixHost}`,
      });
    case 'cancelled':
      return { ...skipped('tcp', 'cancelled') };
    case 'connection-lost':
      if (report.tcp) return undefined;
      return result('tcp', 'error', `cannot connect to ${addr}`, d, { cause: `${failure.message}.`, fix: fixHost });
    default:
      return undefined;
  }
}

function authCheck(report: ConnectReport, failure: SessionFailure | undefined, ctx: ConnectContext): CheckResult | undefined {
  const auth = report.auth;
  const { name, config } = ctx;
  const keyNote = ctx.sshKey && ctx.sshKeyMissing ? `Column 3 names ${ctx.sshKey}, which does not exist (ssh ignores it).` : undefined;
  if (auth?.ok) {
    const used = auth.attempts.find((a) => a.outcome === 'accepted');
    const how = used?.method === 'agent' ? `a key of the ssh agent (${used.source})` : `${used?.source ?? 'a key'}${used?.fingerprint ? ` (${used.fingerprint})` : ''}`;
    if (keyNote) return result('ssh-auth', 'warning', `logged in as ${auth.user} with ${how}`, auth.durationMs, { cause: keyNote, fix: `Correct column 3 of ${name}'s machines line (${ctx.sourceLabel}) or set it to '-'.` });
    return result('ssh-auth', 'ok', `logged in as ${auth.user} with ${how}`, auth.durationMs);
  }
  if (!auth) {
    if (failure?.kind === 'timed-out' && failure.phase === 'auth') {
      return result('ssh-auth', 'error', `the login on ${name} did not finish`, 0, { cause: `${failure.message}.`, fix: `Check ${name}'s sshd (its log, DNS lookups of clients: \`UseDNS no\`).` });
    }
    return undefined;
  }
  if (failure?.kind === 'timed-out') {
    return result('ssh-auth', 'error', `the login on ${name} did not finish`, auth.durationMs, { cause: `${failure.message}.`, fix: `Check ${name}'s sshd (its log; \`UseDNS no\`).` });
  }
  if (failure?.kind === 'connection-lost') {
    return result('ssh-auth', 'error', `${name} closed the connection during the login`, auth.durationMs, {
      cause: `${failure.message}. sshd may refuse the user (AllowUsers, a locked account, MaxStartups).`,
      fix: `Look at ${name}'s sshd log for ${auth.user}.`,
    });
  }
  const tried = auth.attempts.map((a) => {
    if (a.method !== 'agent') return `${a.source}: ${a.outcome}`;
    if (a.keys === 0) return `agent ${a.source}: ${config.identitiesOnly ? 'no key matching an IdentityFile (IdentitiesOnly)' : 'holds no keys'}`;
    return `agent ${a.source}: ${a.keys ?? 'its'} key${a.keys === 1 ? '' : 's'} ${a.outcome}`;
  });
  const usable = auth.attempts.filter((a) => (a.outcome === 'rejected' || a.outcome === 'accepted') && a.keys !== 0);
  const encrypted = auth.attempts.filter((a) => a.outcome === 'encrypted').map((a) => a.source);
  const causes = [
    usable.length === 0
      ? `No usable key: ${tried.length > 0 ? tried.join('; ') : 'no identity file and no ssh agent'}.`
      : `${name} refused every key offered for ${auth.user} (Permission denied (publickey)): ${tried.join('; ')}.`,
  ];
  if (encrypted.length > 0) causes.push(`${encrypted.join(', ')} ${encrypted.length > 1 ? 'are' : 'is'} protected by a passphrase, which Nix's ssh cannot ask for; only an ssh agent holding the key helps.`);
  if (keyNote) causes.push(keyNote);
  const key = ctx.sshKey && !ctx.sshKeyMissing ? ctx.sshKey : usable.find((a) => a.method === 'publickey')?.source;
  const fix = key
    ? `Add ${key}.pub to ~${auth.user}/.ssh/authorized_keys on ${name} (\`ssh-copy-id -i ${key}.pub ${auth.user}@${name}\`), or set column 3 of ${name}'s machines line (${ctx.sourceLabel}) to a key ${name} accepts.`
    : `Create a key without passphrase for Nix (\`ssh-keygen -t ed25519 -N '' -f <file>\`), put its path in column 3 of ${name}'s machines line (${ctx.sourceLabel}) and its .pub into ~${auth.user}/.ssh/authorized_keys on ${name}.`;
  return result('ssh-auth', 'error', `${name} refused the login of ${auth.user}`, auth.durationMs, { cause: causes.join(' '), fix });
}

/** tcp, host-key and ssh-auth results from a connection attempt (only those it decided). */
export function connectChecks(report: ConnectReport, failure: SessionFailure | undefined, ctx: ConnectContext): CheckResult[] {
  return [tcpCheck(report, failure, ctx), hostKeyCheck(report, failure, ctx), authCheck(report, failure, ctx)].filter((c): c is CheckResult => c !== undefined);
}

/** Why later checks did not run, after a failed connection (`report`: a jump host's key may be the cause). */
export function connectSkipReason(failure: SessionFailure, name: string, report?: ConnectReport): string {
  const jump = report && refusedJumpHost(report);
  if (jump) return `the host key of the jump host ${jump.alias} is not verified: the doctor does not go through it`;
  switch (failure.kind) {
    case 'host-key-changed':
    case 'host-key-revoked':
      return `the host key of ${name} is not the pinned one: the doctor does not log in to it`;
    case 'host-key-unknown':
      return `the host key of ${name} is not pinned: compare and pin it first`;
    case 'auth-failed':
      return `the login on ${name} failed`;
    case 'cancelled':
      return 'cancelled';
    default:
      return `${name} could not be reached`;
  }
}

export interface TrustInput {
  /** Builder name, or "this machine". */
  host: string;
  user: string;
  groups: readonly string[];
  /** NIX_REMOTE of the shell that runs Nix ("" when unset). */
  nixRemote: string;
  store: { writable: boolean; socketExists: boolean; socket: string; stateDir: string; nixos: boolean };
  /** `trusted-users` / `allowed-users` from the configuration, when read. */
  config?: ReadonlyMap<string, string>;
  /** `Trusted:` as Nix 2.15+ reports it, when asked. */
  reported?: boolean;
}

export interface TrustDecision {
  status: CheckStatus;
  summary: string;
  cause?: string;
  fix?: string;
  trusted?: boolean;
  /** Whether Nix goes through a daemon. */
  daemon: boolean;
}

/** OpenSSH-like matching of Nix's user lists: names, `*`, `@group`. */
export function userListMatches(entries: readonly string[], user: string, groups: readonly string[]): string | undefined {
  for (const e of entries) {
    if (e === '*' || e === user) return e;
    if (e.startsWith('@') && groups.includes(e.slice(1))) return e;
  }
  return undefined;
}

/** How Nix opens the store (its `auto` logic): a writable state dir → local; else the daemon if its socket exists. */
export function usesDaemon(nixRemote: string, store: { writable: boolean; socketExists: boolean }): boolean {
  if (nixRemote === 'daemon' || nixRemote.startsWith('unix://')) return true;
  if (nixRemote !== '' && nixRemote !== 'auto') return false;
  return !store.writable && store.socketExists;
}

const words = (s: string | undefined) => (s ?? '').split(/\s+/).filter((w) => w.length > 0);

export function decideTrust(input: TrustInput): TrustDecision {
  const { host, user, groups, store } = input;
  const daemon = usesDaemon(input.nixRemote, store);
  const on = host === 'this machine' ? 'on this machine' : `on ${host}`;
  const confFile = host === 'this machine' ? '/etc/nix/nix.conf' : `/etc/nix/nix.conf on ${host}`;
  if (!daemon) {
    if (!store.writable && input.nixRemote === '') {
      return {
        status: 'error',
        daemon,
        summary: `${user} cannot open the Nix store ${on}`,
        cause: `${store.stateDir} is not writable by ${user} and no nix-daemon listens on ${store.socket}.`,
        fix: `Start nix-daemon ${on} (\`systemctl start nix-daemon\`).`,
      };
    }
    return { status: 'ok', daemon, trusted: true, summary: `${user} opens the store directly (no daemon): trusted` };
  }
  const trustedUsers = input.config ? words(input.config.get('trusted-users')) : undefined;
  const allowedUsers = input.config ? words(input.config.get('allowed-users') ?? '*') : undefined;
  const trustedBy = trustedUsers ? userListMatches(trustedUsers, user, groups) : undefined;
  const trusted = input.reported ?? (trustedUsers ? trustedBy !== undefined : undefined);
  if (trusted === undefined) {
    return { status: 'warning', daemon, summary: `could not tell whether ${user} is trusted ${on}`, cause: 'Neither `Trusted:` nor `trusted-users` could be read.' };
  }
  if (trusted) {
    const via = trustedBy && trustedBy !== user ? ` (via ${trustedBy})` : '';
    return { status: 'ok', daemon, trusted, summary: `${user} is a trusted user of the nix-daemon${via}` };
  }
  if (allowedUsers && !userListMatches(allowedUsers, user, groups)) {
    return {
      status: 'error',
      daemon,
      trusted,
      summary: `user ${user} may not use the nix-daemon ${on}`,
      cause: `user ${user} is not in allowed-users (${allowedUsers.join(' ')}) ${on}: the daemon refuses the connection.`,
      fix: `add ${user} to \`trusted-users\` in ${confFile} and restart nix-daemon`,
    };
  }
  const newList = [...new Set([...(trustedUsers ?? []), user])].join(' ');
  const fix = store.nixos
    ? `add "${user}" to nix.settings.trusted-users in the NixOS configuration of ${host} and run \`nixos-rebuild switch\``
    : `add \`trusted-users = ${newList}\` to ${confFile} and restart nix-daemon`;
  return {
    status: 'error',
    daemon,
    trusted,
    summary: `${user} is not trusted ${on}`,
    cause: `user ${user} is not in trusted-users ${on}`,
    fix,
  };
}

export interface RemoteInput {
  builder: BuilderInfo;
  /** URI host. */
  name: string;
  store: SshStoreUri;
  discovery: Discovery;
  /** Round 2, when it ran. */
  nixReport?: NixReport;
  /** The local system, for a machines line without systems. */
  localSystem?: string;
  discoveryMs: number;
  nixMs: number;
  thresholds: DoctorThresholds;
}

function remoteNixCheck(input: RemoteInput): CheckResult {
  const { discovery: d, name, store, builder } = input;
  const who = store.user ? `${store.user}@${name}` : name;
  const { program, fromUri, args } = remoteProgramOf(store);
  const t = input.discoveryMs;
  if (d.onPath) {
    return result('remote-nix', 'ok', fromUri ? `remote-program ${program} exists on ${name}` : `${program} is on the non-interactive PATH of ${who}: ${d.onPath}`, t);
  }
  const found = d.viaLogin ?? d.candidates[0];
  const path = d.env.PATH !== undefined ? `\`${d.env.PATH}\`` : 'unknown';
  if (fromUri) {
    return result('remote-nix', 'error', `remote-program ${program} does not exist on ${name}`, t, {
      cause: `The store URI says remote-program=${program}, which is not an executable on ${name}${found ? `; Nix is at ${found}` : ''}.`,
      fix: found ? `Use \`${withRemoteProgram(builder.uri, found)}\` in ${builder.source.label}.` : `Install Nix on ${name}, or correct remote-program in ${builder.source.label}.`,
    });
  }
  if (!found) {
    return result('remote-nix', 'error', `Nix is not installed on ${name}`, t, {
      cause: `${program} is neither on the non-interactive PATH of ${who} (${path}), nor found by a login shell, nor in the usual places (/nix/var/nix/profiles/default/bin, ~/.nix-profile/bin, /run/current-system/sw/bin, /usr/bin, /usr/local/bin).`,
      fix: `Install Nix on ${name} (multi-user), then check again.`,
    });
  }
  const how = d.viaLogin ? 'a login shell finds it' : 'it is installed';
  return result('remote-nix', 'error', `${program} is not on the non-interactive PATH of ${who}`, t, {
    cause: `Nix runs \`${program} ${args}\` over ssh without a login shell; there PATH is ${path}, which has no ${program}, although ${how} at ${found}. Nix fails with "${program}: command not found".`,
    fix: `Append ?remote-program=${found} to the URI in ${builder.source.label}: \`${withRemoteProgram(builder.uri, found)}\` (or put Nix on the PATH of non-interactive ssh sessions of ${who}).`,
  });
}

function versionCheck(input: RemoteInput): CheckResult {
  const d = input.discovery;
  if (d.version) {
    const impl = d.version.implementation === 'Nix' ? 'Nix' : d.version.implementation;
    return result('nix-version', 'ok', `${impl} ${d.version.text}`, input.discoveryMs, { detail: d.versionText ? `${d.chosen ?? ''} --version: ${d.versionText}`.trim() : undefined });
  }
  if (!d.chosen) return skipped('nix-version', 'Nix was not found on the builder');
  return result('nix-version', 'error', `\`${d.chosen} --version\` failed on ${input.name}`, input.discoveryMs, {
    cause: d.versionError ?? 'no version printed',
    fix: `Repair the Nix installation on ${input.name}.`,
  });
}

function configSkipReason(input: RemoteInput): string | undefined {
  if (!input.discovery.version) return 'the remote Nix version is unknown';
  if (!input.discovery.nix) return `no \`nix\` command next to ${input.discovery.chosen ?? 'nix-store'} on ${input.name}`;
  if (!input.nixReport) return 'the remote configuration was not read';
  if (input.nixReport.configError) return `reading the remote configuration failed: ${input.nixReport.configError}`;
  return undefined;
}

function systemCheck(input: RemoteInput): CheckResult {
  const reason = configSkipReason(input);
  const config = input.nixReport?.config;
  if (reason || !config) return skipped('system', reason ?? 'no configuration');
  const system = config.get('system') ?? 'unknown';
  const platforms = [system, ...words(config.get('extra-platforms'))];
  const claimed = input.builder.systems.length > 0 ? input.builder.systems : input.localSystem ? [input.localSystem] : [];
  const t = input.nixMs;
  if (claimed.length === 0) return result('system', 'ok', `${input.name} builds for ${platforms.join(', ')}`, t);
  const missing = claimed.filter((s) => !platforms.includes(s));
  const claimText = input.builder.systems.length > 0 ? `the machines line claims ${claimed.join(', ')}` : `the machines line has no systems column, so Nix assumes this machine's ${claimed.join(', ')}`;
  if (missing.length === 0) return result('system', 'ok', `${claimed.join(', ')}: ${input.name} builds for ${platforms.join(', ')}`, t);
  return result('system', 'warning', `${input.name} does not build for ${missing.join(', ')}`, t, {
    cause: `${claimText}, but ${input.name}'s Nix builds for ${platforms.join(', ')} only (system = ${system}, extra-platforms = ${words(config.get('extra-platforms')).join(' ') || 'none'}). Builds for ${missing.join(', ')} sent there fail.`,
    fix: `Remove ${missing.join(', ')} from column 2 of ${input.name}'s machines line (${input.builder.source.label}), or add \`extra-platforms = ${missing.join(' ')}\` to /etc/nix/nix.conf on ${input.name} (if it can run them, e.g. with binfmt emulation).`,
  });
}

function featuresCheck(input: RemoteInput): CheckResult {
  const reason = configSkipReason(input);
  const config = input.nixReport?.config;
  if (reason || !config) return skipped('features', reason ?? 'no configuration');
  const remote = words(config.get('system-features'));
  const claimed = [...new Set([...input.builder.supportedFeatures, ...input.builder.mandatoryFeatures])];
  const missing = claimed.filter((f) => !remote.includes(f));
  const extra = remote.filter((f) => !claimed.includes(f));
  const t = input.nixMs;
  if (missing.length === 0) {
    return result('features', 'ok', claimed.length > 0 ? `${claimed.join(', ')}: all in ${input.name}'s system-features` : `no features claimed (${input.name} has ${list(remote)})`, t, {
      detail: extra.length > 0 && claimed.length > 0 ? `${input.name} also offers ${extra.join(', ')}, which the machines line does not list` : undefined,
    });
  }
  const kvm = missing.includes('kvm') ? ' (kvm needs /dev/kvm on the builder)' : '';
  return result('features', 'warning', `${input.name} lacks ${missing.join(', ')}`, t, {
    cause: `The machines line claims ${missing.join(', ')}, but ${input.name}'s Nix reports system-features = ${remote.join(' ') || '(none)'}. Derivations that require ${missing.join(', ')} are sent there and fail.`,
    fix: `Remove ${missing.join(', ')} from column 6/7 of ${input.name}'s machines line (${input.builder.source.label}), or add ${missing.join(', ')} to system-features in /etc/nix/nix.conf on ${input.name} if it really has ${missing.length > 1 ? 'them' : 'it'}${kvm}.`,
  });
}

function trustCheck(input: RemoteInput): CheckResult {
  const d = input.discovery;
  if (!d.user || !d.store) return skipped('trust', 'the remote user or store could not be determined');
  const decision = decideTrust({
    host: input.name,
    user: d.user,
    groups: d.groups,
    nixRemote: d.env.NIX_REMOTE ?? '',
    store: d.store,
    config: input.nixReport?.config,
    reported: input.nixReport?.trusted,
  });
  const t = decision.daemon ? input.nixMs : input.discoveryMs;
  const more: { cause?: string; fix?: string } = {};
  if (decision.cause) more.cause = decision.cause;
  if (decision.fix) more.fix = decision.fix;
  if (decision.status === 'warning' && configSkipReason(input)) more.cause = `${decision.cause ?? ''} (${configSkipReason(input)})`.trim();
  return result('trust', decision.status, decision.summary, t, more);
}

function loadCheck(input: RemoteInput): CheckResult {
  const { load, cores } = input.discovery;
  if (!load) return skipped('load', 'the builder reports no load average (no /proc/loadavg)');
  const perCore = cores ? load[0] / cores : undefined;
  const summary = `load ${load.map((l) => l.toFixed(2)).join(' ')}${cores ? ` on ${cores} cores` : ''}`;
  if (perCore !== undefined && perCore >= input.thresholds.busyLoadPerCore) {
    return result('load', 'warning', `${input.name} is busy: ${summary}`, input.discoveryMs, {
      cause: `The 1-minute load is ${perCore.toFixed(1)} per core. Nix prefers less loaded builders (load ÷ speed factor), but builds sent here will be slow.`,
      fix: `Lower max-jobs for ${input.name} or add builders.`,
    });
  }
  return result('load', 'ok', summary, input.discoveryMs);
}

function diskCheck(input: RemoteInput): CheckResult {
  const { disk, diskError } = input.discovery;
  const th = input.thresholds;
  if (!disk) return skipped('disk', diskError ? `\`df -Pk /nix\` failed: ${diskError}` : 'free space was not reported');
  const summary = `${kib(disk.availableKiB)} free on ${disk.mount} (of ${kib(disk.totalKiB)})`;
  if (disk.availableKiB < th.criticalDiskKiB || disk.availableKiB < th.lowDiskKiB) {
    const critical = disk.availableKiB < th.criticalDiskKiB;
    return result('disk', critical ? 'error' : 'warning', `${input.name} is ${critical ? 'out of' : 'low on'} disk space: ${summary}`, input.discoveryMs, {
      cause: `Builds and copied inputs fill ${disk.mount}; ${critical ? 'builds will fail with "No space left on device"' : 'large builds may fail with "No space left on device"'}.`,
      fix: `Collect garbage on ${input.name} (\`nix-collect-garbage --delete-older-than 14d\`) or enlarge ${disk.mount}.`,
    });
  }
  return result('disk', 'ok', summary, input.discoveryMs);
}

/** remote-nix … disk from the probes' findings. */
export function remoteChecks(input: RemoteInput): CheckResult[] {
  const nix = remoteNixCheck(input);
  const nixMissing = nix.status === 'error' && !input.discovery.chosen;
  return [
    nix,
    versionCheck(input),
    nixMissing ? skipped('system', 'Nix was not found on the builder') : systemCheck(input),
    nixMissing ? skipped('features', 'Nix was not found on the builder') : featuresCheck(input),
    nixMissing ? skipped('trust', 'Nix was not found on the builder') : trustCheck(input),
    loadCheck(input),
    diskCheck(input),
  ];
}

/** Facts for display. */
export function builderFacts(config: EffectiveSshConfig | undefined, d: Discovery | undefined, report: NixReport | undefined, trusted: boolean | undefined): BuilderFacts {
  const f: BuilderFacts = {};
  if (config) Object.assign(f, { hostName: config.hostName, port: config.port, user: config.user });
  if (d) {
    if (d.user) f.user = d.user;
    if (d.groups.length > 0) f.groups = d.groups;
    if (d.version) f.nixVersion = d.version.text;
    if (d.chosen) f.remoteProgram = d.chosen;
    if (d.load) f.load = d.load;
    if (d.cores) f.cores = d.cores;
    if (d.disk) Object.assign(f, { diskAvailableKiB: d.disk.availableKiB, diskTotalKiB: d.disk.totalKiB });
    if (d.uname) f.uname = d.uname;
  }
  const c = report?.config;
  if (c) {
    if (c.get('system')) f.system = c.get('system');
    f.extraPlatforms = words(c.get('extra-platforms'));
    f.systemFeatures = words(c.get('system-features'));
  }
  if (trusted !== undefined) f.trusted = trusted;
  return f;
}

// ---------------------------------------------------------------------------------------------
// I/O

function runnerOf(nix: Nix): ProcessRunner {
  return { run: (req) => nix.run(req.file, req.args, { timeoutMs: req.timeoutMs, signal: req.signal, cwd: req.cwd, input: req.input, env: req.env, unsetEnv: req.unsetEnv }) };
}

async function fileExists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

async function localSystemOf(deps: DoctorDeps): Promise<string | undefined> {
  if (deps.localSystem) return deps.localSystem;
  const config = await deps.nix.config(deps.signal);
  return config.ok ? config.value.system : undefined;
}

/** Check one builder. Never throws: every failure is a check result. */
export async function checkBuilder(builder: BuilderInfo, deps: DoctorDeps): Promise<BuilderHealth> {
  const started = performance.now();
  const t = { ...DEFAULT_TIMEOUTS, ...deps.timeouts };
  const thresholds = { ...DEFAULT_THRESHOLDS, ...deps.thresholds };
  const health = (checks: CheckResult[], facts: BuilderFacts, presentedHostKey?: PresentedHostKey): BuilderHealth => {
    const h: BuilderHealth = { builderId: builder.id, name: builder.name, uri: builder.uri, status: worstStatus(checks), checks, facts, durationMs: ms(performance.now() - started) };
    if (presentedHostKey) h.presentedHostKey = presentedHostKey;
    return h;
  };
  const store = parseSshStoreUri(builder.uri);
  if (!store) return health(completeChecks([], `${builder.uri} is not an SSH builder (ssh:// or ssh-ng://)`), {});
  const results: CheckResult[] = [];
  const name = store.host;

  // 1. ssh -G
  const sshKey = builder.sshKey ?? store.params.get('ssh-key');
  const cfgStarted = performance.now();
  const dest = { host: store.host, ...(store.user ? { user: store.user } : {}), ...(sshKey ? { identityFile: sshKey } : {}) };
  const resolved = await resolveSshConfig(runnerOf(deps.nix), dest, { env: deps.nix.env, timeoutMs: t.sshConfigMs, signal: deps.signal });
  if (!resolved.ok && resolved.cancelled) return health(completeChecks([], 'cancelled'), {});
  if (!resolved.ok) {
    results.push(result('ssh-config', 'error', `ssh cannot tell how to reach ${name}`, performance.now() - cfgStarted, { cause: `${resolved.message}.`, fix: `Fix the ssh config (NIX_SSHOPTS: ${deps.nix.env.NIX_SSHOPTS ?? process.env.NIX_SSHOPTS ?? 'unset'}) or the machines line in ${builder.source.label}.` }));
    return health(completeChecks(results, 'the ssh configuration could not be read'), {});
  }
  const { config } = resolved;
  results.push(sshConfigCheck(config, resolved.args, performance.now() - cfgStarted));

  // 2. connect: TCP, host key, login
  const column = builder.publicHostKey ?? store.params.get('base64-ssh-public-host-key');
  let machinesKeys: PublicKey[] | undefined;
  let columnError: string | undefined;
  if (column) {
    const parsed = parseMachinesHostKey(column);
    if (parsed.ok) machinesKeys = parsed.keys;
    else columnError = parsed.message;
  }
  const agentSocket = deps.nix.env.SSH_AUTH_SOCK ?? process.env.SSH_AUTH_SOCK;
  const nixSshOpts = deps.nix.env.NIX_SSHOPTS ?? process.env.NIX_SSHOPTS;
  const configFile = configFileOf(splitNixSshOpts(nixSshOpts));
  const ctx: ConnectContext = {
    name,
    uri: builder.uri,
    sourceLabel: builder.source.label,
    config,
    columnSet: column !== undefined,
    ...(columnError ? { columnError } : {}),
    // ssh expands a leading ~ of -i itself.
    ...(sshKey ? { sshKey, sshKeyMissing: !(await fileExists(sshKey.replace(/^~(?=\/|$)/, os.homedir()))) } : {}),
    ...(agentSocket ? { agentSocket } : {}),
    ...(configFile !== undefined ? { configFile } : {}),
  };
  const connectOptions = {
    config,
    uriHost: store.host,
    ...(machinesKeys ? { machinesKeys } : {}),
    ...(agentSocket ? { agentSocket } : {}),
    // A shorter ConnectTimeout in the ssh config is what Nix's ssh waits: honour it.
    timeouts: { tcpMs: config.connectTimeout !== undefined ? Math.min(config.connectTimeout * 1000, t.tcpMs) : t.tcpMs, handshakeMs: t.handshakeMs, authMs: t.authMs },
    ...(deps.signal ? { signal: deps.signal } : {}),
    ...(deps.readFile ? { readFile: deps.readFile } : {}),
  };
  let conn = await connectSsh(connectOptions);
  // Where ssh2 cannot do what Nix's ssh does (ProxyJump, host certificates, security keys, …),
  // Nix's ssh itself is asked, with the same options Nix gives it.
  if (!conn.ok && conn.failure.kind === 'needs-openssh') {
    conn = await connectOpenSsh({
      ...connectOptions,
      runner: runnerOf(deps.nix),
      env: deps.nix.env,
      dest,
      nixSshOpts,
      reasons: conn.failure.reasons,
    });
  }
  results.push(...connectChecks(conn.report, conn.ok ? undefined : conn.failure, ctx));
  const hk = conn.report.hostKey;
  const pin = hk && isPinnable(hk.presented) && (hk.verdict.kind !== 'match' || hk.columnNameMismatch || columnError) ? hk.presented : undefined;
  if (!conn.ok) {
    return health(completeChecks(results, connectSkipReason(conn.failure, name, conn.report)), builderFacts(config, undefined, undefined, undefined), pin);
  }

  // 3. probes
  const session = conn.session;
  try {
    const { program } = remoteProgramOf(store);
    const r1 = await session.run(discoveryScript(program), { timeoutMs: t.probeMs, ...(deps.signal ? { signal: deps.signal } : {}) });
    if (r1.kind !== 'exit') {
      const what = r1.kind === 'failed' ? r1.message : r1.kind === 'timed-out' ? `no answer within ${t.probeMs / 1000} s` : 'cancelled';
      results.push(result('remote-nix', r1.kind === 'cancelled' ? 'skipped' : 'error', `the probe on ${name} did not finish`, r1.durationMs, { cause: what }));
      return health(completeChecks(results, r1.kind === 'cancelled' ? 'cancelled' : 'the probe did not finish'), builderFacts(config, undefined, undefined, undefined), pin);
    }
    const discovery = parseDiscovery(r1.stdout);
    let nixReport: NixReport | undefined;
    let nixMs = 0;
    if (discovery.version && discovery.nix) {
      const caps = capabilitiesFor(discovery.version);
      const daemon = discovery.store ? usesDaemon(discovery.env.NIX_REMOTE ?? '', discovery.store) : true;
      const r2 = await session.run(sectionsScript(nixSections(discovery.nix, caps, daemon)), { timeoutMs: t.probeMs, ...(deps.signal ? { signal: deps.signal } : {}) });
      nixMs = r2.durationMs;
      if (r2.kind === 'exit') nixReport = parseNixReport(r2.stdout);
      else nixReport = { configError: r2.kind === 'failed' ? r2.message : r2.kind };
    }
    const localSystem = builder.systems.length === 0 ? await localSystemOf(deps) : undefined;
    const remote = remoteChecks({
      builder,
      name,
      store,
      discovery,
      ...(nixReport ? { nixReport } : {}),
      ...(localSystem ? { localSystem } : {}),
      discoveryMs: r1.durationMs,
      nixMs,
      thresholds,
    });
    results.push(...remote);
    const trusted = remote.find((c) => c.id === 'trust');
    const isTrusted = trusted?.status === 'ok' ? true : trusted?.status === 'error' ? false : undefined;
    return health(completeChecks(results, 'not reached'), builderFacts(config, discovery, nixReport, isTrusted), pin);
  } finally {
    session.close();
  }
}

// --- the local check -------------------------------------------------------------------------

/** What checkLocal learnt about this machine; decideLocal judges it. */
export interface LocalInput extends TrustInput {
  /** uid of the user that runs Nix: Nix builds through build users only as root. */
  uid: number;
  /**
   * The group `build-users-group` names, from the system's group database (`getent group`), when
   * it was looked up: its members, or that it does not exist, or why it could not be looked up.
   */
  buildUsers?: { exists: true; members: string[] } | { exists: false } | { error: string };
}

type Verdict = { status: CheckStatus; summary: string; cause?: string; fix?: string; detail?: string; ignoresBuilders?: boolean };

/** Which store the local Nix opens with this environment (its `auto` logic), and the facts it follows. */
export async function localStore(extraEnv: Readonly<Record<string, string>>) {
  const env = { ...process.env, ...extraEnv };
  const stateDir = env.NIX_STATE_DIR || '/nix/var/nix';
  const socket = env.NIX_DAEMON_SOCKET_PATH || `${stateDir}/daemon-socket/socket`;
  let writable = true;
  try {
    await access(stateDir, fsConstants.R_OK | fsConstants.W_OK);
  } catch {
    writable = false;
  }
  let socketExists = false;
  try {
    socketExists = (await stat(socket)).isSocket();
  } catch {
    socketExists = false;
  }
  const nixos = await fileExists('/etc/NIXOS');
  const nixRemote = env.NIX_REMOTE ?? '';
  const store = { writable, socketExists, socket, stateDir, nixos };
  return { store, nixRemote, daemon: usesDaemon(nixRemote, store) };
}

/**
 * Whether this machine can build at all, and whether the local user may pass `--builders`: which
 * store Nix opens (its own writable one, or a nix-daemon's socket) and whether that daemon trusts
 * the user; as root without a daemon, whether the build users exist; the sandbox setting.
 */
export async function checkLocal(deps: DoctorDeps): Promise<CheckResult<'local-daemon'>> {
  const started = performance.now();
  const t = { ...DEFAULT_TIMEOUTS, ...deps.timeouts };
  const done = (d: Verdict): CheckResult<'local-daemon'> => {
    const r: CheckResult<'local-daemon'> = { id: 'local-daemon', status: d.status, summary: d.summary, durationMs: ms(performance.now() - started) };
    if (d.ignoresBuilders) r.ignoresBuilders = true;
    if (d.cause) r.cause = d.cause;
    if (d.fix) r.fix = d.fix;
    if (d.detail) r.detail = d.detail;
    return r;
  };
  const { store, nixRemote, daemon } = await localStore(deps.nix.env);
  const { username: user, uid } = os.userInfo();
  const caps = await deps.nix.detect();
  if (!caps.ok) return done({ status: 'error', summary: 'Nix could not be run', cause: caps.message });
  const run = (file: string, args: string[]) => deps.nix.run(file, args, { timeoutMs: t.localMs, ...(deps.signal ? { signal: deps.signal } : {}) });
  let reported: boolean | undefined;
  if (daemon && caps.value.reportsTrust) {
    const r = await run(deps.nix.bin('nix'), [...caps.value.nixCommandPrefix, ...caps.value.storeInfo, '--store', 'daemon']);
    const m = /^Trusted:\s*(\d)/m.exec(r.stdout + r.stderr);
    if (r.kind === 'ok' && m) reported = m[1] === '1';
  }
  // The effective configuration: build-users-group and sandbox; for a daemon, before 2.15 (which
  // does not report trust), trusted-users from the client's configuration (normally the same
  // /etc/nix/nix.conf as the daemon's).
  let config: Map<string, string> | undefined;
  const configRun = await run(deps.nix.bin('nix'), [...caps.value.nixCommandPrefix, ...caps.value.showConfig]);
  if (configRun.kind === 'ok') config = parseConfigText(configRun.stdout);
  if (!config && (!daemon || reported === undefined)) {
    return done({ status: 'warning', summary: daemon ? 'could not tell whether the nix-daemon trusts you' : 'could not read the Nix configuration', cause: `${describeResult(configRun)}: ${configRun.stderr.trim()}` });
  }
  let groups: string[] = [];
  if (daemon) {
    const idRun = await run('id', ['-Gn']);
    if (idRun.kind === 'ok') groups = idRun.stdout.trim().split(/\s+/);
  }
  let buildUsers: LocalInput['buildUsers'];
  const group = config?.get('build-users-group');
  if (!daemon && uid === 0 && group) {
    // getent: exit 2 when there is no such group; members are the group line's fourth field.
    const g = await run('getent', ['group', group]);
    if (g.kind === 'ok') buildUsers = { exists: true, members: (g.stdout.trim().split(':')[3] ?? '').split(',').filter((m) => m.length > 0) };
    else if (g.kind === 'exit' && g.exitCode === 2) buildUsers = { exists: false };
    else buildUsers = { error: `getent group ${group}: ${describeResult(g)}` };
  }
  return done(
    decideLocal({
      host: 'this machine',
      user,
      uid,
      groups,
      nixRemote,
      store,
      ...(config ? { config } : {}),
      ...(reported !== undefined ? { reported } : {}),
      ...(buildUsers ? { buildUsers } : {}),
    }),
  );
}

/** The store and the daemon's trust: the part of the local check that decideTrust judges. */
function localStoreVerdict(input: LocalInput, d: TrustDecision): Verdict {
  const { user } = input;
  if (!d.daemon) {
    if (d.status !== 'ok') return d;
    return { status: 'ok', summary: `${user} opens the Nix store directly (no daemon): --builders and NIX_SSHOPTS of this environment apply`, detail: `Store: ${input.store.stateDir}, writable by ${user}; no nix-daemon.` };
  }
  const detail = `Store: through the nix-daemon at ${input.store.socket}. Builds go through the nix-daemon: it runs ssh as root, with root's ssh config, keys and known_hosts (and the daemon's NIX_SSHOPTS), not yours.`;
  if (d.status === 'error' && d.trusted === false) {
    const r: Verdict = {
      status: 'error',
      ignoresBuilders: true,
      summary: `the local nix-daemon does not trust ${user}: it silently ignores --builders`,
      cause: `${d.cause}: the daemon ignores the builders this user passes (--builders, the extension's builders setting) and uses only its own \`builders\` setting (/etc/nix/machines).`,
      detail,
    };
    if (d.fix) r.fix = d.fix;
    return r;
  }
  const { status, summary, cause, fix } = d;
  return { status, summary, ...(cause ? { cause } : {}), ...(fix ? { fix } : {}), detail };
}

/** As root without a daemon, Nix builds as a member of `build-users-group` (when it names one). */
function buildUsersVerdict(input: LocalInput, daemon: boolean): Verdict | undefined {
  const group = input.config?.get('build-users-group');
  // A daemon builds with its own configuration and users; a user other than root builds as itself.
  if (daemon || input.uid !== 0 || group === undefined) return undefined;
  if (group === '') return { status: 'ok', summary: 'builds run as root itself', detail: 'Build users: none (`build-users-group` is empty: a single-user set-up).' };
  const found = input.buildUsers;
  if (found === undefined || 'error' in found) {
    return { status: 'warning', summary: `could not tell whether the build users group '${group}' exists`, cause: found ? `${found.error}.` : 'The group was not looked up.' };
  }
  if (!found.exists || found.members.length === 0) {
    const reason = found.exists ? 'no-members' : 'group-missing';
    return {
      status: 'error',
      summary: found.exists ? `local builds fail: the build users group '${group}' has no members` : `local builds fail: the group '${group}' named by build-users-group does not exist`,
      ...buildUsersAdvice({ group, reason }),
    };
  }
  return { status: 'ok', summary: `builds run as the ${found.members.length} build users of '${group}'`, detail: `Build users: ${found.members.join(', ')} (group '${group}').` };
}

function sandboxDetail(input: LocalInput): string | undefined {
  const sandbox = input.config?.get('sandbox');
  if (sandbox === undefined) return undefined;
  const what = sandbox === 'false' ? 'builds see the whole machine' : sandbox === 'relaxed' ? 'builds are sandboxed unless a derivation sets __noChroot' : 'builds see only their declared inputs';
  return `Sandbox: \`sandbox = ${sandbox}\`: ${what}.`;
}

const SEVERITY: Record<CheckStatus, number> = { error: 0, warning: 1, ok: 2, skipped: 3 };

/**
 * The local check's verdict and wording from the facts checkLocal gathered. Pure. Every problem
 * found is reported, the worst first: the summary names them all, the cause and the fix have one
 * paragraph each.
 */
export function decideLocal(input: LocalInput): Verdict {
  const trust = decideTrust(input);
  const parts = [localStoreVerdict(input, trust), buildUsersVerdict(input, trust.daemon)].filter((v): v is Verdict => v !== undefined);
  const details = [...parts.map((p) => p.detail), sandboxDetail(input)].filter((d): d is string => d !== undefined);
  const detail = details.length > 0 ? { detail: details.join(' ') } : {};
  const problems = parts.filter((p) => p.status === 'error' || p.status === 'warning').sort((a, b) => SEVERITY[a.status] - SEVERITY[b.status]);
  const [first] = problems;
  if (!first) return { status: 'ok', summary: (parts[0] as Verdict).summary, ...detail };
  const paragraphs = (key: 'cause' | 'fix') => problems.map((p) => p[key]).filter((x): x is string => x !== undefined).join('\n');
  const cause = paragraphs('cause');
  const fix = paragraphs('fix');
  const ignoresBuilders = problems.some((p) => p.ignoresBuilders) ? { ignoresBuilders: true } : {};
  return { status: first.status, summary: problems.map((p) => p.summary).join('; '), ...(cause ? { cause } : {}), ...(fix ? { fix } : {}), ...detail, ...ignoresBuilders };
}

/** Check every builder in parallel (and the local daemon trust alongside). */
export async function checkAll(builders: readonly BuilderInfo[], deps: DoctorDeps): Promise<DoctorReport> {
  const started = performance.now();
  const out: BuilderHealth[] = new Array(builders.length);
  const check = async (b: BuilderInfo, i: number) => {
    let h: BuilderHealth;
    try {
      // Each builder listens on a signal of its own that follows the caller's: every step of every
      // builder on the one signal would pass Node's 10 listeners (MaxListenersExceededWarning).
      h = await checkBuilder(b, deps.signal ? { ...deps, signal: AbortSignal.any([deps.signal]) } : deps);
    } catch (e) {
      // checkBuilder does not throw; this is the last line of defence, not a code path.
      const reason = `internal error: ${(e as Error).message}`;
      h = { builderId: b.id, name: b.name, uri: b.uri, status: 'error', checks: completeChecks([{ id: 'ssh-config', status: 'error', summary: 'the check failed', cause: reason, durationMs: 0 }], reason), facts: {}, durationMs: 0 };
    }
    out[i] = h;
    deps.onBuilderChecked?.(h);
  };
  const [local] = await Promise.all([checkLocal(deps), forEachLimited(builders, deps.concurrency ?? 32, check)]);
  return { local, builders: out, durationMs: ms(performance.now() - started) };
}
