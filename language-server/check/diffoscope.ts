// diffoscope's report on one output of a check this server answered: the differing files of the
// first build against those of the rebuild (its private copy holds only these; the first build's
// are copied beside it from the store when they are not kept already), one text report written
// beside the copy. diffoscope never reads what is the same: its time grows with what differs.
// Only what the server answered is compared: the client names a derivation and an output, never a
// path. Exit 1 of diffoscope is "they differ", its usual answer here.
import { lstat } from 'node:fs/promises';
import * as path from 'node:path';
import { ErrorCodes, LSPErrorCodes, ResponseError } from 'vscode-languageserver/node';
import type { Nix } from '../nix/nix';
import { describeResult } from '../nix/runner';
import { ServerCommands, type CheckReproducibilityResult, type DiffoscopeArgs, type DiffoscopeResult, type OutputCheck } from '../protocol';
import { KEPT_ANSWERS } from './check';

export const DIFFOSCOPE_INSTALL_HINT = 'install it: sudo apt-get install diffoscope-minimal (Debian/Ubuntu) or nix profile install nixpkgs#diffoscope';

/** diffoscope unpacks archives and disassembles binaries: minutes for a big output, never forever. */
export const DIFFOSCOPE_TIMEOUT_MS = 15 * 60_000;

/**
 * What reproducible-builds set-ups tell diffoscope to ignore, as diffoscope 240 can: the metadata
 * of archive members too (their times, owners and modes, `recursive`), and dates and times of day
 * in what it compares (masked before diffing, so a difference in them alone is none). diffoscope
 * has no option for ordering: it compares a folder's members by name already.
 */
export const NOISE_OPTIONS: readonly string[] = [
  '--exclude-directory-metadata=recursive',
  '--diff-mask=[0-9]{4}-[0-9]{2}-[0-9]{2}',
  '--diff-mask=[0-9]{1,2}:[0-9]{2}:[0-9]{2}',
];

/** diffoscope's arguments: a text report of `first` against `rebuild` (an empty report when they are the same). */
export function diffoscopeArgs(first: string, rebuild: string, report: string, ignoreNoise: boolean): string[] {
  return ['--text', report, '--output-empty', ...(ignoreNoise ? NOISE_OPTIONS : ['--exclude-directory-metadata=yes']), '--', first, rebuild];
}

/** The newest check answers (as many as CheckCopies keeps copies of), one per derivation. */
export class CheckAnswers {
  private readonly answers = new Map<string, CheckReproducibilityResult>();

  constructor(private readonly limit = KEPT_ANSWERS) {}

  remember(result: CheckReproducibilityResult): void {
    this.answers.delete(result.drvPath);
    this.answers.set(result.drvPath, result);
    for (const old of [...this.answers.keys()].slice(0, Math.max(0, this.answers.size - this.limit))) this.answers.delete(old);
  }

  /** The output `output` of the newest answer for `drvPath`; refused when the server answered none. */
  output(drvPath: string, output: string): OutputCheck {
    const answer = this.answers.get(drvPath);
    if (!answer) throw new ResponseError(ErrorCodes.InvalidParams, `${ServerCommands.diffoscope}: this server answered no check of ${drvPath} (it compares only the outputs of its newest ${this.limit} checks): check it for reproducibility first.`);
    const x = answer.outputs.find((o) => o.name === output);
    if (!x) throw new ResponseError(ErrorCodes.InvalidParams, `${ServerCommands.diffoscope}: ${drvPath} has no output '${output}' (it has ${answer.outputs.map((o) => o.name).join(', ')}).`);
    return x;
  }
}

const exists = (p: string) => lstat(p).then(() => true, () => false);

/** `[DiffoscopeArgs]` checked. */
export function diffoscopeArgsOf(arg: unknown): DiffoscopeArgs {
  const a = arg as Partial<DiffoscopeArgs> | undefined;
  const usage = `${ServerCommands.diffoscope} takes [{ drvPath, output, ignoreNoise? }] of a check this server answered`;
  if (!a || typeof a !== 'object' || typeof a.drvPath !== 'string' || typeof a.output !== 'string') throw new ResponseError(ErrorCodes.InvalidParams, `${usage}: "drvPath" and "output" must be strings.`);
  if (a.ignoreNoise !== undefined && typeof a.ignoreNoise !== 'boolean') throw new ResponseError(ErrorCodes.InvalidParams, `${usage}: "ignoreNoise" must be true or false.`);
  return { drvPath: a.drvPath, output: a.output, ...(a.ignoreNoise !== undefined ? { ignoreNoise: a.ignoreNoise } : {}) };
}

/** diffoscope on the first build and the rebuild of one differing output the server answered. */
export async function runDiffoscope(nix: Nix, answers: CheckAnswers, a: DiffoscopeArgs, o: { ignoreNoise: boolean; signal: AbortSignal; timeoutMs?: number }): Promise<DiffoscopeResult> {
  const x = answers.output(a.drvPath, a.output);
  if (x.status !== 'differs') return { status: 'failed', message: `Output '${x.name}' of ${a.drvPath} ${x.status === 'reproducible' ? 'was reproducible' : `was not checked (${x.reason ?? 'no reason given'})`}: there is nothing to compare.` };
  const rebuild = x.rebuildCopy;
  const first = x.firstCopy;
  if (!rebuild || !first) return { status: 'failed', message: `The builds of output '${x.name}' were not kept${x.reason ? ` (${x.reason})` : ''}: check it again.` };
  for (const [what, p] of [['rebuild\'s copy', rebuild], ['first build\'s copy', first]] as const) {
    if (!(await exists(p))) return { status: 'failed', message: `The ${what} ${p} is gone (only the newest checks keep their copies): check it again.` };
  }
  const ignoreNoise = a.ignoreNoise ?? o.ignoreNoise;
  const report = path.join(path.dirname(rebuild), `diffoscope-${path.basename(rebuild)}${ignoreNoise ? '-noise-ignored' : ''}.txt`);
  const result = await nix.run('diffoscope', diffoscopeArgs(first, rebuild, report, ignoreNoise), { timeoutMs: o.timeoutMs ?? DIFFOSCOPE_TIMEOUT_MS, signal: o.signal });
  if (result.kind === 'cancelled') throw new ResponseError(LSPErrorCodes.RequestCancelled, 'diffoscope was cancelled.');
  if (result.kind === 'spawn-failed' && result.code === 'ENOENT') return { status: 'not-installed', message: `diffoscope is not on PATH: ${DIFFOSCOPE_INSTALL_HINT}.` };
  if (result.kind === 'ok') return { status: 'report', reportFile: report, message: `diffoscope found no differences${ignoreNoise ? ' once times and metadata are ignored' : ''}.` };
  if (result.kind === 'exit' && result.exitCode === 1) return { status: 'report', reportFile: report };
  const last = result.stderr.trim().split('\n').slice(-8).join('\n');
  return { status: 'failed', message: `${describeResult(result)}${last ? `: ${last}` : ''}` };
}
