// Values of `nixBuilders.env` may be tokens (NIX_CONFIG's access-tokens, an API key for a cache):
// nothing the server sends (logs, traces, answers, notifications) nor its stderr contains them, at
// `$/setTrace verbose` too, through status, listing, evaluation (with an error), the doctor, the
// scheduling preview, a plan and a real local build (whose command line is logged).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient, type Message } from './lspClient';

const SECRETS = ['ghp_s3cretAccessToken0001', 'cache-api-key-s3cret-0002'];

let dir: string;
let client: StdioLspClient;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-secret-'));
  await writeFile(path.join(dir, 'machines'), 'ssh://unreachable.invalid x86_64-linux - 1 1\n');
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', `builders = @${path.join(dir, 'machines')}`, ''].join('\n'));
  client = new StdioLspClient();
  await client.initialize({
    settings: { env: { NIX_CONF_DIR: dir, NIX_CONFIG: `access-tokens = github.com=${SECRETS[0]}`, CACHE_API_KEY: SECRETS[1] } },
  });
  client.notify('$/setTrace', { value: 'verbose' });
});

after(async () => {
  await client?.shutdown();
  await rm(dir, { recursive: true, force: true });
});

test('nixBuilders.env values appear in nothing the server sends or prints', async () => {
  const answers: unknown[] = [];
  const ask = async <T>(method: string, params?: unknown): Promise<T> => {
    const r = await client.request<T>(method, params);
    answers.push(r);
    return r;
  };
  await ask('nixBuilders/status');
  const listing = await ask<{ builders: Array<{ id: string }> }>('nixBuilders/listBuilders');

  const broken = pathToFileURL(path.join(dir, 'broken.nix')).href;
  await writeFile(path.join(dir, 'broken.nix'), '{ a = 1 + "x"; }\n');
  const brokenDiagnostics = client.diagnostics(broken);
  client.open(broken, '{ a = 1 + "x"; }\n');
  assert.equal((await brokenDiagnostics)[0]?.code, 'eval-error');

  const text = `{\n  hello = derivation { name = "secret-test-${Date.now()}-${process.pid}"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo hi > $out" ]; };\n}\n`;
  const file = path.join(dir, 'hello.nix');
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  const diagnostics = client.diagnostics(uri);
  client.open(uri, text);
  await diagnostics;
  await ask('nixBuilders/derivations', { uri });
  await ask('nixBuilders/schedulePreview', { uri, line: 1 });
  await ask('nixBuilders/checkBuilders', { builderIds: listing.builders.map((b) => b.id) });
  await ask('nixBuilders/planBuild', { uri, attrPaths: [['hello']], remoteOnly: false, builderIds: [] });
  const info = await ask<{ buildId: string }>('nixBuilders/startBuild', { uri, attrPaths: [['hello']], builderIds: [] });
  const end = await client.waitForNotification(
    (m: Message) => m.method === 'nixBuilders/buildProgress' && (m.params as { buildId: string; status: string }).buildId === info.buildId && (m.params as { status: string }).status !== 'running',
    120_000,
  );
  assert.equal((end.params as { status: string }).status, 'built');
  // The build's command line was logged.
  await client.waitForNotification((m) => m.method === 'window/logMessage' && (m.params as { message: string }).message.includes(`${info.buildId} built: `));

  const everything = JSON.stringify([client.notifications, answers]) + client.stderr;
  assert.ok(client.notifications.some((m) => m.method === 'window/logMessage'), 'the server logged something');
  for (const secret of SECRETS) assert.ok(!everything.includes(secret), `${secret} is not in what the server sent`);
});
