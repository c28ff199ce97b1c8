// A real build on exactly one builder, through the real Nix client: a fresh (salted) derivation,
// `--max-jobs 0` so that nothing builds locally, and `--builders '<that builder's machines line>'`
// so that no other builder can take it. The derivation (builder /bin/sh; builders have an empty
// PATH) writes the first line of the building machine's /etc/nix/nix.conf and a UUID read from
// /proc/sys/kernel/random/uuid, so its output says where it was built and that it really ran.
//
// Where it ran comes from the `build` activity of `--log-format internal-json` (its machine field;
// plain `building '…' on '…'` lines for a Nix without it); a failure is explained by the error
// classifier.
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { classify, mostImportant, type NixProblem } from '../nix/classifier';
import { parseLog } from '../nix/logParser';
import { formatMachine } from '../nix/machines';
import type { Nix } from '../nix/nix';
import { describeResult } from '../nix/runner';
import { storeBase } from '../nix/storeUri';
import type { BuilderInfo, TestBuildResult } from '../protocol';

export interface TestBuildDeps {
  nix: Nix;
  signal?: AbortSignal;
  /** Default 120 s. */
  timeoutMs?: number;
  /** The local system, for a machines line without systems (default: from `nix show-config`). */
  localSystem?: string;
  /** Reads the output file (default fs.readFile). */
  readText?: (path: string) => Promise<string>;
  /** Each stderr chunk as it arrives (for a live log). */
  onStderr?: (chunk: string) => void;
}

/** A test build as the server sees it: the answer's facts, and the whole problem, command and log. */
export interface TestBuildRun extends Omit<TestBuildResult, 'problemKind'> {
  /** The classified problem when the build failed. */
  problem?: NixProblem;
  /** The command, for the log. */
  command: string[];
  /** stderr of the build (internal-json when the Nix version has it). */
  stderr: string;
}

/** What goes over the wire: the facts the client shows, not the log, the command or the problem's raw text. */
export function testBuildAnswer(run: TestBuildRun): TestBuildResult {
  const { problem, command: _command, stderr: _stderr, ...facts } = run;
  return problem ? { ...facts, problemKind: problem.kind } : facts;
}

const DEFAULT_TIMEOUT_MS = 120_000;

/** A Nix string literal. */
export function nixString(text: string): string {
  return JSON.stringify(text).replace(/\$\{/g, '\\${');
}

/** The shell script of the test derivation: dash builtins only (PATH is empty on builders). */
export const TEST_BUILD_SCRIPT = [
  'line=',
  'if [ -r /etc/nix/nix.conf ]; then read -r line < /etc/nix/nix.conf; fi',
  'id=',
  'if [ -r /proc/sys/kernel/random/uuid ]; then read -r id < /proc/sys/kernel/random/uuid; fi',
  'printf \'%s\\n%s\\n\' "$line" "$id" > "$out"',
].join('; ');

/** The Nix expression of the test derivation. */
export function testDerivation(opts: { system: string; features: readonly string[]; salt: string }): string {
  return [
    'derivation {',
    '  name = "nix-builders-test-build";',
    `  system = ${nixString(opts.system)};`,
    '  builder = "/bin/sh";',
    `  args = [ "-c" ${nixString(TEST_BUILD_SCRIPT)} ];`,
    `  requiredSystemFeatures = [ ${opts.features.map(nixString).join(' ')} ];`,
    `  salt = ${nixString(opts.salt)};`,
    '}',
  ].join('\n');
}

/** Where Nix built it: machine of the `build` activity (internal-json) or of `building '…' on '…'`. */
export function buildLocations(stderr: string): Array<{ drvPath: string; machine: string }> {
  const out: Array<{ drvPath: string; machine: string }> = [];
  for (const ev of parseLog(stderr)) {
    if (ev.kind === 'start' && ev.build) out.push({ drvPath: ev.build.drvPath, machine: ev.build.machine });
    else if (ev.kind === 'plain') {
      const m = /^building '(\/[^']+\.drv)'(?: on '([^']+)')?/.exec(ev.text);
      if (m) out.push({ drvPath: m[1] as string, machine: m[2] ?? '' });
    }
  }
  return out;
}


/** The decision part: what a finished `nix-build` says about the test build. Pure. */
export function interpretTestBuild(input: {
  builder: BuilderInfo;
  exit: 'ok' | 'failed' | 'timed-out' | 'cancelled';
  /** describeResult text for a failed run. */
  exitText?: string;
  stdout: string;
  stderr: string;
  /** Contents of the output file, when it was read. */
  output?: string;
  outputError?: string;
}): Pick<TestBuildRun, 'status' | 'summary' | 'cause' | 'fix' | 'ranOn' | 'ranOnThisBuilder' | 'drvPath' | 'outPath' | 'marker' | 'buildUuid' | 'problem'> {
  const { builder } = input;
  const name = builder.name;
  const locations = buildLocations(input.stderr).filter((l) => l.drvPath.endsWith('-nix-builders-test-build.drv'));
  // The last build activity of the test derivation that names a machine counted: with ssh-ng the
  // remote daemon's own activity is forwarded too, with machine "" (it is local over there).
  const where = [...locations].reverse().find((l) => l.machine !== '') ?? locations[locations.length - 1];
  const ranOn = where?.machine;
  const ranOnThisBuilder = ranOn !== undefined && ranOn !== '' && storeBase(ranOn) === storeBase(builder.uri);
  const base: ReturnType<typeof interpretTestBuild> = { status: 'error', summary: '', ranOnThisBuilder };
  if (ranOn !== undefined) base.ranOn = ranOn;
  if (where) base.drvPath = where.drvPath;
  if (input.exit === 'timed-out' || input.exit === 'cancelled') {
    return { ...base, status: input.exit, summary: input.exit === 'timed-out' ? `the test build on ${name} did not finish in time` : `the test build on ${name} was cancelled` };
  }
  if (input.exit === 'failed') {
    const problems = classify(input.stderr);
    const problem = mostImportant(problems);
    const r = { ...base, summary: `the test build on ${name} failed${problem ? `: ${problem.message}` : ''}` };
    if (problem) Object.assign(r, { problem, cause: problem.cause, fix: problem.fix });
    else r.cause = input.exitText ?? 'nix-build failed';
    return r;
  }
  const outPath = input.stdout.trim().split('\n').pop()?.trim();
  if (outPath) base.outPath = outPath;
  const [marker, uuid] = (input.output ?? '').split('\n');
  if (input.output !== undefined) {
    base.marker = marker ?? '';
    if (uuid) base.buildUuid = uuid;
  }
  if (ranOn === undefined) {
    return { ...base, summary: `the test build finished, but Nix did not say where it ran`, cause: input.outputError ?? 'no build activity in the log', fix: 'Look at the log of the build.' };
  }
  if (!ranOnThisBuilder) {
    const elsewhere = ranOn === '' ? 'on this machine' : `on ${ranOn}`;
    return {
      ...base,
      summary: `the test build ran ${elsewhere}, not on ${name}`,
      cause: `Nix did not use the builder it was given with --builders. A nix-daemon that does not trust this user ignores --builders and --max-jobs 0 (see the local check).`,
      fix: 'Make this user a trusted user of the local nix-daemon, or configure the builder in the daemon\'s /etc/nix/machines.',
    };
  }
  const note = input.output !== undefined ? '' : ` (output not read: ${input.outputError ?? 'unknown'})`;
  return { ...base, status: 'ok', summary: `built on ${ranOn}${marker ? `: '${marker}'` : ''}${note}` };
}

/** Build a fresh derivation on exactly this builder. Never throws. */
export async function testBuild(builder: BuilderInfo, deps: TestBuildDeps): Promise<TestBuildRun> {
  const started = performance.now();
  const salt = randomUUID();
  const caps = await deps.nix.detect();
  let system = builder.systems[0] ?? deps.localSystem;
  if (!system) {
    const config = await deps.nix.config(deps.signal);
    system = config.ok ? config.value.system : 'x86_64-linux';
  }
  const expression = testDerivation({ system, features: builder.mandatoryFeatures, salt });
  const args = [
    '--no-out-link',
    '--max-jobs',
    '0',
    '--builders',
    formatMachine(builder),
    // A salted output is never in a cache: do not ask any.
    '--option',
    'substitute',
    'false',
    ...(caps.ok && caps.value.internalJsonLog ? ['--log-format', 'internal-json', '-v'] : []),
    '-E',
    expression,
  ];
  const file = deps.nix.bin('nix-build');
  const fail = (summary: string, cause: string): TestBuildRun => ({
    builderId: builder.id,
    name: builder.name,
    uri: builder.uri,
    status: 'error',
    summary,
    cause,
    ranOnThisBuilder: false,
    system,
    salt,
    durationMs: Math.round(performance.now() - started),
    command: [file, ...args],
    stderr: '',
  });
  if (!caps.ok) return fail('Nix could not be run', caps.message);
  const run = await deps.nix.run(file, args, {
    timeoutMs: deps.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    ...(deps.signal ? { signal: deps.signal } : {}),
    ...(deps.onStderr ? { onStderr: deps.onStderr } : {}),
  });
  const durationMs = Math.round(performance.now() - started);
  if (run.kind === 'spawn-failed') return fail(`${file} could not be started`, describeResult(run));
  const exit = run.kind === 'ok' ? 'ok' : run.kind === 'timed-out' ? 'timed-out' : run.kind === 'cancelled' ? 'cancelled' : 'failed';
  let output: string | undefined;
  let outputError: string | undefined;
  const outPath = run.stdout.trim().split('\n').pop()?.trim();
  if (exit === 'ok' && outPath) {
    try {
      output = await (deps.readText ?? ((p: string) => readFile(p, 'utf8')))(outPath);
    } catch (e) {
      outputError = (e as Error).message;
    }
  }
  const decided = interpretTestBuild({
    builder,
    exit,
    exitText: describeResult(run),
    stdout: run.stdout,
    stderr: run.stderr,
    ...(output !== undefined ? { output } : {}),
    ...(outputError !== undefined ? { outputError } : {}),
  });
  return {
    builderId: builder.id,
    name: builder.name,
    uri: builder.uri,
    ...decided,
    system,
    salt,
    durationMs,
    command: [file, ...args],
    stderr: run.stderr,
  };
}
