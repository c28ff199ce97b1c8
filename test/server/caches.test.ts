// Caches and signing keys from a plain LSP client against real Nix: a key pair made by the server
// (nixBuilders.server.generateKey) signs a path that `nix store verify` then trusts with its public
// key; file:// caches made with real `nix copy` are listed (nixBuilders.server.listCaches) in the
// order real Nix substitutes from them, with their key trusted or not as nix.conf says; push
// targets, the keys and their problems, the consumer snippets; and the secret is in nothing the
// server sends or prints.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { StdioLspClient } from './lspClient';
import { nixCommand } from './nixUnderTest';
import { ServerCommands, type CachesInfo, type GeneratedKey, type GenerateKeyArgs, type PushToCacheResult } from '../../language-server/protocol';
import { generateKey, publicKeyOf } from '../../language-server/cache/keys';
import { Nix } from '../../language-server/nix/nix';
import { ExecaRunner } from '../../language-server/nix/runner';

/** Polls a condition of the client's state (bounded). */
async function eventually(ok: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const SERVER = path.join(__dirname, '../../language-server/main.ts');
const X = ['--extra-experimental-features', 'nix-command'];
const OTHER_KEY = 'cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=';

let dir: string;
let client: StdioLspClient;
let env: NodeJS.ProcessEnv;
/** A path built here for the test, signed with the generated key and copied into the caches. */
let storePath: string;
let key: GeneratedKey;

const nixConf = (lines: string[]) => writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'sandbox = false', 'builders =', ...lines, ''].join('\n'));
const run = (cmd: string, args: string[]) => execFileSync(nixCommand(cmd), args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
const command = <T>(id: string, arg?: unknown) => client.request<T>('workspace/executeCommand', { command: id, arguments: arg === undefined ? [] : [arg] });
const listCaches = () => command<CachesInfo>(ServerCommands.listCaches);
const generate = (a: GenerateKeyArgs) => command<GeneratedKey>(ServerCommands.generateKey, a);

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-caches-'));
  await mkdir(path.join(dir, 'keys'), { mode: 0o700 });
  await nixConf(['substituters =']);
  env = { ...process.env, NIX_CONF_DIR: dir };
  const salt = `${Date.now()}-${process.pid}`;
  storePath = run('nix-build', ['--no-out-link', '-E', `derivation { name = "nb-cache-${salt}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${salt} > $out" ]; }`]).split('\n').pop() as string;
  client = new StdioLspClient(process.env, ['--import', 'tsx', SERVER]);
  await client.initialize({ settings: { env: { NIX_CONF_DIR: dir } } }, dir, { workspace: { codeLens: { refreshSupport: true } } });
  client.notify('$/setTrace', { value: 'verbose' });
});

after(async () => {
  await client?.shutdown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('generateKey: a 0600 secret with its public key beside it, which verifies what the secret signs; never over an existing file', async () => {
  const secretKeyFile = path.join(dir, 'keys', 'test-cache-1.sec');
  key = await generate({ keyName: 'test-cache-1', secretKeyFile });
  assert.equal(key.keyName, 'test-cache-1');
  assert.equal(key.secretKeyFile, secretKeyFile);
  assert.equal(key.publicKeyFile, `${secretKeyFile}.pub`);
  assert.equal(statSync(secretKeyFile).mode & 0o777, 0o600);
  assert.equal((await readFile(key.publicKeyFile, 'utf8')).trim(), key.publicKey);
  // The public key is the one Nix derives from the secret, and it verifies the secret's signature.
  assert.equal(execFileSync(nixCommand('nix'), [...X, 'key', 'convert-secret-to-public'], { env, input: await readFile(secretKeyFile), encoding: 'utf8' }).trim(), key.publicKey);
  run('nix', [...X, 'store', 'sign', '--key-file', secretKeyFile, storePath]);
  // Checked in a binary cache: in the local store a path built here is trusted whatever its signatures ("ultimate").
  const cache = `file://${path.join(dir, 'cache-verify')}`;
  run('nix', [...X, 'copy', '--to', cache, storePath]);
  const verify = (trusted: string) => spawnSync(nixCommand('nix'), [...X, 'store', 'verify', '--no-contents', '--store', cache, '--trusted-public-keys', trusted, storePath], { env, encoding: 'utf8' });
  assert.equal(verify(key.publicKey).status, 0, verify(key.publicKey).stderr);
  assert.equal(verify(OTHER_KEY).status, 2, 'another key does not verify it');

  // Never over an existing file: refused, the first key unchanged.
  const before = await readFile(secretKeyFile, 'utf8');
  await assert.rejects(generate({ keyName: 'test-cache-2', secretKeyFile }), /exists already/);
  assert.equal(await readFile(secretKeyFile, 'utf8'), before);
  await assert.rejects(generate({ keyName: 'x-1', secretKeyFile: path.join(dir, 'no-such-folder', 'k.sec') }), /does not exist: create it first/);
  await assert.rejects(generate({ keyName: '--key-name', secretKeyFile: path.join(dir, 'keys', 'opt.sec') }), /cannot be used/);
});

test('generateKey with a Nix before 2.6 (no nix key): the real nix-store --generate-binary-cache-key makes it, in a 0700 folder beside the file that is removed', async () => {
  // A stand-in `nix` says only the version; nix-store is the real one.
  const bin = path.join(dir, 'nix-2.5-bin');
  await mkdir(bin);
  await writeFile(path.join(bin, 'nix'), '#!/bin/sh\necho "nix (Nix) 2.5.1"\n', { mode: 0o755 });
  await writeFile(path.join(bin, 'nix-store'), `#!/bin/sh\nexec ${nixCommand('nix-store')} "$@"\n`, { mode: 0o755 });
  const keysDir = path.join(dir, 'old-nix-keys');
  await mkdir(keysDir, { mode: 0o700 });
  const secretKeyFile = path.join(keysDir, 'old-1.sec');
  const old = await generateKey(new Nix(new ExecaRunner(), { binDir: bin, env: { NIX_CONF_DIR: dir } }), { keyName: 'old-1', secretKeyFile });
  assert.equal(statSync(secretKeyFile).mode & 0o777, 0o600);
  assert.equal(old.keyName, 'old-1');
  assert.deepEqual(publicKeyOf(await readFile(secretKeyFile, 'utf8')), { keyName: 'old-1', publicKey: old.publicKey });
  assert.equal(execFileSync(nixCommand('nix'), [...X, 'key', 'convert-secret-to-public'], { env, input: await readFile(secretKeyFile), encoding: 'utf8' }).trim(), old.publicKey);
  assert.deepEqual((await readdir(keysDir)).sort(), ['old-1.sec', 'old-1.sec.pub']);
});

test('after a push (nixBuilders.pushToCache, from any editor) the server says the caches changed', { timeout: 300_000 }, async () => {
  const file = path.join(dir, 'pushed.nix');
  const text = `{ top = derivation { name = "nb-pushed-${Date.now()}-${process.pid}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; }; }\n`;
  await writeFile(file, text);
  const uri = `file://${file}`;
  client.open(uri, text);
  // Nothing else changes meanwhile (nix.conf as before() wrote it, no key file configured): the notification is the push's.
  const to = `file://${path.join(dir, 'cache-pushed')}`;
  const from = client.notifications.length;
  const r = await command<PushToCacheResult>(ServerCommands.pushToCache, { uri, attribute: 'top', to, keyFile: key.secretKeyFile });
  assert.equal(r.status, 'pushed', JSON.stringify(r));
  await eventually(() => client.notifications.some((m, i) => i >= from && m.method === 'nixBuilders/cachesChanged'));
});

test('listCaches: file:// caches in the order real Nix substitutes from them, their key trusted or not as trusted-public-keys says', async () => {
  // Cache a: nix-cache-info without Priority (as nix copy writes it: priority 0); cache b: Priority 1, configured first.
  const a = `file://${path.join(dir, 'cache-a')}`;
  const b = `file://${path.join(dir, 'cache-b')}`;
  for (const c of [a, b]) run('nix', [...X, 'copy', '--to', c, storePath]);
  await writeFile(path.join(dir, 'cache-b', 'nix-cache-info'), 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 1\n');
  const missing = `file://${path.join(dir, 'no-cache')}`;
  await nixConf([`substituters = ${b} ${missing}`, `extra-substituters = ${a}`, `trusted-public-keys = ${key.publicKey}`]);

  const trusted = await listCaches();
  assert.deepEqual(trusted.caches.map((c) => [c.uri, c.priority, c.reachable, c.keyTrusted]), [
    [missing, 0, 'no', undefined],
    [a, 0, 'yes', true],
    [b, 1, 'yes', true],
  ], JSON.stringify(trusted.caches));
  assert.equal(trusted.caches[2]?.cacheInfo?.Priority, '1');
  assert.match(trusted.caches[1]?.message ?? '', /signed by test-cache-1, a trusted key/);
  assert.deepEqual(trusted.trustedPublicKeys, [key.publicKey]);
  // Real Nix takes the path from a, the cache listed before b.
  const fresh = path.join(dir, 'fresh-store');
  const substituted = spawnSync(nixCommand('nix-store'), ['--store', fresh, '--option', 'substituters', `${b} ${a}`, '--option', 'trusted-public-keys', key.publicKey, '-r', storePath], { env, encoding: 'utf8' });
  assert.equal(substituted.status, 0, substituted.stderr);
  assert.match(substituted.stderr, new RegExp(`copying path '${storePath}' from '${a}'`));
  execFileSync('chmod', ['-R', 'u+w', fresh]);

  // The same caches when trusted-public-keys does not have the key.
  await nixConf([`substituters = ${b} ${missing}`, `extra-substituters = ${a}`, `trusted-public-keys = ${OTHER_KEY}`]);
  const untrusted = await listCaches();
  assert.deepEqual(untrusted.caches.filter((c) => c.reachable === 'yes').map((c) => [c.uri, c.keyTrusted]), [[a, false], [b, false]]);
  assert.match(untrusted.caches[1]?.message ?? '', /signed by test-cache-1, not in trusted-public-keys/);
});

test('listCaches compares the whole public key: a cache signed by another key with a trusted key\'s name is not trusted (its narinfo\'s signature is verified), one signed by the trusted key is', async () => {
  // Another key with the same name as the trusted one, made by real Nix; a fresh path signed by it alone.
  const impostor = execFileSync(nixCommand('nix'), [...X, 'key', 'generate-secret', '--key-name', 'test-cache-1'], { env, encoding: 'utf8' });
  const impostorFile = path.join(dir, 'keys', 'impostor.sec');
  await writeFile(impostorFile, impostor, { mode: 0o600 });
  await nixConf(['substituters =']);
  const salt = `${Date.now()}-${process.pid}`;
  const dep = run('nix-build', ['--no-out-link', '-E', `derivation { name = "nb-dep-${salt}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${salt} > $out" ]; }`]).split('\n').pop() as string;
  const signed = run('nix-build', ['--no-out-link', '-E', `derivation { name = "nb-other-key-${salt}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${dep} > $out" ]; }`]).split('\n').pop() as string;
  const impostorCache = `file://${path.join(dir, 'cache-impostor')}`;
  run('nix', [...X, 'store', 'sign', '--recursive', '--key-file', impostorFile, signed]);
  run('nix', [...X, 'copy', '--to', impostorCache, signed]);
  const trustedCache = `file://${path.join(dir, 'cache-trusted-key')}`;
  run('nix', [...X, 'store', 'sign', '--recursive', '--key-file', key.secretKeyFile, signed]);
  run('nix', [...X, 'copy', '--to', trustedCache, signed]);
  await nixConf([`substituters = ${impostorCache} ${trustedCache}`, `trusted-public-keys = ${key.publicKey}`]);
  const info = await listCaches();
  const [other, trusted] = info.caches;
  assert.deepEqual([other?.uri, other?.keyTrusted, trusted?.uri, trusted?.keyTrusted], [impostorCache, false, trustedCache, true], JSON.stringify(info.caches));
  assert.match(other?.message ?? '', /signed by a key named test-cache-1, but not by the public key of that name in trusted-public-keys \(another key with the same name\)/);
  assert.match(trusted?.message ?? '', /signed by test-cache-1, a trusted key \(the signature checked with its public key in trusted-public-keys\)/);
  // Real Nix agrees: it refuses the impostor's signature.
  const verify = spawnSync(nixCommand('nix'), [...X, 'store', 'verify', '--no-contents', '--store', impostorCache, '--trusted-public-keys', key.publicKey, signed], { env, encoding: 'utf8' });
  assert.notEqual(verify.status, 0, verify.stderr);
});

test('listCaches over HTTP: a served cache answers with its nix-cache-info, one without it cannot be used, a closed port is unreachable', async () => {
  const cacheDir = path.join(dir, 'cache-a');
  const server = http.createServer((req, res) => {
    const file = path.join(cacheDir, path.normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)));
    readFile(file).then(
      (body) => res.end(body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const served = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const refused = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  try {
    await nixConf([`substituters = ${served}/?priority=7 ${served}/nothing ${refused}`]);
    const info = await listCaches();
    const byUri = Object.fromEntries(info.caches.map((c) => [c.uri, c]));
    assert.deepEqual([byUri[`${served}/?priority=7`]?.reachable, byUri[`${served}/?priority=7`]?.priority, byUri[`${served}/?priority=7`]?.cacheInfo], ['yes', 7, { StoreDir: '/nix/store' }]);
    assert.equal(byUri[`${served}/nothing`]?.reachable, 'no');
    assert.match(byUri[`${served}/nothing`]?.message ?? '', /has no nix-cache-info: Nix cannot use it/);
    assert.equal(byUri[refused]?.reachable, 'no');
    assert.match(byUri[refused]?.message ?? '', /cannot be read/);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('push targets, the signing keys (the extension\'s first, then secret-key-files, with their problems) and the consumer snippets; cachesChanged when the settings or a key file change', async () => {
  const loose = path.join(dir, 'keys', 'loose.sec');
  await writeFile(loose, await readFile(key.secretKeyFile));
  chmodSync(loose, 0o644);
  const gone = path.join(dir, 'keys', 'gone.sec');
  await nixConf(['substituters =', `trusted-public-keys = ${key.publicKey}`, `secret-key-files = ${loose} ${gone}`]);
  const target = `file://${path.join(dir, 'push-target')}`;
  const changed = client.waitForNotification((m) => m.method === 'nixBuilders/cachesChanged', 30_000, false);
  client.notify('workspace/didChangeConfiguration', { settings: { nixBuilders: { env: { NIX_CONF_DIR: dir }, cache: { pushTargets: [target, 'not a store'], signingKeyFile: key.secretKeyFile } } } });
  await changed;
  const info = await listCaches();
  assert.deepEqual(info.caches.map((c) => [c.uri, c.origin, c.reachable]), [[target, 'push-target', 'no']]);
  assert.match(info.caches[0]?.message ?? '', /pushes sign with test-cache-1, a trusted key/);
  assert.deepEqual(info.keys.map((k) => [k.secretKeyFile, k.origin, k.keyName, k.publicKey]), [
    [key.secretKeyFile, 'nixBuilders', 'test-cache-1', key.publicKey],
    [loose, 'secret-key-files', 'test-cache-1', key.publicKey],
    [gone, 'secret-key-files', undefined, undefined],
  ]);
  assert.equal(info.keys[0]?.problem, undefined);
  assert.match(info.keys[1]?.problem ?? '', /can be read by others \(mode 644\).*chmod 600/);
  assert.match(info.keys[2]?.problem ?? '', /does not exist/);
  // Fixing a key's mode is seen: the client is told to list again. (A change of the configuration
  // says so too, right after buildersChanged: this one comes alone.)
  const from = client.notifications.length;
  chmodSync(loose, 0o600);
  await eventually(() => client.notifications.some((m, i) => i >= from && m.method === 'nixBuilders/cachesChanged' && client.notifications[i - 1]?.method !== 'nixBuilders/buildersChanged'));
  assert.equal((await listCaches()).keys[1]?.problem, undefined);
  const local = `# ${target} is readable only on this machine: for other machines serve its folder over HTTP (any web server) and give that URL, or push to ssh://host instead.\n`;
  assert.equal(info.consumerSnippets?.nixConf, `${local}extra-substituters = ${target}\nextra-trusted-public-keys = ${key.publicKey}\n`);
  const flake = info.consumerSnippets?.flakeNixConfig ?? '';
  assert.ok(flake.startsWith(local) && flake.endsWith(`\nnixConfig = {\n  extra-substituters = [ "${target}" ];\n  extra-trusted-public-keys = [ "${key.publicKey}" ];\n};\n`), flake);
  assert.match(flake, /accept-flake-config/);
  assert.equal(info.consumerSnippets?.nixos, `${local}nix.settings.substituters = [ "${target}" ];\nnix.settings.trusted-public-keys = [ "${key.publicKey}" ];\n`);
  // The push target that is not a store URI was said and dropped.
  await client.waitForNotification((m) => m.method === 'window/logMessage' && /"nixBuilders.cache.pushTargets": "not a store" is not a store URI/.test((m.params as { message: string }).message));
});

test('the Push to cache lens: on derivation attributes, to the first push target, only when push targets are configured; the editor is told to ask again when they change', async () => {
  const file = path.join(dir, 'lens.nix');
  const text = `{\n  top = derivation { name = "nb-lens-${process.pid}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; };\n  n = 1;\n}\n`;
  await writeFile(file, text);
  const uri = `file://${file}`;
  client.open(uri, text);
  type Lens = { range: { start: { line: number } }; command: { title: string; command: string; arguments: unknown[] } };
  const lenses = () => client.request<Lens[]>('textDocument/codeLens', { textDocument: { uri } });
  const settings = (pushTargets: string[]) => client.notify('workspace/didChangeConfiguration', { settings: { nixBuilders: { env: { NIX_CONF_DIR: dir }, cache: { pushTargets, signingKeyFile: key.secretKeyFile } } } });
  settings([]);
  const without = await lenses();
  assert.ok(without.some((l) => l.command.title === 'Build'), JSON.stringify(without));
  assert.ok(!without.some((l) => l.command.command === ServerCommands.pushToCache));
  const target = `file://${path.join(dir, 'push-target')}`;
  const refreshes = () => client.serverRequests.filter((m) => m.method === 'workspace/codeLens/refresh').length;
  const before = refreshes();
  settings([target, `file://${path.join(dir, 'second')}`]);
  // An editor with the file open asks again: the server tells it to.
  await eventually(() => refreshes() > before);
  const push = (await lenses()).filter((l) => l.command.command === ServerCommands.pushToCache);
  assert.deepEqual(push.map((l) => [l.range.start.line, l.command.title, l.command.arguments]), [[1, 'Push to cache', [{ uri, attribute: ['top'], to: target }]]]);
});

test('the secret key is in nothing the server sent or printed', async () => {
  const secret = (await readFile(key.secretKeyFile, 'utf8')).trim();
  const secretData = secret.slice(secret.indexOf(':') + 1);
  // The seed alone (the first 32 bytes), in base64 as well.
  const seed = Buffer.from(secretData, 'base64').subarray(0, 32).toString('base64').slice(0, 40);
  const everything = JSON.stringify(client.notifications) + JSON.stringify(client.serverRequests) + client.stderr;
  assert.ok(client.notifications.some((m) => m.method === '$/logTrace' || m.method === 'window/logMessage'), 'the server logged and traced');
  assert.ok(!everything.includes(secretData), 'the secret is not in what the server sent');
  assert.ok(!everything.includes(seed), 'nor its seed');
});
