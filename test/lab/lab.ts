// The builder lab: real Nix remote builders on loopback, one mount + PID namespace each, with
// their own /nix, /etc/nix and users, reached through a generated ssh_config. Nothing global
// changes: the client (this machine's own /nix/store, as root) is pointed at the lab through
// environment variables only (`Lab.env`: NIX_CONF_DIR, NIX_SSHOPTS, TMPDIR).
//
// Builders (ssh Host aliases):
//   b1  root, x86_64-linux, features kvm big-parallel …, speed factor 2
//   b2  root, x86_64-linux + extra-platforms aarch64-linux
//   b3  nixremote: not in trusted-users (nix-daemon inside) → "you are not privileged to build …"
//   b4  nopath: nix not on its non-interactive ssh PATH → "nix-store: command not found" unless
//       the URI says ?remote-program=/usr/bin/nix-store; also the trusted users shbash, shdash,
//       shzsh and shfish, whose login shells (which run every remote command) are bash, dash, zsh
//       and fish
//   b5  fleet, x86_64-linux, trusted, nix-daemon inside: sshd and Nix 2.26 of a Debian 13 root
//       (scripts/ensure-nix.sh) with its own store, for a mixed fleet; started only when asked
//       (`startLab({ nix226 })`)
// b1 also presents a host certificate for the principal b1, signed by the lab's host CA
// (`Lab.hostCa`). `Host b1-via-b2` reaches b1 only through b2 as a jump host (ProxyJump): its
// HostName is a name that only b2's /etc/hosts resolves.
// Builds run as root without build users (`build-users-group =`): with no build user Nix never
// kills "all processes of the build uid", so parallel builds on two builders do not collide.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { BuilderHost, StartError, type BuilderSpec } from './host';
import { childPidNamespace, isRunning, killProcesses, liveProcesses, procStat, waitUntilGone, type LabProcess } from './processes';

/** A running builder: what it was made as (name is its ssh Host alias, user its ssh user), plus where it is. */
export interface LabBuilder
  extends Pick<BuilderSpec, 'name' | 'user' | 'systems' | 'supportedFeatures' | 'mandatoryFeatures' | 'trusted' | 'maxJobs' | 'speedFactor' | 'extraUsers'> {
  /** Store URI as written in the machines file, e.g. "ssh://b1" or "ssh://nixremote@b3". */
  uri: string;
  port: number;
  /** Host path of that builder's /nix: outputs it built are in <storeRoot>/store/<hash>-name. */
  storeRoot: string;
  /** Machines-file column 8: base64 of the builder's `ssh-ed25519 AAAA…` host key. */
  hostKeyBase64: string;
  /** Its full 8-column machines line. */
  machinesLine: string;
}

export interface Lab {
  /** Absolute lab folder (mode 0755). */
  dir: string;
  builders: LabBuilder[];
  /** The builder with that name; throws for an unknown name. */
  builder(name: string): LabBuilder;
  /** Absolute path of the ssh config with one `Host bN` alias per builder. */
  sshConfig: string;
  /** Absolute path of the client's private key. */
  clientKey: string;
  /** `ssh-ed25519 AAAA…` of the CA that signed b1's host certificate (for `@cert-authority` lines). */
  hostCa: string;
  /** A Host alias of `sshConfig` that reaches `target` only through the jump host `via` (ProxyJump). */
  behindJump: { alias: string; via: string; target: string; machinesLine: string };
  /** All builders, one per line, after a leading comment line. */
  machinesFile: string;
  /** NIX_CONF_DIR for the client; its nix.conf says `builders = @<machinesFile>`. */
  clientConfDir: string;
  /**
   * {NIX_CONF_DIR, NIX_SSHOPTS, TMPDIR} to add to process.env for client nix commands. TMPDIR is a
   * folder of the lab, so the temporary folders Nix's build hook leaves behind when a remote build
   * fails (`nix-<pid>-<n>/host-key`) go away with the lab: do not use this env after stop().
   */
  env: Record<string, string>;
  /** Whether the output exists in that builder's store. */
  hasStorePath(builder: string, storePath: string): boolean;
  /** Every running process of the lab (empty once stopped). */
  processIds(): number[];
  /** Kills every process the lab started and removes its files; idempotent. */
  stop(): Promise<void>;
}

/** Contents of <dir>/lab.json, which lets another process (the CLI) inspect or stop a lab. */
export interface LabState {
  version: 1;
  dir: string;
  /** A detached lab outlives the process that started it (`cli.ts up --detach`). */
  detached: boolean;
  ownerPid: number;
  startedAt: string;
  processes: LabProcess[];
  builders: LabBuilder[];
  env: Record<string, string>;
}

/** The name b1 has for b2 (and nobody else): Host b1-via-b2 uses it as its HostName. */
const JUMP_TARGET_NAME = 'lab-b1-behind-b2';
const BEHIND_JUMP = { alias: 'b1-via-b2', via: 'b2', target: 'b1' };

const BUILDERS: BuilderSpec[] = [
  {
    name: 'b1',
    user: 'root',
    uid: 0,
    systems: ['x86_64-linux'],
    supportedFeatures: ['kvm', 'big-parallel', 'benchmark', 'nixos-test'],
    mandatoryFeatures: [],
    trusted: true,
    maxJobs: 2,
    speedFactor: 2,
    daemon: false,
    certificatePrincipals: ['b1'],
  },
  {
    name: 'b2',
    user: 'root',
    uid: 0,
    systems: ['x86_64-linux', 'aarch64-linux'],
    supportedFeatures: ['big-parallel', 'benchmark', 'nixos-test'],
    mandatoryFeatures: [],
    trusted: true,
    maxJobs: 2,
    speedFactor: 1,
    daemon: false,
    hosts: [`127.0.0.1 ${JUMP_TARGET_NAME}`],
  },
  {
    name: 'b3',
    user: 'nixremote',
    uid: 30001,
    systems: ['x86_64-linux'],
    supportedFeatures: ['big-parallel', 'benchmark', 'nixos-test'],
    mandatoryFeatures: [],
    trusted: false,
    maxJobs: 1,
    speedFactor: 1,
    daemon: true,
  },
  {
    name: 'b4',
    user: 'nopath',
    uid: 30002,
    systems: ['x86_64-linux'],
    supportedFeatures: ['big-parallel', 'benchmark', 'nixos-test'],
    mandatoryFeatures: [],
    trusted: true,
    maxJobs: 1,
    speedFactor: 1,
    daemon: true,
    // /bin is a symlink to /usr/bin on Debian 12, so PATH must avoid both.
    sshEnvironment: 'PATH=/usr/local/nothing\n',
    extraUsers: [
      { name: 'shbash', uid: 30010, shell: '/bin/bash' },
      { name: 'shdash', uid: 30011, shell: '/usr/bin/dash' },
      { name: 'shzsh', uid: 30012, shell: '/usr/bin/zsh' },
      { name: 'shfish', uid: 30013, shell: '/usr/bin/fish' },
    ],
  },
];

/** b5: the builder that runs Nix 2.26 from `otherRoot` (the folder scripts/ensure-nix.sh made). */
function nix226Builder(otherRoot: string): BuilderSpec {
  return {
    name: 'b5',
    // Not root: the store is then the nix-daemon's, which `nix store info --store daemon` asks (2.19+).
    user: 'fleet',
    uid: 30020,
    systems: ['x86_64-linux'],
    supportedFeatures: ['big-parallel', 'benchmark', 'nixos-test'],
    mandatoryFeatures: [],
    trusted: true,
    maxJobs: 2,
    speedFactor: 1,
    daemon: true,
    otherRoot,
  };
}

/** What a lab writes into its folder; stopping removes exactly these (and the folder if then empty). */
const LAB_ENTRIES = ['lab.json', 'builders', 'nix-client', 'tmp', 'id_ed25519', 'id_ed25519.pub', 'host_ca', 'host_ca.pub', 'ssh_config', 'known_hosts', 'machines'];

const stateFile = (dir: string) => path.join(dir, 'lab.json');
/** Prefix of the default lab folders under os.tmpdir(). */
const TMP_PREFIX = 'nix-builders-lab-';

/**
 * Start the four builders in `dir` (default: a new folder under os.tmpdir()), and b5 with Nix 2.26
 * when `nix226` names the folder scripts/ensure-nix.sh made (see ./nix226.ts). Unless `detached`,
 * the lab is stopped when this process exits, is interrupted (SIGINT/SIGTERM/SIGHUP) or is killed
 * outright (parent-death signal); a detached lab runs until `stopLabAt(dir)`.
 */
export async function startLab(opts: { dir?: string; detached?: boolean; nix226?: string } = {}): Promise<Lab> {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'the builder lab needs root: each builder is a mount namespace (unshare) with its own /nix and /etc bind-mounted over the real ones and an sshd, and clients build in root\'s /nix/store. Run as root, or with sudo (sudo npm test, sudo npm run lab -- up).',
    );
  }
  if (opts.dir === undefined) await sweepAbandonedLabs();
  const dir = opts.dir === undefined ? await mkdtemp(path.join(tmpdir(), TMP_PREFIX)) : path.resolve(opts.dir);
  // Nix splits NIX_SSHOPTS on whitespace, so the absolute paths in it must not contain any.
  if (/\s/.test(dir)) throw new Error(`the lab folder must not contain whitespace: ${JSON.stringify(dir)}`);
  const previous = readLabState(dir);
  if (previous !== undefined && liveProcesses(previous.processes).length > 0) {
    throw new Error(`a lab is already running in ${dir} (stop it with stopLabAt or \`cli.ts down\`)`);
  }
  removeLabFilesSync(dir); // a stale lab's leftovers
  await mkdir(dir, { recursive: true });
  // sshd reads a non-root user's home and authorized_keys as that user: every folder above must be
  // searchable by others (mkdtemp makes 0700).
  await chmod(dir, 0o755);
  const lab = new RunningLab(dir, opts.detached ?? false, opts.nix226 === undefined ? BUILDERS : [...BUILDERS, nix226Builder(opts.nix226)]);
  try {
    await lab.start();
  } catch (error) {
    await lab.stop();
    throw error;
  }
  return lab;
}

/**
 * Remove the default-folder labs whose owner died without stopping them (SIGKILL runs no exit
 * handler; the parent-death signal has already ended their processes, but the files remain).
 */
async function sweepAbandonedLabs(): Promise<void> {
  for (const entry of await readdir(tmpdir())) {
    if (!entry.startsWith(TMP_PREFIX)) continue;
    const dir = path.join(tmpdir(), entry);
    const state = readLabState(dir);
    if (state !== undefined && !state.detached && !isRunning(state.ownerPid)) await stopLabAt(dir);
  }
}

/** Stop the lab described by <dir>/lab.json (from any process) and remove its files; idempotent. */
export async function stopLabAt(dir: string): Promise<void> {
  const state = readLabState(dir);
  if (state !== undefined) {
    killProcesses(state.processes);
    await waitUntilGone(state.processes);
  }
  await removeLabFiles(dir);
}

export function readLabState(dir: string): LabState | undefined {
  let text: string;
  try {
    text = readFileSync(stateFile(path.resolve(dir)), 'utf8');
  } catch {
    return undefined;
  }
  return JSON.parse(text) as LabState;
}

async function removeLabFiles(dir: string): Promise<void> {
  for (const entry of LAB_ENTRIES) await rm(path.join(dir, entry), { recursive: true, force: true });
  await rmdir(dir).catch(() => {}); // kept when something else lives there, or already gone
}

function removeLabFilesSync(dir: string): void {
  for (const entry of LAB_ENTRIES) rmSync(path.join(dir, entry), { recursive: true, force: true });
  try {
    rmdirSync(dir);
  } catch {
    // kept when something else lives there, or already gone
  }
}

// Labs of this process still running, stopped synchronously when the process exits or is
// interrupted. The handlers exist only while this set is non-empty.
const liveLabs = new Set<RunningLab>();
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function stopAllSync(): void {
  for (const lab of liveLabs) lab.stopSync();
}

function onSignal(signal: NodeJS.Signals): void {
  stopAllSync();
  // If no one else handles the signal, restore its default action (terminate) and re-raise it.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function track(lab: RunningLab): void {
  if (liveLabs.size === 0) {
    process.on('exit', stopAllSync);
    for (const signal of SIGNALS) process.on(signal, onSignal);
  }
  liveLabs.add(lab);
}

function untrack(lab: RunningLab): void {
  if (!liveLabs.delete(lab) || liveLabs.size > 0) return;
  process.off('exit', stopAllSync);
  for (const signal of SIGNALS) process.off(signal, onSignal);
}

class RunningLab implements Lab {
  readonly sshConfig: string;
  readonly clientKey: string;
  readonly machinesFile: string;
  readonly clientConfDir: string;
  readonly env: Record<string, string>;
  builders: LabBuilder[] = [];
  hostCa = '';
  behindJump = { ...BEHIND_JUMP, machinesLine: '' };
  private readonly processes: LabProcess[] = [];
  private readonly startedAt = new Date().toISOString();
  private stopping: Promise<void> | undefined;

  constructor(
    readonly dir: string,
    private readonly detached: boolean,
    private readonly specs: readonly BuilderSpec[],
  ) {
    this.sshConfig = path.join(dir, 'ssh_config');
    this.clientKey = path.join(dir, 'id_ed25519');
    this.machinesFile = path.join(dir, 'machines');
    this.clientConfDir = path.join(dir, 'nix-client');
    this.env = { NIX_CONF_DIR: this.clientConfDir, NIX_SSHOPTS: `-F ${this.sshConfig}`, TMPDIR: path.join(dir, 'tmp') };
  }

  async start(): Promise<void> {
    if (!this.detached) track(this);
    await keygen(this.clientKey, 'nix-builders-lab client');
    const clientPublicKey = await readFile(`${this.clientKey}.pub`, 'utf8');
    const hostCaKey = path.join(this.dir, 'host_ca');
    await keygen(hostCaKey, 'nix-builders-lab host CA');
    this.hostCa = (await readFile(`${hostCaKey}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
    const hosts = this.specs.map((spec) => new BuilderHost(this.dir, spec));
    await Promise.all(
      hosts.map(async (host) => {
        await host.prepare(clientPublicKey);
        await keygen(host.hostKey, `lab builder ${host.spec.name}`);
        const principals = host.spec.certificatePrincipals;
        if (principals) {
          const signed = await run('ssh-keygen', ['-q', '-s', hostCaKey, '-h', '-I', `lab builder ${host.spec.name}`, '-n', principals.join(','), `${host.hostKey}.pub`], {});
          if (signed.code !== 0) throw new Error(`ssh-keygen -s failed for ${host.hostKey}.pub: ${signed.stderr}`);
        }
      }),
    );

    const ports = await freePorts(hosts.length);
    // allSettled: never leave a builder starting in the background after the lab gave up.
    const started = await Promise.allSettled(hosts.map((host, i) => this.startHost(host, ports[i]!)));
    const failure = started.find((r) => r.status === 'rejected');
    if (failure !== undefined) throw failure.reason;

    this.builders = await Promise.all(hosts.map((host, i) => describe(host, (started[i] as PromiseFulfilledResult<number>).value, this.clientKey)));
    await this.writeClientFiles();
    this.saveState();
  }

  /** Start one builder, on a new port if another process grabbed this one meanwhile. */
  private async startHost(host: BuilderHost, firstPort: number): Promise<number> {
    for (let attempt = 1, port = firstPort; ; attempt++, port = (await freePorts(1))[0]!) {
      if (this.stopping !== undefined) throw new Error('lab stopped while starting');
      await host.writeSshdConfig(port);
      const child = host.spawn(this.detached);
      await once(child, 'spawn'); // rejects if the program could not be started
      // The lab never keeps this process alive: one that ends without stop() stops it on 'exit'.
      child.unref();
      const pid = child.pid!;
      const proc: LabProcess = { name: host.spec.name, pid, startTime: procStat(pid)?.startTime ?? '' };
      this.processes.push(proc);
      this.saveState();
      try {
        await host.waitReady(child, port);
        proc.pidNs = childPidNamespace(pid);
        return port;
      } catch (error) {
        killProcesses([proc]);
        if (!(error instanceof StartError && error.portInUse && attempt < 3)) throw error;
      }
    }
  }

  private async writeClientFiles(): Promise<void> {
    const hostBlocks = this.builders.map((b) =>
      [
        `Host ${b.name}`,
        '  HostName 127.0.0.1',
        `  Port ${b.port}`,
        `  User ${b.user}`,
        // The name ssh looks up in known_hosts (and in Nix's column-8 key file) is the alias, not
        // 127.0.0.1:port: a store URI cannot carry a port in Nix 2.8.
        `  HostKeyAlias ${b.name}`,
        `  IdentityFile ${this.clientKey}`,
        '  IdentitiesOnly yes',
        `  UserKnownHostsFile ${path.join(this.dir, 'known_hosts')}`,
        '  GlobalKnownHostsFile /dev/null',
        '  StrictHostKeyChecking yes',
        '  BatchMode yes',
        '',
      ].join('\n'),
    );
    const target = this.builder(BEHIND_JUMP.target);
    const jumpBlock = [
      `Host ${BEHIND_JUMP.alias}`,
      `  HostName ${JUMP_TARGET_NAME}`,
      `  Port ${target.port}`,
      `  ProxyJump ${BEHIND_JUMP.via}`,
      `  User ${target.user}`,
      // Nix writes column 8 under the URI host, the alias: ssh must look the key up by that name.
      `  HostKeyAlias ${BEHIND_JUMP.alias}`,
      `  IdentityFile ${this.clientKey}`,
      '  IdentitiesOnly yes',
      `  UserKnownHostsFile ${path.join(this.dir, 'known_hosts')}`,
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes',
      '  BatchMode yes',
      '',
    ].join('\n');
    this.behindJump.machinesLine = target.machinesLine.replace(target.uri, `ssh://${BEHIND_JUMP.alias}`);
    await writeFile(this.sshConfig, [`# ssh config of the Nix builders lab in ${this.dir} (generated)`, '', ...hostBlocks, jumpBlock].join('\n'));
    await writeFile(
      path.join(this.dir, 'known_hosts'),
      [...this.builders.map((b) => [b.name, b.hostKeyBase64]), [BEHIND_JUMP.alias, target.hostKeyBase64]]
        .map(([name, key]) => `${name} ${Buffer.from(key!, 'base64').toString()}\n`)
        .join(''),
    );
    await writeFile(
      this.machinesFile,
      [`# Nix builders lab in ${this.dir} (generated)`, ...this.builders.map((b) => b.machinesLine), ''].join('\n'),
    );
    await mkdir(this.clientConfDir);
    await mkdir(this.env.TMPDIR!);
    await writeFile(
      path.join(this.clientConfDir, 'nix.conf'),
      [
        `# client side of the Nix builders lab in ${this.dir} (generated)`,
        'build-users-group =',
        'substituters =',
        'sandbox = false',
        `builders = @${this.machinesFile}`,
        'builders-use-substitutes = false',
        'experimental-features = nix-command',
        '',
      ].join('\n'),
    );
  }

  private saveState(): void {
    const state: LabState = {
      version: 1,
      dir: this.dir,
      detached: this.detached,
      ownerPid: process.pid,
      startedAt: this.startedAt,
      processes: this.processes,
      builders: this.builders,
      env: this.env,
    };
    writeFileSync(stateFile(this.dir), `${JSON.stringify(state, null, 2)}\n`);
  }

  builder(name: string): LabBuilder {
    const found = this.builders.find((b) => b.name === name);
    if (found === undefined) throw new Error(`no lab builder named ${name} (have ${this.builders.map((b) => b.name).join(', ')})`);
    return found;
  }

  hasStorePath(builder: string, storePath: string): boolean {
    return existsSync(path.join(this.builder(builder).storeRoot, 'store', path.basename(storePath)));
  }

  processIds(): number[] {
    return liveProcesses(this.processes);
  }

  /**
   * Used by the exit and signal handlers, where nothing asynchronous runs any more (also in the
   * middle of an asynchronous stop()). The handlers are removed only afterwards: without them a
   * second signal (the test runner follows SIGINT with SIGTERM) would kill this process mid-way.
   */
  stopSync(): void {
    this.stopping ??= Promise.resolve();
    killProcesses(this.processes);
    removeLabFilesSync(this.dir);
    untrack(this);
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      killProcesses(this.processes);
      await waitUntilGone(this.processes);
      await removeLabFiles(this.dir);
      untrack(this);
    })();
    return this.stopping;
  }
}

async function describe(host: BuilderHost, port: number, clientKey: string): Promise<LabBuilder> {
  const { spec } = host;
  const [type, key] = (await readFile(`${host.hostKey}.pub`, 'utf8')).split(' ');
  const hostKeyBase64 = Buffer.from(`${type} ${key}`).toString('base64');
  const uri = spec.user === 'root' ? `ssh://${spec.name}` : `ssh://${spec.user}@${spec.name}`;
  const list = (items: string[]) => (items.length > 0 ? items.join(',') : '-');
  const machinesLine = [
    uri,
    list(spec.systems),
    clientKey,
    spec.maxJobs,
    spec.speedFactor,
    list(spec.supportedFeatures),
    list(spec.mandatoryFeatures),
    hostKeyBase64,
  ].join(' ');
  return {
    name: spec.name,
    uri,
    user: spec.user,
    port,
    systems: spec.systems,
    supportedFeatures: spec.supportedFeatures,
    mandatoryFeatures: spec.mandatoryFeatures,
    trusted: spec.trusted,
    maxJobs: spec.maxJobs,
    speedFactor: spec.speedFactor,
    ...(spec.extraUsers ? { extraUsers: spec.extraUsers } : {}),
    storeRoot: host.storeRoot,
    hostKeyBase64,
    machinesLine,
  };
}

/** Distinct free loopback ports: all are held open together so the kernel cannot repeat one. */
async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => net.createServer().listen(0, '127.0.0.1'));
  await Promise.all(servers.map((s) => once(s, 'listening')));
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

async function keygen(file: string, comment: string): Promise<void> {
  const result = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], {});
  if (result.code !== 0) throw new Error(`ssh-keygen failed for ${file}: ${result.stderr}`);
}

// ---------------------------------------------------------------------------------------------
// Helpers for tests that drive the client against the lab.

/** Result of a client command. */
export interface ClientRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Run a command (no shell) with extra environment variables, collecting its output. */
function run(command: string, args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<ClientRun> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
  });
}

/** Run a Nix client command against the lab (its env added to process.env). */
export function runClient(lab: Lab, command: string, args: string[], timeoutMs?: number): Promise<ClientRun> {
  return run(command, args, lab.env, timeoutMs);
}

/** A `--builders` value: machines lines (of lab builders, or given verbatim) joined with ';'. */
export function buildersOption(machines: Array<LabBuilder | string>): string {
  return machines.map((m) => (typeof m === 'string' ? m : m.machinesLine)).join(' ; ');
}

/**
 * `nix-build -E expression` on the client with exactly these builders and `--max-jobs 0`, so the
 * derivation is built remotely or not at all. On success stdout is the output path.
 */
export function nixBuild(lab: Lab, expression: string, builders: Array<LabBuilder | string>, extraArgs: string[] = []): Promise<ClientRun> {
  return runClient(lab, 'nix-build', ['--no-out-link', '--max-jobs', '0', '--builders', buildersOption(builders), ...extraArgs, '-E', expression]);
}

/** A Nix string literal (escapes `"`, `\` and `${`). */
function nixString(text: string): string {
  return JSON.stringify(text).replace(/\$\{/g, '\\${');
}

/** The line a saltedDerivation built on that builder contains. */
export function builderMarker(name: string): string {
  return BuilderHost.marker(name);
}

/**
 * A Nix expression for a derivation with builder /bin/sh that writes the first line of the
 * building machine's /etc/nix/nix.conf (`builderMarker(name)` on a lab builder) into $out. The
 * salt (random by default) makes its output path new, so it always really builds. `seconds`
 * makes the build last that long (for concurrency or progress tests). Builders run with an empty
 * PATH: the script uses dash builtins and absolute paths only.
 */
export function saltedDerivation(opts: { system: string; features?: string[]; name?: string; salt?: string; seconds?: number }): string {
  const name = opts.name ?? 'lab-probe';
  if (!/^[A-Za-z0-9+_?=-][A-Za-z0-9+._?=-]*$/.test(name)) throw new Error(`not a valid store path name: ${name}`);
  const seconds = opts.seconds ?? 0;
  if (!(Number.isFinite(seconds) && seconds >= 0)) throw new Error(`seconds must be a non-negative number: ${seconds}`);
  const script = [
    ...(seconds > 0 ? [`/bin/sleep ${seconds}`] : []),
    'read -r line < /etc/nix/nix.conf',
    `printf '%s\\n' "$line" > "$out"`,
  ].join('; ');
  return [
    'derivation {',
    `  name = ${nixString(name)};`,
    `  system = ${nixString(opts.system)};`,
    '  builder = "/bin/sh";',
    `  args = [ "-c" ${nixString(script)} ];`,
    `  requiredSystemFeatures = [ ${(opts.features ?? []).map(nixString).join(' ')} ];`,
    `  salt = ${nixString(opts.salt ?? randomUUID())};`,
    '}',
  ].join('\n');
}
