// Push to Cache and Verify Cache from a plain LSP client against the Nix under test (this machine's
// 2.8, or 2.26 in the server-nix-2.26 tier: test/server/nixUnderTest.ts), into a file:// cache: the
// spellings the server picks for that version (store sign, store verify, path-info's JSON as a list
// or a map), the substitution into a fresh store, and a key the consumer does not trust caught.
// The lab's pushes (ssh://, ssh-ng://, an untrusted user, cancel) are in test/lab/push.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient } from './lspClient';
import { nixCommand } from './nixUnderTest';
import { parsePathInfoJson, signerNames } from '../../language-server/cache/verify';
import { ServerCommands, type CacheVerification, type PushToCacheResult } from '../../language-server/protocol';

const SERVER = path.join(__dirname, '../../language-server/main.ts');

let dir: string;
let client: StdioLspClient;
const salt = () => `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
/** The consumers (this nix.conf's trusted-public-keys) trust `key`, not `other`; `other` is nixBuilders.cache.signingKeyFile. */
let key: { file: string; publicKey: string };
let other: { file: string; publicKey: string };

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-push-'));
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', ''].join('\n'));
  key = await makeKey(`push-server-${salt()}`);
  other = await makeKey(`push-other-${salt()}`);
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', `trusted-public-keys = ${key.publicKey}`, ''].join('\n'));
  client = new StdioLspClient(process.env, ['--import', 'tsx', SERVER]);
  await client.initialize({ settings: { env: { NIX_CONF_DIR: dir }, cache: { signingKeyFile: other.file } } }, dir);
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

/** A file with a two-path closure of its own (`top` and its dependency), open in the server. */
function closureFile(name: string): { uri: string; file: string; s: string } {
  const s = salt();
  const text = `let dep = derivation { name = "${name}-dep"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${s} > $out" ]; }; in { top = derivation { name = "${name}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo \${dep} > $out" ]; }; }\n`;
  const file = path.join(dir, `${name}-${s}.nix`);
  writeFileSync(file, text);
  const uri = pathToFileURL(file).href;
  client.open(uri, text);
  return { uri, file, s };
}

const push = (uri: string, to: string, keyFile?: string) =>
  client.request<PushToCacheResult>('workspace/executeCommand', { command: ServerCommands.pushToCache, arguments: [{ uri, attribute: 'top', to, ...(keyFile ? { keyFile } : {}) }] });

test('a push signed by a key the consumers do not trust is not verified (its own key is not trusted for being used), with the consumer line as the fix; Verify Cache does not trust nixBuilders.cache.signingKeyFile either', { timeout: 300_000 }, async () => {
  const { uri, s } = closureFile('push-untrusted');
  const cache = `file://${path.join(dir, `cache-untrusted-${s}`)}`;
  const r = await push(uri, cache, other.file);
  assert.equal(r.status, 'pushed', JSON.stringify(r));
  assert.equal(r.verified, false, JSON.stringify(r));
  assert.equal(r.verification?.status, 'problems', JSON.stringify(r.verification));
  assert.deepEqual(r.verification?.problems.map((p) => p.problem), ['untrusted-key', 'untrusted-key']);
  assert.ok(r.verification?.problems[0]?.fix?.includes(`extra-trusted-public-keys = ${other.publicKey}`), JSON.stringify(r.verification));
  const v = await client.request<CacheVerification>('workspace/executeCommand', { command: ServerCommands.verifyCache, arguments: [{ store: cache, uri, attribute: 'top' }] });
  assert.equal(v.status, 'problems', JSON.stringify(v));
  assert.deepEqual(v.trustedKeys, [key.publicKey]);
});

test('an unsigned push, then a push with a key: the paths already in the cache are signed there, and it verifies', { timeout: 300_000 }, async () => {
  const { uri, file, s } = closureFile('push-resign');
  const cache = `file://${path.join(dir, `cache-resign-${s}`)}`;
  // Built and copied by Nix itself, with no key: the cache holds the closure unsigned.
  const env = { ...process.env, NIX_CONF_DIR: dir };
  const nix = (args: string[]) => execFileSync(nixCommand('nix'), ['--extra-experimental-features', 'nix-command', ...args], { env, encoding: 'utf8' });
  const top = execFileSync(nixCommand('nix-build'), [file, '-A', 'top', '--no-out-link'], { env, encoding: 'utf8' }).trim();
  nix(['copy', '--to', cache, '--no-check-sigs', top]);
  const keyName = key.publicKey.split(':')[0] as string;
  const signedThere = () => (parsePathInfoJson(nix(['path-info', '--store', cache, '--json', '-r', top])) ?? []).filter((i) => signerNames(i.signatures).includes(keyName)).length;
  assert.equal(signedThere(), 0, 'the cache has both paths without the key\'s signature');
  const r = await push(uri, cache, key.file);
  assert.equal(r.status, 'pushed', JSON.stringify(r));
  assert.deepEqual(r.pushed, []);
  assert.equal(r.skipped.length, 2);
  assert.equal(r.verification?.status, 'verified', JSON.stringify(r.verification));
  assert.equal(r.verified, true);
  assert.equal(signedThere(), 2, 'both paths are signed in the cache now');
});

test('a push to file:// is built first, signed, verified by substituting into a fresh store; a key the consumer does not trust is caught', { timeout: 300_000 }, async () => {
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
  assert.equal(r.verified, true);

  const v = await client.request<CacheVerification>('workspace/executeCommand', { command: ServerCommands.verifyCache, arguments: [{ store: cache, uri, attribute: 'top', trustedPublicKeys: [other.publicKey] }] });
  assert.equal(v.status, 'problems', JSON.stringify(v));
  assert.deepEqual(v.problems.map((p) => p.problem), ['untrusted-key', 'untrusted-key']);
});
