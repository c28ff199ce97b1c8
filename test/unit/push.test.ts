// What push and verification read of Nix, against output recorded from real Nix 2.8.0 and 2.26.3
// (test/fixtures/record-push.sh → nix-<version>/push-*, manifest.push.tsv says each command): the
// path-info JSON of a cache (list ≤ 2.18, map ≥ 2.19), `nix store verify`'s verdicts and exit
// bits, a substitution refused for its signature (both wordings), a copy's progress per path, the
// missing-signature refusal (≤ 2.11 "lacks a valid signature", ≥ 2.12 "lacks a signature by a
// trusted key") and Debian's missing S3 support said as one problem for a push; and the secret
// key: its public half, and a file others can read refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { classify, mostImportant } from '../../language-server/nix/classifier';
import { parseLog } from '../../language-server/nix/logParser';
import { bucketHttpAddress, CopyProgress, parseStoreTrust, pushArgs, pushProblem, stagingDirFor } from '../../language-server/cache/push';
import { publicKeyOf } from '../../language-server/cache/keys';
import { notPrivilegedToSign, readSigningKey, resolveSigningKey } from '../../language-server/cache/sign';
import { decodeVerifyExit, parsePathInfoJson, parseVerifyOutput, signerNames, substitutionRefusals, verifyArgs } from '../../language-server/cache/verify';
import { parseSettings } from '../../language-server/config';

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const VERSIONS = ['nix-2.8.0', 'nix-2.26.3'] as const;
const read = (version: string, name: string) => readFileSync(path.join(FIXTURES, version, name), 'utf8');
/** The top path of a version's recording (manifest.push.tsv's last argument of the closure's path-info). */
const topOf = (version: string) => /(\/nix\/store\/\S+-push-top)$/m.exec(read(version, 'manifest.push.tsv').split('\n').find((l) => l.startsWith('push-path-info-closure')) ?? '')?.[1] ?? '';

for (const v of VERSIONS) {
  test(`path-info --json of a cache (${v}): the closure with signatures and sizes, a missing path as not valid, an unsigned cache's paths without signatures`, () => {
    const closure = parsePathInfoJson(read(v, 'push-path-info-closure.json'));
    assert.ok(closure);
    assert.deepEqual(closure.map((i) => [path.basename(i.path).slice(33), i.valid]).sort(), [['push-a', true], ['push-top', true]]);
    for (const i of closure) {
      assert.deepEqual(signerNames(i.signatures), ['fixture-signer-1']);
      assert.ok((i.narSize ?? 0) > 100);
    }
    const missing = parsePathInfoJson(read(v, 'push-path-info-missing.json'));
    assert.deepEqual(missing?.map((i) => [path.basename(i.path), i.valid]).sort(), [['00000000000000000000000000000000-push-missing', false], [path.basename(topOf(v)), true]]);
    const unsigned = parsePathInfoJson(read(v, 'push-path-info-unsigned.json'));
    assert.equal(unsigned?.length, 2);
    assert.deepEqual(unsigned?.map((i) => i.signatures), [[], []]);
  });

  test(`nix store verify (${v}): every path untrusted, with a key that did not sign it and of an unsigned cache (exit 2)`, () => {
    for (const name of ['push-verify-other-key.stderr.txt', 'push-verify-unsigned.stderr.txt']) {
      const out = parseVerifyOutput(read(v, name));
      assert.equal(out.untrusted.length, 2, name);
      assert.ok(out.untrusted.includes(topOf(v)), name);
      assert.deepEqual(out.corrupted, []);
    }
    assert.match(read(v, 'manifest.push.tsv'), /^push-verify-other-key\.stderr\.txt\t2\t/m);
    assert.deepEqual(decodeVerifyExit(2), ['not signed by a trusted key']);
  });

  test(`a fresh store refusing a substitute signed by another key (${v}): the path is named`, () => {
    assert.deepEqual(substitutionRefusals(read(v, 'push-substitute-other-key.stderr.txt')), [topOf(v)]);
  });

  test(`nix copy's internal-json log (${v}): one line per path with bytes, both paths copied`, () => {
    const events = parseLog(read(v, 'push-copy-file.jsonl'));
    const sizes = new Map((parsePathInfoJson(read(v, 'push-path-info-closure.json')) ?? []).map((i) => [i.path, i.narSize ?? 0] as const));
    const total = [...sizes.values()].reduce((a, b) => a + b, 0);
    const progress = new CopyProgress(2, sizes, total);
    const lines = events.map((e) => progress.event(e)).filter((l): l is string => l !== undefined);
    assert.deepEqual(progress.copied.map((p) => path.basename(p).slice(33)), ['push-a', 'push-top']);
    assert.match(lines[0] ?? '', /^0\/2 paths, 0 B of 288 B · copying push-a \(120 B\)$/);
    assert.equal(lines.at(-1), '2/2 paths, 288 B of 288 B');
    // 2.26 reports the bytes of a path while it is copied; 2.8 only that it started and ended.
    assert.equal(lines.some((l) => /copying push-a \(\d+ B of 120 B\)/.test(l)), v === 'nix-2.26.3');
  });
}

test('store info: Trusted: 1 (2.26.3, store-info.stderr.txt); 2.8 says nothing of trust (connection-refused-ssh-ng.stderr.txt starts with its Store URL)', () => {
  assert.equal(parseStoreTrust(read('nix-2.26.3', 'store-info.stderr.txt')), true);
  assert.equal(parseStoreTrust('Store URL: ssh-ng://nixremote@b5\nVersion: 2.26.3\nTrusted: 0\n'), false);
  assert.equal(parseStoreTrust(read('nix-2.8.0', 'connection-refused-ssh-ng.stderr.txt')), undefined);
});

test('the refusal of an unsigned path, both wordings (2.8.0 lacks-signature-ssh-ng: "lacks a valid signature"; 2.26.3 lacks-signature: "lacks a signature by a trusted key"), is one problem for a push: the key to trust, or the user to make trusted', () => {
  const key = { file: '/k.sec', keyName: 'cache-1', publicKey: 'cache-1:AAAA', origin: 'argument' as const };
  for (const [version, name] of [['nix-2.8.0', 'lacks-signature-ssh-ng.stderr.txt'], ['nix-2.26.3', 'lacks-signature.stderr.txt']] as const) {
    const problem = mostImportant(classify(read(version, name)));
    assert.equal(problem?.kind, 'lacks-signature', `${version} ${name}`);
    assert.ok(problem);
    const signed = pushProblem(problem, { to: 'ssh-ng://nixremote@b3', key });
    assert.match(signed, /^ssh-ng:\/\/nixremote@b3 refused \/nix\/store\/\S+: it is not signed by a key b3 trusts, and the user nixremote is not trusted there \(Nix ignores --no-check-sigs for untrusted users\)\. Fix: add the public key cache-1:AAAA to trusted-public-keys in b3's nix\.conf and restart its nix-daemon, or add nixremote to trusted-users there\.$/);
    const unsigned = pushProblem(problem, { to: 'ssh-ng://nixremote@b3' });
    assert.match(unsigned, /Fix: sign the closure \(give nixBuilders\.pushToCache a keyFile, or set nixBuilders\.cache\.signingKeyFile\)/);
  }
});

test('Debian\'s Nix without S3 (2.8.0 s3-copy.stderr.txt): "this Nix cannot talk to S3" with the fix', () => {
  const problem = mostImportant(classify(read('nix-2.8.0', 's3-copy.stderr.txt')));
  assert.equal(problem?.kind, 's3-unsupported');
  assert.ok(problem);
  assert.match(pushProblem(problem, { to: 's3://my-bucket?region=eu-west-1' }), /^This Nix cannot talk to S3 \(no S3 support built in\): don't know how to open Nix store 's3:\/\/my-bucket\?region=eu-west-1'\. Use a Nix built with S3 support/);
});

test('each bucket stages into a folder of its own', () => {
  const a = stagingDirFor('/c', 's3://bucket?region=eu-west-1&endpoint=http://127.0.0.1:9000');
  const b = stagingDirFor('/c', 's3://bucket?region=eu-west-1&endpoint=http://127.0.0.1:9001');
  assert.notEqual(a, b);
  assert.match(a, /^\/c\/bucket-[0-9a-f]{12}$/);
});

/** A secret key in Nix's format (`name:base64(seed ‖ public)`), made here, with its public key. */
function nixKeyPair(name: string): { secret: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d as string, 'base64url');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url');
  return { secret: `${name}:${Buffer.concat([seed, pub]).toString('base64')}`, publicKey: `${name}:${pub.toString('base64')}` };
}

test('the public key of a secret key file; a public key or garbage is not one', () => {
  const k = nixKeyPair('cache.example.org-1');
  assert.deepEqual(publicKeyOf(`${k.secret}\n`), { keyName: 'cache.example.org-1', publicKey: k.publicKey });
  assert.match((publicKeyOf(k.publicKey) as { problem: string }).problem, /not a Nix secret key \(a line "name:base64" of 64 bytes/);
  assert.match((publicKeyOf('nonsense') as { problem: string }).problem, /not a Nix secret key/);
});

test('a malformed key file: the refusal quotes none of its content (not even the part before ":")', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nb-push-key-'));
  try {
    const file = path.join(dir, 'bad.sec');
    writeFileSync(file, 'hunter2-password:c2hvcnQ=\n', { mode: 0o600 });
    const refused = await readSigningKey(file, 'argument');
    assert.ok('problem' in refused);
    assert.match(refused.problem, /bad\.sec: it is not a Nix secret key/);
    assert.ok(!refused.problem.includes('hunter2') && !refused.problem.includes('c2hvcnQ'), refused.problem);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('signing refused for a user the nix-daemon does not trust is recognised (Nix\'s wording, daemon.cc wopAddSignatures; real Nix 2.8 says it in test/lab/push.test.ts, pushing to b3 as nixremote)', () => {
  assert.equal(notPrivilegedToSign('error: you are not privileged to add signatures\n'), true);
  assert.equal(notPrivilegedToSign("error: opening file '/k.sec': Permission denied\n"), false);
});

test("an s3:// store's HTTP address, as consumers substitute from it: the endpoint path-style, virtual-host style, or AWS's", () => {
  assert.equal(bucketHttpAddress('s3://c?region=eu-west-1&endpoint=127.0.0.1:9000&scheme=http&profile=p'), 'http://127.0.0.1:9000/c');
  assert.equal(bucketHttpAddress('s3://c?endpoint=https://r2.example.com&addressing-style=virtual'), 'https://c.r2.example.com');
  assert.equal(bucketHttpAddress('s3://c?region=eu-west-1'), 'https://c.s3.eu-west-1.amazonaws.com');
  assert.equal(bucketHttpAddress('s3://c'), 'https://c.s3.us-east-1.amazonaws.com');
});

test('a secret key file others can read is refused with `chmod 600`; 0600 is read; the order is argument, setting, secret-key-files', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nb-push-key-'));
  try {
    const k = nixKeyPair('k-1');
    const file = path.join(dir, 'k.sec');
    writeFileSync(file, k.secret, { mode: 0o640 });
    const refused = await readSigningKey(file, 'argument');
    assert.ok('problem' in refused);
    assert.match(refused.problem, /can be read by others \(mode 640\).*Run chmod 600 .*k\.sec/);
    assert.ok(!refused.problem.includes(k.secret.split(':')[1] as string), 'the secret is never in a message');
    writeFileSync(path.join(dir, 'ok.sec'), k.secret, { mode: 0o600 });
    const ok = path.join(dir, 'ok.sec');
    assert.deepEqual(await readSigningKey(ok, 'argument'), { file: ok, origin: 'argument', keyName: 'k-1', publicKey: k.publicKey });
    assert.equal((await resolveSigningKey({ keyFile: ok, settingKeyFile: file, secretKeyFiles: [file] })).key?.origin, 'argument');
    assert.equal((await resolveSigningKey({ settingKeyFile: ok, secretKeyFiles: [file] })).key?.origin, 'nixBuilders.cache.signingKeyFile');
    assert.equal((await resolveSigningKey({ secretKeyFiles: [ok] })).key?.origin, 'secret-key-files');
    assert.deepEqual(await resolveSigningKey({ secretKeyFiles: [] }), {});
    assert.match((await resolveSigningKey({ keyFile: path.join(dir, 'none.sec'), secretKeyFiles: [] })).problem ?? '', /none\.sec does not exist: generate a key there/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('nixBuilders.cache.signingKeyFile: an absolute path (~/ expanded) is kept, a relative one dropped with why', () => {
  const problems: string[] = [];
  assert.deepEqual(parseSettings({ cache: { signingKeyFile: '/keys/c.sec' } }).cache, { pushTargets: [], queue: { enabled: false, dir: '' }, signingKeyFile: '/keys/c.sec' });
  assert.match(parseSettings({ cache: { signingKeyFile: '~/c.sec' } }).cache?.signingKeyFile ?? '', /^\/.*\/c\.sec$/);
  assert.deepEqual(parseSettings({ cache: { signingKeyFile: 'c.sec' } }, problems).cache, { pushTargets: [], queue: { enabled: false, dir: '' } });
  assert.match(problems[0] ?? '', /signingKeyFile": "c\.sec" is not an absolute path/);
  assert.deepEqual(parseSettings({}).cache, { pushTargets: [], queue: { enabled: false, dir: '' } });
});

test('the commands\' arguments: what is missing or wrong is refused saying what to give', () => {
  assert.deepEqual(pushArgs({ uri: 'file:///a.nix', attribute: 'pkgs.hello', to: 'file:///c' }), { uri: 'file:///a.nix', attrPath: ['pkgs', 'hello'], to: 'file:///c' });
  assert.throws(() => pushArgs({ uri: 'file:///a.nix', attribute: 'x' }), /"to" must be the target store's URI/);
  assert.throws(() => pushArgs({ uri: 'file:///a.nix', attribute: 'x', to: 'file:///c', keyFile: 'k.sec' }), /"keyFile" must be the absolute path/);
  assert.throws(() => pushArgs({ uri: 'file:///a.nix', attribute: [], to: 'file:///c' }), /"attribute" must be the attribute path/);
  assert.deepEqual(verifyArgs({ store: 'file:///c', paths: ['/nix/store/x-a'] }), { store: 'file:///c', paths: ['/nix/store/x-a'] });
  assert.deepEqual(verifyArgs({ store: 'file:///c', uri: 'file:///a.nix', attribute: 'x.y' }), { store: 'file:///c', uri: 'file:///a.nix', attrPath: ['x', 'y'] });
  assert.throws(() => verifyArgs({ store: 'file:///c' }), /name what to check/);
  assert.throws(() => verifyArgs({ store: 'file:///c', paths: ['/nix/store/x-a'], trustedPublicKeys: ['not a key'] }), /must be public keys, each "name:base64"/);
});
