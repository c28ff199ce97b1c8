// Check a derivation's reproducibility on this machine: build it first when its outputs are not
// valid, rebuild it with `nix-store --realise --check` for N rounds, and compare every output's two
// trees here (Nix names only the first differing output, and stops comparing there).
//
// Where a rebuild's tree is (Nix 2.8 and 2.26, read from their source — registerOutputs in
// local-derivation-goal.cc — and seen on this machine): Nix rebuilds a valid output at a "fallback"
// path (makeFallbackPath: "rewrite:<drv>:<output path>"), compares the outputs one by one,
// rewriting each one's fallback hash to the real one as it goes, and stops at the first
// difference; every rebuild stays at its fallback path, invalid, with the fallback hashes in it.
// Only with keep-failed or run-diff-hook does Nix move the differing one to `<output>.check` (and
// say "differs from '….check'"); keep-failed is not passed: it would keep the build folder too, which
// a daemon's build user owns and this process cannot remove. Neither the rebuild nor the first build
// is a GC root, so what a difference needs is copied out of the store (CheckCopies): the differing
// files of each side only, at their paths in the output.
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { lstat, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ErrorCodes, LSPErrorCodes, ResponseError } from 'vscode-languageserver/node';
import { nix32 } from '../eval/flake';
import type { Nix } from '../nix/nix';
import { describeResult, type RunResult } from '../nix/runner';
import { hashPart, storeName } from '../nix/storePath';
import type { CheckReproducibilityResult, OutputCheck } from '../protocol';
import { compareTrees, copyDifferences, type Rewrites } from './treeDiff';

/** The store path Nix 2.8 rebuilds the valid output `outPath` of `drvPath` at (makeFallbackPath). */
export function fallbackPath(drvPath: string, outPath: string): string {
  const storeDir = path.dirname(outPath);
  const name = storeName(outPath);
  const s = `rewrite:${path.basename(drvPath)}:${path.basename(outPath)}:sha256:${'0'.repeat(64)}:${storeDir}:${name}`;
  const digest = createHash('sha256').update(s).digest();
  const compressed = Buffer.alloc(20);
  digest.forEach((b, i) => (compressed[i % 20] ^= b));
  return `${storeDir}/${nix32(compressed)}-${name}`;
}

/** Nix's exit code when the only failure is an output that differs from its rebuild (104; 1 through a daemon). */
const NOT_DETERMINISTIC = 0x68;

/**
 * What a failed build's exit code says (Nix's Worker::exitStatus: 0x60 | 4 a build failed, with 1
 * it timed out, with 2 a hash mismatched; 8 not deterministic; 1 for anything else).
 */
export function decodeBuildExit(code: number | undefined): string[] {
  if (code === undefined || (code & ~0x0f) !== 0x60) return [];
  return [
    ...(code & 0x04 && !(code & 0x03) ? ['a build failed'] : []),
    ...(code & 0x01 ? ['a build timed out'] : []),
    ...(code & 0x02 ? ['a fixed-output hash did not match'] : []),
    ...(code & 0x08 ? ['an output differs from its rebuild'] : []),
  ];
}

/** The last meaningful lines of Nix's stderr. */
const tail = (stderr: string, n = 6) =>
  stderr.split('\n').map((l) => l.trim()).filter((l) => l && !/^(warning:|this derivation will be built|these \d+ derivations|building '|checking outputs of|note: keeping build directory|\/nix\/store\/)/.test(l)).slice(-n).join('\n');

/** A failed run said briefly: how it ended, the exit bits decoded, Nix's last lines. */
export const why = (result: RunResult) => {
  const bits = result.kind === 'exit' ? decodeBuildExit(result.exitCode) : [];
  const last = tail(result.stderr);
  return `${describeResult(result)}${bits.length ? ` (${bits.join(', ')})` : ''}${last ? `: ${last}` : ''}`;
};

export const exists = (p: string) => lstat(p).then(() => true, () => false);

/** How many of the newest check answers keep their copies (and are remembered for diffoscope). */
export const KEPT_ANSWERS = 10;

/** The rebuilds' copies that answers still show: the newest `limit`, all removed at the process's exit. */
export class CheckCopies {
  private readonly dirs: string[] = [];
  private readonly onExit = () => {
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  };

  constructor(private readonly limit = KEPT_ANSWERS) {
    process.once('exit', this.onExit);
  }

  /** A new private (0700) folder for one answer's copies; the oldest beyond the limit go. */
  async create(): Promise<string> {
    const dir = await mkdtemp(path.join(tmpdir(), 'nix-builders-check-'));
    this.dirs.push(dir);
    for (const old of this.dirs.splice(0, Math.max(0, this.dirs.length - this.limit))) await rm(old, { recursive: true, force: true });
    return dir;
  }

  async dispose(): Promise<void> {
    process.removeListener('exit', this.onExit);
    for (const d of this.dirs.splice(0)) await rm(d, { recursive: true, force: true });
  }
}

export interface CheckOptions {
  rounds: number;
  signal: AbortSignal;
  report: (message: string) => void;
  copies: CheckCopies;
}

export const cancelled = () => new ResponseError(LSPErrorCodes.RequestCancelled, 'The reproducibility check was cancelled.');

/** The name of the output at `outPath` of the derivation named `drvName`. */
function outputName(drvName: string, outPath: string): string {
  const name = storeName(outPath);
  return name === drvName ? 'out' : name.startsWith(`${drvName}-`) ? name.slice(drvName.length + 1) : name;
}

/** The outputs of a derivation: name and store path. */
export async function outputsOf(nix: Nix, drvPath: string, signal: AbortSignal): Promise<Array<{ name: string; path: string }>> {
  const query = await nix.run(nix.bin('nix-store'), ['--query', '--outputs', drvPath], { timeoutMs: 60_000, signal });
  if (query.kind === 'cancelled') throw cancelled();
  if (query.kind !== 'ok') throw new ResponseError(ErrorCodes.InvalidRequest, `The outputs of ${drvPath} are not known (${why(query)}). Is it a derivation of this machine's store?`);
  return query.stdout.split('\n').filter((l) => l.startsWith('/')).map((p) => ({ name: outputName(storeName(drvPath), p), path: p }));
}

/** How many files of an output differ: "files not compared" where its trees were not (`files` absent). */
const filesOf = (x: OutputCheck) => (x.files ? `${x.files.length} file${x.files.length === 1 ? '' : 's'}` : 'files not compared');

/** The answer of a check of `drvPath` on `machine` whose outputs stand as given. */
export function checkAnswer(drvPath: string, machine: string, outputs: OutputCheck[], builtFirst: boolean, rounds: number): CheckReproducibilityResult {
  const differs = outputs.filter((x) => x.status === 'differs');
  const unchecked = outputs.filter((x) => x.status === 'not-checked');
  const status = differs.length > 0 ? 'differs' : unchecked.length > 0 ? 'not-checked' : 'reproducible';
  const notChecked = unchecked.map((u) => `${u.name}${differs.length > 0 ? ' not checked' : ''}: ${u.reason}`).join('; ');
  const summary =
    differs.length > 0
      ? `not reproducible: ${differs.length} of ${outputs.length} output${outputs.length === 1 ? '' : 's'} differ${differs.length === 1 ? 's' : ''} (${differs.map((d) => `${d.name}: ${filesOf(d)}`).join(', ')})${notChecked ? `; ${notChecked}` : ''}`
      : unchecked.length > 0
        ? `not checked: ${notChecked}`
        : `reproducible: ${outputs.length} output${outputs.length === 1 ? '' : 's'} the same in ${rounds} rebuild${rounds === 1 ? '' : 's'}`;
  return { drvPath, machine, rounds, builtFirst, status, summary, outputs };
}

/** Rebuild `drvPath` on this machine and compare every output. */
export async function checkDerivation(nix: Nix, drvPath: string, o: CheckOptions): Promise<CheckReproducibilityResult> {
  const run = (args: string[]) => nix.run(nix.bin('nix-store'), args, { timeoutMs: 0, signal: o.signal });
  const outputs: OutputCheck[] = (await outputsOf(nix, drvPath, o.signal)).map((x) => ({ ...x, status: 'reproducible' }));
  const paths = outputs.map((x) => x.path);
  const answer = (builtFirst: boolean, rounds: number) => checkAnswer(drvPath, 'this machine', outputs, builtFirst, rounds);
  const notChecked = (reason: string) => {
    for (const x of outputs) if (x.status !== 'differs') Object.assign(x, { status: 'not-checked', reason });
  };

  const validity = await run(['--check-validity', '--print-invalid', ...paths]);
  if (validity.kind === 'cancelled') throw cancelled();
  const builtFirst = validity.kind !== 'ok' || validity.stdout.trim() !== '';
  if (builtFirst) {
    o.report('building it first (its outputs are not valid)');
    const first = await run(['--realise', drvPath]);
    if (first.kind === 'cancelled') throw cancelled();
    if (first.kind !== 'ok') {
      notChecked(`the first build failed: ${why(first)}`);
      return answer(true, 0);
    }
  }
  // Every output's fallback hash reads as its real one in a rebuild that Nix did not rewrite.
  const rewrites: Rewrites = paths.map((p) => [hashPart(fallbackPath(drvPath, p)), hashPart(p)] as const);
  let copies: string | undefined;
  let round = 0;
  while (round < o.rounds && outputs.some((x) => x.status === 'reproducible')) {
    round++;
    o.report(`rebuilding to compare${o.rounds > 1 ? ` (round ${round}/${o.rounds})` : ''}`);
    const check = await run(['--realise', '--check', drvPath]);
    if (check.kind === 'cancelled') throw cancelled();
    if (check.kind === 'ok') continue;
    // Nix's own line (a daemon does not forward the exit bits: its client exits with 1 for every failure).
    const differs = /^error: derivation '[^']+' may not be deterministic: output '([^']+)' differs(?: from '([^']+)')?$/m.exec(check.stderr);
    if (!(check.kind === 'exit' && (check.exitCode === NOT_DETERMINISTIC || (check.exitCode === 1 && differs)))) {
      notChecked(`the rebuild failed${o.rounds > 1 ? ` in round ${round}` : ''}: ${why(check)}`);
      break;
    }
    const [, named, moved] = differs ?? [];
    for (const x of outputs) {
      if (x.status !== 'reproducible') continue;
      if (!(await exists(x.path))) {
        // A store this process does not see at its paths (another root, a container): never "the same" for want of files.
        const unreadable = `this process cannot read ${x.path} (the store is not at its paths here), so the trees were not compared`;
        Object.assign(x, x.path === named ? { status: 'differs', reason: `Nix says it differs; ${unreadable}` } : { status: 'not-checked', reason: unreadable });
        continue;
      }
      // Every rebuild is at its fallback path, but the named one where Nix says it moved it (a .check
      // Nix did not name is an earlier check's).
      const candidate = x.path === named && moved === `${x.path}.check` ? moved : fallbackPath(drvPath, x.path);
      const rebuild = (await exists(candidate)) ? candidate : undefined;
      if (!rebuild) {
        if (x.path === named) Object.assign(x, { status: 'differs', reason: `Nix says it differs, but its rebuild is not at ${candidate} (was it garbage-collected?)` });
        else Object.assign(x, { status: 'not-checked', reason: `Nix stopped comparing at the first differing output (${named ?? 'not named'}) and left no rebuild of this one` });
        continue;
      }
      const files = await compareTrees(x.path, rebuild, rewrites);
      if (files.length === 0) continue;
      // Kept only when it differs, and only what differs: the diff costs the differing bytes, not the output's size.
      copies ??= await o.copies.create();
      // Both sides: the first build is no GC root either (a collection would take it), and a copy
      // reads the same wherever the store is.
      const copy = path.join(copies, `${x.name}-round${round}`);
      const firstCopy = `${copy}-first`;
      const copied = await copyDifferences(x.path, firstCopy, files, 'first')
        .then(() => copyDifferences(rebuild, copy, files, 'rebuild', rewrites))
        .then(() => true, (e: Error) => e.message);
      Object.assign(x, { status: 'differs', files, ...(copied === true ? { firstCopy, rebuildCopy: copy } : { reason: `the two builds could not be kept (${copied}): their files are listed, not kept` }) });
    }
  }
  return answer(builtFirst, round);
}
