// The post-build-hook the server writes for the push queue: a POSIX sh script that only appends the
// paths Nix just built to the queue folder and exits 0 at once, whatever happens. Nix runs the hook
// after every build (also a remote one) in its build loop: a slow hook slows every build, a failing
// one stops further builds. So it never pushes, never waits for the network, and never fails.
//
// - One file per build: the paths, one per line, written to `.new.<name>` then renamed to `<name>`
//   (`q-<drv hash>-<pid>`) in the same folder, so the worker never sees half an entry and
//   concurrent builds never interleave. A build of the same derivation whose entry is still queued
//   under the same pid replaces it with the same paths.
// - Nix 2.8 passes OUT_PATHS empty (NixOS/nix#6446, also `--check` in 2.30–2.32.2): the outputs are
//   then read from DRV_PATH with `nix-store -q --outputs` (one quick local query).
// - Any failure (the queue folder missing or not writable, the query failing) is said on stderr,
//   which Nix puts into the build's log, and the hook still exits 0.
// - Programs are named by the absolute paths found when the hook is written: under the daemon the
//   hook runs as root with the daemon's PATH.
// - No fsync (it would cost more than the rest): a power loss right after a build may lose its
//   entry; a crash of any process does not.
import { constants } from 'node:fs';
import { access, chmod, mkdir } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomic } from '../builders/machinesEdit';
import type { Nix } from '../nix/nix';
import { nixConfFor, setNixConfSettings } from '../nix/nixConfEdit';
import type { NixConfSetUpResult, ServerSettings, SetUpNixConfArgs } from '../protocol';
import { shellQuote } from '../remote/shellQuote';
import { ensureQueueDir } from './queue';
import { systemdUnit } from './standalone';

/** The server's own folder for state that outlives it: $XDG_STATE_HOME/nix-builders, else ~/.local/state/nix-builders. */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state'), 'nix-builders');
}

/** The queue folder the hook and the worker use unless told otherwise. */
export const defaultQueueDir = (env: NodeJS.ProcessEnv = process.env): string => path.join(stateDir(env), 'push-queue');

/** Where the server writes its hook scripts. */
export const hooksDir = (env: NodeJS.ProcessEnv = process.env): string => path.join(stateDir(env), 'hooks');

/** The absolute path of `name` on `PATH` (or `name` itself when it has a slash), or undefined. */
export async function findProgram(name: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const candidates = name.includes('/') ? [path.resolve(name)] : (env.PATH ?? '').split(':').filter((d) => d.startsWith('/')).map((d) => path.join(d, name));
  for (const c of candidates) {
    if (await access(c, constants.X_OK).then(() => true, () => false)) return c;
  }
  return undefined;
}

export interface PostBuildHookPrograms {
  nixStore: string;
  mv: string;
  rm: string;
}

/** The hook's text for a queue folder, with absolute program paths. */
export function postBuildHookScript(queueDir: string, p: PostBuildHookPrograms): string {
  const q = shellQuote;
  return `#!/bin/sh
# Nix Builders' post-build-hook: queues the paths Nix just built for the push worker, and exits 0
# at once whatever happens (a failing hook would stop Nix's builds). Written by the extension's
# set-up; it writes it again when run again.
queue=${q(queueDir)}
set -f
enqueue() {
  paths=$OUT_PATHS
  if [ -z "$paths" ]; then
    # Nix 2.8 passes OUT_PATHS empty: read the outputs from the derivation.
    [ -n "$DRV_PATH" ] || { echo 'neither OUT_PATHS nor DRV_PATH is set' >&2; return 1; }
    paths=$(${q(p.nixStore)} -q --outputs "$DRV_PATH") || return 1
  fi
  drv=\${DRV_PATH##*/}
  hash=\${drv%%-*}
  name=q-\${hash:-0}-$$
  for path in $paths; do printf '%s\\n' "$path"; done > "$queue/.new.$name" || return 1
  ${q(p.mv)} -f "$queue/.new.$name" "$queue/$name" || { ${q(p.rm)} -f "$queue/.new.$name"; return 1; }
}
if ! (enqueue); then
  echo "nix-builders post-build-hook: could not queue the outputs of \${DRV_PATH:-a build} in $queue: they are not pushed. Check that the folder exists and that Nix (root under the daemon) may write it." >&2
fi
exit 0
`;
}

/** Write an executable script (0755) atomically; the folder is made when missing. */
export async function writeScript(file: string, text: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, text);
  await chmod(file, 0o755);
}

/** The queue folder of the settings: nixBuilders.cache.queue.dir, else the server's own. */
export function queueDirOf(settings: ServerSettings): string {
  return settings.cache?.queue.dir || defaultQueueDir({ ...process.env, ...settings.env });
}

/** What post-build-hook needs to take effect, for the notes of a set-up (shared with the diff-hook's). */
export function daemonNotes(hook: string, file: string, system: string): string[] {
  return [
    `${hook} takes effect from the daemon's own configuration (the system nix.conf, ${system}) or, in your nix.conf, only when you are in the daemon's trusted-users; without a daemon (single-user Nix) from either.`,
    `Nix reads nix.conf when it starts: after a change of ${file === system ? 'the system nix.conf' : 'a nix.conf the daemon reads'}, restart the daemon (sudo systemctl restart nix-daemon; on macOS sudo launchctl kickstart -k system/org.nixos.nix-daemon).`,
  ];
}

/**
 * The post-build-hook set-up: the queueing script (0755, in the server's hooks folder), the queue
 * folder, and `post-build-hook = <script>` in nix.conf (the user's unless told otherwise), with
 * the notes on what else it takes and the standalone worker's systemd unit.
 */
export async function setUpPostBuildHook(nix: Nix, args: SetUpNixConfArgs, settings: ServerSettings): Promise<NixConfSetUpResult> {
  const env = { ...process.env, ...settings.env };
  const queueDir = args.queueDir ?? queueDirOf(settings);
  const file = args.nixConf ?? nixConfFor(args.scope ?? 'user', settings);
  const system = nixConfFor('system', settings);
  const script = path.join(hooksDir(env), 'post-build-hook');
  const caps = await nix.detect();
  const version = caps.ok ? caps.value.version : undefined;
  const notes = [
    ...daemonNotes('post-build-hook', file, system),
    `Under the daemon the hook runs as root: ${script} is in your folder, so whoever can write it can run commands as root (only for a trusted user, who is as good as root to the daemon anyway).`,
    version && caps.ok && caps.value.asyncPostBuildHook
      ? `Nix ${version.text} runs post-build-hooks asynchronously: builds go on while the hook runs.`
      : `Nix${version ? ` ${version.text}` : ''} waits for the hook after every build (Nix runs them asynchronously only from 2.35): this one only queues the paths and returns at once.`,
    ...(version && version.major === 2 && version.minor === 8 ? [`Nix ${version.text} passes OUT_PATHS empty: the hook reads the outputs from DRV_PATH (nix-store -q --outputs).`] : []),
    settings.cache?.queue.enabled && settings.cache.pushTargets[0]
      ? `While the editor runs, this server pushes the queue to ${settings.cache.pushTargets[0]}.`
      : 'While the editor runs, the server pushes the queue once nixBuilders.cache.queue.enabled is on and nixBuilders.cache.pushTargets names a store.',
    `When no editor runs, the standalone worker pushes it: install the systemd user unit shown (systemctl --user daemon-reload; systemctl --user enable --now nix-builders-push).${args.queueDir !== undefined && args.queueDir !== queueDirOf(settings) ? ` Set nixBuilders.cache.queue.dir to ${queueDir} so that the server's worker uses this queue.` : ''}`,
  ];
  const programs = {
    nixStore: (await findProgram(nix.bin('nix-store'), env)) ?? nix.bin('nix-store'),
    mv: (await findProgram('mv', env)) ?? '/bin/mv',
    rm: (await findProgram('rm', env)) ?? '/bin/rm',
  };
  const unit = systemdUnit({ node: process.execPath, script: path.join(__dirname, 'pushWorker.js'), queue: queueDir, to: settings.cache?.pushTargets[0] ?? 'STORE', ...(settings.cache?.signingKeyFile ? { keyFile: settings.cache.signingKeyFile } : {}), ...(settings.nixBinDir ? { nixBinDir: settings.nixBinDir } : {}) }, env);
  if (!args.dryRun) {
    try {
      await ensureQueueDir(queueDir);
      await writeScript(script, postBuildHookScript(queueDir, programs));
    } catch (e) {
      return { status: 'failed', nixConf: file, lines: [`post-build-hook = ${script}`], notes, message: `Cannot write the hook or its queue folder: ${e instanceof Error ? e.message : String(e)}. Nothing was changed in ${file}.` };
    }
  }
  const result = await setNixConfSettings(file, [{ key: 'post-build-hook', value: script }], { dryRun: args.dryRun ?? false, notes });
  return { ...result, ...(args.dryRun ? {} : { script }), systemdUnit: unit };
}
