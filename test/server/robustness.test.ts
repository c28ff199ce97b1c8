// The standalone server over stdio when something goes wrong inside it: a promise rejection that
// nobody handles is logged with its cause, and the server keeps serving.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { StdioLspClient } from './lspClient';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test('an unhandled rejection is logged with its cause, and the server keeps serving', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nb-robust-'));
  dirs.push(dir);
  // A fault injected into the server process: on SIGUSR2, a promise rejects with nobody to catch it.
  const inject = path.join(dir, 'inject.cjs');
  await writeFile(inject, "process.on('SIGUSR2', () => { Promise.reject(new Error('injected fault: nobody awaited this')); });\n");
  const client = new StdioLspClient({ ...process.env, NODE_OPTIONS: `--require ${inject}` });
  try {
    await client.initialize();
    const logged = client.waitForNotification((m) => m.method === 'window/logMessage' && /injected fault/.test((m.params as { message: string }).message), 30_000, false);
    client.child.kill('SIGUSR2');
    const message = ((await logged).params as { message: string }).message;
    assert.match(message, /unhandled rejection: Error: injected fault: nobody awaited this/);
    const status = await client.request<{ version?: string }>('nixBuilders/status');
    assert.ok(status.version);
  } finally {
    assert.equal(await client.shutdown(), 0);
  }
});
