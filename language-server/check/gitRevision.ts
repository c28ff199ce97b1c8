// A file as it is in a git commit ("this attribute now and at the last commit"): the repository
// cloned into a temporary folder (sharing its objects, so nothing is copied; the repository's own
// index, work tree and hooks are not touched) and checked out at that commit, so that the file's
// imports of other files are the commit's too, and a flake there is a clean git work tree at that
// commit (Nix takes it as git+file with that rev: `self.rev`, `lastModified`). The folder has the
// repository's name, as `src = ./.` names its source.
import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ErrorCodes, LSPErrorCodes, ResponseError } from 'vscode-languageserver/node';
import type { Nix } from '../nix/nix';
import { describeResult } from '../nix/runner';

const GIT_TIMEOUT_MS = 120_000;

export interface FileAtRevision {
  /** The file in the temporary tree. */
  file: string;
  /** The commit the revision names. */
  commit: string;
  /** Removes the temporary tree. */
  dispose(): Promise<void>;
}

const refused = (message: string) => new ResponseError(ErrorCodes.InvalidParams, message);

/** A revision as git takes it, never an option: `HEAD`, `HEAD~1`, a branch, a tag or a commit hash. */
export function revisionProblem(revision: unknown): string | undefined {
  if (typeof revision !== 'string' || !/^[A-Za-z0-9_@{}~^./][A-Za-z0-9_@{}~^./-]*$/.test(revision)) return `"revision" must be a git revision such as "HEAD", "HEAD~1", a branch, a tag or a commit hash (got ${JSON.stringify(revision)}).`;
  return undefined;
}

/** `file` as it is in `revision` of its git repository, in a temporary tree (dispose it after use). */
export async function fileAtRevision(nix: Nix, file: string, revision: string, signal?: AbortSignal): Promise<FileAtRevision> {
  const problem = revisionProblem(revision);
  if (problem) throw refused(problem);
  const git = async (args: string[], o: { cwd: string; env?: Record<string, string> }) => {
    const result = await nix.run('git', args, { ...o, timeoutMs: GIT_TIMEOUT_MS, ...(signal ? { signal } : {}) });
    if (result.kind === 'cancelled') throw new ResponseError(LSPErrorCodes.RequestCancelled, 'Reading the file at the revision was cancelled.');
    if (result.kind === 'spawn-failed' && result.code === 'ENOENT') throw new ResponseError(ErrorCodes.InvalidRequest, 'git was not found on PATH: install git to compare with a revision (sudo apt-get install git).');
    return result;
  };
  const dir = await realpath(path.dirname(file)).catch(() => {
    throw refused(`${path.dirname(file)} does not exist: the file must be in a git work tree to compare it with a revision.`);
  });
  const top = await git(['rev-parse', '--show-toplevel'], { cwd: dir });
  if (top.kind !== 'ok') throw refused(`${file} is not in a git work tree (${describeResult(top)}: ${top.stderr.trim()}): a revision names a commit of its repository.`);
  const root = top.stdout.trim();
  const rel = path.relative(root, path.join(dir, path.basename(file))).split(path.sep).join('/');
  const commit = await git(['rev-parse', '--verify', '--quiet', '--end-of-options', `${revision}^{commit}`], { cwd: root });
  if (commit.kind !== 'ok') throw refused(`${revision} is not a commit of ${root}${revision === 'HEAD' ? ' (the repository has no commit yet)' : ''}.`);
  const hash = commit.stdout.trim();
  const inCommit = await git(['cat-file', '-e', `${hash}:${rel}`], { cwd: root });
  if (inCommit.kind !== 'ok') throw refused(`${rel} is not in ${revision} (${hash.slice(0, 12)}) of ${root}: it was added later, or moved.`);

  const temp = await mkdtemp(path.join(tmpdir(), 'nix-builders-revision-'));
  const dispose = () => rm(temp, { recursive: true, force: true });
  try {
    const tree = path.join(temp, path.basename(root));
    const steps = [
      ['clone', '--quiet', '--shared', '--no-checkout', '--', root, tree],
      ['-C', tree, '-c', 'core.hooksPath=/dev/null', '-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', hash],
    ];
    for (const args of steps) {
      const r = await git(args, { cwd: temp });
      if (r.kind !== 'ok') throw new ResponseError(ErrorCodes.InternalError, `Checking out ${revision} of ${root} in ${temp} failed (${describeResult(r)}): ${r.stderr.trim()}`);
    }
    return { file: path.join(tree, ...rel.split('/')), commit: hash, dispose };
  } catch (e) {
    await dispose();
    throw e;
  }
}
