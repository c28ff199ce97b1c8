// Values of `nixBuilders.env` may be secrets (an access token in NIX_CONFIG, AWS keys for an S3
// cache). The server never logs them, but the language client's trace (`nixBuilders.trace.server`
// at `verbose`) writes whole messages, and the settings are in `initialize`, in
// `workspace/configuration` answers and in `workspace/didChangeConfiguration`. The trace goes
// through a RedactingChannel, which replaces each such value before anything is written.
// (A type-only import of `vscode`: nothing of it is loaded, so this is unit-tested.)
import type { Event, LogLevel, LogOutputChannel, ViewColumn } from 'vscode';

/** Values shorter than this are left alone: they would blank ordinary words of the trace, and are no secret. */
const MIN_SECRET_LENGTH = 4;

/** `text` with every occurrence of a secret (as written, and as JSON escapes it) replaced by `«name»`. */
export function redact(text: string, secrets: ReadonlyMap<string, string>): string {
  let out = text;
  for (const [value, name] of secrets) {
    for (const form of new Set([value, JSON.stringify(value).slice(1, -1)])) out = out.split(form).join(`«${name}»`);
  }
  return out;
}

/**
 * The extension's log channel as the language client's trace channel: what the client writes goes
 * to the same channel (and its log level still turns the trace on), with the values of
 * `nixBuilders.env` replaced first. Disposing it leaves the channel it wraps alone.
 */
export class RedactingChannel implements LogOutputChannel {
  /** Every value seen this session (a message with an older value may still be on its way), longest first. */
  private secrets = new Map<string, string>();

  constructor(private readonly target: LogOutputChannel) {}

  get name(): string {
    return this.target.name;
  }

  get logLevel(): LogLevel {
    return this.target.logLevel;
  }

  get onDidChangeLogLevel(): Event<LogLevel> {
    return this.target.onDidChangeLogLevel;
  }

  /** Called with `nixBuilders.env` at start and on every change. */
  addSecrets(env: Readonly<Record<string, string>>): void {
    const all = new Map(this.secrets);
    for (const [key, value] of Object.entries(env)) {
      if (value.length >= MIN_SECRET_LENGTH) all.set(value, `nixBuilders.env.${key}`);
    }
    // Longest first, so that a value containing another is replaced whole.
    this.secrets = new Map([...all].sort((a, b) => b[0].length - a[0].length));
  }

  private clean(value: unknown): string {
    const text = typeof value === 'string' ? value : value instanceof Error ? (value.stack ?? value.message) : safeJson(value);
    return redact(text, this.secrets);
  }

  trace(message: string, ...args: unknown[]): void {
    this.target.trace(this.clean(message), ...args.map((a) => this.clean(a)));
  }

  debug(message: string, ...args: unknown[]): void {
    this.target.debug(this.clean(message), ...args.map((a) => this.clean(a)));
  }

  info(message: string, ...args: unknown[]): void {
    this.target.info(this.clean(message), ...args.map((a) => this.clean(a)));
  }

  warn(message: string, ...args: unknown[]): void {
    this.target.warn(this.clean(message), ...args.map((a) => this.clean(a)));
  }

  error(error: string | Error, ...args: unknown[]): void {
    this.target.error(this.clean(error), ...args.map((a) => this.clean(a)));
  }

  append(value: string): void {
    this.target.append(this.clean(value));
  }

  appendLine(value: string): void {
    this.target.appendLine(this.clean(value));
  }

  replace(value: string): void {
    this.target.replace(this.clean(value));
  }

  clear(): void {
    this.target.clear();
  }

  show(columnOrPreserveFocus?: ViewColumn | boolean, preserveFocus?: boolean): void {
    if (typeof columnOrPreserveFocus === 'boolean' || columnOrPreserveFocus === undefined) this.target.show(columnOrPreserveFocus);
    else this.target.show(columnOrPreserveFocus, preserveFocus);
  }

  hide(): void {
    this.target.hide();
  }

  dispose(): void {
    // The wrapped channel belongs to its creator.
  }
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
