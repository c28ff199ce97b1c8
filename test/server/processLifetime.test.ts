// Nix runs in process groups of its own: when the editor goes away mid-evaluation, the server must
// end them. The evaluation here fetches from a local HTTP server that never answers, so
// nix-instantiate really stays busy (and would for minutes) until something ends it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { fork } from 'node:child_process';
import { SERVER_JS, StdioLspClient } from './lspClient';
import { NIX_BIN } from './nixUnderTest';

interface ProcInfo {
  pid: number;
  ppid: number;
  pgid: number;
  cmdline: string;
}

/** Every process of this machine, from /proc. */
async function processes(): Promise<ProcInfo[]> {
  const out: ProcInfo[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid pgrp …: comm may contain spaces and parentheses.
      const [state, ppid, pgid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z') continue;
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').join(' ');
      out.push({ pid: Number(entry), ppid: Number(ppid), pgid: Number(pgid), cmdline });
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** Polls (bounded) until `done` holds; returns the last value. */
async function poll<T>(read: () => Promise<T>, done: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (done(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A server whose every request hangs; resolves `requested` when the first one arrives. */
async function hangingHttpServer(): Promise<{ url: string; requested: Promise<string>; close: () => void }> {
  const sockets = new Set<Socket>();
  let onRequest: (url: string) => void = () => undefined;
  const requested = new Promise<string>((resolve) => (onRequest = resolve));
  const server = http.createServer((req) => onRequest(req.url ?? ''));
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requested,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/**
 * Starts the server, opens a document whose evaluation hangs in a download, and returns the
 * process groups the server started once the download was asked for.
 */
async function serverMidEvaluation(): Promise<{ client: StdioLspClient; groups: Set<number>; close: () => void }> {
  const http = await hangingHttpServer();
  const dir = await mkdtemp(path.join(tmpdir(), 'nb-lifetime-'));
  const file = path.join(dir, 'default.nix');
  const salt = randomUUID();
  await writeFile(file, `{ slow = builtins.fetchurl "${http.url}/${salt}"; }\n`);
  const client = new StdioLspClient();
  await client.initialize({ settings: { evaluation: { depth: 3, timeoutSeconds: 3600, allowImportFromDerivation: false } } });
  client.open(`file://${file}`, await readFile(file, 'utf8'));
  const asked = await Promise.race([http.requested, once(client.child, 'exit').then(() => 'the server exited')]);
  assert.equal(asked, `/${salt}`, 'nix-instantiate should be downloading');
  const server = client.child.pid as number;
  const children = (await processes()).filter((p) => p.ppid === server);
  assert.ok(
    children.some((p) => p.cmdline.includes('nix-instantiate')),
    `nix-instantiate should run under the server: ${children.map((p) => p.cmdline).join('; ')}`,
  );
  // Each child leads a group of its own.
  return { client, groups: new Set(children.map((p) => p.pgid)), close: http.close };
}

async function assertNoneLeft(groups: Set<number>): Promise<void> {
  const left = await poll(
    async () => (await processes()).filter((p) => groups.has(p.pgid)),
    (l) => l.length === 0,
    30_000,
  );
  for (const p of left) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // Gone.
    }
  }
  assert.deepEqual(
    left.map((p) => p.cmdline.slice(0, 120)),
    [],
    'the server left these processes running',
  );
}

test('stdin closed mid-evaluation: no process of the server is left', async () => {
  const { client, groups, close } = await serverMidEvaluation();
  try {
    const exited = once(client.child, 'exit');
    client.child.stdin.end();
    await exited;
    await assertNoneLeft(groups);
  } finally {
    close();
  }
});

for (const sig of ['SIGTERM', 'SIGHUP', 'SIGINT'] as const) {
  test(`${sig} mid-evaluation: the server ends its processes and dies of ${sig}`, async () => {
    const { client, groups, close } = await serverMidEvaluation();
    try {
      const exited = once(client.child, 'exit');
      client.child.kill(sig);
      const [, signal] = await exited;
      assert.equal(signal, sig);
      await assertNoneLeft(groups);
    } finally {
      close();
    }
  });
}

test('the exit notification mid-evaluation: no process of the server is left', async () => {
  const { client, groups, close } = await serverMidEvaluation();
  try {
    const exited = once(client.child, 'exit');
    client.notify('exit');
    await exited;
    await assertNoneLeft(groups);
  } finally {
    close();
  }
});

test('--node-ipc: the editor disconnecting mid-evaluation ends the server and its processes', async () => {
  const http = await hangingHttpServer();
  const dir = await mkdtemp(path.join(tmpdir(), 'nb-lifetime-'));
  const file = path.join(dir, 'default.nix');
  const salt = randomUUID();
  const text = `{ slow = builtins.fetchurl "${http.url}/${salt}"; }\n`;
  await writeFile(file, text);
  // Over IPC, vscode-jsonrpc sends the messages themselves.
  const child = fork(SERVER_JS, ['--node-ipc'], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  try {
    const initialized = new Promise<void>((resolve) => child.on('message', (m: { id?: number }) => m.id === 1 && resolve()));
    child.send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { processId: process.pid, rootUri: null, capabilities: {}, initializationOptions: { settings: { ...(NIX_BIN ? { nixBinDir: NIX_BIN } : {}), evaluation: { depth: 3, timeoutSeconds: 3600, allowImportFromDerivation: false } } } } });
    await initialized;
    child.send({ jsonrpc: '2.0', method: 'initialized', params: {} });
    child.send({ jsonrpc: '2.0', method: 'textDocument/didOpen', params: { textDocument: { uri: `file://${file}`, languageId: 'nix', version: 1, text } } });
    assert.equal(await http.requested, `/${salt}`);
    const groups = new Set((await processes()).filter((p) => p.ppid === child.pid).map((p) => p.pgid));
    assert.ok(groups.size > 0);
    const exited = once(child, 'exit').then(() => true);
    child.disconnect();
    const gone = await Promise.race([exited, new Promise<false>((resolve) => setTimeout(() => resolve(false), 30_000).unref())]);
    assert.ok(gone, 'the server should exit when the editor disconnects');
    await assertNoneLeft(groups);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    http.close();
  }
});

// --- a server killed hard ------------------------------------------------------------------------
// SIGKILL (like the out-of-memory killer or a native crash) runs nothing in the server: its groups
// stay. The next server, started with the same registry folder (as the editor restarts a crashed
// server), ends them before it serves.

/** The settings of a server that builds locally without build users, sandbox or substituters. */
async function localBuildSettings(): Promise<{ dir: string; settings: object }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nb-lifetime-'));
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', ''].join('\n'));
  return { dir, settings: { env: { NIX_CONF_DIR: dir }, evaluation: { depth: 3, timeoutSeconds: 3600, allowImportFromDerivation: false } } };
}

test('SIGKILL mid-evaluation and mid-build: the next server ends every process the killed one left, before it serves', async () => {
  const http = await hangingHttpServer();
  const runtime = await mkdtemp(path.join(tmpdir(), 'nb-runtime-'));
  const env = { ...process.env, NIX_BUILDERS_RUNTIME_DIR: runtime };
  const { dir, settings } = await localBuildSettings();
  const salt = randomUUID();
  const client = new StdioLspClient(env);
  let next: StdioLspClient | undefined;
  try {
    await client.initialize({ settings });
    // A build that runs for ten minutes (`sleeping` is in the command line of its builder)…
    const sleeping = `/bin/sleep 600.${Date.now()}${process.pid}`;
    const build = path.join(dir, 'build.nix');
    const buildText = `{ long = derivation { name = "orphan"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "${sleeping}; : > $out" ]; }; }\n`;
    await writeFile(build, buildText);
    client.open(`file://${build}`, buildText);
    await client.request('nixBuilders/startBuild', { uri: `file://${build}`, attrPaths: [['long']] });
    const isSleeping = (p: ProcInfo) => p.cmdline.startsWith(sleeping);
    const building = await poll(processes, (ps) => ps.some(isSleeping), 120_000);
    assert.ok(building.some(isSleeping), 'the build should run');
    // …and an evaluation that hangs in a download.
    const slow = path.join(dir, 'slow.nix');
    const slowText = `{ slow = builtins.fetchurl "${http.url}/${salt}"; }\n`;
    await writeFile(slow, slowText);
    client.open(`file://${slow}`, slowText);
    assert.equal(await http.requested, `/${salt}`, 'nix-instantiate should be downloading');

    const server = client.child.pid as number;
    const children = (await processes()).filter((p) => p.ppid === server);
    assert.ok(children.some((p) => p.cmdline.includes('nix-instantiate')), 'nix-instantiate runs');
    assert.ok(children.some((p) => p.cmdline.includes('nix-store') && p.cmdline.includes('--realise')), 'nix-store --realise runs');
    const groups = new Set(children.map((p) => p.pgid));
    const exited = once(client.child, 'exit');
    client.child.kill('SIGKILL');
    await exited;
    // Nothing of the killed server ended them.
    const orphans = (await processes()).filter((p) => groups.has(p.pgid) || p.cmdline.includes(sleeping));
    assert.ok(orphans.some((p) => p.cmdline.includes('nix-instantiate')) && orphans.some(isSleeping), 'the killed server left its processes');

    next = new StdioLspClient(env);
    await next.initialize({ settings });
    await assertNoneLeft(new Set(orphans.map((p) => p.pgid)));
    const files = await readdir(runtime);
    assert.ok(!files.some((f) => f.startsWith(`${server}-`)), `the killed server's registry file is removed: ${files.join(', ')}`);
  } finally {
    if (client.child.exitCode === null && client.child.signalCode === null) client.child.kill('SIGKILL');
    await next?.shutdown();
    http.close();
  }
});
