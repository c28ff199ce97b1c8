// The push queue in the Caches view's answer (nixBuilders.server.listCaches) from a plain LSP
// client against real Nix: with nixBuilders.cache.queue.enabled and one entry queued, the server's
// worker cannot push it while the signing key (nixBuilders.cache.signingKeyFile) is readable by
// others: listCaches answers depth 1 and that last error; once the key is 0600, the worker's retry
// pushes it signed: depth 0, pushed 1, no error — and the server said cachesChanged.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { StdioLspClient } from './lspClient';
import { nixCommand } from './nixUnderTest';
import { ServerCommands, type CachesInfo, type PushQueueStatus } from '../../language-server/protocol';
import { hashPart } from '../../language-server/nix/storePath';

const SERVER = path.join(__dirname, '../../language-server/main.ts');

let dir: string;
let client: StdioLspClient;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-queue-caches-'));
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', ''].join('\n'));
});

after(async () => {
  await client?.shutdown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 180_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    last = await probe();
    if (last !== undefined) return last as T;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('listCaches answers the queue: depth 1 and the push\'s error while the signing key is readable by others; pushed 1 once it is 0600 (the worker pushed, cachesChanged sent)', { timeout: 400_000 }, async () => {
  const env = { ...process.env, NIX_CONF_DIR: dir };
  const nix = (cmd: string, args: string[], input?: string) => execFileSync(nixCommand(cmd), args, { env, encoding: 'utf8', ...(input !== undefined ? { input } : {}) }).trim();
  const salt = `${Date.now()}-${process.pid}`;
  const out = nix('nix-build', ['--no-out-link', '-E', `derivation { name = "nb-queue-caches-${salt}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${salt} > $out" ]; }`]).split('\n').pop() as string;
  const secret = nix('nix', ['--extra-experimental-features', 'nix-command', 'key', 'generate-secret', '--key-name', `queue-caches-${salt}`]);
  const keyFile = path.join(dir, 'key.sec');
  await writeFile(keyFile, secret, { mode: 0o644 });
  // The consumers (this nix.conf) trust the key, so the push verifies once it is signed.
  await appendFile(path.join(dir, 'nix.conf'), `trusted-public-keys = ${nix('nix', ['--extra-experimental-features', 'nix-command', 'key', 'convert-secret-to-public'], secret)}\n`);
  const queue = path.join(dir, 'queue');
  await mkdir(queue);
  // One entry, as the post-build-hook writes it.
  await writeFile(path.join(queue, 'q-test-1'), `${out}\n`);
  const cache = path.join(dir, 'cache');
  client = new StdioLspClient(process.env, ['--import', 'tsx', SERVER]);
  await client.initialize({ settings: { env: { NIX_CONF_DIR: dir }, cache: { pushTargets: [`file://${cache}`], signingKeyFile: keyFile, queue: { enabled: true, dir: queue } } } }, dir);
  const queueOf = async () => (await client.request<CachesInfo>('workspace/executeCommand', { command: ServerCommands.listCaches, arguments: [] })).queue;
  const failing = await until<PushQueueStatus>('the push\'s failure in the queue', async () => {
    const q = await queueOf();
    return q?.lastError ? q : undefined;
  });
  assert.deepEqual([failing.dir, failing.depth, failing.pushed, failing.worker], [queue, 1, 0, 'server'], JSON.stringify(failing));
  assert.match(failing.lastError ?? '', /read by others .*chmod 600/);
  assert.equal(existsSync(cache), false, 'nothing was pushed');

  const changesBefore = client.notifications.filter((m) => m.method === 'nixBuilders/cachesChanged').length;
  await chmod(keyFile, 0o600);
  const pushed = await until<PushQueueStatus>('the signed push', async () => {
    const q = await queueOf();
    return q?.pushed === 1 ? q : undefined;
  });
  assert.deepEqual([pushed.depth, pushed.pushed, pushed.lastError, pushed.worker], [0, 1, undefined, 'server'], JSON.stringify(pushed));
  assert.match(await readFile(path.join(cache, `${hashPart(out)}.narinfo`), 'utf8'), new RegExp(`^Sig: queue-caches-${salt}:`, 'm'));
  assert.ok(client.notifications.filter((m) => m.method === 'nixBuilders/cachesChanged').length > changesBefore, 'the view is told to list the caches again');
});
