// Pushing to s3:// with a Nix that has no S3 support (Debian's 2.8 and 2.26): a closure built by
// real Nix, signed with a key made now and staged with `nix copy --to file://…`, is uploaded by
// cache/s3.ts to a real S3-protocol server on loopback (s3rver, s3Server.ts), and a fresh store
// substitutes it from the bucket's plain HTTP address with the key trusted: that is the proof.
// Credentials come as the AWS SDK finds them: a profile of a credentials file made here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { appendFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { parseS3StoreUri, S3UploadError, uploadStagedCache } from '../../language-server/cache/s3';
import { nixCommand } from './nixUnderTest';
import { S3RVER_CREDENTIALS, startS3Server, type S3Server } from './s3Server';
import { StdioLspClient } from './lspClient';
import { pathToFileURL } from 'node:url';
import { ServerCommands, type PushToCacheResult } from '../../language-server/protocol';

const execFileAsync = promisify(execFile);
const NIX_COMMAND = ['--extra-experimental-features', 'nix-command'];

let dir: string;
let server: S3Server;
let secretKey: string;
let publicKey: string;

const salt = () => `${Date.now()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const nixEnv = () => ({ ...process.env, NIX_CONF_DIR: dir });
const run = async (name: string, args: string[]) => (await execFileAsync(nixCommand(name), args, { env: nixEnv(), maxBuffer: 64 * 1024 * 1024 })).stdout.trim();

const BUCKETS = ['cache', 'cache2', 'cache3', 'cache4', 'cache5', 'pushed', 'private', 'unsigned'];
const target = (bucket: string) => `s3://${bucket}?region=eu-west-1&endpoint=${server.url.replace('http://', '')}&scheme=http&profile=nb-test`;
const httpCache = (bucket: string) => `${server.url}/${bucket}`;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-s3-'));
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', 'narinfo-cache-negative-ttl = 0', ''].join('\n'));
  // The SDK's chain reads these files; nothing of this machine's AWS set-up is used, and the
  // instance metadata service (not on loopback) is never asked.
  await writeFile(path.join(dir, 'credentials'), [
    '[nb-test]', `aws_access_key_id = ${S3RVER_CREDENTIALS.accessKeyId}`, `aws_secret_access_key = ${S3RVER_CREDENTIALS.secretAccessKey}`,
    '[nb-wrong]', 'aws_access_key_id = NOT-AN-ACCOUNT', 'aws_secret_access_key = wrong', ''].join('\n'));
  await writeFile(path.join(dir, 'config'), '');
  for (const v of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_REGION', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3']) delete process.env[v];
  process.env.AWS_SHARED_CREDENTIALS_FILE = path.join(dir, 'credentials');
  process.env.AWS_CONFIG_FILE = path.join(dir, 'config');
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  server = await startS3Server(BUCKETS);
  const name = `nb-s3-test-${salt()}`;
  secretKey = path.join(dir, 'key.sec');
  await writeFile(secretKey, await run('nix', [...NIX_COMMAND, 'key', 'generate-secret', '--key-name', name]), { mode: 0o600 });
  // It reads the secret key on stdin.
  publicKey = execFileSync(nixCommand('nix'), [...NIX_COMMAND, 'key', 'convert-secret-to-public'], { env: nixEnv(), input: await readFile(secretKey), encoding: 'utf8' }).trim();
  // The consumers (this nix.conf, which a push's verification reads) trust the key, as a user sets it up.
  await appendFile(path.join(dir, 'nix.conf'), `trusted-public-keys = ${publicKey}\n`);
});

after(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A derivation run by /bin/sh; `dep`, the expression of one it refers to (so that it is in the closure). */
const drv = (name: string, dep?: string) =>
  `derivation { name = "${name}"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" (${JSON.stringify(`mkdir $out; echo ${name} > $out/data; echo `)} + ${dep ? `(${dep}).outPath` : '""'} + " > $out/dep") ]; }`;

/** Builds `expr` here, signs its closure with the test's key and stages it into a fresh file:// cache: the top path, its closure and the staging folder. */
async function stage(expr: string, params = ''): Promise<{ top: string; closure: string[]; staging: string }> {
  const top = await run('nix-build', ['--no-out-link', '-E', expr]);
  await run('nix', [...NIX_COMMAND, 'store', 'sign', '--key-file', secretKey, '-r', top]);
  const staging = await mkdtemp(path.join(dir, 'staging-'));
  await run('nix', [...NIX_COMMAND, 'copy', '--to', `file://${staging}${params}`, top]);
  const closure = (await run('nix-store', ['--query', '--requisites', top])).split('\n').sort();
  return { top, closure, staging };
}

/** A dependency and a top path that refers to it, staged. */
async function twoPaths(): Promise<{ dep: string; top: string; topExpr: string; closure: string[]; staging: string }> {
  const s = salt();
  const depExpr = drv(`nb-s3-dep-${s}`);
  const topExpr = drv(`nb-s3-top-${s}`, depExpr);
  const staged = await stage(topExpr);
  const dep = await run('nix-build', ['--no-out-link', '-E', depExpr]);
  return { dep, topExpr, ...staged };
}

/** Substitutes `storePath` from `cache` into a fresh chroot store, trusting only the test's key: whether it is valid there. */
async function substitutesInto(cache: string, storePath: string, trusted = publicKey): Promise<{ valid: boolean; stderr: string }> {
  const fresh = await mkdtemp(path.join(dir, 'fresh-'));
  const opts = ['--option', 'substituters', cache, '--option', 'trusted-public-keys', trusted, '--option', 'require-sigs', 'true'];
  try {
    await execFileAsync(nixCommand('nix-store'), ['--store', fresh, '--realise', storePath, ...opts], { env: nixEnv() });
  } catch (e) {
    return { valid: false, stderr: (e as { stderr?: string }).stderr ?? String(e) };
  }
  const valid = await execFileAsync(nixCommand('nix-store'), ['--store', fresh, '--check-validity', storePath], { env: nixEnv() }).then(() => true, () => false);
  await rm(fresh, { recursive: true, force: true }).catch(() => undefined);
  return { valid, stderr: '' };
}

const upload = (staging: string, to: string, signal = new AbortController().signal) => {
  const progress: string[] = [];
  return uploadStagedCache({ stagingDir: staging, to, signal, onProgress: (m) => progress.push(m) }).then((r) => ({ ...r, progress }));
};

const storeHash = (p: string) => path.basename(p).slice(0, 32);

test("the store URI is read as Nix's S3 store reads it: bucket, region, endpoint (host:port with scheme, or a URL), addressing, profile", () => {
  assert.deepEqual(parseS3StoreUri('s3://my-cache'), { bucket: 'my-cache', region: 'us-east-1', forcePathStyle: false });
  assert.deepEqual(parseS3StoreUri('s3://my-cache?region=eu-west-1&profile=ci'), { bucket: 'my-cache', region: 'eu-west-1', forcePathStyle: false, profile: 'ci' });
  assert.deepEqual(parseS3StoreUri('s3://c?endpoint=minio.lan:9000'), { bucket: 'c', region: 'us-east-1', endpoint: 'https://minio.lan:9000', forcePathStyle: true });
  assert.deepEqual(parseS3StoreUri('s3://c?endpoint=127.0.0.1:9000&scheme=http'), { bucket: 'c', region: 'us-east-1', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true });
  // A URL's own scheme wins over scheme= (as newer Nix, which deprecates scheme=).
  assert.deepEqual(parseS3StoreUri('s3://c?endpoint=http%3A%2F%2Fminio.lan%3A9000&scheme=https'), { bucket: 'c', region: 'us-east-1', endpoint: 'http://minio.lan:9000', forcePathStyle: true });
  assert.deepEqual(parseS3StoreUri('s3://c?endpoint=https://r2.example.com&addressing-style=virtual'), { bucket: 'c', region: 'us-east-1', endpoint: 'https://r2.example.com', forcePathStyle: false });
  assert.equal(parseS3StoreUri('s3://my.dotted.bucket').forcePathStyle, true, 'a dotted bucket is path style (TLS)');
  for (const [uri, words] of [
    ['s3://', /names no bucket/],
    ['s3://c/prefix', /path after the bucket/],
    ['s3://c?scheme=ftp', /scheme=https \(the default\) or scheme=http/],
    ['s3://c?endpoint=ftp://x', /not a host\[:port\] or an http\(s\) URL/],
    ['s3://c?addressing-style=sideways', /auto, path or virtual/],
    ['file:///tmp/c', /not an s3:\/\/ store URI/],
  ] as const) {
    assert.throws(() => parseS3StoreUri(uri), (e: unknown) => e instanceof S3UploadError && e.kind === 'bad-uri' && words.test(e.message), uri);
  }
});

test("a staged closure is uploaded, NARs first and the narinfos dependencies first, with Nix's content types, and a fresh store substitutes it from the bucket's HTTP address", async () => {
  const { dep, top, closure, staging } = await twoPaths();
  assert.deepEqual(closure, [dep, top].sort());
  const r = await upload(staging, target('cache'));
  assert.deepEqual(r.uploaded.slice().sort(), closure);
  assert.deepEqual(r.skipped, []);

  // Order: nix-cache-info, every NAR, then the dependency's narinfo before the top's.
  const uploads = r.progress.filter((m) => m.startsWith('Uploading ') && !m.includes(': ')).map((m) => m.split(' ')[1] as string);
  assert.equal(uploads[0], 'nix-cache-info', r.progress.join('\n'));
  const narinfos = uploads.filter((k) => k.endsWith('.narinfo'));
  const nars = uploads.filter((k) => k.startsWith('nar/'));
  assert.deepEqual(narinfos, [`${storeHash(dep)}.narinfo`, `${storeHash(top)}.narinfo`], r.progress.join('\n'));
  assert.equal(nars.length, 2);
  assert.ok(uploads.lastIndexOf(nars[1] as string) < uploads.indexOf(narinfos[0] as string), r.progress.join('\n'));
  assert.ok(r.progress.some((m) => /^Uploading nar\/\S+\.nar\S* \(\d+(\.\d)? (B|KiB)\) of \/nix\/store\//.test(m)), `progress names each file with its size: ${r.progress.join('\n')}`);

  // What Nix's S3 store sets, as served over HTTP (what a consumer sees).
  const type = async (key: string) => (await fetch(`${httpCache('cache')}/${key}`)).headers.get('content-type');
  assert.equal(await type('nix-cache-info'), 'text/x-nix-cache-info');
  assert.equal(await type(`${storeHash(top)}.narinfo`), 'text/x-nix-narinfo');
  assert.equal(await type(nars[0] as string), 'application/x-nix-nar');

  const after = await substitutesInto(httpCache('cache'), top);
  assert.equal(after.valid, true, `the fresh store substitutes the top path from the bucket: ${after.stderr}`);
  // The signatures made here went up too: a store that trusts another key does not take the paths.
  const otherKey = publicKey.replace(/^[^:]+:/, 'other-1:');
  assert.equal((await substitutesInto(httpCache('cache'), top, otherKey)).valid, false, 'only a store that trusts the key substitutes');
});

test('a second upload (credentials from the environment) skips every path already in the bucket; a closure that adds a path uploads only that one (and not the NARs it shares)', async () => {
  const { dep, top, topExpr, staging } = await twoPaths();
  const first = await upload(staging, target('cache2'));
  assert.equal(first.uploaded.length, 2);

  // This time without profile=: the SDK's default chain, here the environment's keys.
  Object.assign(process.env, { AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey });
  const again = await upload(staging, target('cache2').replace('&profile=nb-test', '')).finally(() => {
    delete process.env.AWS_ACCESS_KEY_ID;
    delete process.env.AWS_SECRET_ACCESS_KEY;
  });
  assert.deepEqual(again.uploaded, []);
  assert.deepEqual(again.skipped.slice().sort(), [dep, top].sort());
  assert.deepEqual(again.progress.filter((m) => m.startsWith('Uploading ')), [], again.progress.join('\n'));

  const more = await stage(drv(`nb-s3-more-${salt()}`, topExpr));
  const third = await upload(more.staging, target('cache2'));
  const added = more.closure.filter((p) => p !== dep && p !== top);
  assert.deepEqual(third.uploaded, added);
  assert.deepEqual(third.skipped.slice().sort(), [dep, top].sort());
  assert.equal(third.progress.filter((m) => /^Uploading nar\//.test(m) && !m.includes(': ')).length, 1, third.progress.join('\n'));
  assert.equal((await substitutesInto(httpCache('cache2'), added[0] as string)).valid, true);
});

test('a NAR larger than a part goes up in parts, with its bytes as they go, and substitutes', async () => {
  // 40 MB that do not compress, staged uncompressed: 3 parts of 16 MiB.
  const name = `nb-s3-large-${salt()}`;
  const { top, staging } = await stage(
    `derivation { name = "${name}"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" "mkdir $out; head -c 40000000 /dev/urandom > $out/blob" ]; }`,
    '?compression=none',
  );
  const r = await upload(staging, target('cache5'));
  assert.deepEqual(r.uploaded, [top]);
  const parts = r.progress.filter((m) => /^Uploading nar\/\S+\.nar: \d+\.\d MiB of 38\.1 MiB$/.test(m));
  assert.ok(parts.length >= 2, `progress per part with bytes: ${r.progress.join('\n')}`);
  const got = await substitutesInto(httpCache('cache5'), top);
  assert.equal(got.valid, true, got.stderr);
});

test('cancelling stops the upload as a cancelled error, and the bucket never holds a narinfo whose NAR is missing', async () => {
  const { top, staging } = await twoPaths();
  const ac = new AbortController();
  const progress: string[] = [];
  await assert.rejects(
    uploadStagedCache({ stagingDir: staging, to: target('cache3'), signal: ac.signal, onProgress: (m) => {
      progress.push(m);
      if (m.startsWith('Uploading nar/')) ac.abort();
    } }),
    (e: unknown) => e instanceof S3UploadError && e.kind === 'cancelled' && /cancelled/.test(e.message),
  );
  assert.ok(progress.some((m) => m.startsWith('Uploading nar/')), progress.join('\n'));
  const held = await readdir(path.join(server.directory, 'cache3')).catch(() => [] as string[]);
  assert.deepEqual(held.filter((f) => f.includes('.narinfo')), [], `no narinfo reached the bucket: ${held.join(', ')}`);
  assert.equal((await substitutesInto(httpCache('cache3'), top)).valid, false, 'nothing to substitute yet');

  // The next push finishes it.
  const r = await upload(staging, target('cache3'));
  assert.equal(r.uploaded.length, 2);
  const now = await substitutesInto(httpCache('cache3'), top);
  assert.equal(now.valid, true, now.stderr);
});

test('wrong credentials, a missing bucket, no credentials and an unreachable endpoint each fail with the cause and the fix', async () => {
  const { staging } = await twoPaths();
  const fails = (to: string, kind: string, words: RegExp) =>
    assert.rejects(upload(staging, to), (e: unknown) => {
      assert.ok(e instanceof S3UploadError, String(e));
      assert.equal(e.kind, kind, e.message);
      assert.match(e.message, words);
      return true;
    });
  await fails(target('cache4').replace('profile=nb-test', 'profile=nb-wrong'), 'bad-credentials', /does not accept the credentials from profile 'nb-wrong' \(InvalidAccessKeyId.*check the access key and secret of \[nb-wrong\] in ~\/\.aws\/credentials/);
  await fails(target('no-such-bucket'), 'no-such-bucket', /The bucket 'no-such-bucket' does not exist at s3:\/\/no-such-bucket at http:\/\/127\.0\.0\.1:\d+: create it \(aws s3 mb s3:\/\/no-such-bucket --endpoint-url/);
  await fails(target('cache4').replace('profile=nb-test', 'profile=nb-absent'), 'no-credentials', /No AWS credentials for .* from profile 'nb-absent'.*Add \[nb-absent\] with aws_access_key_id/);
  await fails(target('cache4').replace('&profile=nb-test', ''), 'no-credentials', /from the default AWS credential chain.*Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/);
  await fails(`s3://cache4?endpoint=127.0.0.1:1&scheme=http&profile=nb-test`, 'unreachable', /Cannot reach s3:\/\/cache4 at http:\/\/127\.0\.0\.1:1 \(ECONNREFUSED.*check endpoint= and scheme=/);
  // A staged cache that lost a NAR is refused before anything is sent.
  const nars = await readdir(path.join(staging, 'nar'));
  await rm(path.join(staging, 'nar', nars[0] as string));
  await fails(target('cache4'), 'not-a-cache', new RegExp(`The staged cache .* lacks nar/${nars[0]}, the NAR of /nix/store/.*: stage again with nix copy`));
  // Nothing was written by any of them.
  assert.deepEqual(await readdir(path.join(server.directory, 'cache4')).catch(() => []), []);
});

test('pushToCache to s3:// from a plain LSP client, with a Nix that cannot open s3:// stores: staged, signed, uploaded, and a fresh store substitutes it from the bucket', { timeout: 300_000 }, async () => {
  // The server inherits the AWS files set up above (its own process environment, as a user's has).
  const client = new StdioLspClient(process.env, ['--import', 'tsx', path.join(__dirname, '../../language-server/main.ts')]);
  try {
    await client.initialize({ settings: { env: { NIX_CONF_DIR: dir, XDG_CACHE_HOME: path.join(dir, 'xdg-cache') } } }, dir);
    const s = salt();
    const text = `{ top = ${drv(`nb-s3-push-${s}`, drv(`nb-s3-push-dep-${s}`))}; }\n`;
    const file = path.join(dir, `push-${s}.nix`);
    await writeFile(file, text);
    const uri = pathToFileURL(file).href;
    client.open(uri, text);
    const to = target('pushed');
    const r = await client.request<PushToCacheResult>('workspace/executeCommand', { command: ServerCommands.pushToCache, arguments: [{ uri, attribute: 'top', to, keyFile: secretKey }] });
    assert.equal(r.status, 'pushed', JSON.stringify(r));
    assert.equal(r.pushed.length, 2, JSON.stringify(r));
    assert.equal(r.signed.status, 'signed');
    assert.match(r.summary, /staged in /);
    assert.equal(r.verification?.status, 'verified', JSON.stringify(r.verification));
    assert.equal(r.verified, true);
    assert.ok(r.verification?.summary.endsWith(`from ${httpCache('pushed')}`), `substituted from the bucket's HTTP address, not the staged copy: ${r.verification?.summary}`);
    // Uploaded: the staging cache is removed.
    assert.deepEqual(await readdir(path.join(dir, 'xdg-cache', 'nix-builders', 'push-staging')), []);
    const top = r.pushed.find((p) => p.endsWith(`-nb-s3-push-${s}`));
    assert.ok(top, JSON.stringify(r.pushed));
    assert.deepEqual(await substitutesInto(httpCache('pushed'), top), { valid: true, stderr: '' });
    // Again: the bucket has it all, nothing is uploaded.
    const again = await client.request<PushToCacheResult>('workspace/executeCommand', { command: ServerCommands.pushToCache, arguments: [{ uri, attribute: 'top', to, keyFile: secretKey }] });
    assert.equal(again.status, 'pushed', JSON.stringify(again));
    assert.deepEqual(again.pushed, []);
    assert.equal(again.skipped.length, 2);
    // Credentials the bucket refuses: a clear failure that keeps the staged copy, not a success.
    const wrong = await client.request<PushToCacheResult>('workspace/executeCommand', { command: ServerCommands.pushToCache, arguments: [{ uri, attribute: 'top', to: to.replace('profile=nb-test', 'profile=nb-wrong'), keyFile: secretKey }] });
    assert.equal(wrong.status, 'failed', JSON.stringify(wrong));
    assert.match(wrong.summary, /the upload to s3:\/\/pushed.* failed: .*staged, signed, in /);
  } finally {
    await client.shutdown();
  }
});

/** A private bucket: a proxy to the S3 server that refuses every request without credentials (403), as AWS does. */
async function privateProxy(): Promise<{ url: string; server: Server }> {
  const target = new URL(server.url);
  const proxy = createServer((req, res) => {
    if (!req.headers.authorization) {
      res.writeHead(403, { 'content-type': 'application/xml' }).end('<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
      return;
    }
    const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return { url: `127.0.0.1:${(proxy.address() as AddressInfo).port}`, server: proxy };
}

test('pushToCache to a private bucket (anonymous reads refused): uploaded, but not verified, saying why, never verified from the staged copy', { timeout: 300_000 }, async () => {
  const proxy = await privateProxy();
  const client = new StdioLspClient(process.env, ['--import', 'tsx', path.join(__dirname, '../../language-server/main.ts')]);
  try {
    await client.initialize({ settings: { env: { NIX_CONF_DIR: dir, XDG_CACHE_HOME: path.join(dir, 'xdg-cache') } } }, dir);
    const s = salt();
    const text = `{ top = ${drv(`nb-s3-private-${s}`)}; }\n`;
    const file = path.join(dir, `private-${s}.nix`);
    await writeFile(file, text);
    const uri = pathToFileURL(file).href;
    client.open(uri, text);
    const to = `s3://private?region=eu-west-1&endpoint=${proxy.url}&scheme=http&profile=nb-test`;
    const r = await client.request<PushToCacheResult>('workspace/executeCommand', { command: ServerCommands.pushToCache, arguments: [{ uri, attribute: 'top', to, keyFile: secretKey }] });
    assert.equal(r.status, 'pushed', JSON.stringify(r));
    assert.equal(r.pushed.length, 1, JSON.stringify(r));
    assert.equal(r.verified, false);
    assert.equal(r.verification?.status, 'not-verified', JSON.stringify(r.verification));
    assert.match(r.verification?.summary ?? '', /http:\/\/127\.0\.0\.1:\d+\/private refuses anonymous reads \(HTTP 403\): the bucket is private/);
  } finally {
    await client.shutdown();
    await new Promise((resolve) => proxy.server.close(resolve));
  }
});

test('pushToCache with a key to a bucket that has the closure unsigned: not verified, and the answer says the upload does not replace those narinfos, with the fix', { timeout: 300_000 }, async () => {
  const s = salt();
  const expr = drv(`nb-s3-unsigned-${s}`);
  const top = await run('nix-build', ['--no-out-link', '-E', expr]);
  // Uploaded before, unsigned (a copy to the staging folder with no key).
  const staging = await mkdtemp(path.join(dir, 'staging-'));
  await run('nix', [...NIX_COMMAND, 'copy', '--to', `file://${staging}`, '--option', 'secret-key-files', '', top]);
  await upload(staging, target('unsigned'));
  const client = new StdioLspClient(process.env, ['--import', 'tsx', path.join(__dirname, '../../language-server/main.ts')]);
  try {
    await client.initialize({ settings: { env: { NIX_CONF_DIR: dir, XDG_CACHE_HOME: path.join(dir, 'xdg-cache') } } }, dir);
    const text = `{ top = ${expr}; }\n`;
    const file = path.join(dir, `unsigned-${s}.nix`);
    await writeFile(file, text);
    const uri = pathToFileURL(file).href;
    client.open(uri, text);
    const r = await client.request<PushToCacheResult>('workspace/executeCommand', { command: ServerCommands.pushToCache, arguments: [{ uri, attribute: 'top', to: target('unsigned'), keyFile: secretKey }] });
    assert.equal(r.status, 'pushed', JSON.stringify(r));
    assert.deepEqual(r.pushed, []);
    assert.equal(r.verified, false);
    assert.deepEqual(r.verification?.problems.map((p) => p.problem), ['not-substitutable'], JSON.stringify(r.verification));
    assert.ok(r.problems.some((p) => p.includes(`1 path of the closure was in ${target('unsigned')} already and was not uploaded again`) && p.includes(`s3://unsigned/${storeHash(top)}.narinfo`)), JSON.stringify(r.problems));
  } finally {
    await client.shutdown();
  }
});
