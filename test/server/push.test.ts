// Push to Cache and Verify Cache from a plain LSP client against the Nix under test (this machine's
// 2.8, or 2.26 in the server-nix-2.26 tier: test/server/nixUnderTest.ts), into a file:// cache: the
// spellings the server picks for that version (store sign, store verify, path-info's JSON as a list
// or a map), the substitution into a fresh store, and a key the consumer does not trust caught.
// The lab's pushes (ssh://, ssh-ng://, an untrusted user, cancel) are in test/lab/push.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient } from './lspClient';
import { nixCommand } from './nixUnderTest';
import { pushClosure } from '../../language-server/cache/push';
import { parsePathInfoJson, signerNames } from '../../language-server/cache/verify';
import { Nix } from '../../language-server/nix/nix';
import { ExecaRunner } from '../../language-server/nix/runner';
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

/**
 * This user not trusted by the nix-daemon (the normal multi-user install): Nix runs as nobody
 * against a nix-daemon of the test's own (of this machine's store; its socket in a folder of its own), so
 * `nix store sign` here answers Nix's "you are not privileged to add signatures"; the push signs
 * the cache's copy instead. Root only (to run Nix as nobody), and this machine's Nix (the 2.26
 * wrappers run Nix in a root of their own).
 */
test('a user the nix-daemon does not trust: signing here is refused, so the cache\'s copy is signed after the copy, and the push says so', {
  timeout: 300_000,
  skip: process.getuid?.() !== 0 ? 'needs root, to run Nix as nobody' : process.env.NIX_BUILDERS_TEST_NIX_BIN ? 'this machine\'s Nix only (the 2.26 wrappers run Nix in a root of their own)' : false,
}, async () => {
  const d = await mkdtemp(path.join(tmpdir(), 'nb-push-daemon-'));
  await chmod(d, 0o755);
  const home = path.join(d, 'home');
  await mkdir(home);
  await chown(home, 65534, 65534);
  await writeFile(path.join(d, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', ''].join('\n'));
  const socket = path.join(d, 'socket');
  const daemon = spawn(nixCommand('nix-daemon'), [], { env: { ...process.env, NIX_CONF_DIR: d, NIX_DAEMON_SOCKET_PATH: socket }, stdio: 'ignore' });
  try {
    for (let i = 0; !existsSync(socket); i++) {
      assert.ok(i < 300 && daemon.exitCode === null, 'the nix-daemon listens');
      await new Promise((r) => setTimeout(r, 100));
    }
    // Nix as nobody, through the daemon.
    const bin = path.join(d, 'bin');
    await mkdir(bin);
    for (const name of ['nix', 'nix-store']) {
      await writeFile(path.join(bin, name), `#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups ${nixCommand(name)} "$@"\n`, { mode: 0o755 });
    }
    const env = { ...process.env, HOME: home, XDG_CACHE_HOME: home, NIX_CONF_DIR: d, NIX_REMOTE: 'daemon', NIX_DAEMON_SOCKET_PATH: socket };
    const asNobody = (name: string, args: string[], input?: string) => execFileSync(path.join(bin, name), args, { env, encoding: 'utf8', ...(input !== undefined ? { input } : {}) }).trim();
    const secret = asNobody('nix', ['--extra-experimental-features', 'nix-command', 'key', 'generate-secret', '--key-name', `push-nobody-${salt()}`]);
    const keyFile = path.join(home, 'k.sec');
    await writeFile(keyFile, secret, { mode: 0o600 });
    await chown(keyFile, 65534, 65534);
    const publicKey = asNobody('nix', ['--extra-experimental-features', 'nix-command', 'key', 'convert-secret-to-public'], secret);
    const content = path.join(home, `content-${salt()}.txt`);
    await writeFile(content, `${salt()}\n`, { mode: 0o644 });
    const top = asNobody('nix-store', ['--add', content]);
    const cacheDir = path.join(home, 'cache');
    await mkdir(cacheDir);
    await chown(cacheDir, 65534, 65534);
    const cache = `file://${cacheDir}`;

    const messages: string[] = [];
    const r = await pushClosure(new Nix(new ExecaRunner(), { binDir: bin, env }), { tops: [top], to: cache, keyFile, trustedKeys: [publicKey], stagingRoot: path.join(home, 'staging'), signal: new AbortController().signal, report: (m) => messages.push(m) });
    assert.equal(r.status, 'pushed', JSON.stringify(r));
    assert.deepEqual(r.pushed, [top]);
    assert.equal(r.signed.status, 'signed', JSON.stringify(r.signed));
    assert.match(r.signed.message ?? '', /^signed in file:\/\/.*, after the copy$/);
    assert.ok(r.notes?.some((n) => /may not add signatures to this machine's store .*"you are not privileged to add signatures".*trusted-users/.test(n)), JSON.stringify(r.notes));
    const info = parsePathInfoJson(asNobody('nix', ['--extra-experimental-features', 'nix-command', 'path-info', '--store', cache, '--json', top]));
    assert.deepEqual(info?.map((i) => signerNames(i.signatures)), [[publicKey.split(':')[0]]], 'the cache\'s copy is signed by the key');
  } finally {
    daemon.kill();
    await rm(d, { recursive: true, force: true });
  }
});
