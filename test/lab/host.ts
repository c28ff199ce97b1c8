// One builder "host": a folder holding its /nix, its /etc overrides, home folders, host key and
// sshd_config, and a process tree living in its own mount and PID namespaces:
//
//   [setpriv --pdeathsig KILL] unshare --pid --fork --kill-child --mount-proc …   (spawned detached)
//     └─ sh HOST_SCRIPT → exec sshd -D            (PID 1 of the namespace)
//          └─ nix-daemon                          (only for builders whose ssh user is not root)
// A builder with an `otherRoot` (b5, Nix 2.26) runs the same sshd and nix-daemon inside that
// Debian 13 root instead (OTHER_ROOT_SCRIPT), with the builder's /nix and /etc mounted there.
//
// The host has no /etc/nix to bind-mount onto, and nothing global may change. So inside the
// namespace /etc itself is replaced by the builder's own etc folder, in which nix/, passwd, group
// and shadow are real files and every other entry is a symlink into a bind-mount of the real /etc.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, chown, mkdir, readdir, readlink, symlink, writeFile } from 'node:fs/promises';
import { openSync, closeSync, readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

export interface BuilderSpec {
  name: string;
  user: string;
  /** uid (and gid) of `user` in the builder's own /etc/passwd. */
  uid: number;
  systems: string[];
  supportedFeatures: string[];
  mandatoryFeatures: string[];
  /** Whether `user` is in the builder's trusted-users. */
  trusted: boolean;
  maxJobs: number;
  speedFactor: number;
  /** A non-root ssh user cannot open the root-owned store: such builders run a nix-daemon. */
  daemon: boolean;
  /** Contents of the user's ~/.ssh/environment (read because of `PermitUserEnvironment PATH`). */
  sshEnvironment?: string;
  /**
   * More login users (same client key; in trusted-users when `trusted`), each with its own login
   * shell: sshd runs every remote command through it.
   */
  extraUsers?: Array<{ name: string; uid: number; shell: string }>;
  /** Lines added to the builder's own /etc/hosts: names only this host (e.g. as a jump host) resolves. */
  hosts?: string[];
  /** Principals of a host certificate for the host key, signed by the lab's host CA; sshd presents it. */
  certificatePrincipals?: string[];
  /**
   * Run sshd and Nix of another system: the folder scripts/ensure-nix.sh made (a Debian 13 root in
   * root/, with Nix 2.26, and libexec/enter). The builder's /nix and /etc are mounted into that root
   * instead of over this machine's.
   */
  otherRoot?: string;
}

/** Runs as PID 1 of the new namespaces; $1 = builder folder, $2 = "daemon" or "no-daemon". */
const HOST_SCRIPT = `set -eu
b=$1
mount --bind /etc "$b/hostetc"
mount --bind "$b/etc" /etc
mount --bind "$b/nix" /nix
mount -t tmpfs -o mode=0755 lab-run /run
mkdir -m 0755 /run/sshd
nix-store --init
if [ "$2" = daemon ]; then nix-daemon & fi
exec /usr/sbin/sshd -D -E "$b/sshd.log" -f "$b/sshd_config"
`;

/**
 * HOST_SCRIPT for a builder with an `otherRoot` ($3): its /etc and /nix go into that root, and
 * `enter` runs the rest there (mounting /proc, /dev and this machine's folders, among them the lab's).
 */
const OTHER_ROOT_SCRIPT = `set -eu
b=$1
r=$3/root
mount --bind "$r/etc" "$b/hostetc"
mount --bind "$b/etc" "$r/etc"
mount --bind "$b/nix" "$r/nix"
mount -t tmpfs -o mode=0755 lab-run "$r/run"
mkdir -m 0755 "$r/run/sshd"
exec "$3/libexec/enter" "$r" sh -c 'set -eu
nix-store --init
if [ "$2" = daemon ]; then nix-daemon & fi
exec /usr/sbin/sshd -D -E "$1/sshd.log" -f "$1/sshd_config"' sh "$b" "$2"
`;

export class BuilderHost {
  readonly dir: string;
  readonly storeRoot: string;
  readonly hostKey: string;
  /** `ssh-keygen -s` writes the certificate of `hostKey` here (see `certificatePrincipals`). */
  readonly hostCertificate: string;
  readonly log: string;
  readonly tmp: string;

  constructor(
    labDir: string,
    readonly spec: BuilderSpec,
  ) {
    this.dir = path.join(labDir, 'builders', spec.name);
    this.storeRoot = path.join(this.dir, 'nix');
    this.hostKey = path.join(this.dir, 'ssh_host_ed25519_key');
    this.hostCertificate = `${this.hostKey}-cert.pub`;
    this.log = path.join(this.dir, 'sshd.log');
    this.tmp = path.join(this.dir, 'tmp');
  }

  private home(user: string): string {
    return path.join(this.dir, 'home', user);
  }

  /** The first line of the builder's /etc/nix/nix.conf; saltedDerivation's output is this line. */
  static marker(name: string): string {
    return `# nix-builders lab: builder ${name}`;
  }

  /** Everything but the host key and sshd_config. */
  async prepare(clientPublicKey: string): Promise<void> {
    const { spec } = this;
    const etc = path.join(this.dir, 'etc');
    await mkdir(path.join(etc, 'nix'), { recursive: true });
    await mkdir(path.join(this.dir, 'hostetc'));
    await mkdir(this.storeRoot);
    // Build folders (and anything else Nix puts in TMPDIR) stay inside the builder's folder.
    await mkdir(this.tmp);
    await chmod(this.tmp, 0o1777);

    const own = new Set(['nix', 'passwd', 'group', 'shadow', ...(spec.hosts ? ['hosts'] : [])]);
    // hostetc is a bind-mount of the /etc the builder would otherwise have: this machine's, or its root's.
    const hostEtc = spec.otherRoot ? path.join(spec.otherRoot, 'root', 'etc') : '/etc';
    for (const entry of await readdir(hostEtc, { withFileTypes: true })) {
      if (own.has(entry.name)) continue;
      // Symlinks are copied as they are (relative ones resolve the same under the new /etc).
      const target = entry.isSymbolicLink()
        ? await readlink(path.join(hostEtc, entry.name))
        : path.join(this.dir, 'hostetc', entry.name);
      await symlink(target, path.join(etc, entry.name));
    }

    if (spec.hosts) await writeFile(path.join(etc, 'hosts'), `${readFileSync('/etc/hosts', 'utf8')}\n${spec.hosts.join('\n')}\n`);

    const users = [
      { name: 'root', uid: 0, shell: '/bin/bash' },
      ...(spec.user === 'root' ? [] : [{ name: spec.user, uid: spec.uid, shell: '/bin/bash' }]),
      ...(spec.extraUsers ?? []),
    ];
    await writeFile(
      path.join(etc, 'passwd'),
      [
        ...users.map((u) => `${u.name}:x:${u.uid}:${u.uid}:${u.name}:${this.home(u.name)}:${u.shell}`),
        // sshd's privilege-separation user; its uid does not matter.
        'sshd:x:74:65534:sshd privilege separation:/run/sshd:/usr/sbin/nologin',
        'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
        '',
      ].join('\n'),
    );
    await writeFile(path.join(etc, 'group'), [...users.map((u) => `${u.name}:x:${u.uid}:`), 'nogroup:x:65534:', ''].join('\n'));
    // With UsePAM no, sshd refuses accounts whose shadow password starts with '!' (locked): '*' is
    // "no password", which still allows public-key logins.
    await writeFile(
      path.join(etc, 'shadow'),
      [...users.map((u) => u.name), 'sshd', 'nobody'].map((n) => `${n}:*:19000:0:99999:7:::\n`).join(''),
      { mode: 0o600 },
    );

    const trustedUsers = ['root', ...(spec.trusted ? users.slice(1).map((u) => u.name) : [])];
    const [system, ...extraPlatforms] = spec.systems;
    await writeFile(
      path.join(etc, 'nix', 'nix.conf'),
      [
        BuilderHost.marker(spec.name),
        `system = ${system}`,
        ...(extraPlatforms.length > 0 ? [`extra-platforms = ${extraPlatforms.join(' ')}`] : []),
        `system-features = ${spec.supportedFeatures.join(' ')}`,
        `max-jobs = ${spec.maxJobs}`,
        `trusted-users = ${trustedUsers.join(' ')}`,
        'build-users-group =',
        'sandbox = false',
        'substituters =',
        'experimental-features = nix-command',
        '',
      ].join('\n'),
    );

    for (const u of users) {
      // sshd reads these as the user (StrictModes): owned by the user, nothing group/world-writable.
      const home = this.home(u.name);
      const ssh = path.join(home, '.ssh');
      await mkdir(home, { recursive: true, mode: 0o755 });
      await mkdir(ssh, { mode: 0o700 });
      await writeFile(path.join(ssh, 'authorized_keys'), clientPublicKey, { mode: 0o600 });
      if (u.name === spec.user && spec.sshEnvironment !== undefined) {
        await writeFile(path.join(ssh, 'environment'), spec.sshEnvironment, { mode: 0o600 });
      }
      for (const p of [home, ssh, ...(await readdir(ssh)).map((f) => path.join(ssh, f))]) await chown(p, u.uid, u.uid);
    }
  }

  async writeSshdConfig(port: number): Promise<void> {
    await writeFile(
      path.join(this.dir, 'sshd_config'),
      [
        `# sshd of lab builder ${this.spec.name}`,
        `ListenAddress 127.0.0.1:${port}`,
        `HostKey ${this.hostKey}`,
        ...(this.spec.certificatePrincipals ? [`HostCertificate ${this.hostCertificate}`] : []),
        'UsePAM no',
        'PermitRootLogin prohibit-password',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'AuthorizedKeysFile .ssh/authorized_keys',
        'StrictModes yes',
        // Lets a user's ~/.ssh/environment set PATH, like a macOS user whose nix is not on the
        // non-interactive PATH.
        'PermitUserEnvironment PATH',
        `SetEnv TMPDIR=${this.tmp}`,
        'PrintMotd no',
        'LogLevel VERBOSE',
        '',
      ].join('\n'),
    );
  }

  /**
   * Start the namespaces, sshd and, if needed, nix-daemon. Unless `detached`, the tree dies with
   * this Node process even if it is SIGKILLed (parent-death signal on the root).
   */
  spawn(detached: boolean): ChildProcess {
    const unshare = ['unshare', '--pid', '--fork', '--kill-child', '--mount-proc', '--propagation', 'private'];
    const script = [
      '/bin/sh',
      '-c',
      this.spec.otherRoot ? OTHER_ROOT_SCRIPT : HOST_SCRIPT,
      `lab-${this.spec.name}`,
      this.dir,
      this.spec.daemon ? 'daemon' : 'no-daemon',
      ...(this.spec.otherRoot ? [this.spec.otherRoot] : []),
    ];
    const argv = detached ? [...unshare, '--', ...script] : ['setpriv', '--pdeathsig', 'KILL', '--', ...unshare, '--', ...script];
    const logFd = openSync(this.log, 'a');
    try {
      return spawn(argv[0]!, argv.slice(1), {
        detached: true, // own session and process group: the lab kills it by group
        stdio: ['ignore', logFd, logFd],
        env: { PATH: '/usr/sbin:/usr/bin', HOME: this.home('root'), TMPDIR: this.tmp, LANG: 'C.UTF-8' },
      });
    } finally {
      closeSync(logFd);
    }
  }

  /**
   * Resolve when sshd accepts TCP connections (and the nix-daemon its socket); reject as soon as
   * the root process exits, with the builder's log in the message.
   */
  async waitReady(child: ChildProcess, port: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const connectUntilReady = async (target: net.NetConnectOpts): Promise<void> => {
      while (!(await canConnect(target))) {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new StartError(this, `exited (${child.signalCode ?? child.exitCode}) while starting`);
        }
        if (Date.now() > deadline) throw new StartError(this, `not ready after ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    await connectUntilReady({ host: '127.0.0.1', port });
    // (This probe makes the daemon log "unexpected end-of-file": it sends no handshake.)
    if (this.spec.daemon) await connectUntilReady({ path: path.join(this.storeRoot, 'var/nix/daemon-socket/socket') });
  }
}

/** A builder failed to start; `portInUse` says a retry on another port may help. */
export class StartError extends Error {
  readonly portInUse: boolean;
  constructor(host: BuilderHost, what: string) {
    let log = '';
    try {
      log = readFileSync(host.log, 'utf8');
    } catch {
      // no log written yet
    }
    super(`lab builder ${host.spec.name} ${what}; its log (${host.log}):\n${log.trim().split('\n').slice(-15).join('\n')}`);
    this.portInUse = /Address already in use/.test(log);
  }
}

export function canConnect(target: net.NetConnectOpts): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(target);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
