// A minimal LSP client over stdio that speaks raw JSON-RPC with Content-Length framing, written
// without vscode-languageclient, to prove the server works for any LSP client.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as path from 'node:path';
import { NIX_BIN } from './nixUnderTest';

export const SERVER_JS = path.resolve(__dirname, '../../dist/server.js');

export interface Diagnostic {
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  severity: number;
  code?: string;
  message: string;
  data?: unknown;
}

export type Message = { id?: number; method?: string; params?: unknown; result?: unknown; error?: { message: string } };

export class StdioLspClient {
  readonly child: ChildProcessWithoutNullStreams;
  private buffer = Buffer.alloc(0);
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly listeners: Array<(m: Message) => void> = [];
  readonly notifications: Message[] = [];
  /** Requests from the server (client/registerCapability, workspace/configuration…), as received. */
  readonly serverRequests: Message[] = [];
  /**
   * How to answer requests from the server, by method (e.g. window/showMessageRequest); a method
   * not here is answered with null ([null] for workspace/configuration).
   */
  readonly answers = new Map<string, (params: unknown) => unknown>();
  stderr = '';
  /** The answer to each item of a workspace/configuration request (default: nothing, so the server keeps its settings). */
  configuration: (item: { scopeUri?: string; section?: string }) => unknown = () => null;

  /** `nodeArgs`: what Node runs (default: the bundled server); `--stdio` is added. */
  constructor(env: NodeJS.ProcessEnv = process.env, nodeArgs: readonly string[] = [SERVER_JS]) {
    this.child = spawn(process.execPath, [...nodeArgs, '--stdio'], { env, stdio: 'pipe' });
    this.child.stdout.on('data', (chunk: Buffer) => this.onData(chunk));
    this.child.stderr.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
  }

  private onData(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const headerEnd = this.buffer.indexOf('\r\n\r\n');
      if (headerEnd < 0) return;
      const header = this.buffer.subarray(0, headerEnd).toString('ascii');
      const length = Number(/Content-Length: (\d+)/i.exec(header)?.[1]);
      if (this.buffer.length < headerEnd + 4 + length) return;
      const body = this.buffer.subarray(headerEnd + 4, headerEnd + 4 + length).toString('utf8');
      this.buffer = this.buffer.subarray(headerEnd + 4 + length);
      this.dispatch(JSON.parse(body) as Message);
    }
  }

  private dispatch(m: Message): void {
    if (m.id !== undefined && m.method === undefined) {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.error) p?.reject(new Error(m.error.message));
      else p?.resolve(m.result);
      return;
    }
    if (m.id !== undefined && m.method !== undefined) {
      // A request from the server: answered as told (`answers`), workspace/configuration by
      // `configuration`, anything else with nothing.
      this.serverRequests.push(m);
      const answer = this.answers.get(m.method);
      const items = (m.params as { items?: Array<{ scopeUri?: string; section?: string }> } | undefined)?.items ?? [];
      if (answer) void Promise.resolve(answer(m.params)).then((result) => this.write({ jsonrpc: '2.0', id: m.id, result: result ?? null }));
      else this.write({ jsonrpc: '2.0', id: m.id, result: m.method === 'workspace/configuration' ? items.map((i) => this.configuration(i)) : null });
      return;
    }
    this.notifications.push(m);
    for (const l of this.listeners) l(m);
  }

  private write(m: object): void {
    const body = Buffer.from(JSON.stringify(m), 'utf8');
    this.child.stdin.write(`Content-Length: ${body.length}\r\n\r\n`);
    this.child.stdin.write(body);
  }

  /** A request; aborting `signal` sends `$/cancelRequest` for it, as an editor does. */
  request<T>(method: string, params?: unknown, signal?: AbortSignal): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.write({ jsonrpc: '2.0', id, method, params });
      signal?.addEventListener('abort', () => this.notify('$/cancelRequest', { id }), { once: true });
    });
  }

  notify(method: string, params?: unknown): void {
    this.write({ jsonrpc: '2.0', method, params });
  }

  /** Resolves with the first matching notification: already received (`past`), or from now on. */
  waitForNotification(match: (m: Message) => boolean, timeoutMs = 30_000, past = true): Promise<Message> {
    const seen = past ? this.notifications.find(match) : undefined;
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching notification within ${timeoutMs} ms`)), timeoutMs);
      this.listeners.push((m) => {
        if (match(m)) {
          clearTimeout(timer);
          resolve(m);
        }
      });
    });
  }

  /** Open a document the way an editor does. */
  open(uri: string, text: string, version = 1): void {
    this.notify('textDocument/didOpen', { textDocument: { uri, languageId: 'nix', version, text } });
  }

  change(uri: string, text: string, version: number): void {
    this.notify('textDocument/didChange', { textDocument: { uri, version }, contentChanges: [{ text }] });
  }

  /** The next diagnostics published for `uri` after this call that `match` accepts. */
  diagnostics(uri: string, match: (d: Diagnostic[]) => boolean = () => true, timeoutMs = 60_000): Promise<Diagnostic[]> {
    return this.waitForNotification(
      (m) => m.method === 'textDocument/publishDiagnostics' && (m.params as { uri: string }).uri === uri && match((m.params as { diagnostics: Diagnostic[] }).diagnostics),
      timeoutMs,
      false,
    ).then((m) => (m.params as { diagnostics: Diagnostic[] }).diagnostics);
  }

  async initialize(initializationOptions: unknown = {}, rootPath?: string, capabilities: object = {}): Promise<unknown> {
    const result = await this.request('initialize', {
      processId: process.pid,
      rootUri: rootPath ? `file://${rootPath}` : null,
      capabilities,
      initializationOptions: withNixUnderTest(initializationOptions),
    });
    this.notify('initialized', {});
    return result;
  }

  async shutdown(): Promise<number | null> {
    const exited = new Promise<number | null>((resolve) => this.child.once('exit', (code) => resolve(code)));
    if (this.child.exitCode !== null) return this.child.exitCode;
    await this.request('shutdown').catch(() => undefined);
    this.notify('exit');
    return exited;
  }
}

/** The settings with nixBinDir = the Nix under test (nixUnderTest.ts), unless the test chose one. */
function withNixUnderTest(options: unknown): unknown {
  const o = (options ?? {}) as { settings?: { nixBinDir?: unknown } };
  if (NIX_BIN === undefined || o.settings?.nixBinDir !== undefined) return options;
  return { ...o, settings: { ...o.settings, nixBinDir: NIX_BIN } };
}
