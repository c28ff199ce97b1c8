// Let Nix check too: the guided set-up of `diff-hook` + `run-diff-hook = true` (and, for Nix
// before 2.13, `repeat = 1`). Nix runs the hook when a rebuild's output differs from the first
// build's — `nix-build --check`, `nix build --rebuild`, or the rounds of `repeat` — with
// `$1` the first output, `$2` the rebuild (`<out>.check`), `$3` the derivation, `$4` the build
// folder, as the build user (a `nixbld` user under the daemon) and outside the sandbox.
//
// So the hook cannot write into the user's folders. It prints what differs on stdout, which Nix puts
// into the build's log (as an error message, also on the terminal), and keeps a copy in a
// world-writable sticky folder (like /tmp: each build user can add files, none can remove
// another's): `<tmp>/nix-builders-diff-hook/<output name>.<pid>.txt`.
// Nix stops at the first differing output, so the hook sees only that one (Check Reproducibility
// compares every output).
//
// The build user must reach the script: as root it goes to SYSTEM_HOOKS_DIR (0755, made here;
// root's home is 0700), else to the user's state folder, and when a folder above it is closed to
// other users the lines are given to paste with the problem and the fix, never "written". Under a
// daemon a user's nix.conf counts only for a trusted user (the doctor's local check tells).
import { constants } from 'node:fs';
import { chmod, mkdir, stat } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkLocal } from '../builders/doctor';
import { daemonNotes, findProgram, hooksDir, writeScript } from '../cache/hookScript';
import type { Nix } from '../nix/nix';
import { nixConfFor, setNixConfSettings, type NixConfSetting } from '../nix/nixConfEdit';
import type { NixConfSetUpResult, ServerSettings, SetUpNixConfArgs } from '../protocol';
import { shellQuote } from '../remote/shellQuote';

/** Where the hook keeps its reports (1777). */
export const diffReportsDir = (): string => path.join(os.tmpdir(), 'nix-builders-diff-hook');

/** Lines of a report kept (a text file rewritten whole would otherwise fill the log). */
const REPORT_LINES = 400;

export interface DiffHookPrograms {
  diff: string;
  head: string;
  tee: string;
}

/** The hook's text: a POSIX sh script with absolute program paths. */
export function diffHookScript(reportsDir: string, p: DiffHookPrograms): string {
  const q = shellQuote;
  return `#!/bin/sh
# Nix Builders' diff-hook: Nix runs it as the build user when a rebuild's output differs:
# $1 the first build's output, $2 the rebuild's, $3 the derivation, $4 the build folder.
# It prints what differs (Nix puts it into the build's log) and keeps a copy in the reports folder.
reports=${q(reportsDir)}
report() {
  echo "nix-builders diff-hook: $3 is not reproducible: $1 differs from $2"
  ${q(p.diff)} -r "$1" "$2"
}
report "$@" 2>&1 | ${q(p.head)} -n ${REPORT_LINES} | ${q(p.tee)} "$reports/\${1##*/}.$$.txt" 2>/dev/null
exit 0
`;
}

/** Where root's hook goes: a folder every build user can pass through (root's home is closed). */
export const SYSTEM_HOOKS_DIR = '/var/lib/nix-builders/hooks';

/** The folder of the hook script: SYSTEM_HOOKS_DIR as root, else the user's hooks folder. */
const diffHookDir = (env: NodeJS.ProcessEnv) => (process.getuid?.() === 0 ? SYSTEM_HOOKS_DIR : hooksDir(env));

/** Make `dir` and the folders above it up to `/var/lib` open to other users (0755). */
async function makeOpenDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  for (let d = dir; d !== path.dirname(SYSTEM_HOOKS_DIR) && d !== path.dirname(d); d = path.dirname(d)) await chmod(d, 0o755);
}

/** The folders above `file` that other users (the build users) cannot pass through. */
async function closedFolders(file: string): Promise<string[]> {
  const closed: string[] = [];
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    const st = await stat(dir).catch(() => undefined);
    if (st && (st.mode & constants.S_IXOTH) === 0) closed.push(dir);
    if (dir === path.dirname(dir)) return closed;
  }
}

/**
 * The diff-hook set-up: the script (0755, in the server's hooks folder), the reports folder, and
 * the nix.conf lines (the user's nix.conf unless told otherwise), with the notes.
 */
export async function setUpDiffHook(nix: Nix, args: SetUpNixConfArgs, settings: ServerSettings): Promise<NixConfSetUpResult> {
  const env = { ...process.env, ...settings.env };
  const file = args.nixConf ?? nixConfFor(args.scope ?? 'user', settings);
  const dir = diffHookDir(env);
  const script = path.join(dir, 'diff-hook');
  const reports = diffReportsDir();
  const caps = await nix.detect();
  const repeat = caps.ok && caps.value.repeatSetting;
  const lines: NixConfSetting[] = [
    { key: 'diff-hook', value: script },
    { key: 'run-diff-hook', value: 'true' },
    ...(repeat ? [{ key: 'repeat', value: '1' }] : []),
  ];
  const system = nixConfFor('system', settings);
  // Under a daemon a user's nix.conf counts only for a trusted user.
  const local = file === system ? undefined : await checkLocal({ nix });
  const untrusted = local?.ignoresBuilders === true;
  const notes = [
    ...daemonNotes('diff-hook', file, system),
    `Nix runs the hook when a rebuild differs: nix-build --check, nix build --rebuild${repeat ? ', and the second round that repeat = 1 adds to every build' : ''}. It sees only the first differing output.`,
    `The hook runs as the build user: it prints what differs into the build's log and keeps a copy in ${reports} (world-writable and sticky, like /tmp).`,
    ...(repeat
      ? [`Nix ${caps.ok ? caps.value.version.text : ''} has the repeat setting (removed in 2.13): repeat = 1 builds every derivation twice and fails it when the rounds differ, so builds take twice as long. Remove the line to check only with --check.`]
      : caps.ok
        ? [`Nix ${caps.value.version.text} has no repeat setting (removed in 2.13): the hook runs with --check and --rebuild.`]
        : []),
  ];
  if (!args.dryRun) {
    try {
      const programs = {
        diff: (await findProgram('diff', env)) ?? '/usr/bin/diff',
        head: (await findProgram('head', env)) ?? '/usr/bin/head',
        tee: (await findProgram('tee', env)) ?? '/usr/bin/tee',
      };
      await mkdir(reports, { recursive: true });
      if (((await stat(reports)).mode & 0o1777) !== 0o1777) await chmod(reports, 0o1777);
      if (dir === SYSTEM_HOOKS_DIR) await makeOpenDir(dir);
      await writeScript(script, diffHookScript(reports, programs));
    } catch (e) {
      return { status: 'failed', nixConf: file, lines: lines.map((l) => `${l.key} = ${l.value}`), notes, message: `Cannot write the hook or its reports folder: ${e instanceof Error ? e.message : String(e)}. Nothing was changed in ${file}.` };
    }
  }
  // Where Nix would not run the hook: the lines to paste, with what stands in the way and its fix.
  const closed = await closedFolders(script);
  const problems = [
    ...(closed.length > 0 ? [`The build users cannot reach ${script}: ${closed.join(', ')} ${closed.length === 1 ? 'is' : 'are'} closed to other users. Open ${closed.length === 1 ? 'it' : 'them'} (chmod o+x ${closed.join(' ')}) or copy the hook to a folder they can reach (for example /etc/nix/) and point diff-hook there.`] : []),
    ...(untrusted ? [`The nix-daemon does not trust you, so it ignores diff-hook in ${file}: put the lines in the system nix.conf (${system}) and restart the daemon${local?.fix ? `, or ${local.fix}` : ''}.`] : []),
  ];
  if (problems.length > 0) return { status: 'paste', nixConf: file, lines: lines.map((l) => `${l.key} = ${l.value}`), ...(args.dryRun ? {} : { script }), notes, message: `Nix would not run the hook from ${file}, so it was not changed. ${problems.join(' ')}` };
  const result = await setNixConfSettings(file, lines, { dryRun: args.dryRun ?? false, notes });
  return { ...result, ...(args.dryRun ? {} : { script }) };
}
