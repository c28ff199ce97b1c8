// Push to Cache and Verify Cache (`nixBuilders.pushToCache`, `nixBuilders.server.verifyCache`) from
// a plain LSP client, against real Nix and the builder lab: a file:// cache, b1 (root) over ssh://
// and ssh-ng://, b3 (nixremote, not a trusted user) over ssh-ng://. Keys are made here with
// `nix key generate-secret`; every push is verified by the server (signatures, trusted key, a
// fresh store substituting), and a cache filled by a raw `nix copy` is caught unsigned.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { appendFile, chmod, cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { readLabState, runClient, startLab, type Lab } from './lab';
import { isRunning, namespaceMembers } from './processes';
import { StdioLspClient } from '../server/lspClient';
import { ServerCommands, type CacheVerification, type PushToCacheResult } from '../../language-server/protocol';
import { pushClosure } from '../../language-server/cache/push';
import { Nix } from '../../language-server/nix/nix';
import { ExecaRunner } from '../../language-server/nix/runner';

const SERVER = path.join(__dirname, '../../language-server/main.ts');

let lab: Lab;
let client: StdioLspClient;
let keys: string;
const salt = () => randomUUID().slice(0, 8);

before(async () => {
  lab = await startLab();
  keys = path.join(lab.dir, 'push-keys');
  await mkdir(keys, { mode: 0o700 });
  // The lab's client nix.conf without builders: what is pushed is built here, never already on b1.
  const conf = path.join(lab.dir, 'push-conf');
  await mkdir(conf);
  await writeFile(path.join(conf, 'nix.conf'), readFileSync(path.join(lab.clientConfDir, 'nix.conf'), 'utf8').replace(/^builders = .*$/m, 'builders ='));
  client = new StdioLspClient(process.env, ['--import', 'tsx', SERVER]);
  await client.initialize({ settings: { env: { ...lab.env, NIX_CONF_DIR: conf, XDG_CACHE_HOME: path.join(lab.dir, 'push-cache-home') } } }, lab.dir, { window: { workDoneProgress: true } });
});

after(async () => {
  await client?.shutdown();
  await lab?.stop();
});

/**
 * A key pair made with the installed Nix: the secret file (0600) and the public key. `trusted`: the
 * consumers trust it, as a user sets that up (extra-trusted-public-keys in the nix.conf the server
 * reads); a push's own key is never trusted for being used.
 */
async function makeKey(name: string, trusted = true): Promise<{ file: string; publicKey: string }> {
  const secret = await runClient(lab, 'nix', ['--extra-experimental-features', 'nix-command', 'key', 'generate-secret', '--key-name', name]);
  assert.equal(secret.code, 0, secret.stderr);
  const file = path.join(keys, `${name}.sec`);
  await writeFile(file, secret.stdout, { mode: 0o600 });
  const pub = await runClient(lab, 'sh', ['-c', 'nix --extra-experimental-features nix-command key convert-secret-to-public < "$1"', 'sh', file]);
  assert.equal(pub.code, 0, pub.stderr);
  if (trusted) await appendFile(path.join(lab.dir, 'push-conf', 'nix.conf'), `extra-trusted-public-keys = ${pub.stdout.trim()}\n`);
  return { file, publicKey: pub.stdout.trim() };
}

/** A file with one attribute: a derivation whose output refers to a second one (a closure of two), salted so it really builds. */
async function closureFile(name: string): Promise<{ uri: string }> {
  const s = salt();
  const file = path.join(lab.dir, `${name}-${s}.nix`);
  const text = [
    'let',
    `  dep = derivation { name = "${name}-dep"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo ${s} > $out" ]; };`,
    'in {',
    `  top = derivation { name = "${name}"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo \${dep} > $out" ]; };`,
    '}',
    '',
  ].join('\n');
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  client.open(uri, text);
  return { uri };
}

const push = (args: { uri: string; to: string; keyFile?: string }, workDoneToken?: string) =>
  client.request<PushToCacheResult>('workspace/executeCommand', { command: ServerCommands.pushToCache, arguments: [{ attribute: 'top', ...args }], ...(workDoneToken ? { workDoneToken } : {}) });

const verify = (args: { store: string; paths?: string[]; uri?: string; attribute?: string; trustedPublicKeys?: string[] }) =>
  client.request<CacheVerification>('workspace/executeCommand', { command: ServerCommands.verifyCache, arguments: [args] });

/** The $/progress values sent for a token. */
const progressOf = (token: string) =>
  client.notifications.filter((m) => m.method === '$/progress' && (m.params as { token: string }).token === token).map((m) => (m.params as { value: { kind: string; message?: string } }).value);

/** Polls `ok` every 100 ms, failing with `what` after `tries`. */
async function until(ok: () => boolean | Promise<boolean>, what: string, tries = 600): Promise<void> {
  for (let i = 0; !(await ok()); i++) {
    assert.ok(i < tries, what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const storePathOf = (r: PushToCacheResult) => [...r.pushed, ...r.skipped.map((s) => s.path)];

test('file://: built first, signed, pushed with progress, verified (a fresh store substituted it); pushed again, everything is skipped', { timeout: 300_000 }, async () => {
  const key = await makeKey(`push-file-${salt()}`);
  const { uri } = await closureFile('push-file');
  const cache = `file://${path.join(lab.dir, `cache-${salt()}`)}`;
  const token = `push-${salt()}`;
  const r = await push({ uri, to: cache, keyFile: key.file }, token);
  assert.equal(r.status, 'pushed', JSON.stringify(r));
  assert.equal(r.builtFirst, true);
  assert.equal(r.pushed.length, 2, JSON.stringify(r.pushed));
  assert.deepEqual(r.skipped, []);
  assert.deepEqual(r.signed, { status: 'signed', keyName: key.publicKey.split(':')[0] });
  assert.equal(r.verification?.status, 'verified', JSON.stringify(r.verification));
  assert.equal(r.verification?.substituted, true);
  assert.ok(r.verification?.trustedKeys.includes(key.publicKey));
  assert.match(r.summary, /^Built top first\. Pushed 2 paths \(0 already in the cache\) to file:\/\/.*, signed by push-file-/);
  const messages = progressOf(token).map((v) => v.message ?? '');
  const announced = messages.findIndex((m) => /^Pushing 2 paths \(0 already in the cache\) to file:\/\//.test(m));
  const copying = messages.findIndex((m) => /^\d\/2 paths, .* of .* · copying push-file/.test(m));
  assert.ok(announced >= 0 && copying > announced, `said before, then per path with bytes: ${JSON.stringify(messages)}`);
  // Signatures really are in the cache, by this key.
  const sigs = await runClient(lab, 'nix', ['--extra-experimental-features', 'nix-command', 'path-info', '--store', cache, '--sigs', '-r', ...r.pushed]);
  assert.equal(sigs.code, 0, sigs.stderr);
  assert.equal(sigs.stdout.trim().split('\n').filter((l) => l.includes(`${key.publicKey.split(':')[0]}:`)).length, 2, sigs.stdout);

  const again = await push({ uri, to: cache, keyFile: key.file });
  assert.equal(again.status, 'pushed');
  assert.equal(again.builtFirst, false);
  assert.deepEqual(again.pushed, []);
  assert.deepEqual(again.skipped.map((s) => s.why), [`already in ${cache}`, `already in ${cache}`]);
  assert.match(again.summary, /^Pushed 0 paths \(2 already in the cache\)/);
  assert.equal(again.verification?.status, 'verified');
});

test('a secret key readable by others is refused with the fix (chmod 600), nothing is pushed', async () => {
  const key = await makeKey(`push-mode-${salt()}`);
  await chmod(key.file, 0o644);
  const { uri } = await closureFile('push-mode');
  const r = await push({ uri, to: `file://${path.join(lab.dir, `cache-${salt()}`)}`, keyFile: key.file });
  assert.equal(r.status, 'not-started');
  assert.match(r.summary, /can be read by others \(mode 644\).*chmod 600/);
  assert.ok(!JSON.stringify(r).includes(readFileSync(key.file, 'utf8').trim().split(':')[1] ?? '-'), 'the secret is not in the answer');
});

for (const scheme of ['ssh', 'ssh-ng'] as const) {
  test(`${scheme}://b1 (root, trusted): pushed signed, verified by substituting over ${scheme}:// into a fresh store`, { timeout: 300_000 }, async () => {
    const key = await makeKey(`push-b1-${scheme}-${salt()}`);
    const { uri } = await closureFile(`push-b1-${scheme}`);
    const r = await push({ uri, to: `${scheme}://b1`, keyFile: key.file });
    assert.equal(r.status, 'pushed', JSON.stringify(r));
    assert.equal(r.pushed.length, 2);
    for (const p of r.pushed) assert.ok(lab.hasStorePath('b1', p), `${p} is in b1's store`);
    assert.equal(r.verification?.status, 'verified', JSON.stringify(r.verification));
    assert.equal(r.verification?.substituted, true);
  });
}

test('pushed unsigned to b1 by nix copy, then pushed with a key: ssh-ng:// signs the copies b1 has already and verifies; a legacy ssh:// store cannot, and says so', { timeout: 300_000 }, async () => {
  const key = await makeKey(`push-resign-${salt()}`);
  for (const scheme of ['ssh-ng', 'ssh'] as const) {
    const { uri } = await closureFile(`push-resign-${scheme}`);
    const built = await client.request<{ outputs: string[] }>('workspace/executeCommand', { command: ServerCommands.build, arguments: [uri, ['top']] });
    const raw = await runClient(lab, 'nix', ['--extra-experimental-features', 'nix-command', 'copy', '--to', `${scheme}://b1`, '--no-check-sigs', ...built.outputs]);
    assert.equal(raw.code, 0, raw.stderr);
    const r = await push({ uri, to: `${scheme}://b1`, keyFile: key.file });
    assert.equal(r.status, 'pushed', JSON.stringify(r));
    assert.deepEqual(r.pushed, []);
    assert.equal(r.skipped.length, 2);
    if (scheme === 'ssh-ng') {
      assert.deepEqual(r.signed, { status: 'signed', keyName: key.publicKey.split(':')[0] });
      assert.equal(r.verification?.status, 'verified', JSON.stringify(r.verification));
      assert.equal(r.verified, true);
    } else {
      assert.equal(r.signed.status, 'unsigned', JSON.stringify(r.signed));
      assert.match(r.signed.message ?? '', /2 paths in ssh:\/\/b1 lack push-resign-\S+'s signature and could not be signed there: .*legacy ssh:\/\/ store, which cannot add signatures/);
      assert.equal(r.verified, false);
      assert.deepEqual(r.verification?.problems.map((p) => p.problem), ['unsigned', 'unsigned']);
    }
  }
});

/** b3's nix-daemon started again (inside b3's namespaces) after its nix.conf trusts `publicKey`. */
async function trustOnB3(publicKey: string): Promise<void> {
  const b3 = lab.builder('b3');
  await appendFile(path.join(lab.dir, 'builders', 'b3', 'etc', 'nix', 'nix.conf'), `trusted-public-keys = ${publicKey}\n`);
  const ns = readLabState(lab.dir)?.processes.find((p) => p.name === 'b3')?.pidNs;
  assert.ok(ns, 'b3 has a PID namespace');
  const members = namespaceMembers(new Set([ns]));
  const comm = (pid: number) => readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  const parent = (pid: number) => Number(/^PPid:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  // sshd is the namespace's first process (the host script exec'd it); the daemon its child.
  const sshd = members.find((p) => comm(p) === 'sshd' && !members.includes(parent(p)));
  const daemon = members.find((p) => comm(p) === 'nix-daemon' && parent(p) === sshd);
  assert.ok(daemon && sshd, `b3's nix-daemon and sshd among ${members.join(' ')}`);
  process.kill(daemon, 'SIGTERM');
  await until(() => !isRunning(daemon), 'the old daemon ended');
  // In b3's mount and PID namespaces, with nothing of the client's environment (NIX_CONF_DIR).
  const started = spawn('nsenter', ['-t', String(sshd), '-m', '-p', '--', 'nix-daemon'], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, stdio: 'ignore', detached: true });
  started.unref();
  const socket = path.join(b3.storeRoot, 'var', 'nix', 'daemon-socket', 'socket');
  await until(() => new Promise<boolean>((resolve) => net.connect(socket).on('connect', function (this: net.Socket) { this.destroy(); resolve(true); }).on('error', () => resolve(false))), 'the new daemon listens');
}

test('ssh-ng://nixremote@b3 (not trusted): an unsigned push is said to need signatures before it fails with the clear problem; signed by a key b3 trusts, it is pushed and verified', { timeout: 300_000 }, async () => {
  const { uri } = await closureFile('push-b3');
  const to = 'ssh-ng://nixremote@b3';
  const token = `push-b3-${salt()}`;
  const r = await push({ uri, to }, token);
  assert.equal(r.status, 'failed', JSON.stringify(r));
  assert.equal(r.signed.status, 'unsigned');
  assert.match(r.problems[0] ?? '', /not signed by a key b3 trusts.*nixremote is not trusted there \(Nix ignores --no-check-sigs for untrusted users\)/);
  assert.match(r.problems[0] ?? '', /trusted-public-keys/);
  assert.match(r.problems[0] ?? '', /trusted-users/);
  assert.deepEqual(r.pushed, []);
  const messages = progressOf(token).map((v) => v.message ?? '');
  const said = messages.findIndex((m) => /nixremote.*only when they are signed by a key in its trusted-public-keys.*--no-check-sigs.*unsigned, so the push will fail/.test(m));
  assert.ok(said >= 0 && said < messages.length - 1, `said before the end: ${JSON.stringify(messages)}`);
  assert.ok(r.notes?.some((n) => /--no-check-sigs/.test(n)));

  const key = await makeKey(`push-b3-${salt()}`);
  await trustOnB3(key.publicKey);
  const signed = await push({ uri, to, keyFile: key.file });
  assert.equal(signed.status, 'pushed', JSON.stringify(signed));
  assert.equal(signed.pushed.length, 2);
  for (const p of signed.pushed) assert.ok(lab.hasStorePath('b3', p), `${p} is in b3's store`);
  assert.equal(signed.verification?.status, 'verified', JSON.stringify(signed.verification));

  // Again with a second key: b3 has the paths without its signature, and its nix-daemon lets no
  // untrusted user add signatures (real Nix's wording, daemon.cc wopAddSignatures): said, with the fix.
  const second = await makeKey(`push-b3-second-${salt()}`);
  const again = await push({ uri, to, keyFile: second.file });
  assert.equal(again.status, 'pushed', JSON.stringify(again));
  assert.equal(again.signed.status, 'unsigned', JSON.stringify(again.signed));
  assert.match(again.signed.message ?? '', /2 paths in ssh-ng:\/\/nixremote@b3 lack push-b3-second-\S+'s signature and could not be signed there: .*you are not privileged to add signatures.*not trusted by the nix-daemon.*trusted-users/);
});

test('Verify Cache catches a raw unsigned `nix copy`, and a push signed by a key the consumer does not trust', { timeout: 300_000 }, async () => {
  const { uri } = await closureFile('push-raw');
  const key = await makeKey(`push-raw-${salt()}`);
  const other = await makeKey(`push-other-${salt()}`, false);
  const signedCache = `file://${path.join(lab.dir, `cache-${salt()}`)}`;
  const pushed = await push({ uri, to: signedCache, keyFile: key.file });
  assert.equal(pushed.status, 'pushed', JSON.stringify(pushed));
  const [top] = storePathOf(pushed).filter((p) => /push-raw$/.test(p));
  assert.ok(top);

  // A raw copy of a new, unsigned closure (the key above signed only its own closure).
  const { uri: unsignedUri } = await closureFile('push-unsigned');
  const built = await client.request<{ outputs: string[] }>('workspace/executeCommand', { command: ServerCommands.build, arguments: [unsignedUri, ['top']] });
  const [unsignedTop] = built.outputs;
  assert.ok(unsignedTop);
  const rawCache = `file://${path.join(lab.dir, `cache-${salt()}`)}`;
  const raw = await runClient(lab, 'nix', ['--extra-experimental-features', 'nix-command', 'copy', '--to', rawCache, unsignedTop]);
  assert.equal(raw.code, 0, raw.stderr);
  const unsigned = await verify({ store: rawCache, uri: unsignedUri, attribute: 'top', trustedPublicKeys: [key.publicKey] });
  assert.equal(unsigned.status, 'problems', JSON.stringify(unsigned));
  assert.deepEqual(unsigned.problems.map((p) => p.problem), ['unsigned', 'unsigned']);
  assert.match(unsigned.summary, /VERIFICATION FAILED .*2 of 2 paths UNSIGNED/);
  assert.match(unsigned.problems[0]?.fix ?? '', /nix store sign --key-file/);
  assert.equal(unsigned.substituted, undefined);

  const untrusted = await verify({ store: signedCache, paths: [top], trustedPublicKeys: [other.publicKey] });
  assert.equal(untrusted.status, 'problems', JSON.stringify(untrusted));
  assert.deepEqual(untrusted.problems.map((p) => p.problem), ['untrusted-key', 'untrusted-key']);
  assert.match(untrusted.summary, /2 of 2 paths signed by a key the consumers do not trust/);
  assert.match(untrusted.problems[0]?.message ?? '', new RegExp(`signed by ${key.publicKey.split(':')[0]}`));

  const trusted = await verify({ store: signedCache, paths: [top], trustedPublicKeys: [other.publicKey, key.publicKey] });
  assert.equal(trusted.status, 'verified', JSON.stringify(trusted));
  assert.equal(trusted.substituted, true);
});

/** The processes whose command line names `needle`. */
function processesNaming(needle: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(needle) && isRunning(Number(p));
      } catch {
        return false;
      }
    })
    .map(Number);
}

test('cancelling a push (window/workDoneProgress/cancel) ends nix copy and answers cancelled', { timeout: 300_000 }, async () => {
  // 40 MB of random bytes: compressing them into a file:// cache takes many seconds here.
  const dir = path.join(lab.dir, `cache-cancel-${salt()}`);
  const s = salt();
  const file = path.join(lab.dir, `push-cancel-big-${s}.nix`);
  const text = `{ top = derivation { name = "push-cancel-big"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "/usr/bin/head -c 40000000 /dev/urandom > $out; echo ${s} >> $out" ]; }; }\n`;
  await writeFile(file, text);
  client.open(pathToFileURL(file).href, text);
  const token = `cancel-${s}`;
  const answer = push({ uri: pathToFileURL(file).href, to: `file://${dir}` }, token).then((r) => JSON.stringify(r), (e: Error) => e.message);
  await until(() => progressOf(token).some((v) => /copying push-cancel-big/.test(v.message ?? '')), 'the copy started', 1800);
  const copies = processesNaming(dir);
  assert.ok(copies.length > 0, 'nix copy runs');
  client.notify('window/workDoneProgress/cancel', { token });
  assert.match(await answer, /cancelled/);
  await until(() => copies.every((p) => !isRunning(p)), `nix copy is gone: ${copies.join(' ')}`, 300);
  assert.equal(existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.narinfo')).length : 0, 0, 'nothing was registered in the cache');
});

test('s3:// with this Nix (no S3 support): the closure is staged, signed, in a file:// cache of that bucket; an upload that fails (no credentials, nothing listening) fails the push and says where the staged copy is', { timeout: 300_000 }, async () => {
  const key = await makeKey(`push-s3-${salt()}`);
  const { uri } = await closureFile('push-s3');
  const to = `s3://nb-${salt()}?region=us-east-1&endpoint=http://127.0.0.1:9`;
  const r = await push({ uri, to, keyFile: key.file });
  assert.equal(r.status, 'failed', JSON.stringify(r));
  assert.match(r.summary, /the upload to s3:\/\/nb-\S+ failed: .*\(the closure is staged, signed, in (\S+); a push again uploads only what the bucket lacks\)/);
  const staged = /staged, signed, in (\S+);/.exec(r.summary)?.[1] ?? '';
  assert.ok(staged.startsWith(path.join(lab.dir, 'push-cache-home', 'nix-builders', 'push-staging')), staged);
  assert.equal(readdirSync(staged).filter((f) => f.endsWith('.narinfo')).length, 2, 'both paths are staged');
  assert.equal(r.signed.status, 'signed');
});

test('s3:// through a StagedUpload (the one call an S3 uploader answers): it gets the staged folder, what it uploaded is pushed, the rest skipped, and it is verified by substituting from the bucket\'s HTTP address', { timeout: 300_000 }, async () => {
  const key = await makeKey(`push-s3u-${salt()}`);
  const { uri } = await closureFile('push-s3u');
  const built = await client.request<{ outputs: string[] }>('workspace/executeCommand', { command: ServerCommands.build, arguments: [uri, ['top']] });
  const nix = new Nix(new ExecaRunner(), { binDir: '', env: { ...lab.env, NIX_CONF_DIR: path.join(lab.dir, 'push-conf') } });
  const calls: Array<{ stagingDir: string; to: string }> = [];
  // The "bucket": a folder served over HTTP at the endpoint's /<bucket>, filled by the uploader below.
  const served = path.join(lab.dir, `served-${salt()}`);
  const bucket = `nb-${salt()}`;
  const server = http.createServer((req, res) => {
    readFile(path.join(served, path.normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)))).then(
      (body) => res.writeHead(200, { 'content-length': body.length }).end(req.method === 'HEAD' ? undefined : body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const to = `s3://${bucket}?region=us-east-1&endpoint=${endpoint}&scheme=http`;
  const stagingRoot = path.join(lab.dir, `staging-${salt()}`);
  try {
    const r = await pushClosure(nix, {
      tops: built.outputs,
      to,
      keyFile: key.file,
      stagingRoot,
      signal: new AbortController().signal,
      report: () => undefined,
      stagedUpload: async (o) => {
        calls.push({ stagingDir: o.stagingDir, to: o.to });
        // The "bucket" already has the dependency: the uploader says so.
        const staged = readdirSync(o.stagingDir).filter((f) => f.endsWith('.narinfo')).map((f) => /^StorePath: (.*)$/m.exec(readFileSync(path.join(o.stagingDir, f), 'utf8'))?.[1] ?? '');
        await cp(o.stagingDir, path.join(served, bucket), { recursive: true });
        return { uploaded: staged.filter((p) => /-push-s3u$/.test(p)), skipped: staged.filter((p) => /-push-s3u-dep$/.test(p)) };
      },
    });
    assert.deepEqual(calls.map((c) => c.to), [to]);
    assert.ok(calls[0]?.stagingDir.startsWith(stagingRoot));
    assert.equal(r.status, 'pushed', JSON.stringify(r));
    assert.deepEqual(r.pushed, built.outputs);
    assert.deepEqual(r.skipped.map((s) => s.why), [`already in ${to}`]);
    assert.equal(r.verification?.status, 'verified', JSON.stringify(r.verification));
    assert.ok(r.verification?.summary.endsWith(`from http://${endpoint}/${bucket}`), r.verification?.summary);
    assert.equal(r.verified, true);
    assert.equal(existsSync(calls[0]?.stagingDir ?? ''), false, 'the staged copy is removed after the upload');
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('Verify Cache over HTTP reads the cache as it is now: a path missing a minute ago and pushed since is found (Nix\'s narinfo disk cache would remember it missing)', { timeout: 300_000 }, async () => {
  const key = await makeKey(`push-http-${salt()}`);
  const { uri } = await closureFile('push-http');
  const dir = path.join(lab.dir, `http-cache-${salt()}`);
  await mkdir(dir);
  await writeFile(path.join(dir, 'nix-cache-info'), 'StoreDir: /nix/store\n');
  const server = http.createServer((req, res) => {
    const file = path.join(dir, path.normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)));
    readFile(file).then(
      (body) => res.writeHead(200, { 'content-length': body.length }).end(req.method === 'HEAD' ? undefined : body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const store = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    // Not built yet: its closure is not known here, the cache lacks the top path.
    const unbuilt = await verify({ store, uri, attribute: 'top', trustedPublicKeys: [key.publicKey] });
    assert.deepEqual(unbuilt.problems.map((p) => p.problem), ['missing'], JSON.stringify(unbuilt));
    await client.request('workspace/executeCommand', { command: ServerCommands.build, arguments: [uri, ['top']] });
    const missing = await verify({ store, uri, attribute: 'top', trustedPublicKeys: [key.publicKey] });
    assert.deepEqual(missing.problems.map((p) => p.problem), ['missing', 'missing'], JSON.stringify(missing));
    const pushed = await push({ uri, to: `file://${dir}`, keyFile: key.file });
    assert.equal(pushed.status, 'pushed', JSON.stringify(pushed));
    const found = await verify({ store, uri, attribute: 'top', trustedPublicKeys: [key.publicKey] });
    assert.equal(found.status, 'verified', JSON.stringify(found));
    assert.equal(found.substituted, true);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('Verify Cache trusts the consumers\' keys only, not the public half of this machine\'s own secret-key-files', { timeout: 300_000 }, async () => {
  const key = await makeKey(`push-own-${salt()}`);
  const other = await makeKey(`push-consumer-${salt()}`, false);
  const conf = path.join(lab.dir, `conf-own-${salt()}`);
  await mkdir(conf);
  await writeFile(path.join(conf, 'nix.conf'), `${readFileSync(path.join(lab.dir, 'push-conf', 'nix.conf'), 'utf8')}secret-key-files = ${key.file}\n`);
  const own = new StdioLspClient(process.env, ['--import', 'tsx', SERVER]);
  try {
    await own.initialize({ settings: { env: { ...lab.env, NIX_CONF_DIR: conf } } }, lab.dir);
    const { uri } = await closureFile('push-own');
    own.open(uri, readFileSync(new URL(uri), 'utf8'));
    const cache = `file://${path.join(lab.dir, `cache-${salt()}`)}`;
    // No keyFile: the push signs with secret-key-files.
    const pushed = await own.request<PushToCacheResult>('workspace/executeCommand', { command: ServerCommands.pushToCache, arguments: [{ uri, attribute: 'top', to: cache }] });
    assert.equal(pushed.status, 'pushed', JSON.stringify(pushed));
    assert.equal(pushed.signed.keyName, key.publicKey.split(':')[0]);
    const r = await own.request<CacheVerification>('workspace/executeCommand', { command: ServerCommands.verifyCache, arguments: [{ store: cache, uri, attribute: 'top', trustedPublicKeys: [other.publicKey] }] });
    assert.equal(r.status, 'problems', JSON.stringify(r));
    assert.deepEqual(r.problems.map((p) => p.problem), ['untrusted-key', 'untrusted-key']);
  } finally {
    await own.shutdown();
  }
});

test('an unsigned push to file:// is pushed but loudly not verified; a closure signed before by a key the consumers do not trust is "already-signed" and caught', { timeout: 300_000 }, async () => {
  const { uri } = await closureFile('push-nokey');
  const token = `push-nokey-${salt()}`;
  const cache = `file://${path.join(lab.dir, `cache-${salt()}`)}`;
  const r = await push({ uri, to: cache }, token);
  assert.equal(r.status, 'pushed', JSON.stringify(r));
  assert.equal(r.signed.status, 'unsigned');
  assert.match(r.signed.message ?? '', /^UNSIGNED: no signing key is set/);
  assert.equal(r.verification?.status, 'problems');
  assert.deepEqual(r.verification?.problems.map((p) => p.problem), ['unsigned', 'unsigned']);
  assert.match(r.summary, /, UNSIGNED\. VERIFICATION FAILED .*2 of 2 paths UNSIGNED/);
  assert.ok(progressOf(token).some((v) => /^Pushing 2 paths \(0 already in the cache\) to .*, UNSIGNED$/.test(v.message ?? '')));

  const signer = await makeKey(`push-before-${salt()}`, false);
  const signedBefore = await runClient(lab, 'nix', ['--extra-experimental-features', 'nix-command', 'store', 'sign', '--key-file', signer.file, '-r', ...r.pushed]);
  assert.equal(signedBefore.code, 0, signedBefore.stderr);
  const again = await push({ uri, to: `file://${path.join(lab.dir, `cache-${salt()}`)}` });
  assert.deepEqual(again.signed, { status: 'already-signed', keyName: signer.publicKey.split(':')[0] });
  assert.equal(again.verification?.status, 'problems', JSON.stringify(again.verification));
  assert.deepEqual(again.verification?.problems.map((p) => p.problem), ['untrusted-key', 'untrusted-key']);
});
