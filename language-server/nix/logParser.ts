// Parser for Nix's `--log-format internal-json` stream (stderr).
//
// Nix writes one event per line: `@nix {json}`. Everything else on stderr (ssh's own messages, the
// output of a build hook, lines of an older Nix) is kept as a `plain` line. Parsing is total
// (CONVENTIONS.md, habit 11): every line gives exactly one event, nothing throws, unknown activity
// and result codes and unknown actions are kept with their numbers.
//
// Shapes measured on Nix 2.8.0 (test/fixtures/nix-2.8.0/*.jsonl):
//   {"action":"start","id":…,"level":3,"type":105,"text":"building '…'","fields":[drv,machine,round,nrRounds]}
//   {"action":"stop","id":…}
//   {"action":"result","id":…,"type":101,"fields":["a log line"]}
//   {"action":"msg","level":0,"msg":"\u001b[31;1merror:\u001b[0m …","raw_msg":"…","file":null,"line":null,"column":null}
// Newer Nix adds `parent` to `start`. `msg` and `raw_msg` carry ANSI colours even off a terminal.
//
// Activity ids are (pid << 32) + counter, which exceeds 2^53 when the pid is above 2^21 (pid_max is
// 4194304 on many systems); JSON.parse would then round two different ids to the same number. Ids
// are therefore strings, exactly the digits Nix printed.

/** Nix's `ActivityType` (src/libutil/logging.hh). */
export type ActivityTypeName =
  | 'unknown'
  | 'copyPath'
  | 'fileTransfer'
  | 'realise'
  | 'copyPaths'
  | 'builds'
  | 'build'
  | 'optimiseStore'
  | 'verifyPaths'
  | 'substitute'
  | 'queryPathInfo'
  | 'postBuildHook'
  | 'buildWaiting'
  | 'fetchTree'
  /** A code this parser does not know (a newer Nix); the number is kept in `activityType`. */
  | 'unknownCode';

/** Nix's `ResultType` (src/libutil/logging.hh). */
export type ResultTypeName =
  | 'fileLinked'
  | 'buildLogLine'
  | 'untrustedPath'
  | 'corruptedPath'
  | 'setPhase'
  | 'progress'
  | 'setExpected'
  | 'postBuildLogLine'
  | 'fetchStatus'
  /** A code this parser does not know (a newer Nix); the number is kept in `resultType`. */
  | 'unknownCode';

export const ACTIVITY_TYPES: Readonly<Record<number, ActivityTypeName>> = Object.freeze({
  0: 'unknown',
  100: 'copyPath',
  101: 'fileTransfer',
  102: 'realise',
  103: 'copyPaths',
  104: 'builds',
  105: 'build',
  106: 'optimiseStore',
  107: 'verifyPaths',
  108: 'substitute',
  109: 'queryPathInfo',
  110: 'postBuildHook',
  111: 'buildWaiting',
  112: 'fetchTree',
});

export const RESULT_TYPES: Readonly<Record<number, ResultTypeName>> = Object.freeze({
  100: 'fileLinked',
  101: 'buildLogLine',
  102: 'untrustedPath',
  103: 'corruptedPath',
  104: 'setPhase',
  105: 'progress',
  106: 'setExpected',
  107: 'postBuildLogLine',
  108: 'fetchStatus',
});

/** Nix's verbosity levels, index = `level`. */
export const LOG_LEVELS = ['error', 'warn', 'notice', 'info', 'talkative', 'chatty', 'debug', 'vomit'] as const;

export function activityTypeName(code: number): ActivityTypeName {
  return ACTIVITY_TYPES[code] ?? 'unknownCode';
}

export function resultTypeName(code: number): ResultTypeName {
  return RESULT_TYPES[code] ?? 'unknownCode';
}

/** A field of `start`/`result`: Nix sends strings and integers; anything else is kept as it came. */
export type LogField = unknown;

/** `build` activity (105): `[drvPath, machine, round, nrRounds]`. `machine` is "" for a local build. */
export interface BuildActivityFields {
  drvPath: string;
  machine: string;
  round: number;
  nrRounds: number;
}

/** `copyPath` activity (100): `[path, from, to]` (store URIs; "local" or "" for this machine). */
export interface CopyPathActivityFields {
  path: string;
  from: string;
  to: string;
}

/** `substitute` activity (108): `[path, host]`. */
export interface SubstituteActivityFields {
  path: string;
  host: string;
}

/** `progress` result (105): `[done, expected, running, failed]`. */
export interface ProgressFields {
  done: number;
  expected: number;
  running: number;
  failed: number;
}

/** `setExpected` result (106): `[activityType, expected]`. */
export interface SetExpectedFields {
  activityType: number;
  activityTypeName: ActivityTypeName;
  expected: number;
}

export interface StartEvent {
  kind: 'start';
  id: string;
  level: number;
  activityType: number;
  activityTypeName: ActivityTypeName;
  text: string;
  fields: LogField[];
  /** Newer Nix only; 2.8 sends no parent. "0" means none and is reported as undefined. */
  parent?: string;
  /** Set when `activityTypeName` is 'build' and the fields have the documented shape. */
  build?: BuildActivityFields;
  /** Set when `activityTypeName` is 'copyPath' and the fields have the documented shape. */
  copyPath?: CopyPathActivityFields;
  /** Set when `activityTypeName` is 'substitute' and the fields have the documented shape. */
  substitute?: SubstituteActivityFields;
}

export interface StopEvent {
  kind: 'stop';
  id: string;
}

export interface ResultEvent {
  kind: 'result';
  id: string;
  resultType: number;
  resultTypeName: ResultTypeName;
  fields: LogField[];
  /** 'buildLogLine' and 'postBuildLogLine': the line as the builder wrote it (colours kept). */
  logLine?: string;
  /** 'setPhase': the phase name, e.g. "buildPhase". */
  phase?: string;
  /** 'progress'. */
  progress?: ProgressFields;
  /** 'setExpected'. */
  setExpected?: SetExpectedFields;
}

export interface MsgEvent {
  kind: 'msg';
  level: number;
  /** `raw_msg` when present (the message without "error: " and without the code excerpt), else `msg`; ANSI stripped. */
  text: string;
  /** `msg`, ANSI stripped: with "error: ", the position and the code excerpt. */
  fullText: string;
  /** `msg` exactly as Nix sent it, colours included (they delimit lists in some messages). */
  rawMsg: string;
  file?: string;
  line?: number;
  column?: number;
}

/** A stderr line that is not an `@nix` event (ANSI stripped). */
export interface PlainEvent {
  kind: 'plain';
  text: string;
}

/** An `@nix` line whose JSON could not be read. `text` is the whole line as received. */
export interface MalformedEvent {
  kind: 'malformed';
  text: string;
  reason: string;
}

/** A well-formed `@nix` event with an action this parser does not know (a newer Nix). */
export interface UnknownActionEvent {
  kind: 'unknown';
  action: string;
  value: Record<string, unknown>;
  text: string;
}

export type LogEvent = StartEvent | StopEvent | ResultEvent | MsgEvent | PlainEvent | MalformedEvent | UnknownActionEvent;

// CSI sequences (colours, cursor), OSC sequences (hyperlinks, titles) and two-byte escapes.
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

/** Remove ANSI escape sequences. Returns the same string when there is none (the common case). */
export function stripAnsi(s: string): string {
  if (s.indexOf('\x1b') === -1) return s;
  return s.replace(ANSI, '');
}

const PREFIX = '@nix ';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function asInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/**
 * The digits of a top-level integer key as printed, so that ids above 2^53 keep their identity.
 * `"key":` cannot occur inside a JSON string (its quotes would be escaped), so the first match is the key.
 */
function idText(line: string, key: string, parsed: unknown): string | undefined {
  if (typeof parsed === 'number' && Number.isSafeInteger(parsed)) return String(parsed);
  if (typeof parsed === 'string') return parsed;
  if (typeof parsed !== 'number') return undefined;
  const at = line.indexOf(`"${key}":`);
  if (at === -1) return String(parsed);
  let i = at + key.length + 3;
  while (line.charCodeAt(i) === 32) i++;
  const start = i;
  if (line.charCodeAt(i) === 45) i++;
  while (i < line.length && line.charCodeAt(i) >= 48 && line.charCodeAt(i) <= 57) i++;
  return i > start ? line.slice(start, i) : String(parsed);
}

function fieldsOf(v: unknown): LogField[] {
  return Array.isArray(v) ? v : [];
}

function startEvent(o: Record<string, unknown>, line: string, id: string): StartEvent {
  const code = asInt(o.type) ?? 0;
  const name = activityTypeName(code);
  const fields = fieldsOf(o.fields);
  const ev: StartEvent = {
    kind: 'start',
    id,
    level: asInt(o.level) ?? 0,
    activityType: code,
    activityTypeName: name,
    text: typeof o.text === 'string' ? stripAnsi(o.text) : '',
    fields,
  };
  if (o.parent !== undefined) {
    const parent = idText(line, 'parent', o.parent);
    if (parent !== undefined && parent !== '0') ev.parent = parent;
  }
  const [f0, f1, f2, f3] = fields;
  if (name === 'build') {
    if (typeof f0 === 'string') {
      ev.build = {
        drvPath: f0,
        machine: typeof f1 === 'string' ? f1 : '',
        round: asInt(f2) ?? 1,
        nrRounds: asInt(f3) ?? 1,
      };
    }
  } else if (name === 'copyPath') {
    if (typeof f0 === 'string' && typeof f1 === 'string' && typeof f2 === 'string') {
      ev.copyPath = { path: f0, from: f1, to: f2 };
    }
  } else if (name === 'substitute') {
    if (typeof f0 === 'string' && typeof f1 === 'string') ev.substitute = { path: f0, host: f1 };
  }
  return ev;
}

function resultEvent(o: Record<string, unknown>, id: string): ResultEvent {
  const code = asInt(o.type) ?? -1;
  const name = resultTypeName(code);
  const fields = fieldsOf(o.fields);
  const ev: ResultEvent = { kind: 'result', id, resultType: code, resultTypeName: name, fields };
  const f0 = fields[0];
  switch (name) {
    case 'buildLogLine':
    case 'postBuildLogLine':
      if (typeof f0 === 'string') ev.logLine = f0;
      break;
    case 'setPhase':
      if (typeof f0 === 'string') ev.phase = f0;
      break;
    case 'progress': {
      const done = asInt(f0);
      const expected = asInt(fields[1]);
      const running = asInt(fields[2]);
      const failed = asInt(fields[3]);
      if (done !== undefined && expected !== undefined && running !== undefined && failed !== undefined) {
        ev.progress = { done, expected, running, failed };
      }
      break;
    }
    case 'setExpected': {
      const type = asInt(f0);
      const expected = asInt(fields[1]);
      if (type !== undefined && expected !== undefined) {
        ev.setExpected = { activityType: type, activityTypeName: activityTypeName(type), expected };
      }
      break;
    }
    default:
      break;
  }
  return ev;
}

function msgEvent(o: Record<string, unknown>): MsgEvent {
  const rawMsg = typeof o.msg === 'string' ? o.msg : '';
  const fullText = stripAnsi(rawMsg);
  const ev: MsgEvent = {
    kind: 'msg',
    level: asInt(o.level) ?? 0,
    text: typeof o.raw_msg === 'string' ? stripAnsi(o.raw_msg) : fullText,
    fullText,
    rawMsg,
  };
  if (typeof o.file === 'string') ev.file = o.file;
  const line = asInt(o.line);
  if (line !== undefined) ev.line = line;
  const column = asInt(o.column);
  if (column !== undefined) ev.column = column;
  return ev;
}

/** Parse one stderr line (without its line break). Never throws. */
export function parseLogLine(line: string): LogEvent {
  if (line.length > 0 && line.charCodeAt(line.length - 1) === 13) line = line.slice(0, -1);
  if (!line.startsWith(PREFIX)) return { kind: 'plain', text: stripAnsi(line) };
  let value: unknown;
  try {
    value = JSON.parse(line.slice(PREFIX.length));
  } catch (e) {
    return { kind: 'malformed', text: line, reason: e instanceof Error ? e.message : String(e) };
  }
  if (!isObject(value)) return { kind: 'malformed', text: line, reason: 'the JSON is not an object' };
  const action = value.action;
  if (action === 'msg') return msgEvent(value);
  if (action !== 'start' && action !== 'stop' && action !== 'result') {
    if (typeof action !== 'string') return { kind: 'malformed', text: line, reason: 'the object has no "action"' };
    return { kind: 'unknown', action, value, text: line };
  }
  const id = idText(line, 'id', value.id);
  if (id === undefined) return { kind: 'malformed', text: line, reason: `"${action}" without a numeric "id"` };
  if (action === 'result') return resultEvent(value, id);
  if (action === 'start') return startEvent(value, line, id);
  return { kind: 'stop', id };
}

/**
 * Streaming parser: feed stderr chunks as they arrive (decoded text: use `setEncoding('utf8')` on
 * the stream so a multi-byte character split across chunks is decoded whole), get the events of the
 * complete lines. Only the unfinished last line is kept between calls, so memory stays flat.
 */
export class InternalJsonLogParser {
  private rest = '';

  push(chunk: string): LogEvent[] {
    const events: LogEvent[] = [];
    if (chunk.length === 0) return events;
    let start = 0;
    let nl = chunk.indexOf('\n');
    if (nl === -1) {
      this.rest += chunk;
      return events;
    }
    if (this.rest.length > 0) {
      events.push(parseLogLine(this.rest + chunk.slice(0, nl)));
      this.rest = '';
      start = nl + 1;
      nl = chunk.indexOf('\n', start);
    }
    while (nl !== -1) {
      events.push(parseLogLine(chunk.slice(start, nl)));
      start = nl + 1;
      nl = chunk.indexOf('\n', start);
    }
    this.rest = chunk.slice(start);
    return events;
  }

  /** The last line when the stream ended without a line break. */
  end(): LogEvent[] {
    const rest = this.rest;
    this.rest = '';
    return rest.length > 0 ? [parseLogLine(rest)] : [];
  }
}

/** Parse a whole recorded stderr text at once. */
export function parseLog(text: string): LogEvent[] {
  const parser = new InternalJsonLogParser();
  return [...parser.push(text), ...parser.end()];
}
