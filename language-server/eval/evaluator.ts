// Evaluates one document's text with the real Nix, in one process, and returns its derivations
// or its errors at their positions. Instantiates only: import-from-derivation stays off unless the
// user enables it, so evaluation never builds.
import { readFile, realpath } from 'node:fs/promises';
import * as path from 'node:path';
import type { Nix } from '../nix/nix';
import { describeResult, type RunResult } from '../nix/runner';
import { classify, mostImportant, type NixProblem } from '../nix/classifier';
import { readDerivations } from '../nix/derivationFile';
import { flakeSource, localInputFiles, lockedInputs, missingFromCopy, parseLockFile, placeOnTrail, type FlakeInputProblem } from './flake';
import { walkerExpression, WALKER_PREFIX_LINES, type WalkedDerivation, type WalkedError, type WalkerOutput, type WalkerPosition } from './walker';
import { argumentArgs } from './arguments';
import { placeUnpositioned } from './attrPositions';
import { scanSearchPaths, searchPathArgs } from './searchPath';

export interface EvaluationOptions {
  depth: number;
  timeoutMs: number;
  allowImportFromDerivation: boolean;
  /** Arguments of a file that is a function (name → Nix expression), as `--arg`: checked by config.ts. */
  arguments?: Readonly<Record<string, string>>;
  /** Extra search path entries, as `-I`: checked by config.ts. */
  searchPath?: readonly string[];
}

export interface EvalErrorLocation {
  kind: 'parse-error' | 'infinite-recursion' | 'eval-error';
  message: string;
  /** 0-based position in the document, when the error is in it (the column in UTF-8 bytes, as Nix counts). */
  line?: number;
  column?: number;
  /** Another file the error is in. */
  file?: string;
  fileLine?: number;
  /** The error is a `<name>` that is not on the search path. */
  searchPathName?: string;
}

export type EvaluationResult =
  | { kind: 'ok'; output: WalkerOutput; durationMs: number; files: string[] }
  | { kind: 'error'; error: EvalErrorLocation; stderr: string; files: string[] }
  | { kind: 'timed-out'; timeoutMs: number; files: string[] }
  | { kind: 'cancelled' }
  | { kind: 'failed'; message: string };

/**
 * The arguments of the evaluation; the expression itself (`walkerExpression`) goes to stdin (`-`):
 * as one `-E` argument a document over ~128 KiB exceeds the kernel's limit for one argument
 * (`spawn E2BIG`). Nix reads stdin relative to its working folder, as it does `-E`.
 */
export function evaluationArgs(opts: EvaluationOptions, isFlake = false, docFile?: string, searchNames: readonly string[] = []): string[] {
  return [
    '--eval',
    '--strict',
    '--json',
    // `--eval` alone is read-only: drvPath would name .drv files that are never written. We
    // instantiate (write the .drv files, as nix-instantiate without --eval does) so that the
    // derivations can be built; nothing is built.
    '--read-write-mode',
    '--option',
    'allow-import-from-derivation',
    opts.allowImportFromDerivation ? 'true' : 'false',
    '--arg',
    'depth',
    String(Math.max(1, Math.floor(opts.depth))),
    '--arg',
    'isFlake',
    isFlake ? 'true' : 'false',
    ...(docFile !== undefined ? ['--argstr', 'docFile', docFile] : []),
    // The document's `<…>` names (the scanner's: no spaces), which the walker looks up.
    ...(searchNames.length > 0 ? ['--argstr', 'searchNames', searchNames.join(' ')] : []),
    ...searchPathArgs(opts.searchPath ?? []),
    ...argumentArgs(opts.arguments ?? {}),
    // `-v` prints "evaluating file '…'" for every file Nix parses (printTalkative, 2.3 … newest):
    // the files this evaluation depends on.
    '-v',
    '-',
  ];
}

const EVALUATING_FILE = /^evaluating file '(\/.*)'$/;

/**
 * The files an evaluation read, from its `-v` stderr (the Nix store never changes, so not those,
 * nor the document's own file), and the stderr without those lines: they are no part of any message.
 */
export function evaluatedFiles(stderr: string, docFile?: string): { files: string[]; rest: string } {
  const files = new Set<string>();
  const rest: string[] = [];
  for (const line of stderr.split('\n')) {
    const m = EVALUATING_FILE.exec(line);
    if (!m) rest.push(line);
    else if (!(m[1] as string).startsWith('/nix/store/') && m[1] !== docFile) files.add(m[1] as string);
  }
  return { files: [...files], rest: rest.join('\n') };
}

/** The document's file (symlinks resolved, as Nix reports it) when it holds exactly `text`. */
async function savedFile(filePath: string, text: string): Promise<string | undefined> {
  try {
    const real = await realpath(filePath);
    return (await readFile(real, 'utf8')) === text ? real : undefined;
  } catch {
    return undefined;
  }
}

export async function evaluateDocument(
  nix: Nix,
  filePath: string,
  documentText: string,
  opts: EvaluationOptions,
  signal?: AbortSignal,
): Promise<EvaluationResult> {
  // Saved: evaluated from its file, for Nix's positions; edited: its text.
  const docFile = await savedFile(filePath, documentText);
  if (path.basename(filePath) === 'flake.nix') return evaluateFlake(nix, filePath, documentText, docFile, opts, signal);
  const result = await nix.run(nix.bin('nix-instantiate'), evaluationArgs(opts, false, docFile, [...new Set(scanSearchPaths(documentText).map((o) => o.name))]), {
    input: walkerExpression(docFile === undefined ? documentText : undefined),
    // Relative paths in the document (./lib.nix) resolve against its folder.
    cwd: path.dirname(filePath),
    timeoutMs: opts.timeoutMs,
    signal,
  });
  const { files } = evaluatedFiles(result.stderr, docFile);
  return evaluationResult(result, docFile, files, async (stdout) => {
    const output = JSON.parse(stdout) as WalkerOutput;
    // Text from stdin: Nix 2.16+ gives its attributes no positions.
    return docFile === undefined ? { ...output, items: placeUnpositioned(documentText, output.items) } : output;
  });
}

/**
 * A walker run's outcome as an evaluation result: `walked` reads its JSON (a parse error of it is
 * 'failed'); `files`, what the evaluation depends on. The `-v` lines are in no message.
 */
async function evaluationResult(result: RunResult, docFile: string | undefined, files: string[], walked: (stdout: string) => Promise<WalkerOutput>): Promise<EvaluationResult> {
  const { rest: stderr } = evaluatedFiles(result.stderr, docFile);
  switch (result.kind) {
    case 'ok': {
      let output: WalkerOutput;
      try {
        output = await walked(result.stdout);
      } catch (e) {
        if (!(e instanceof SyntaxError)) throw e;
        return { kind: 'failed', message: `Nix printed something that is not JSON: ${e.message}` };
      }
      return { kind: 'ok', output, durationMs: result.durationMs, files };
    }
    case 'exit':
      return { kind: 'error', error: locateEvalError(stderr, docFile), stderr, files };
    case 'timed-out':
      // What it had read when it was stopped.
      return { kind: 'timed-out', timeoutMs: result.timeoutMs, files };
    case 'cancelled':
      return { kind: 'cancelled' };
    case 'spawn-failed':
      return { kind: 'failed', message: describeResult(result) };
  }
}

/** Where an evaluation error is, from the classifier's reading of Nix's message (`docFile`: the document was evaluated from that file). */
export function locateEvalError(stderr: string, docFile?: string): EvalErrorLocation {
  const problem = mostImportant(classify(stderr));
  const location = locate(problem, stderr, docFile);
  return problem?.kind === 'eval-error' && problem.details.searchPathName !== undefined ? { ...location, searchPathName: problem.details.searchPathName } : location;
}

function locate(problem: NixProblem | undefined, stderr: string, docFile?: string): EvalErrorLocation {
  if (!problem) return { kind: 'eval-error', message: stderr.trim() || 'evaluation failed' };
  const evalKind = problem.kind === 'parse-error' || problem.kind === 'infinite-recursion' || problem.kind === 'eval-error';
  const kind = evalKind ? problem.kind : 'eval-error';
  const pos = evalKind ? problem.details.position : undefined;
  if (!pos || pos.line === undefined) return { kind, message: problem.message };
  if (docFile !== undefined && pos.file === docFile) return { kind, message: problem.message, line: pos.line - 1, column: Math.max(0, (pos.column ?? 1) - 1) };
  // An --arg expression (the only text Nix reads from argv here): one of the user's arguments.
  if (pos.file === '«string»') return { kind, message: `${problem.message} (in an expression of "nixBuilders.evaluation.arguments")` };
  // The document's text is read from stdin: Nix calls it «stdin» (2.8 and newer).
  if (docFile === undefined && !pos.file.startsWith('/')) {
    return {
      kind,
      message: problem.message,
      // An error in the wrapper after the document (e.g. an unfinished expression) goes to its end.
      line: Math.max(0, pos.line - 1 - WALKER_PREFIX_LINES),
      column: Math.max(0, (pos.column ?? 1) - 1),
    };
  }
  return { kind, message: problem.message, file: pos.file, fileLine: pos.line };
}

/** What the walker's flake part prints: items carry the positions of their whole path (`trail`), apps their program's derivations. */
interface FlakeWalkerOutput {
  kind: 'attrs' | 'flake-inputs' | 'flake-untracked';
  inputs?: FlakeInputProblem[];
  /** flake.lock is in the flake's source as Nix copies it. */
  lockSeen?: boolean;
  /** The source as Nix copies it. */
  copy?: string;
  items: Array<{ path: string[]; trail: (WalkerPosition | null)[] } & ({ error: string } | { app: Record<string, string[]> } | Omit<WalkedDerivation, 'path' | 'pos'>)>;
}

/**
 * A flake.nix: evaluated as Nix evaluates a flake (call-flake.nix, in the walker) over its
 * flake.lock, offline: an input that is not locked or not in the store stops the evaluation with a
 * diagnostic instead of a download. Its results depend on flake.lock and on the local inputs' files too.
 */
async function evaluateFlake(
  nix: Nix,
  filePath: string,
  documentText: string,
  docFile: string | undefined,
  opts: EvaluationOptions,
  signal?: AbortSignal,
): Promise<EvaluationResult> {
  const dir = path.dirname(filePath);
  const source = await flakeSource(dir);
  const lockPath = path.join(dir, 'flake.lock');
  const lockText = await readFile(lockPath, 'utf8').catch(() => undefined);
  const lock = lockText === undefined ? undefined : parseLockFile(lockText);
  const inputs = lock ? await lockedInputs(lock, dir) : { missing: [], stored: {} };
  // The flake's source is its folder as saved (flake.nix included); what Nix copies of a git
  // repository follows its index (`git add`).
  const dependencies = [filePath, lockPath, ...(source.type === 'git' ? [path.join(source.root, '.git', 'index')] : []), ...(lock ? await localInputFiles(lock, dir) : [])];
  const args = [
    ...evaluationArgs(opts, true, docFile),
    // fetchTree is a flakes builtin; a locked input that is not valid must not be substituted from a cache behind the user's back.
    '--extra-experimental-features',
    'flakes',
    '--option',
    'substitute',
    'false',
    '--argstr',
    'flake',
    JSON.stringify({ ...source, ...inputs }),
  ];
  const result = await nix.run(nix.bin('nix-instantiate'), args, {
    input: walkerExpression(docFile === undefined ? documentText : undefined),
    cwd: dir,
    timeoutMs: opts.timeoutMs,
    signal,
  });
  const { files: read } = evaluatedFiles(result.stderr, docFile);
  const files = [...new Set([...read, ...dependencies])];
  return evaluationResult(result, docFile, files, async (stdout) => {
    const raw = JSON.parse(stdout) as FlakeWalkerOutput;
    const untracked = source.type === 'git' && raw.copy !== undefined ? await missingFromCopy(read, source, raw.copy) : [];
    return {
      kind: raw.kind,
      flake: { inputs: raw.inputs ?? [], facts: { dir, source, lockUntracked: lockText !== undefined && raw.lockSeen === false, untracked } },
      items: await flakeItems(documentText.split('\n'), raw.items),
    };
  });
}

/** The flake walker's items at the attributes the document writes; an app as the derivation that builds its program. */
async function flakeItems(lines: readonly string[], items: FlakeWalkerOutput['items']): Promise<Array<WalkedDerivation | WalkedError>> {
  // An app's program is a string whose context names the derivations it is an output of (the
  // first one builds the program); a program without one (a path outside the store, or a store
  // path that no derivation of this evaluation made) needs no builder: it gets no diagnostic.
  const appDrv = (app: Record<string, string[]>) => Object.keys(app).find((p) => p.endsWith('.drv') && (app[p] ?? []).length > 0);
  const facts = await readDerivations(items.flatMap((i) => ('app' in i ? [appDrv(i.app)].filter((p): p is string => p !== undefined) : [])));
  return items.flatMap((item): Array<WalkedDerivation | WalkedError> => {
    const { trail, ...rest } = item;
    const pos = placeOnTrail(lines, item.path, trail);
    if ('error' in rest) return [{ path: rest.path, pos, error: rest.error }];
    if (!('app' in rest)) return [{ ...rest, pos }];
    const drvPath = appDrv(rest.app);
    const drv = drvPath === undefined ? undefined : facts.get(drvPath);
    if (!drvPath || !drv) return [];
    return [{ path: rest.path, pos, name: drv.name, drvPath, system: drv.system, requiredSystemFeatures: drv.requiredSystemFeatures, preferLocalBuild: drv.preferLocalBuild, outputs: rest.app[drvPath] ?? ['out'] }];
  });
}
