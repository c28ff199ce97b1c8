// Nix's error text → typed problems, each with the cause in plain English and a concrete fix.
//
// Input is whatever a Nix command wrote to stderr: plain text, or `--log-format internal-json`
// lines (`@nix {…}`, read with the log parser: only messages count, build output does not), or a
// mix. Classification is total (CONVENTIONS.md, habit 11): it never throws, and every `error:`
// Nix printed ends up in some problem — one this module does not recognise becomes `unknown` with
// the text kept as it was.
//
// The wordings were recorded from real Nix 2.8.0 (test/fixtures/nix-2.8.0/) or copied from Nix's
// sources and release notes for other versions (test/fixtures/nix-*/README.md). Where versions
// differ, every known wording is accepted:
//   system mismatch  2.8  `a 'aarch64-linux' with features {} is required to build '…', but I am a …`
//                    newer `Cannot build '…'.` / `Reason: required system or feature not available` /
//                          `Required system: '…' with features {…}` / `Current system: …`
//   no machine       2.8  `required (system, features): (x86_64-linux, big-parallel, gpu)`,
//                          machines `(x86_64-linux, 2, big-parallel, )` (lists run together)
//                    newer `(x86_64-linux, [kvm])`, machines `([x86_64-linux], 1, [], [])`
//   eval errors      2.8  `error: <message>` then an indented `at <file>:<line>:<col>:` and an excerpt
//                    2.13+ `error:` then `… while …` frames, the message on an indented `error:` line
//                    2.3  the position inline: `error: <message>, at <file>:<line>:<col>`
//   build users      `the group 'nixbld' specified in 'build-users-group' does not exist`,
//                    `the build users group 'nixbld' has no members` (2.8 to the newest), alone, after
//                    `build of '…' on '…' failed: ` (a builder's), or in a newer Nix's log tail

import { parseLogLine, stripAnsi } from './logParser';
import type { LogEvent } from './logParser';
import { parseStoreUri } from './storeUri';

export type ProblemKind =
  | 'build-users'
  | 'system-mismatch'
  | 'no-machine'
  | 'not-privileged'
  | 'lacks-signature'
  | 'cannot-connect'
  | 'not-deterministic'
  | 'check-impossible'
  | 's3-unsupported'
  | 'eval-error'
  | 'infinite-recursion'
  | 'parse-error'
  | 'timeout'
  | 'build-failed'
  | 'dependency-failed'
  | 'unknown';

/** Why an SSH store could not be reached; the first seven are named in the product brief. */
export type ConnectFailure =
  | 'connection-refused'
  | 'permission-denied'
  | 'host-key-verification-failed'
  | 'host-key-changed'
  | 'remote-command-not-found'
  | 'could-not-resolve'
  | 'unexpected-eof'
  | 'timed-out'
  | 'network-unreachable'
  | 'other';

export interface SourcePosition {
  /** A path, or Nix's pseudo-files `«string»`, `«stdin»`, `«none»`. */
  file: string;
  /** 1-based; absent for `«none»:0`. */
  line?: number;
  /** 1-based. */
  column?: number;
}

/** One `… while evaluating …` frame of an evaluation trace. */
export interface TraceFrame {
  text: string;
  position?: SourcePosition;
}

/** One line of the `(systems, maxjobs, supportedFeatures, mandatoryFeatures)` table. */
export interface MachineCandidate {
  systems: string[];
  maxJobs: number;
  supportedFeatures: string[];
  mandatoryFeatures: string[];
  /** Whether this machine could take the derivation (system, features and mandatory features fit). */
  fits: boolean;
  /** Why it cannot, in plain English. */
  mismatch?: string;
  /**
   * Nix 2.8 prints the two feature lists without brackets; when both are non-empty and there is no
   * colour to separate them, the split is a guess (all are taken as supported).
   */
  featuresAmbiguous?: boolean;
  /** The table line as printed (ANSI stripped). */
  line: string;
}

export interface BuildUsersDetails {
  /** The group `build-users-group` names. */
  group: string;
  /** group-missing: no such group; no-members: the group exists but lists no users. */
  reason: 'group-missing' | 'no-members';
  /** Set when a remote builder reported it (its store URI). */
  storeUri?: string;
  drvPath?: string;
}

export interface SystemMismatchDetails {
  drvPath: string;
  requiredSystem: string;
  requiredFeatures: string[];
  localSystem: string;
  localFeatures: string[];
  /** Required features this machine lacks. */
  missingFeatures: string[];
  systemDiffers: boolean;
  /** The configured builders, when Nix listed them ("Failed to find a machine…") for this derivation. */
  machines?: MachineCandidate[];
}

export interface NoMachineDetails {
  /** Full store path when known, else the base name Nix printed. */
  drvPath?: string;
  requiredSystem?: string;
  requiredFeatures: string[];
  machines: MachineCandidate[];
  /**
   * no-fitting-machine: no configured builder accepts the derivation;
   * builders-unreachable: one fits but Nix could not connect to it;
   * max-jobs-zero: local builds are off (`-j0`) and no builder is configured.
   */
  reason: 'no-fitting-machine' | 'builders-unreachable' | 'max-jobs-zero';
  /** Store URIs Nix failed to connect to in the same run. */
  unreachable: string[];
}

export interface NotPrivilegedDetails {
  /** `input-addressed derivations` (2.4+), `derivations` (older), or another tail. */
  wording: string;
  storeUri?: string;
  drvPath?: string;
}

export interface LacksSignatureDetails {
  path: string;
  storeUri?: string;
}

export interface CannotConnectDetails {
  reason: ConnectFailure;
  /** e.g. `ssh://b1`, `ssh-ng://nopath@b4` (when Nix named the store). */
  storeUri?: string;
  /** `[user@]host` as Nix or ssh named it. */
  host?: string;
  /** What ssh (or the remote shell) said, when it said something. */
  sshMessage?: string;
  /** For remote-command-not-found: the program the remote shell could not find. */
  remoteProgram?: string;
  drvPath?: string;
}

export interface NotDeterministicDetails {
  drvPath: string;
  outputPath: string;
  /** `<output>.check`, left by `--keep-failed`. */
  checkPath?: string;
}

export interface CheckImpossibleDetails {
  drvPath: string;
}

export interface S3UnsupportedDetails {
  /** The store as Nix named it (2.8); 2.26 names only the scheme. */
  storeUri?: string;
}

export interface EvalErrorDetails {
  /** Where the error is; from the `at` line, the inline `at`, or the JSON message's file/line/column. */
  position?: SourcePosition;
  /** The code excerpt Nix printed under the position (line-number gutter included). */
  excerpt: string[];
  /**
   * `… while …` frames in the order Nix printed them: 2.8 prints them after the message, innermost
   * first; 2.13+ prints them before the message, outermost first.
   */
  trace: TraceFrame[];
  /** `file 'nixpkgs' was not found in the Nix search path`: the `<…>` name (`nixpkgs`). */
  searchPathName?: string;
}

export interface ParseErrorDetails extends EvalErrorDetails {
  /** `syntax error, unexpected '=', expecting ';'` → "'='". */
  unexpected?: string;
  /** → ["';'"]. */
  expecting: string[];
}

export interface TimeoutDetails {
  drvPath?: string;
  seconds?: number;
  /** true: max-silent-time (no output for that long); false: the whole build took too long. */
  silence: boolean;
  storeUri?: string;
}

export interface BuildFailedDetails {
  drvPath: string;
  exitCode?: number;
  signal?: number;
  /** Set when the build ran on a remote builder. */
  storeUri?: string;
  /** The last lines of the build log that the output contains. */
  logTail: string[];
}

export interface DependencyFailedDetails {
  drvPath: string;
  count: number;
}

export type UnknownDetails = Record<string, never>;

interface ProblemOf<K extends ProblemKind, D> {
  kind: K;
  /** One line, Nix's own words (without the `error: ` prefix). */
  message: string;
  /** Why it happened, in plain English. */
  cause: string;
  /** What to do about it. */
  fix: string;
  details: D;
  /** Every line this problem was recognised from, ANSI stripped, as Nix printed them. */
  text: string;
}

export type NixProblem =
  | ProblemOf<'build-users', BuildUsersDetails>
  | ProblemOf<'system-mismatch', SystemMismatchDetails>
  | ProblemOf<'no-machine', NoMachineDetails>
  | ProblemOf<'not-privileged', NotPrivilegedDetails>
  | ProblemOf<'lacks-signature', LacksSignatureDetails>
  | ProblemOf<'cannot-connect', CannotConnectDetails>
  | ProblemOf<'not-deterministic', NotDeterministicDetails>
  | ProblemOf<'check-impossible', CheckImpossibleDetails>
  | ProblemOf<'s3-unsupported', S3UnsupportedDetails>
  | ProblemOf<'eval-error', EvalErrorDetails>
  | ProblemOf<'infinite-recursion', EvalErrorDetails>
  | ProblemOf<'parse-error', ParseErrorDetails>
  | ProblemOf<'timeout', TimeoutDetails>
  | ProblemOf<'build-failed', BuildFailedDetails>
  | ProblemOf<'dependency-failed', DependencyFailedDetails>
  | ProblemOf<'unknown', UnknownDetails>;

export type ProblemOfKind<K extends ProblemKind> = Extract<NixProblem, { kind: K }>;

// ---------------------------------------------------------------------------------------------
// Input: lines (from plain stderr or from internal-json messages) and build context.

interface TextItem {
  type: 'line';
  /** As received, colours included. */
  raw: string;
  /** ANSI stripped. */
  text: string;
  /** From an internal-json message that carried a position. */
  position?: SourcePosition;
  /**
   * msg: an internal-json message, certainly Nix's own. plain: a stderr line, which may also be
   * build output. log: a log line of a remote build, which carries the build hook's (and the
   * remote Nix's) messages as well as the build's output.
   */
  origin: 'msg' | 'plain' | 'log';
}

/** A build started (plain `building '…' [on '…']...` or a JSON `build` activity). */
interface BuildingItem {
  type: 'building';
  drvPath: string;
  storeUri?: string;
}

/** A line of build output (JSON `buildLogLine`), attributed to a derivation. */
interface LogItem {
  type: 'log';
  drvPath: string;
  text: string;
}

type Item = TextItem | BuildingItem | LogItem;

function textLines(raw: string, origin: TextItem['origin'], position?: SourcePosition): TextItem[] {
  const parts = raw.split('\n');
  return parts.map((part, i) => {
    const item: TextItem = { type: 'line', raw: part, text: stripAnsi(part), origin };
    if (i === 0 && position) item.position = position;
    return item;
  });
}

function itemsFromEvents(events: Iterable<LogEvent>): Item[] {
  const items: Item[] = [];
  /** Build activities: their derivation, and whether they run on a remote machine. */
  const builds = new Map<string, { drvPath: string; remote: boolean }>();
  for (const ev of events) {
    switch (ev.kind) {
      case 'plain':
        items.push({ type: 'line', raw: ev.text, text: stripAnsi(ev.text), origin: 'plain' });
        break;
      case 'malformed':
        items.push({ type: 'line', raw: ev.text, text: stripAnsi(ev.text), origin: 'plain' });
        break;
      case 'msg': {
        let position: SourcePosition | undefined;
        if (ev.file !== undefined) {
          // Nix 2.26 writes the whole position into `file` ("/a/b.nix:6:13"), beside line and column.
          const suffix = ev.line !== undefined && ev.column !== undefined ? `:${ev.line}:${ev.column}` : undefined;
          position = { file: suffix !== undefined && ev.file.endsWith(suffix) ? ev.file.slice(0, -suffix.length) : ev.file };
          if (ev.line !== undefined && ev.line > 0) position.line = ev.line;
          if (ev.column !== undefined && ev.column > 0) position.column = ev.column;
        }
        items.push(...textLines(ev.rawMsg, 'msg', position));
        break;
      }
      case 'start':
        if (ev.build) {
          builds.set(ev.id, { drvPath: ev.build.drvPath, remote: ev.build.machine.length > 0 });
          const item: BuildingItem = { type: 'building', drvPath: ev.build.drvPath };
          if (ev.build.machine) item.storeUri = ev.build.machine;
          items.push(item);
        }
        break;
      case 'result':
        if (ev.logLine !== undefined) {
          const build = builds.get(ev.id);
          if (build === undefined) break;
          // A local build's log is only the builder's output; a remote one also carries the hook's messages.
          if (build.remote) items.push(...textLines(ev.logLine, 'log'));
          else items.push({ type: 'log', drvPath: build.drvPath, text: stripAnsi(ev.logLine) });
        }
        break;
      default:
        break;
    }
  }
  return items;
}

function itemsFromText(stderr: string): Item[] {
  const lines = stderr.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  // Plain lines are kept verbatim, colours included (a Nix on a terminal colours list items).
  const events: LogEvent[] = lines.map((line) => {
    if (line.endsWith('\r')) line = line.slice(0, -1);
    return line.startsWith('@nix ') ? parseLogLine(line) : { kind: 'plain', text: line };
  });
  return itemsFromEvents(events);
}

// ---------------------------------------------------------------------------------------------
// Small parsers.

const ERROR_PREFIX = /^error:\s?/;
/** Longest message matched against patterns (and reported as `message`); `text` keeps everything. */
const MAX_MESSAGE = 2000;
/** An indented `error:` inside a block (the message of a 2.13+ trace). Not `> error:` (build log). */
const INNER_ERROR = /^\s+error:\s?(.*)$/;
const TRACE_FRAME = /^\s*… ?(.*)$/;
const AT_LINE = /^\s*at (.+?):(\d+):(\d+):?\s*$/;
const AT_NONE = /^\s*at («[^»]*»):(\d+):?(?:\s.*)?$/;
const AT_INLINE = /,? at ((?:\/|«)[^\s]*?):(\d+):(\d+):?$/;
const EXCERPT = /^\s+(?:\d+)?\|/;

function splitList(s: string): string[] {
  return s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
}

function position(file: string, line: string | undefined, column: string | undefined): SourcePosition {
  const pos: SourcePosition = { file };
  const l = line === undefined ? 0 : Number(line);
  const c = column === undefined ? 0 : Number(column);
  if (l > 0) pos.line = l;
  if (c > 0) pos.column = c;
  return pos;
}

function parseAt(text: string): SourcePosition | undefined {
  let m = AT_LINE.exec(text);
  if (m) return position(m[1] as string, m[2], m[3]);
  m = AT_NONE.exec(text);
  if (m) return position(m[1] as string, m[2], undefined);
  return undefined;
}

/** The authority of a store URI as Nix names the machine: `ssh-ng://user@b1?x=y` → `user@b1`. */
function authorityOf(storeUri: string): string | undefined {
  return parseStoreUri(storeUri)?.authority || undefined;
}

/** Details of a connection failure to the store `uri` (when known). */
function connectDetails(failure: ReturnType<typeof connectFailure>, uri: string | undefined): CannotConnectDetails {
  const details: CannotConnectDetails = { reason: failure.reason };
  if (uri) {
    details.storeUri = uri;
    const host = authorityOf(uri);
    if (host) details.host = host;
  }
  if (failure.sshMessage) details.sshMessage = failure.sshMessage;
  if (failure.remoteProgram) details.remoteProgram = failure.remoteProgram;
  return details;
}

/** Segments highlighted by Nix (`ESC[35;1m…ESC[0m`) in a raw line, in order. */
function highlighted(raw: string): string[] | undefined {
  const re = /\x1b\[35;1m(.*?)\x1b\[0m/g;
  const out: string[] = [];
  for (let m = re.exec(raw); m; m = re.exec(raw)) out.push(stripAnsi(m[1] as string));
  return out.length > 0 ? out : undefined;
}

function isMachineTableHeader(text: string): boolean {
  return /^\(systems, maxjobs, supportedFeatures, mandatoryFeatures\)\s*$/.test(text);
}

/** `(system, features)`: newer `(x86_64-linux, [kvm])`, 2.8 `(x86_64-linux, big-parallel, gpu)` / `(aarch64-linux, )`. */
function parseRequired(item: TextItem): { system?: string; features: string[] } {
  const text = item.text.replace(/^required \(system, features\):\s*/, '').trim();
  const newer = /^\(([^,]*), \[(.*)\]\)$/.exec(text);
  if (newer) return { system: (newer[1] as string).trim(), features: splitList(newer[2] as string) };
  const groups = highlighted(item.raw);
  if (groups && groups.length === 2) return { system: groups[0] as string, features: splitList(groups[1] as string) };
  const inner = /^\((.*)\)$/.exec(text);
  if (!inner) return { features: [] };
  const [system, ...rest] = (inner[1] as string).split(',').map((x) => x.trim());
  return { system: system || undefined, features: rest.filter((x) => x.length > 0) };
}

function parseMachineLine(item: TextItem): Omit<MachineCandidate, 'fits' | 'mismatch'> | undefined {
  const text = item.text.trim();
  const newer = /^\(\[(.*?)\], (\d+), \[(.*?)\], \[(.*?)\]\)$/.exec(text);
  if (newer) {
    return {
      systems: splitList(newer[1] as string),
      maxJobs: Number(newer[2]),
      supportedFeatures: splitList(newer[3] as string),
      mandatoryFeatures: splitList(newer[4] as string),
      line: text,
    };
  }
  const groups = highlighted(item.raw);
  if (groups && groups.length === 4 && /^\d+$/.test(groups[1] as string)) {
    return {
      systems: splitList(groups[0] as string),
      maxJobs: Number(groups[1]),
      supportedFeatures: splitList(groups[2] as string),
      mandatoryFeatures: splitList(groups[3] as string),
      line: text,
    };
  }
  const inner = /^\((.*)\)$/.exec(text);
  if (!inner) return undefined;
  const tokens = (inner[1] as string).split(',').map((x) => x.trim());
  const jobsAt = tokens.findIndex((t) => /^\d+$/.test(t));
  if (jobsAt < 0) return undefined;
  const systems = tokens.slice(0, jobsAt).filter((t) => t.length > 0);
  const rest = tokens.slice(jobsAt + 1);
  let supportedFeatures: string[];
  let mandatoryFeatures: string[];
  let featuresAmbiguous = false;
  if (rest.length <= 2) {
    supportedFeatures = rest[0] ? [rest[0]] : [];
    mandatoryFeatures = rest[1] ? [rest[1]] : [];
  } else if (rest[rest.length - 1] === '') {
    supportedFeatures = rest.filter((t) => t.length > 0);
    mandatoryFeatures = [];
  } else if (rest[0] === '') {
    supportedFeatures = [];
    mandatoryFeatures = rest.filter((t) => t.length > 0);
  } else {
    supportedFeatures = rest.filter((t) => t.length > 0);
    mandatoryFeatures = [];
    featuresAmbiguous = true;
  }
  const machine: Omit<MachineCandidate, 'fits' | 'mismatch'> = {
    systems,
    maxJobs: Number(tokens[jobsAt]),
    supportedFeatures,
    mandatoryFeatures,
    line: text,
  };
  if (featuresAmbiguous) machine.featuresAmbiguous = true;
  return machine;
}

function judge(machine: Omit<MachineCandidate, 'fits' | 'mismatch'>, system: string | undefined, features: string[]): MachineCandidate {
  const reasons: string[] = [];
  if (system !== undefined && !machine.systems.includes(system)) {
    reasons.push(`it builds ${machine.systems.join(', ') || 'no system'}, not ${system}`);
  }
  const all = new Set([...machine.supportedFeatures, ...machine.mandatoryFeatures]);
  const lacking = features.filter((f) => !all.has(f));
  if (lacking.length > 0) reasons.push(`it lacks ${lacking.join(', ')}`);
  const mandatory = machine.mandatoryFeatures.filter((f) => !features.includes(f));
  if (mandatory.length > 0) reasons.push(`it only takes derivations that require ${mandatory.join(', ')}`);
  if (machine.maxJobs === 0) reasons.push('its max-jobs is 0');
  const result: MachineCandidate = { ...machine, fits: reasons.length === 0 };
  if (reasons.length > 0) result.mismatch = reasons.join('; ');
  return result;
}

/** Nix's own words in front of what ssh said: `cannot build on '…': error: cannot connect to '…': `. */
const NIX_CONNECT_PREFIX = /^(?:cannot build on '[^']+':\s*)?(?:error:\s*)?(?:cannot (?:connect to|open connection to remote store) '[^']+':\s*)?(?:error:\s*)?/;

function connectFailure(text: string): { reason: ConnectFailure; sshMessage?: string; remoteProgram?: string } {
  const lines = text
    .split('\n')
    .map((l) => l.trim().replace(NIX_CONNECT_PREFIX, ''))
    .filter((l) => l.length > 0);
  const find = (re: RegExp) => lines.find((l) => re.test(l));
  let line: string | undefined;
  if ((line = find(/Host key for \S+ has changed/) ?? find(/REMOTE HOST IDENTIFICATION HAS CHANGED/))) {
    return { reason: 'host-key-changed', sshMessage: line.replace(/^@\s*|\s*@$/g, '') };
  }
  if ((line = find(/Host key verification failed|No \S+ host key is known for/))) return { reason: 'host-key-verification-failed', sshMessage: line };
  if ((line = find(/Permission denied \(|Too many authentication failures/))) return { reason: 'permission-denied', sshMessage: line };
  if ((line = find(/Connection refused/))) return { reason: 'connection-refused', sshMessage: line };
  if ((line = find(/Could not resolve hostname|Name or service not known|Temporary failure in name resolution/))) {
    return { reason: 'could-not-resolve', sshMessage: line };
  }
  line = find(/: command not found$|: No such file or directory$/);
  if (line) {
    const m = /(?:^|:\s)([^\s:]+): (?:command not found|No such file or directory)$/.exec(line);
    const result: { reason: ConnectFailure; sshMessage?: string; remoteProgram?: string } = { reason: 'remote-command-not-found', sshMessage: line };
    if (m) result.remoteProgram = m[1] as string;
    return result;
  }
  if ((line = find(/timed out/i))) return { reason: 'timed-out', sshMessage: line };
  if ((line = find(/No route to host|Network is unreachable/))) return { reason: 'network-unreachable', sshMessage: line };
  if ((line = find(/unexpected end-of-file/))) return { reason: 'unexpected-eof' };
  return { reason: 'other' };
}

/** Lines ssh or a remote shell prints that explain a failed connection. */
const SSH_EVIDENCE =
  /^ssh: |^\S+@\S+: Permission denied \(|^Permission denied \(|Host key verification failed\.|^No \S+ host key is known for|REMOTE HOST IDENTIFICATION HAS CHANGED|: command not found$|^kex_exchange_identification:|^Connection closed by /;

const EVAL_MESSAGES =
  /^(undefined variable|attribute '.*' missing|value is .* while .* was expected|expected a .* but found|cannot coerce|assertion .* failed|evaluation aborted|function '.*' called (without|with unexpected)|called (without|with unexpected)|cannot convert|file '.*' was not found in the Nix search path|access to (absolute )?path .* is forbidden|cannot look up|the string '.*' is not allowed to refer to a store path|in pure evaluation mode|stack overflow|cannot call 'getFlake'|undefined|anonymous function at .* called|dynamic attribute|attribute '.*' already defined|cannot import|path '.*' does not exist|getting status of|opening file|while evaluating|list index|division by zero|flake '.*' does not provide attribute)/;

// ---------------------------------------------------------------------------------------------
// Causes and fixes.

const fmtSet = (xs: string[]) => `{${xs.join(', ')}}`;

function systemMismatch(
  message: string,
  text: string,
  d: Omit<SystemMismatchDetails, 'missingFeatures' | 'systemDiffers'>,
): ProblemOfKind<'system-mismatch'> {
  const local = new Set(d.localFeatures);
  const missingFeatures = d.requiredFeatures.filter((f) => !local.has(f));
  const systemDiffers = d.requiredSystem !== d.localSystem;
  const needs: string[] = [];
  if (systemDiffers) needs.push(`${/^[aeiou]/.test(d.requiredSystem) ? 'an' : 'a'} ${d.requiredSystem} machine (this one is ${d.localSystem})`);
  if (missingFeatures.length > 0) needs.push(`the system feature${missingFeatures.length > 1 ? 's' : ''} ${missingFeatures.join(', ')} (this machine has ${fmtSet(d.localFeatures)})`);
  const cause =
    `The derivation needs ${needs.join(' and ') || `a '${d.requiredSystem}' machine with ${fmtSet(d.requiredFeatures)}`}, ` +
    'and no remote builder that could take it was available, so Nix tried to build it here and cannot.';
  const fixes: string[] = [];
  if (systemDiffers) {
    fixes.push(
      `Add a remote builder for ${d.requiredSystem}: a machines entry such as \`ssh://HOST ${d.requiredSystem} - 1 1\` in /etc/nix/machines or nix.conf's \`builders\`, ` +
        `or let this machine run ${d.requiredSystem} code through emulation (\`extra-platforms = ${d.requiredSystem}\` in nix.conf with binfmt_misc/QEMU set up).`,
    );
  }
  if (missingFeatures.length > 0) {
    fixes.push(
      `Give a builder that really has ${missingFeatures.join(', ')} that feature in column 6 of its machines entry, ` +
        `or, if this machine has it, add \`extra-system-features = ${missingFeatures.join(' ')}\` to nix.conf (and restart nix-daemon).`,
    );
  }
  if (fixes.length === 0) fixes.push('Add a remote builder that supports this system and these features.');
  return { kind: 'system-mismatch', message, cause, fix: fixes.join(' '), details: { ...d, missingFeatures, systemDiffers }, text };
}

const BUILD_USERS_MISSING = /the group '([^']+)' specified in 'build-users-group' does not exist/;
const BUILD_USERS_EMPTY = /the build users group '([^']+)' has no members/;

/** The build-users message anywhere in `text` (an error line, a builder's failure, a log tail). */
function buildUsersIn(text: string): { group: string; reason: BuildUsersDetails['reason'] } | undefined {
  for (const line of text.split('\n')) {
    if (/^\s*warning:/.test(line)) continue;
    let m = BUILD_USERS_MISSING.exec(line);
    if (m) return { group: m[1] as string, reason: 'group-missing' };
    m = BUILD_USERS_EMPTY.exec(line);
    if (m) return { group: m[1] as string, reason: 'no-members' };
  }
  return undefined;
}

/** Why builds fail for want of build users, and what to do; shared with the doctor's local check. */
export function buildUsersAdvice(details: Pick<BuildUsersDetails, 'group' | 'reason' | 'storeUri'>): { cause: string; fix: string } {
  const where = details.storeUri ? `the builder ${details.storeUri}` : 'this machine';
  const conf = details.storeUri ? `/etc/nix/nix.conf on the builder` : '/etc/nix/nix.conf (or the nix.conf in NIX_CONF_DIR)';
  const group = `'${details.group}'`;
  const cause =
    details.reason === 'group-missing'
      ? `Nix on ${where} builds as root, so it runs each build as one of the build users: the members of the group ${group} that \`build-users-group\` names (Nix's default is nixbld). There is no such group ${details.storeUri ? 'on the builder' : 'here'}: Debian's nix-bin alone creates neither the group nor its users nor a nix-daemon.`
      : `Nix on ${where} builds as root, so it runs each build as one of the members of the group ${group} that \`build-users-group\` names; that group exists but has no members.`;
  const fix =
    `For a multi-user set-up install Debian's \`nix-setup-systemd\`${details.storeUri ? ' on the builder' : ''} (\`apt-get install nix-setup-systemd\`: it creates the nixbld group and its build users and starts nix-daemon)` +
    (details.reason === 'no-members' ? ` or add build users to ${group} (e.g. \`useradd --system --no-create-home -g ${details.group} -G ${details.group} nixbld1\`)` : '') +
    `; for a single-user set-up (builds run as root itself, without build users) put \`build-users-group =\` in ${conf}.`;
  return { cause, fix };
}

function buildUsersProblem(message: string, text: string, details: BuildUsersDetails): ProblemOfKind<'build-users'> {
  return { kind: 'build-users', message, ...buildUsersAdvice(details), details, text };
}

function connectProblem(message: string, text: string, details: CannotConnectDetails): ProblemOfKind<'cannot-connect'> {
  const h = details.host ?? (details.storeUri ? authorityOf(details.storeUri) : undefined) ?? 'the builder';
  const uri = details.storeUri ?? (details.host ? `ssh://${details.host}` : 'ssh://HOST');
  const ping = `\`nix store ping --store ${uri}\``;
  let cause: string;
  let fix: string;
  switch (details.reason) {
    case 'connection-refused':
      cause = `Nothing accepts SSH connections at ${h}: sshd is not running there, or the host name or port Nix uses for it is wrong.`;
      fix = `Start sshd on the builder, or correct HostName/Port for ${h} in the ssh config Nix uses (root's ~/.ssh/config when nix-daemon builds, or NIX_SSHOPTS='-F /abs/path'); then check with ${ping}.`;
      break;
    case 'permission-denied':
      cause = `The builder refused every SSH key offered: the key Nix uses is not in the authorized_keys of the remote user at ${h}.`;
      fix = `Add the public half of the key from column 3 of the machines entry (or of root's default key: nix-daemon connects as root) to ~/.ssh/authorized_keys of that user on the builder; then check with ${ping}.`;
      break;
    case 'host-key-verification-failed':
      cause = `ssh does not know ${h}'s host key and checks strictly; Nix runs ssh non-interactively, so it cannot ask you to accept the key.`;
      fix = `Put the builder's host key in column 8 of its machines entry (base64 of its \`ssh-ed25519 AAAA…\` line, e.g. \`ssh-keyscan -t ed25519 HOST | cut -d' ' -f2- | base64 -w0\`), or connect once as root (\`sudo ssh ${h}\`) to record it in root's known_hosts.`;
      break;
    case 'host-key-changed':
      cause = `${h} presented a different host key from the one recorded (machines column 8 or known_hosts): the builder was reinstalled or re-keyed — or someone is intercepting the connection.`;
      fix = `If you expect the change, replace column 8 of the machines entry with the new key (or remove the old one with \`ssh-keygen -R ${h}\` in root's known_hosts); otherwise find out why the key changed before building there.`;
      break;
    case 'remote-command-not-found': {
      const program = details.remoteProgram ?? (uri.startsWith('ssh-ng://') ? 'nix-daemon' : 'nix-store');
      const sep = uri.includes('?') ? '&' : '?';
      cause = `SSH to ${h} works, but \`${program}\` is not on the PATH that a non-interactive SSH session gets there (Nix runs it without a login shell).`;
      fix = `Name the program's absolute path on the builder in the store URI: \`${uri}${sep}remote-program=/nix/var/nix/profiles/default/bin/${program}\` (use \`command -v ${program}\` on the builder for the right path), or put Nix on the non-interactive PATH there.`;
      break;
    }
    case 'could-not-resolve':
      cause = `The host name of ${h} does not resolve to an address.`;
      fix = `Use a resolvable name or an IP address in the store URI, or define \`Host ${h}\` with a HostName in the ssh config Nix uses.`;
      break;
    case 'unexpected-eof':
      cause = `The connection to ${h} closed before Nix on the other side answered: the remote Nix refused the session or crashed, or the remote shell printed something or exited first.`;
      fix = `Run ${ping} and \`ssh ${h} nix-store --version\` by hand to see what the remote side says.`;
      break;
    case 'timed-out':
      cause = `${h} did not answer in time.`;
      fix = `Check that the builder is up and reachable (network, firewall, VPN), and its ConnectTimeout in the ssh config; then ${ping}.`;
      break;
    case 'network-unreachable':
      cause = `There is no network route to ${h}.`;
      fix = `Check the network connection or VPN to the builder; then ${ping}.`;
      break;
    default:
      cause = `Nix could not open an SSH connection to ${h}.`;
      fix = `Run ${ping} and \`ssh ${h} true\` as the user that builds (root for nix-daemon) to see why.`;
  }
  return { kind: 'cannot-connect', message, cause, fix, details, text };
}

function notPrivileged(message: string, text: string, details: NotPrivilegedDetails): ProblemOfKind<'not-privileged'> {
  const where = details.storeUri ? ` on ${details.storeUri}` : ' on the remote machine';
  const user = details.storeUri ? parseStoreUri(details.storeUri)?.user : undefined;
  return {
    kind: 'not-privileged',
    message,
    cause: `The user Nix logs in as${where} is not in that machine's \`trusted-users\`, and its nix-daemon lets only trusted users build derivations sent to it.`,
    fix:
      `On the builder, add ${user ? `\`${user}\`` : 'that user'} to \`trusted-users\` in /etc/nix/nix.conf (e.g. \`trusted-users = root ${user ?? 'USER'}\`) and restart nix-daemon there (\`systemctl restart nix-daemon\`). ` +
      'Uploading inputs as an untrusted user also needs them signed with a key in the builder\'s `trusted-public-keys`.',
    details,
    text,
  };
}

function evalPosText(pos: SourcePosition | undefined): string {
  if (!pos) return '';
  if (pos.line === undefined) return ` in ${pos.file}`;
  return ` at ${pos.file}:${pos.line}${pos.column !== undefined ? `:${pos.column}` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// The classifier.

/** The lines up to the first blank one, trimmed and joined by spaces. */
function firstParagraph(lines: readonly string[]): string {
  const end = lines.findIndex((l) => l.trim() === '');
  return (end < 0 ? lines : lines.slice(0, end)).map((l) => l.trim()).join(' ');
}

interface ErrorBlock {
  /** Lines of the block, first is the `error:` line. */
  items: TextItem[];
  /** First line without `error: `. */
  head: string;
}

/** Structure of an evaluation error block: message, position, excerpt, trace. */
function readEvalBlock(block: ErrorBlock): { message: string; details: EvalErrorDetails } {
  interface Target {
    text: string;
    position?: SourcePosition;
    excerpt: string[];
  }
  const head: Target = { text: block.head, excerpt: [] };
  let inner: Target | undefined;
  const frames: Target[] = [];
  let current: Target = head;
  for (const item of block.items.slice(1)) {
    const t = item.text;
    if (t.trim().length === 0) continue;
    const frame = TRACE_FRAME.exec(t);
    if (frame && /^\s*…/.test(t)) {
      current = { text: (frame[1] as string).trim(), excerpt: [] };
      frames.push(current);
      continue;
    }
    const innerError = INNER_ERROR.exec(t);
    if (innerError) {
      inner = { text: (innerError[1] as string).trim(), excerpt: [] };
      current = inner;
      continue;
    }
    const at = parseAt(t);
    if (at) {
      if (!current.position) current.position = at;
      continue;
    }
    if (EXCERPT.test(t)) {
      current.excerpt.push(t);
      continue;
    }
    // A continuation of the message (multi-line messages are indented too).
    if (current.excerpt.length === 0 && !current.position && current.text.length === 0) current.text = t.trim();
  }
  const main = inner ?? head;
  let message = main.text.slice(0, MAX_MESSAGE);
  if (message.length === 0 && frames.length > 0) message = (frames[frames.length - 1] as Target).text;
  let pos = block.items[0]?.position ?? main.position;
  let excerpt = main.excerpt;
  if (!pos) {
    const inline = AT_INLINE.exec(message);
    if (inline) pos = position(inline[1] as string, inline[2], inline[3]);
  }
  if (!pos) {
    // No position for the message itself (a `throw`, or an error in a builtin): use the frame
    // closest to it — the first one in 2.8's order (message first), the last one in 2.13+'s.
    const positioned = frames.filter((f) => f.position && f.position.line !== undefined);
    const closest = inner ? positioned[positioned.length - 1] : positioned[0];
    if (closest?.position) {
      pos = closest.position;
      excerpt = closest.excerpt;
    }
  }
  const details: EvalErrorDetails = {
    excerpt,
    trace: frames.map((f) => {
      const frame: TraceFrame = { text: f.text };
      if (f.position) frame.position = f.position;
      return frame;
    }),
  };
  if (pos) details.position = pos;
  return { message, details };
}

class Classifier {
  private readonly problems: NixProblem[] = [];
  /** ssh/remote-shell lines not yet used to explain a failed connection. */
  private evidence: string[] = [];
  /** The build Nix announced last: its derivation and, for remote builds, the store. */
  private building: { drvPath: string; storeUri?: string } | undefined;
  /** Store named by `Store URL: …` (nix store ping). */
  private storeUrl: string | undefined;
  /** Recent build output per derivation (last 25 lines). */
  private readonly logs = new Map<string, string[]>();
  private static readonly LOG_TAIL = 25;
  /** Derivation paths Nix listed (`these N derivations will be built:`). */
  private readonly known: string[] = [];
  /** Problems that may be build output, with the derivation being built then. */
  private readonly suspects = new Map<NixProblem, string>();

  constructor(private readonly items: Item[]) {}

  run(): NixProblem[] {
    const items = this.items;
    let i = 0;
    while (i < items.length) {
      const item = items[i] as Item;
      if (item.type === 'building') {
        this.building = { drvPath: item.drvPath };
        if (item.storeUri) this.building.storeUri = item.storeUri;
        i++;
        continue;
      }
      if (item.type === 'log') {
        this.log(item.drvPath, item.text);
        i++;
        continue;
      }
      i = this.line(i);
    }
    this.leftoverEvidence();
    this.relate();
    return this.problems;
  }

  private log(drvPath: string, text: string): void {
    let lines = this.logs.get(drvPath);
    if (!lines) this.logs.set(drvPath, (lines = []));
    lines.push(text);
    if (lines.length > Classifier.LOG_TAIL) lines.shift();
  }

  /** Handles the line at `i` (and the lines that belong to it); returns the next index. */
  private line(i: number): number {
    const item = this.items[i] as TextItem;
    const t = item.text;
    if (ERROR_PREFIX.test(t)) return this.errorBlock(i);
    if (t.startsWith('Failed to find a machine for remote build!')) return this.noMachineBlock(i);
    if (t.startsWith("cannot build on '")) return this.cannotBuildOn(i);
    let m = /^(?:building|checking outputs of) '([^']+)'(?: on '([^']+)')?/.exec(t);
    if (m) {
      this.building = { drvPath: m[1] as string };
      if (m[2]) this.building.storeUri = m[2];
      return i + 1;
    }
    m = /^\s+(\/\S+\.drv)$/.exec(t);
    if (m) {
      // `these N derivations will be built:` lists them in full; later messages may name only the base.
      this.known.push(m[1] as string);
      return i + 1;
    }
    m = /^Store URL: (\S+)/.exec(t);
    if (m) {
      this.storeUrl = m[1] as string;
      return i + 1;
    }
    if (/^@{5,}\s*$/.test(t)) {
      // ssh's REMOTE HOST IDENTIFICATION HAS CHANGED banner: keep its lines together, up to
      // "Host key verification failed.".
      this.evidence.push(t);
      let j = i + 1;
      while (j < this.items.length) {
        const next = this.items[j] as Item;
        if (next.type !== 'line' || ERROR_PREFIX.test(next.text) || next.text.startsWith('Failed to find a machine')) break;
        this.evidence.push(next.text);
        j++;
        if (/Host key verification failed\./.test(next.text)) break;
      }
      return j;
    }
    if (SSH_EVIDENCE.test(t)) {
      this.evidence.push(t);
      return i + 1;
    }
    // Anything else is build output (plain format) or chatter.
    if (this.building && t.length > 0 && !/^copying (\d+ paths|path )/.test(t)) this.log(this.building.drvPath, t);
    return i + 1;
  }

  /** `error: …` plus its indented continuation lines. */
  private errorBlock(i: number): number {
    const first = this.items[i] as TextItem;
    const blockItems: TextItem[] = [first];
    let j = i + 1;
    while (j < this.items.length) {
      const next = this.items[j] as Item;
      if (next.type !== 'line') break;
      if (next.text.length > 0 && !/^\s/.test(next.text)) break;
      blockItems.push(next);
      j++;
    }
    while (blockItems.length > 1 && (blockItems[blockItems.length - 1] as TextItem).text.trim() === '') blockItems.pop();
    const count = this.problems.length;
    this.classifyError({ items: blockItems, head: first.text.replace(ERROR_PREFIX, '').trim() });
    // During a build, an `error:` line that is not one of Nix's known messages may be the build's
    // own output (a compiler's "error: …"): keep it in that build's log, and drop the problem later
    // if the build's failure is reported anyway (relate()).
    const added = this.problems[count];
    if (added && first.origin !== 'msg' && this.building && SUSPECT.has(added.kind)) {
      for (const item of blockItems) this.log(this.building.drvPath, item.text);
      this.suspects.set(added, this.building.drvPath);
    }
    return j;
  }

  private blockText(items: TextItem[]): string {
    return items.map((x) => x.text).join('\n');
  }

  private takeEvidence(): string[] {
    const e = this.evidence;
    this.evidence = [];
    return e;
  }

  private last(): NixProblem | undefined {
    return this.problems[this.problems.length - 1];
  }

  /** Attach follow-on lines to an existing problem instead of reporting them twice. */
  private attach(problem: NixProblem, text: string): void {
    problem.text = `${problem.text}\n${text}`;
  }

  private classifyError(block: ErrorBlock): void {
    const text = this.blockText(block.items);
    // Patterns are matched against a bounded message, so a pathological line stays linear.
    const head = block.head.slice(0, MAX_MESSAGE);
    const rest = block.items.slice(1).map((x) => x.text);
    let m: RegExpExecArray | null;

    // --- build users (Debian's nix-bin without nix-setup-systemd), here or on a builder ---
    const users = buildUsersIn(text);
    if (users) {
      const details: BuildUsersDetails = { group: users.group, reason: users.reason };
      const on = /^build of '([^']+)' on '([^']+)' failed/.exec(head);
      const drvPath = on?.[1] ?? /^(?:builder for|Cannot build) '([^']+)'/.exec(head)?.[1];
      const storeUri = on?.[2] ?? (this.building?.drvPath === drvPath ? this.building?.storeUri : undefined);
      if (storeUri) details.storeUri = storeUri;
      if (drvPath) details.drvPath = drvPath;
      this.problems.push(buildUsersProblem(head, text, details));
      return;
    }

    // --- builders: trust, signatures, connections ---
    if ((m = /^you are not privileged to build (.+?)\.?$/.exec(head))) {
      const details: NotPrivilegedDetails = { wording: m[1] as string };
      if (this.building?.storeUri) {
        details.storeUri = this.building.storeUri;
        details.drvPath = this.building.drvPath;
      } else if (this.storeUrl) details.storeUri = this.storeUrl;
      this.problems.push(notPrivileged(head, text, details));
      return;
    }
    // "lacks a valid signature" up to Nix 2.11, "lacks a signature by a trusted key" from 2.12.
    if ((m = /^cannot add path '([^']+)' because it lacks a (?:valid signature|signature by a trusted key)/.exec(head))) {
      const details: LacksSignatureDetails = { path: m[1] as string };
      const uri = this.building?.storeUri ?? this.storeUrl ?? this.copyTarget();
      if (uri) details.storeUri = uri;
      this.problems.push({
        kind: 'lacks-signature',
        message: head,
        cause: `The receiving store${details.storeUri ? ` (${details.storeUri})` : ''} accepts paths from an untrusted user only when they are signed by a key it trusts, and this path is not.`,
        fix: 'Either make the remote user trusted (`trusted-users` in the builder\'s nix.conf, then restart nix-daemon), or sign the paths (`nix store sign --key-file KEY.sec -r PATH`) and add the matching public key to the builder\'s `trusted-public-keys`.',
        details,
        text,
      });
      return;
    }
    if ((m = /^cannot connect to '([^']+)'(?::\s*(.*))?$/.exec(head)) || (m = /^cannot open connection to remote store '([^']+)'(?::\s*(.*))?$/.exec(head))) {
      const named = m[1] as string;
      const inline = [m[2] ?? '', ...rest].join('\n');
      const evidence = this.takeEvidence();
      const failure = connectFailure([...evidence, inline].join('\n'));
      const details: CannotConnectDetails = { reason: failure.reason };
      if (named.includes('://')) {
        details.storeUri = named;
        const host = authorityOf(named);
        if (host) details.host = host;
      } else {
        details.host = named;
        const uri = this.storeUrl ?? this.building?.storeUri;
        if (uri && authorityOf(uri) === named) details.storeUri = uri;
      }
      if (failure.sshMessage) details.sshMessage = failure.sshMessage;
      if (failure.remoteProgram) details.remoteProgram = failure.remoteProgram;
      this.problems.push(connectProblem(head, [...evidence, text].join('\n'), details));
      return;
    }
    if (/^unexpected end-of-file\.?$/.test(head)) {
      const previous = this.last();
      if (previous && ['not-privileged', 'lacks-signature', 'cannot-connect'].includes(previous.kind)) {
        this.attach(previous, text);
        return;
      }
      const evidence = this.takeEvidence();
      const failure = connectFailure([...evidence, head].join('\n'));
      const details = connectDetails(failure, this.building?.storeUri ?? this.storeUrl);
      this.problems.push(connectProblem(head, [...evidence, text].join('\n'), details));
      return;
    }
    // 2.8 names the store ('s3://bucket?…'); 2.26 only its scheme ("with scheme 's3'").
    if ((m = /^don't know how to open Nix store (?:'(s3:\/\/[^']*)'|with scheme 's3')/.exec(head))) {
      this.problems.push({
        kind: 's3-unsupported',
        message: head,
        cause: 'This Nix was built without S3 support (Debian\'s and some other distributions\' packages are), so it cannot read or write s3:// binary caches at all.',
        fix: 'Use a Nix built with S3 support (the official installer\'s or nixpkgs\' `nix`), or reach the bucket another way: serve it over HTTP(S) (`https://BUCKET.s3.REGION.amazonaws.com` as a substituter for public buckets) or sync it to a local `file://` cache.',
        details: m[1] !== undefined ? { storeUri: m[1] } : {},
        text,
      });
      return;
    }

    // --- scheduling: system, features, machines ---
    if ((m = /^a '([^']+)' with features \{([^}]*)\} is required to build '([^']+)', but I am a '([^']+)' with features \{([^}]*)\}/.exec(head))) {
      this.problems.push(
        systemMismatch(head, text, {
          drvPath: m[3] as string,
          requiredSystem: m[1] as string,
          requiredFeatures: splitList(m[2] as string),
          localSystem: m[4] as string,
          localFeatures: splitList(m[5] as string),
        }),
      );
      return;
    }
    if ((m = /^Cannot build '([^']+)'\.?\s*(?:Reason: (.*))?$/.exec(head))) {
      this.cannotBuild(m[1] as string, m[2], block, text);
      return;
    }
    // Nix 2.8 prints "error: unable to start any build; …" on one line; newer Nix a bare `error:`
    // and the sentence wrapped on indented lines ("Unable to start any build;" / "remote machines …").
    const sentence = head === '' ? firstParagraph(rest) : head;
    if (/^unable to start any build; remote machines may not have all required system features/i.test(sentence)) {
      const previous = this.last();
      if (previous && previous.kind === 'no-machine' && !/unable to start any build/i.test(previous.text)) {
        this.attach(previous, text);
        previous.message = sentence;
        return;
      }
      this.problems.push(this.noMachine(sentence, text, { requiredFeatures: [], machines: [], reason: 'no-fitting-machine', unreachable: [] }));
      return;
    }
    if (/^unable to start any build; either increase '--max-jobs' or enable remote builds/i.test(sentence)) {
      this.problems.push({
        kind: 'no-machine',
        message: sentence,
        cause: 'Local builds are switched off (max-jobs is 0) and no remote builder is configured, so nothing can build the derivation.',
        fix: 'Configure a remote builder (`builders = …` in nix.conf or /etc/nix/machines, or `--builders`), or allow local builds (`--max-jobs 1` / `max-jobs = auto`).',
        details: { requiredFeatures: [], machines: [], reason: 'max-jobs-zero', unreachable: [] },
        text,
      });
      return;
    }

    // --- reproducibility ---
    if ((m = /^derivation '([^']+)' may not be deterministic: output '([^']+)' differs(?: from '([^']+)')?/.exec(head))) {
      const details: NotDeterministicDetails = { drvPath: m[1] as string, outputPath: m[2] as string };
      if (m[3]) details.checkPath = m[3];
      this.problems.push({
        kind: 'not-deterministic',
        message: head,
        cause: 'Building the derivation again gave a different output: something in the build depends on time, randomness, the machine or the order of things (timestamps, build paths, parallelism, network).',
        fix: details.checkPath
          ? `Compare the two results (\`diff -r ${details.outputPath} ${details.checkPath}\`, or diffoscope) to find what differs, then make that step deterministic (SOURCE_DATE_EPOCH, sorted inputs, no random or host data).`
          : 'Rerun the check with `--keep-failed` to keep the second result as `<output>.check`, compare it with the first (diffoscope), then make that step deterministic (SOURCE_DATE_EPOCH, sorted inputs, no random or host data).',
        details,
        text,
      });
      return;
    }
    if ((m = /^some outputs of '([^']+)' are not valid, so checking is not possible/.exec(head))) {
      this.problems.push({
        kind: 'check-impossible',
        message: head,
        cause: 'A check rebuilds a derivation and compares with the output already in the store, but this derivation has not been built (or substituted) here yet.',
        fix: 'Build it normally first (without `--check`), then run the check.',
        details: { drvPath: m[1] as string },
        text,
      });
      return;
    }

    // --- builds ---
    if ((m = /^build of '([^']+)' on '([^']+)' failed: (.*)$/.exec(head))) {
      this.remoteBuildFailed(m[1] as string, m[2] as string, m[3] as string, head, block, text);
      return;
    }
    if ((m = /^building of '([^']+?)(?:!\S+)?' (?:from \.drv file )?timed out after (\d+) seconds( of silence)?/.exec(head))) {
      this.timeout(head, text, m[1] as string, Number(m[2]), Boolean(m[3]));
      return;
    }
    if ((m = /^builder for '([^']+)' failed (?:with exit code (\d+)|due to signal (\d+))/.exec(head))) {
      const drvPath = m[1] as string;
      const earlier = this.problems.find(
        (p) =>
          ((p.kind === 'build-failed' && p.details.storeUri !== undefined) || p.kind === 'not-privileged' || p.kind === 'timeout' || p.kind === 'cannot-connect' || p.kind === 'build-users') &&
          'drvPath' in p.details &&
          p.details.drvPath === drvPath,
      );
      if (earlier) {
        // The build hook's own exit after a remote failure: same failure, reported twice by Nix.
        this.attach(earlier, text);
        return;
      }
      const details: BuildFailedDetails = { drvPath, logTail: this.logTail(drvPath, rest) };
      if (m[2] !== undefined) details.exitCode = Number(m[2]);
      if (m[3] !== undefined) details.signal = Number(m[3]);
      // Newer Nix reports a remote refusal only inside the hook's log tail:
      //   builder for '…' failed with exit code 1; last 1 log lines: > error: you are not privileged …
      const refusal = details.logTail.map((l) => /^error: (you are not privileged to build (.+?)\.?)$/.exec(l.trim())).find((x) => x);
      if (refusal) {
        const np: NotPrivilegedDetails = { wording: refusal[2] as string, drvPath };
        if (this.building?.storeUri && this.building.drvPath === drvPath) np.storeUri = this.building.storeUri;
        this.problems.push(notPrivileged(refusal[1] as string, text, np));
        return;
      }
      this.problems.push(this.buildFailed(head, text, details));
      return;
    }
    if ((m = /^(\d+) dependenc(?:y|ies) of derivation '([^']+)' failed to build/.exec(head)) || (m = /^cannot build derivation '([^']+)': (\d+) dependencies couldn't be built/.exec(head))) {
      const numberFirst = /^\d/.test(head);
      const drvPath = (numberFirst ? m[2] : m[1]) as string;
      const count = Number(numberFirst ? m[1] : m[2]);
      this.problems.push(this.dependencyFailed(head, text, drvPath, count));
      return;
    }
    if ((m = /^build of '([^']+)' failed$/.exec(head))) {
      const drvPath = m[1] as string;
      const earlier = this.problems.find((p) => p.kind === 'build-failed' || p.kind === 'dependency-failed');
      if (earlier) {
        this.attach(earlier, text);
        return;
      }
      this.problems.push(this.buildFailed(head, text, { drvPath, logTail: this.logTail(drvPath, rest) }));
      return;
    }

    // --- evaluation ---
    const evaluated = readEvalBlock(block);
    const message = evaluated.message;
    if (/^infinite recursion encountered/.test(message)) {
      this.problems.push({
        kind: 'infinite-recursion',
        message,
        cause: `A value was needed while it was being computed${evalPosText(evaluated.details.position)}: it depends on itself (for example \`x = x + 1\`, an overlay or module option that refers to its own final value, or \`rec\` with a name that shadows the one it means).`,
        fix: 'Look at the position and the trace: make the value refer to the previous/other value it means (`prev`/`super` in overlays, another name instead of the shadowed one) instead of itself.',
        details: evaluated.details,
        text,
      });
      return;
    }
    if ((m = /^syntax error, (?:unexpected (.+?))?(?:, expecting (.+?))?(?:, at \S+)?$/.exec(message))) {
      const details: ParseErrorDetails = { ...evaluated.details, expecting: [] };
      if (m[1]) details.unexpected = m[1];
      if (m[2]) details.expecting = m[2].split(/ or /).map((x) => x.trim());
      this.problems.push({
        kind: 'parse-error',
        message,
        cause: `The Nix file is not valid Nix syntax${evalPosText(details.position)}${details.unexpected ? `: Nix found ${details.unexpected}` : ''}${details.expecting.length > 0 ? ` where it expected ${details.expecting.join(' or ')}` : ''}.`,
        fix: 'Fix the syntax at that position — often a missing `;` at the end of the previous binding, an unclosed bracket or string, or a missing `in` after `let`.',
        details,
        text,
      });
      return;
    }
    if ((m = /^file '([^']+)' was not found in the Nix search path/.exec(message))) {
      const name = m[1] as string;
      this.problems.push({
        kind: 'eval-error',
        message,
        cause: `<${name}> is not on the search path${evalPosText(evaluated.details.position)}: no entry of -I, NIX_PATH or nix.conf's nix-path has '${name}'.`,
        fix: `Set NIX_PATH (e.g. NIX_PATH=${name.split('/')[0]}=/path/to/it), add it to nix-path in nix.conf, or pass -I ${name.split('/')[0]}=/path/to/it.`,
        details: { ...evaluated.details, searchPathName: name },
        text,
      });
      return;
    }
    if (EVAL_MESSAGES.test(message) || evaluated.details.position !== undefined || evaluated.details.trace.length > 0) {
      this.problems.push({
        kind: 'eval-error',
        message,
        cause: `Evaluating the Nix expression failed${evalPosText(evaluated.details.position)}: ${message}.`,
        fix: evaluated.details.position
          ? `Fix the expression at ${evaluated.details.position.file}${evaluated.details.position.line !== undefined ? `:${evaluated.details.position.line}` : ''}; rerun with \`--show-trace\` to see how evaluation got there.`
          : 'Rerun with `--show-trace` to see where evaluation failed, then fix the expression there.',
        details: evaluated.details,
        text,
      });
      return;
    }

    // --- generic timeouts (newer or unseen wordings) ---
    if ((m = /\btimed out after (\d+) seconds( of silence)?|silent for (\d+) seconds|\btimed out\b/.exec(head))) {
      const drv = /'(\/[^']+\.drv)(?:!\S+)?'/.exec(head);
      const seconds = m[1] ?? m[3];
      this.timeout(head, text, drv ? (drv[1] as string) : undefined, seconds !== undefined ? Number(seconds) : undefined, Boolean(m[2] ?? m[3]));
      return;
    }

    this.problems.push({
      kind: 'unknown',
      message: message || head || text.trim(),
      cause: 'Nix reported an error this extension does not recognise; its full text is kept below.',
      fix: 'Read Nix\'s message; rerunning the command with `-v` or `--show-trace` often says more.',
      details: {},
      text,
    });
  }

  private copyTarget(): string | undefined {
    for (let k = this.items.length - 1; k >= 0; k--) {
      const item = this.items[k] as Item;
      if (item.type !== 'line') continue;
      const m = /^copying path '[^']+' to '([^']+)'/.exec(item.text);
      // Nix 2.26 names an ssh-ng store 'ssh-ng://' there, without its host: no store to name.
      if (m) return /^[a-z0-9+.-]+:\/\/$/.test(m[1] as string) ? undefined : m[1];
    }
    return undefined;
  }

  private logTail(drvPath: string, blockRest: string[]): string[] {
    // `nix build` prints the tail inside the error: `last N log lines:` / `> line`.
    const quoted = blockRest.map((l) => /^\s*> ?(.*)$/.exec(l)).filter((x): x is RegExpExecArray => x !== null);
    if (quoted.length > 0) return quoted.map((q) => q[1] as string);
    return [...(this.logs.get(drvPath) ?? [])].slice(-10);
  }

  private buildFailed(message: string, text: string, details: BuildFailedDetails): ProblemOfKind<'build-failed'> {
    const how = details.exitCode !== undefined ? `exited with code ${details.exitCode}` : details.signal !== undefined ? `was killed by signal ${details.signal}` : 'failed';
    const where = details.storeUri ? ` on ${details.storeUri}` : '';
    return {
      kind: 'build-failed',
      message,
      cause: `The derivation's builder ran${where} and ${how}: the build itself failed (a compiler error, a failing test, a missing file).`,
      fix: `Read the end of the build log${details.logTail.length > 0 ? ' (below)' : ` (\`nix log ${details.drvPath}\`)`}, fix the build, and rebuild; \`--keep-failed\` keeps the build directory for inspection.`,
      details,
      text,
    };
  }

  private dependencyFailed(message: string, text: string, drvPath: string, count: number): ProblemOfKind<'dependency-failed'> {
    return {
      kind: 'dependency-failed',
      message,
      cause: `${count} of the derivations ${drvPath} depends on failed to build, so it could not be built.`,
      fix: 'Fix the failing dependency first: its own error is reported above.',
      details: { drvPath, count },
      text,
    };
  }

  private timeout(message: string, text: string, drvPath: string | undefined, seconds: number | undefined, silence: boolean): void {
    const details: TimeoutDetails = { silence };
    if (drvPath !== undefined) details.drvPath = drvPath;
    if (seconds !== undefined) details.seconds = seconds;
    if (this.building?.storeUri && (drvPath === undefined || drvPath === this.building.drvPath)) details.storeUri = this.building.storeUri;
    const limit = seconds !== undefined ? `${seconds} s` : 'its limit';
    this.problems.push({
      kind: 'timeout',
      message,
      cause: silence
        ? `The build printed nothing for ${limit} (max-silent-time), so Nix stopped it.`
        : `The build took longer than ${limit} (the timeout setting), so Nix stopped it.`,
      fix: silence
        ? 'If the step is just quiet, raise `--max-silent-time` (or `max-silent-time` in nix.conf, `meta.maxSilent` in nixpkgs); if it hangs, find the step that waits (network access, a prompt, a deadlock).'
        : 'Raise `--timeout` (or `timeout` in nix.conf) if the build is simply long, or build it on a faster builder; if it hangs, find the step that waits.',
      details,
      text,
    });
  }

  private remoteBuildFailed(drvPath: string, storeUri: string, reason: string, head: string, block: ErrorBlock, text: string): void {
    const rest = block.items.slice(1).map((x) => x.text);
    let m: RegExpExecArray | null;
    if ((m = /^builder for '[^']+' failed (?:with exit code (\d+)|due to signal (\d+))/.exec(reason))) {
      const details: BuildFailedDetails = { drvPath, storeUri, logTail: this.logTail(drvPath, rest) };
      if (m[1] !== undefined) details.exitCode = Number(m[1]);
      if (m[2] !== undefined) details.signal = Number(m[2]);
      this.problems.push(this.buildFailed(head, text, details));
      return;
    }
    if ((m = /timed out after (\d+) seconds( of silence)?/.exec(reason))) {
      this.building = { drvPath, storeUri };
      this.timeout(head, text, drvPath, Number(m[1]), Boolean(m[2]));
      return;
    }
    if (/not privileged to build/.test(reason)) {
      const wording = /not privileged to build (.+?)\.?$/.exec(reason);
      this.problems.push(notPrivileged(head, text, { wording: wording ? (wording[1] as string) : reason, storeUri, drvPath }));
      return;
    }
    this.problems.push(this.buildFailed(head, text, { drvPath, storeUri, logTail: this.logTail(drvPath, rest) }));
  }

  private cannotBuild(drvPath: string, reasonInline: string | undefined, block: ErrorBlock, text: string): void {
    const rest = block.items.slice(1).map((x) => x.text.trim());
    const reason = reasonInline ?? rest.map((l) => /^Reason: (.*)$/.exec(l)?.[1]).find((x) => x !== undefined) ?? '';
    const required = rest.map((l) => /^Required system: '([^']+)'(?: with features \{([^}]*)\})?/.exec(l)).find((x) => x);
    const current = rest.map((l) => /^Current system: '([^']+)'(?: with features \{([^}]*)\})?/.exec(l)).find((x) => x);
    const deps = /^(\d+) dependenc(?:y|ies) failed/.exec(reason);
    const message = `Cannot build '${drvPath}'.${reason ? ` Reason: ${reason}` : ''}`;
    if (deps) {
      this.problems.push(this.dependencyFailed(message, text, drvPath, Number(deps[1])));
      return;
    }
    // Newer Nix: `Reason: builder failed with exit code 1.` then `Last N log lines:` / `> …`.
    const builder = /^builder (?:failed with exit code (\d+)|failed due to signal (\d+)|.*)/.exec(reason);
    if (builder) {
      const details: BuildFailedDetails = { drvPath, logTail: this.logTail(drvPath, block.items.slice(1).map((x) => x.text)) };
      if (builder[1] !== undefined) details.exitCode = Number(builder[1]);
      if (builder[2] !== undefined) details.signal = Number(builder[2]);
      if (this.building?.storeUri && this.building.drvPath === drvPath) details.storeUri = this.building.storeUri;
      this.problems.push(this.buildFailed(message, text, details));
      return;
    }
    if (required || /system|feature|platform/.test(reason)) {
      this.problems.push(
        systemMismatch(message, text, {
          drvPath,
          requiredSystem: required ? (required[1] as string) : '',
          requiredFeatures: required?.[2] ? splitList(required[2]) : [],
          localSystem: current ? (current[1] as string) : '',
          localFeatures: current?.[2] ? splitList(current[2]) : [],
        }),
      );
      return;
    }
    this.problems.push({ kind: 'unknown', message, cause: 'Nix could not build the derivation for a reason this extension does not recognise; its full text is kept below.', fix: 'Read Nix\'s message and the errors before it.', details: {}, text });
  }

  /** `Failed to find a machine for remote build!` and its table. */
  private noMachineBlock(i: number): number {
    const block: TextItem[] = [this.items[i] as TextItem];
    let j = i + 1;
    let drv: string | undefined;
    let required: { system?: string; features: string[] } = { features: [] };
    const machines: Omit<MachineCandidate, 'fits' | 'mismatch'>[] = [];
    while (j < this.items.length) {
      const item = this.items[j] as Item;
      if (item.type !== 'line') break;
      const t = item.text;
      let m: RegExpExecArray | null;
      if ((m = /^derivation: (\S+)/.exec(t))) drv = m[1];
      else if (/^required \(system, features\):/.test(t)) required = parseRequired(item);
      else if (/^\d+ available machines:/.test(t) || isMachineTableHeader(t)) {
        // header lines
      } else if (/^\(.*\)\s*$/.test(t)) {
        const machine = parseMachineLine(item);
        if (!machine) break;
        machines.push(machine);
      } else break;
      block.push(item);
      j++;
    }
    const judged = machines.map((m) => judge(m, required.system, required.features));
    const details: NoMachineDetails = {
      requiredFeatures: required.features,
      machines: judged,
      reason: 'no-fitting-machine',
      unreachable: [],
    };
    if (drv !== undefined) details.drvPath = [this.building?.drvPath, ...this.known].find((p) => p?.endsWith(`/${drv}`)) ?? drv;
    if (required.system !== undefined) details.requiredSystem = required.system;
    this.problems.push(this.noMachine(block[0]?.text ?? '', this.blockText(block), details));
    return j;
  }

  private noMachine(message: string, text: string, details: NoMachineDetails): ProblemOfKind<'no-machine'> {
    return { kind: 'no-machine', message, cause: '', fix: '', details, text };
  }

  /** `cannot build on 'URI': error: …` plus the lines ssh printed after it. */
  private cannotBuildOn(i: number): number {
    const first = this.items[i] as TextItem;
    const m = /^cannot build on '([^']+)': (.*)$/.exec(first.text);
    const storeUri = m ? (m[1] as string) : '';
    const reasonText = m ? (m[2] as string) : first.text;
    const block: TextItem[] = [first];
    let j = i + 1;
    while (j < this.items.length) {
      const item = this.items[j] as Item;
      if (item.type !== 'line') break;
      const t = item.text;
      if (ERROR_PREFIX.test(t) || t.startsWith('Failed to find a machine') || t.startsWith("cannot build on '") || /^(building|copying|these|this) /.test(t)) break;
      block.push(item);
      j++;
    }
    const evidence = this.takeEvidence();
    const all = [...evidence, reasonText, ...block.slice(1).map((x) => x.text)].join('\n');
    const failure = connectFailure(all);
    const details: CannotConnectDetails = { reason: failure.reason, storeUri };
    const host = /cannot connect to '([^']+)'/.exec(reasonText)?.[1] ?? authorityOf(storeUri);
    if (host) details.host = host;
    if (failure.sshMessage) details.sshMessage = failure.sshMessage;
    if (failure.remoteProgram) details.remoteProgram = failure.remoteProgram;
    if (this.building && !this.building.storeUri) details.drvPath = this.building.drvPath;
    // The first line ends with the first line of what ssh printed, which may be a banner of @s.
    const message = first.text.replace(/:\s*@{3,}.*$/, '');
    this.problems.push(connectProblem(message, [...evidence, this.blockText(block)].join('\n'), details));
    return j;
  }

  /** ssh said why it failed but Nix printed no matching error (e.g. the output was cut short). */
  private leftoverEvidence(): void {
    const evidence = this.takeEvidence();
    if (evidence.length === 0 || this.problems.some((p) => p.kind === 'cannot-connect')) return;
    const failure = connectFailure(evidence.join('\n'));
    if (failure.reason === 'other') return;
    const details = connectDetails(failure, this.storeUrl ?? this.building?.storeUri);
    this.problems.push(connectProblem(failure.sshMessage ?? (evidence[0] as string), evidence.join('\n'), details));
  }

  /** Facts that need the whole output: unreachable builders behind "no machine", builders behind a mismatch. */
  private relate(): void {
    for (const [suspect, drvPath] of this.suspects) {
      const explained = this.problems.some(
        (p) => p !== suspect && !this.suspects.has(p) && 'drvPath' in p.details && p.details.drvPath === drvPath && ['build-failed', 'not-privileged', 'timeout', 'cannot-connect', 'lacks-signature', 'build-users'].includes(p.kind),
      );
      // Build output, already part of that build's log tail.
      if (explained) this.problems.splice(this.problems.indexOf(suspect), 1);
    }
    const unreachable = this.problems.filter((p): p is ProblemOfKind<'cannot-connect'> => p.kind === 'cannot-connect').map((p) => p.details.storeUri ?? p.details.host ?? '');
    for (const p of this.problems) {
      if (p.kind !== 'no-machine' || p.details.reason === 'max-jobs-zero') continue;
      const d = p.details;
      d.unreachable = unreachable.filter((u) => u.length > 0);
      const fitting = d.machines.filter((m) => m.fits);
      const what = `a '${d.requiredSystem ?? '?'}' derivation${d.requiredFeatures.length > 0 ? ` with features ${fmtSet(d.requiredFeatures)}` : ''}`;
      if (unreachable.length > 0 && (fitting.length > 0 || d.machines.length === 0)) {
        d.reason = 'builders-unreachable';
        p.cause = `A builder that accepts ${what} is configured, but Nix could not connect to it (${d.unreachable.join(', ') || 'see the connection error'}), and no other builder fits.`;
        p.fix = 'Fix the connection problem reported with it (see the cannot-connect problem); Nix then uses that builder.';
      } else if (d.machines.length > 0 && fitting.length === 0) {
        const why = d.machines.map((m) => `(${m.systems.join(', ')}): ${m.mismatch ?? 'does not fit'}`).join('; ');
        p.cause = `None of the ${d.machines.length} configured builder${d.machines.length > 1 ? 's' : ''} accepts ${what}: ${why}.`;
        p.fix =
          d.requiredFeatures.length > 0
            ? `Add the missing features to a builder that really has them (column 6 of its machines entry), add a builder for ${d.requiredSystem ?? 'that system'} with those features, or allow this machine to build it (max-jobs > 0 and the features in its \`system-features\`).`
            : `Add a builder for ${d.requiredSystem ?? 'that system'} to the machines list, or allow this machine to build it (max-jobs > 0).`;
      } else if (fitting.length > 0) {
        p.cause = `A configured builder accepts ${what}, but none had a free slot or could be used, and local builds were not possible.`;
        p.fix = 'Check the builders with `nix store ping --store URI`; raise their max-jobs, or allow local builds (max-jobs > 0).';
      } else {
        p.cause = 'None of the configured remote builders has the system and all the features this derivation requires, and it could not be built locally.';
        p.fix = 'Compare the derivation\'s `system` and `requiredSystemFeatures` with the builders\' systems and features (columns 2, 6 and 7 of the machines entries) and add a builder that has them.';
      }
    }
    // A local system mismatch after the table: the table shows why no builder took it.
    for (const p of this.problems) {
      if (p.kind !== 'system-mismatch') continue;
      const table = this.problems.find(
        (q): q is ProblemOfKind<'no-machine'> => q.kind === 'no-machine' && q.details.drvPath !== undefined && p.details.drvPath.endsWith(q.details.drvPath),
      );
      if (table) {
        p.details.machines = table.details.machines;
        p.cause = `${p.cause.replace(/, and no remote builder that could take it was available, so Nix tried to build it here and cannot\.$/, '')}; none of the ${table.details.machines.length} configured builders fits (${table.details.machines.map((m) => m.mismatch ?? 'fits').join('; ')}), so Nix tried to build it here and cannot.`;
      }
    }
  }
}

/** Every problem in a Nix command's stderr (plain or internal-json), in the order Nix reported them. */
export function classify(stderr: string): NixProblem[] {
  try {
    return new Classifier(itemsFromText(stderr)).run();
  } catch (e) {
    // Totality guard: a bug here must not hide Nix's message.
    return [fallback(stderr, e)];
  }
}

/** The same for events the caller already parsed with the log parser. */
export function classifyLogEvents(events: Iterable<LogEvent>): NixProblem[] {
  const list = [...events];
  try {
    return new Classifier(itemsFromEvents(list)).run();
  } catch (e) {
    return [fallback(list.map((ev) => ('text' in ev ? ev.text : '')).join('\n'), e)];
  }
}

function fallback(text: string, e: unknown): ProblemOfKind<'unknown'> {
  const firstError = stripAnsi(text)
    .split('\n')
    .find((l) => ERROR_PREFIX.test(l));
  return {
    kind: 'unknown',
    message: (firstError ?? text.split('\n')[0] ?? '').replace(ERROR_PREFIX, '').trim(),
    cause: `This output could not be classified (${e instanceof Error ? e.message : String(e)}); its full text is kept below.`,
    fix: 'Read Nix\'s message below.',
    details: {},
    text: stripAnsi(text),
  };
}

/** Kinds an `error:` line of a build's own output could be mistaken for. */
const SUSPECT = new Set<ProblemKind>(['unknown', 'eval-error', 'parse-error', 'infinite-recursion', 'timeout']);

/** Order of importance: the root cause first (a failed connection explains a missing machine, …). */
const PRIORITY: ProblemKind[] = [
  'build-users',
  'not-privileged',
  'lacks-signature',
  'cannot-connect',
  's3-unsupported',
  'system-mismatch',
  'no-machine',
  'parse-error',
  'infinite-recursion',
  'eval-error',
  'not-deterministic',
  'check-impossible',
  'timeout',
  'build-failed',
  'dependency-failed',
  'unknown',
];

/** The one problem to show first: the root cause when several follow from each other. */
export function classifyFirst(stderr: string): NixProblem | undefined {
  return mostImportant(classify(stderr));
}

export function mostImportant(problems: readonly NixProblem[]): NixProblem | undefined {
  let best: NixProblem | undefined;
  for (const p of problems) {
    if (!best || PRIORITY.indexOf(p.kind) < PRIORITY.indexOf(best.kind)) best = p;
  }
  return best;
}
