// Pure parts of caches and keys: a secret key's public key (the text format Nix writes), the key
// names of a narinfo's signatures (as real Nix 2.8 writes them: `nix copy` of a signed path),
// consumer snippets, and the nixBuilders.cache settings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { publicKeyOf } from '../../language-server/cache/keys';
import { SIGNING_KEY_NAME as KEY_NAME } from '../../language-server/protocol';
import { consumerSnippets, parseCacheInfo, probeCache, signatureKeyNames } from '../../language-server/cache/caches';
import { readBinaryCacheFile } from '../../language-server/builds/substituters';
import { parseSettings } from '../../language-server/config';

// An Ed25519 key pair made here, written as Nix writes a secret key: libsodium's 64 bytes, the seed
// then the public key (that Nix derives the same public key is checked against real Nix in
// test/server/caches.test.ts).
const pair = generateKeyPairSync('ed25519');
const rawPublic = (pair.publicKey.export({ format: 'der', type: 'spki' }) as Buffer).subarray(-32);
const seed = (pair.privateKey.export({ format: 'der', type: 'pkcs8' }) as Buffer).subarray(-32);
const SECRET = `t-1:${Buffer.concat([seed, rawPublic]).toString('base64')}`;
const PUBLIC = `t-1:${rawPublic.toString('base64')}`;

test('publicKeyOf: the name and the last 32 bytes of the 64; anything else is not a key, said without echoing it', () => {
  assert.deepEqual(publicKeyOf(SECRET), { keyName: 't-1', publicKey: PUBLIC });
  assert.deepEqual(publicKeyOf(`${SECRET}\n`), { keyName: 't-1', publicKey: PUBLIC });
  for (const bad of ['', 'no-colon', ':abc', 't-1:not base64!', `t-1:${Buffer.alloc(32).toString('base64')}`]) {
    const r = publicKeyOf(bad);
    assert.ok('problem' in r, bad);
    if (bad.length > 3) assert.ok(!r.problem.includes(bad), 'the text is not echoed');
  }
});

test('key names: what Nix and a command line take', () => {
  for (const ok of ['cache.example.org-1', 'a', 'k_2+x']) assert.ok(KEY_NAME.test(ok), ok);
  for (const bad of ['', '-x', '--key-name', 'a:b', 'a b', 'a\nb']) assert.ok(!KEY_NAME.test(bad), bad);
});

test('narinfo signatures and nix-cache-info fields', () => {
  const narinfo = 'StorePath: /nix/store/ybp2c0j14505bi61mvpkapwlgmwiplb0-kt-4219\nNarSize: 120\nSig: t-1:vu0qRfN8LWhfvIw9P2HWAHQV3wU0Hf/M8+2T1ec3hGc3J3tRzdD9azb+VOS6k0hurxqh7j/BAicAtdRIdNERDA==\nSig: other-2:AAAA\n';
  assert.deepEqual(signatureKeyNames(narinfo), ['t-1', 'other-2']);
  assert.deepEqual(signatureKeyNames('StorePath: /nix/store/x\n'), []);
  assert.deepEqual(parseCacheInfo('StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n'), { StoreDir: '/nix/store', WantMassQuery: '1', Priority: '40' });
});

test('consumer snippets: strings quoted for Nix; without a key they say that Nix substitutes only signed paths', () => {
  const s = consumerSnippets('s3://b?endpoint=http://x/${y}"', undefined);
  assert.match(s.flakeNixConfig, /extra-substituters = \[ "s3:\/\/b\?endpoint=http:\/\/x\/\\\$\{y\}\\"" \];/);
  assert.match(s.nixConf, /^extra-substituters = s3:\/\/b.*\n# No signing key yet: Nix substitutes only signed paths/);
  assert.match(s.nixos, /# No signing key yet/);
});

test('nixBuilders.cache settings: store URIs only, an absolute key file only', () => {
  const problems: string[] = [];
  const s = parseSettings({ cache: { pushTargets: ['file:///var/cache/nix', ' ssh-ng://b1 ', 'no uri', 7 as unknown as string], signingKeyFile: 'relative.sec' } }, problems);
  assert.deepEqual(s.cache, { pushTargets: ['file:///var/cache/nix', 'ssh-ng://b1'], queue: { enabled: false, dir: '' } });
  assert.equal(problems.length, 3, problems.join('\n'));
  assert.deepEqual(parseSettings(undefined).cache, { pushTargets: [], queue: { enabled: false, dir: '' } });
  assert.deepEqual(parseSettings({ cache: { signingKeyFile: '~/keys/k.sec' } }).cache, { pushTargets: [], queue: { enabled: false, dir: '' }, signingKeyFile: path.join(os.homedir(), 'keys/k.sec') });
});

test('consumer snippets: the flake\'s nixConfig says when Nix uses it; a file:// target says it is readable only on this machine, another does not', () => {
  const local = consumerSnippets('file:///var/cache/nix', PUBLIC);
  for (const snippet of [local.nixConf, local.flakeNixConfig, local.nixos]) assert.match(snippet, /^# file:\/\/\/var\/cache\/nix is readable only on this machine: .*serve its folder over HTTP.* ssh:\/\/host/m);
  assert.match(local.flakeNixConfig, /^# A flake's nixConfig applies only with accept-flake-config .*extra-trusted-public-keys only for\n# users in trusted-users/m);
  const remote = consumerSnippets('https://cache.example.org', PUBLIC);
  assert.doesNotMatch(remote.nixConf + remote.flakeNixConfig + remote.nixos, /only on this machine/);
  assert.match(remote.flakeNixConfig, /accept-flake-config/);
  assert.equal(remote.nixConf, `extra-substituters = https://cache.example.org\nextra-trusted-public-keys = ${PUBLIC}\n`);
  // Every line is Nix code or a Nix comment.
  assert.match(remote.flakeNixConfig, /^(# .*\n)+nixConfig = \{\n/);
});

test('key trust: where a narinfo\'s signature cannot be checked (its NarHash not in the form Nix signs), the row says that only the key\'s name was compared', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nb-name-only-'));
  try {
    writeFileSync(path.join(dir, 'nix-cache-info'), 'StoreDir: /nix/store\n');
    const narinfo = `StorePath: /nix/store/ybp2c0j14505bi61mvpkapwlgmwiplb0-kt\nNarHash: sha256:${'0'.repeat(64)}\nNarSize: 120\nReferences: \nSig: t-1:${Buffer.alloc(64).toString('base64')}\n`;
    writeFileSync(path.join(dir, 'ybp2c0j14505bi61mvpkapwlgmwiplb0.narinfo'), narinfo);
    const info = await probeCache(`file://${dir}`, 'substituters', { trustedPublicKeys: [PUBLIC], pushKey: undefined, read: readBinaryCacheFile, timeoutMs: 5_000, signal: undefined });
    assert.equal(info.keyTrusted, true);
    assert.match(info.message ?? '', /signed by t-1, a trusted key by its name: only the key's name was compared/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
