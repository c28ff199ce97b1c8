// Push to Cache and Verify Cache from a plain LSP client against the Nix under test (this machine's
// 2.8, or 2.26 in the server-nix-2.26 tier: test/server/nixUnderTest.ts), into a file:// cache: the
// spellings the server picks for that version (store sign, store verify, path-info's JSON as a list
// or a map), the substitution into a fresh store, and a key the consumer does not trust caught.
// The lab's pushes (ssh://, ssh-ng://, an untrusted user, cancel) are in test/lab/push.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient } from './lspClient';
import { nixCommand } from './nixUnderTest';
import { ServerCommands, type CacheVerification, type PushToCacheResult } from '../../language-server/protocol';

const SERVER = path.join(__dirname, '../../language-server/main.ts');

let dir: string;
let client: StdioLspClient;
const salt = () => `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-push-'));
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', ''].join('\n'));
  client = new StdioLspClient(process.env, ['--import', 'tsx', SERVER]);
  await client.initialize({ settings: { env: { NIX_CONF_DIR: dir } } }, dir);
});

after(async () => {
  await client?.shutdown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A key made by the Nix under test: its secret file (0600) and public key. */
async function makeKey(name: string): Promise<{ file: string; publicKey: string }> {
  const env = { ...process.env, NIX_CONF_DIR: dir };
  const nix = (args: string[], input?: string) => execFileSync(nixCommand('nix'), ['--extra-experimental-features', 'nix-command', ...args], { env, encoding: 'utf8', ...(input !== undefined ? { input } : {}) });
  const secret = nix(['key', 'generate-secret', '--key-name', name]);
  const file = path.join(dir, `${name}.sec`);
  await writeFile(file, secret, { mode: 0o600 });
  return { file, publicKey: nix(['key', 'convert-secret-to-public'], secret).trim() };
}

test('a push to file:// is built first, signed, verified by substituting into a fresh store; a key the consumer does not trust is caught', { timeout: 300_000 }, async () => {
  const key = await makeKey(`push-server-${salt()}`);
  const other = await makeKey(`push-other-${salt()}`);
  const s = salt();
  const text = `let dep = derivation { name = "push-server-dep"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${s} > $out" ]; }; in { top = derivation { name = "push-server"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo \${dep} > $out" ]; }; }\n`;
  const file = path.join(dir, `push-${s}.nix`);
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  client.open(uri, text);
  const cache = `file://${path.join(dir, `cache-${s}`)}`;
  const r = await client.request<PushToCacheResult>('workspace/executeCommand', { command: ServerCommands.pushToCache, arguments: [{ uri, attribute: 'top', to: cache, keyFile: key.file }] });
  assert.equal(r.status, 'pushed', JSON.stringify(r));
  assert.equal(r.builtFirst, true);
  assert.equal(r.pushed.length, 2);
  assert.equal(r.signed.keyName, key.publicKey.split(':')[0]);
  assert.equal(r.verification?.status, 'verified', JSON.stringify(r.verification));
  assert.equal(r.verification?.substituted, true);

  const v = await client.request<CacheVerification>('workspace/executeCommand', { command: ServerCommands.verifyCache, arguments: [{ store: cache, uri, attribute: 'top', trustedPublicKeys: [other.publicKey] }] });
  assert.equal(v.status, 'problems', JSON.stringify(v));
  assert.deepEqual(v.problems.map((p) => p.problem), ['untrusted-key', 'untrusted-key']);
});
