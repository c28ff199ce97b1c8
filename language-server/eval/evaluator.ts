// Evaluates one document's text with the real Nix, in one process, and returns its derivations
// or its errors at their positions. Instantiates only: import-from-derivation stays off unless the
// user enables it, so evaluation never builds.
import * as path from 'node:path';
import type { Nix } from '../nix/nix';
import { describeResult } from '../nix/runner';
import { walkerExpression, WALKER_PREFIX_LINES, type WalkerOutput } from './walker';

export interface EvaluationOptions {
  depth: number;
  timeoutMs: number;
  allowImportFromDerivation: boolean;
}

export interface EvalErrorLocation {
  message: string;
  /** 0-based position in the document, when the error is in it. */
  line?: number;
  column?: number;
  /** Another file the error is in. */
  file?: string;
  fileLine?: number;
}

export type EvaluationResult =
  | { kind: 'ok'; output: WalkerOutput; durationMs: number }
  | { kind: 'error'; error: EvalErrorLocation; stderr: string }
  | { kind: 'timed-out'; timeoutMs: number }
  | { kind: 'cancelled' }
  | { kind: 'failed'; message: string };

export function evaluationArgs(documentText: string, opts: EvaluationOptions, isFlake = false): string[] {
  return [
    '--eval',
    '--strict',
    '--json',
    '--option',
    'allow-import-from-derivation',
    opts.allowImportFromDerivation ? 'true' : 'false',
    '--arg',
    'depth',
    String(Math.max(1, Math.floor(opts.depth))),
    '--arg',
    'isFlake',
    isFlake ? 'true' : 'false',
    '-E',
    walkerExpression(documentText),
  ];
}

export async function evaluateDocument(
  nix: Nix,
  filePath: string,
  documentText: string,
  opts: EvaluationOptions,
  signal?: AbortSignal,
): Promise<EvaluationResult> {
  const result = await nix.run(nix.bin('nix-instantiate'), evaluationArgs(documentText, opts, path.basename(filePath) === 'flake.nix'), {
    // Relative paths in the document (./lib.nix) resolve against its folder.
    cwd: path.dirname(filePath),
    timeoutMs: opts.timeoutMs,
    signal,
  });
  switch (result.kind) {
    case 'ok':
      try {
        return { kind: 'ok', output: JSON.parse(result.stdout) as WalkerOutput, durationMs: result.durationMs };
      } catch (e) {
        return { kind: 'failed', message: `Nix printed something that is not JSON: ${(e as Error).message}` };
      }
    case 'exit':
      return { kind: 'error', error: locateEvalError(result.stderr), stderr: result.stderr };
    case 'timed-out':
      return { kind: 'timed-out', timeoutMs: result.timeoutMs };
    case 'cancelled':
      return { kind: 'cancelled' };
    case 'spawn-failed':
      return { kind: 'failed', message: describeResult(result) };
  }
}

// Nix prints "error: <message>" then, indented, "at «string»:3:5:" (2.8: the -E text is
// «string»; newer Nix likewise) or "at /path/file.nix:3:5:", then a code excerpt.
const ERROR_LINE = /^error:\s?(.*)$/;
const AT_LINE = /^\s*at (.+?):(\d+):(\d+):?\s*$/;
// Nix 2.3-2.4 put the position on the error line: "error: … at /path:3:5".
const INLINE_AT = /^(.*?),? at (.+?):(\d+):(\d+)$/;

export function locateEvalError(stderr: string): EvalErrorLocation {
  const lines = stderr.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').split('\n');
  const start = lines.findIndex((l) => ERROR_LINE.test(l));
  if (start < 0) return { message: stderr.trim() || 'evaluation failed' };
  const messageLines: string[] = [(ERROR_LINE.exec(lines[start] as string)?.[1] ?? '').trim()];
  let loc: { file: string; line: number; column: number } | undefined;
  let i = start + 1;
  // The message goes on until a blank line; the position follows ("at …:L:C:").
  for (; i < lines.length && (lines[i] as string).trim() !== '' && !AT_LINE.test(lines[i] as string); i++) {
    if (!/^\(use '--show-trace'/.test(lines[i] as string)) messageLines.push((lines[i] as string).trim());
  }
  for (; i < lines.length; i++) {
    const at = AT_LINE.exec(lines[i] as string);
    if (at) {
      loc = { file: at[1] as string, line: Number(at[2]), column: Number(at[3]) };
      break;
    }
  }
  let message = messageLines.filter(Boolean).join(' ');
  if (!loc) {
    const inline = INLINE_AT.exec(message);
    if (inline) {
      message = inline[1] as string;
      loc = { file: inline[2] as string, line: Number(inline[3]), column: Number(inline[4]) };
    }
  }
  if (!loc) return { message };
  const inDoc = !loc.file.startsWith('/');
  if (inDoc) {
    const line = loc.line - 1 - WALKER_PREFIX_LINES;
    // An error in the wrapper itself (e.g. the document is not a complete expression) goes to the end.
    return { message, line: Math.max(0, line), column: Math.max(0, loc.column - 1) };
  }
  return { message, file: loc.file, fileLine: loc.line };
}
