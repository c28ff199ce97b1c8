// The ssh configuration that applies to one builder, exactly as OpenSSH computes it: `ssh -G` with
// the same options Nix's ssh gets (NIX_SSHOPTS, then `-i <column 3>`) and the same destination
// (`[user@]host` from the store URI). No config parser of our own: Host/Match blocks, Include,
// defaults and the first-value-wins rule are OpenSSH's business.
import * as os from 'node:os';
import { describeResult, type ProcessRunner } from '../nix/runner';

export type StrictHostKeyChecking = 'yes' | 'no' | 'ask' | 'accept-new';

export interface EffectiveSshConfig {
  /** The host as Nix passes it to ssh (the URI host, often a `Host` alias). */
  alias: string;
  hostName: string;
  port: number;
  user: string;
  /** In OpenSSH's order (`-i` first), `~` and `%` tokens expanded. Files may not exist. */
  identityFiles: string[];
  identitiesOnly: boolean;
  /** `IdentityAgent` as configured: undefined (use SSH_AUTH_SOCK), "none", "SSH_AUTH_SOCK" or a path. */
  identityAgent?: string;
  userKnownHostsFiles: string[];
  globalKnownHostsFiles: string[];
  hostKeyAlias?: string;
  strictHostKeyChecking: StrictHostKeyChecking;
  batchMode: boolean;
  /** Seconds; undefined for "none". */
  connectTimeout?: number;
  proxyJump?: string;
  proxyCommand?: string;
  /** Every `key value` line of `ssh -G`, keys lower-case, repeated keys kept in order. */
  raw: ReadonlyMap<string, readonly string[]>;
}

export interface SshDestination {
  /** Host part of the store URI. */
  host: string;
  /** User part of the store URI, if any. */
  user?: string;
  /** Machines column 3 (Nix passes it as `-i`). */
  identityFile?: string;
}

export type ResolveOutcome = { ok: true; config: EffectiveSshConfig; args: string[] } | { ok: false; message: string; cancelled?: boolean };

/** NIX_SSHOPTS as Nix splits it: on blanks, no quoting. */
export function splitNixSshOpts(value: string | undefined): string[] {
  return (value ?? '').split(/[ \t\n\r]+/).filter((t) => t.length > 0);
}

/** The `ssh` arguments (after `-G`) that describe what Nix's ssh would do for this destination. */
export function sshGArgs(dest: SshDestination, nixSshOpts: string | undefined): string[] {
  return [
    ...splitNixSshOpts(nixSshOpts),
    ...(dest.identityFile ? ['-i', dest.identityFile] : []),
    '--',
    dest.user ? `${dest.user}@${dest.host}` : dest.host,
  ];
}

/** A host or user that ssh would take for an option, or that has no business in a host name. */
export function invalidDestination(dest: SshDestination): string | undefined {
  const bad = (s: string) => s.length === 0 || s.startsWith('-') || /[\s\0'"`$;&|<>\\]/.test(s);
  if (bad(dest.host)) return `'${dest.host}' is not a usable host name`;
  if (dest.user !== undefined && bad(dest.user)) return `'${dest.user}' is not a usable user name`;
  return undefined;
}

export interface ExpandContext {
  home: string;
  localUser: string;
}

/** OpenSSH's `~` and `%` expansion for IdentityFile (a subset: %d %u %h %r %p %n %i %%). */
export function expandPath(value: string, ctx: ExpandContext, config: { hostName: string; user: string; port: number; alias: string }): string {
  let v = value;
  if (v === '~' || v.startsWith('~/')) v = ctx.home + v.slice(1);
  return v.replace(/%([%dhurpni])/g, (_m, c: string) => {
    switch (c) {
      case '%':
        return '%';
      case 'd':
        return ctx.home;
      case 'u':
        return ctx.localUser;
      case 'h':
        return config.hostName;
      case 'r':
        return config.user;
      case 'p':
        return String(config.port);
      case 'n':
        return config.alias;
      case 'i':
        return String(process.getuid?.() ?? '');
      default:
        return _m;
    }
  });
}

/** Parse `ssh -G` output. Total: missing keys get OpenSSH's defaults. */
export function parseSshG(stdout: string, alias: string, ctx: ExpandContext): EffectiveSshConfig {
  const raw = new Map<string, string[]>();
  for (const line of stdout.split('\n')) {
    const m = /^(\S+)\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const key = (m[1] as string).toLowerCase();
    raw.set(key, [...(raw.get(key) ?? []), (m[2] as string).trim()]);
  }
  const one = (key: string) => raw.get(key)?.[0];
  const list = (key: string) => (one(key) ?? '').split(/\s+/).filter((s) => s.length > 0 && s !== 'none');
  const yes = (key: string) => ['yes', 'true'].includes(one(key) ?? '');
  const port = Number(one('port') ?? 22);
  const hostName = one('hostname') ?? alias;
  const user = one('user') ?? ctx.localUser;
  const strictRaw = one('stricthostkeychecking') ?? 'ask';
  const strict: StrictHostKeyChecking =
    strictRaw === 'true' || strictRaw === 'yes' ? 'yes' : strictRaw === 'false' || strictRaw === 'no' || strictRaw === 'off' ? 'no' : strictRaw === 'accept-new' ? 'accept-new' : 'ask';
  const timeout = Number(one('connecttimeout'));
  const base = { hostName, user, port: Number.isFinite(port) ? port : 22, alias };
  const config: EffectiveSshConfig = {
    alias,
    hostName,
    port: base.port,
    user,
    identityFiles: (raw.get('identityfile') ?? []).map((f) => expandPath(f, ctx, base)),
    identitiesOnly: yes('identitiesonly'),
    userKnownHostsFiles: list('userknownhostsfile').map((f) => expandPath(f, ctx, base)),
    globalKnownHostsFiles: list('globalknownhostsfile').map((f) => expandPath(f, ctx, base)),
    strictHostKeyChecking: strict,
    batchMode: yes('batchmode'),
    raw,
  };
  const agent = one('identityagent');
  if (agent !== undefined) config.identityAgent = agent === 'SSH_AUTH_SOCK' || agent === 'none' ? agent : expandPath(agent, ctx, base);
  const alias2 = one('hostkeyalias');
  if (alias2 !== undefined && alias2 !== 'none') config.hostKeyAlias = alias2;
  if (Number.isFinite(timeout) && timeout > 0) config.connectTimeout = timeout;
  const jump = one('proxyjump');
  if (jump !== undefined && jump !== 'none') config.proxyJump = jump;
  const command = one('proxycommand');
  if (command !== undefined && command !== 'none') config.proxyCommand = command;
  return config;
}

export interface ResolveOptions {
  /** Environment added to the server's (NIX_SSHOPTS is read from here, else from process.env). */
  env: Readonly<Record<string, string>>;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Default "ssh". */
  sshBinary?: string;
  /** Defaults: os.homedir() and os.userInfo().username. */
  expand?: ExpandContext;
}

/** Run `ssh -G` for the destination through the process runner. */
export async function resolveSshConfig(runner: ProcessRunner, dest: SshDestination, opts: ResolveOptions): Promise<ResolveOutcome> {
  const invalid = invalidDestination(dest);
  if (invalid) return { ok: false, message: `${invalid}: refusing to pass it to ssh` };
  const nixSshOpts = opts.env.NIX_SSHOPTS ?? process.env.NIX_SSHOPTS;
  return sshG(runner, dest.host, sshGArgs(dest, nixSshOpts), opts);
}

/** `ssh -G <args>` through the process runner, for the host `alias` that args name. */
export async function sshG(runner: ProcessRunner, alias: string, args: string[], opts: ResolveOptions): Promise<ResolveOutcome> {
  const ssh = opts.sshBinary ?? 'ssh';
  const result = await runner.run({ file: ssh, args: ['-G', ...args], env: { ...opts.env }, timeoutMs: opts.timeoutMs, signal: opts.signal });
  if (result.kind === 'cancelled') return { ok: false, message: 'cancelled', cancelled: true };
  if (result.kind !== 'ok') {
    const detail = result.stderr.trim().split('\n').filter((l) => !/^Pseudo-terminal will not be allocated/.test(l)).join(' ');
    const message =
      result.kind === 'spawn-failed' && result.code === 'ENOENT'
        ? `the OpenSSH client (${ssh}) was not found; Nix needs it for ssh:// builders too: install openssh-client`
        : `ssh -G ${args.join(' ')} failed (${describeResult(result)})${detail ? `: ${detail}` : ''}`;
    return { ok: false, message };
  }
  const ctx = opts.expand ?? { home: os.homedir(), localUser: os.userInfo().username };
  return { ok: true, config: parseSshG(result.stdout, alias, ctx), args };
}
