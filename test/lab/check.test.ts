// Reproducibility on real builders (one lab for the file): a check on b1 that really rebuilds there
// (its store holds the rebuild, this machine's holds nothing of it) and brings back what differs;
// the naive `--check --builders` way, which passes the same nondeterministic derivation; a check on
// b5 (Nix 2.26) when it can run; cancelling a remote check ends the builder's processes; and
// compareMachines: two builders, this machine, and a file:// cache holding a differing copy.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { adHocBuilder } from '../../language-server/builders/collect';
import { CheckCopies, fallbackPath, type CheckOptions } from '../../language-server/check/check';
import { compareMachines, type Machine } from '../../language-server/check/compareMachines';
import { checkOnBuilder } from '../../language-server/check/remoteCheck';
import { parseMachineLine } from '../../language-server/nix/machines';
import { Nix } from '../../language-server/nix/nix';
import { ExecaRunner } from '../../language-server/nix/runner';
import { ServerCommands, type BuilderInfo, type CheckReproducibilityResult, type CompareMachinesResult } from '../../language-server/protocol';
import { StdioLspClient } from '../server/lspClient';
import { buildersOption, runClient, startLab, type Lab } from './lab';
import { nix226 } from './nix226';

const found = nix226();

let lab: Lab;
let nix: Nix;
let copies: CheckCopies;
let scratch: string;
/** The server against the lab: its builders are the lab's machines file (nix.conf builders). */
let client: StdioLspClient;

before(async () => {
  lab = await startLab(found.skip === undefined ? { nix226: found.dir } : {});
  nix = new Nix(new ExecaRunner(), { binDir: '', env: lab.env });
  copies = new CheckCopies();
  scratch = await mkdtemp(path.join(tmpdir(), 'nb-rcheck-'));
  client = new StdioLspClient(process.env, ['--import', 'tsx', path.join(__dirname, '../../language-server/main.ts')]);
  await client.initialize({ settings: { env: lab.env } }, scratch, { window: { workDoneProgress: true } });
});

after(async () => {
  await client?.shutdown();
  await copies?.dispose();
  await lab?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

function builder(name: string): BuilderInfo {
  const { machine, error } = parseMachineLine(lab.builder(name).machinesLine);
  assert.ok(machine, error);
  return adHocBuilder(machine, `test:${machine.uri}`, 'the lab');
}

const nixString = (s: string) => JSON.stringify(s).replace(/\$\{/g, '\\${');
/** A derivation run by /bin/sh (builders have an empty PATH: builtins and absolute paths only). */
const derivation = (name: string, script: string) =>
  `derivation { name = ${nixString(name)}; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" ${nixString(script)} ]; salt = ${nixString(randomUUID())}; }`;
/** A folder with a file that changes every build (a UUID) beside one that does not. */
const NONDETERMINISTIC = 'read -r t < /proc/sys/kernel/random/uuid; /bin/mkdir $out; printf "%s\\n" "$t" > $out/stamp; printf "constant\\n" > $out/constant';
const DETERMINISTIC = '/bin/mkdir $out; printf "same\\n" > $out/a; /bin/ln -s a $out/link';

async function instantiate(expression: string): Promise<{ drv: string; out: string }> {
  const r = await runClient(lab, 'nix-instantiate', ['-E', expression]);
  assert.equal(r.code, 0, r.stderr);
  const drv = r.stdout.trim().split('\n').pop() ?? '';
  const q = await runClient(lab, 'nix-store', ['--query', '--outputs', drv]);
  assert.equal(q.code, 0, q.stderr);
  return { drv, out: q.stdout.trim() };
}

const options = (messages: string[] = [], signal = new AbortController().signal): CheckOptions => ({ rounds: 1, signal, report: (m) => messages.push(m), copies });

for (const name of ['b1', 'b5']) {
  const skip = name === 'b5' ? found.skip : undefined;

  test(`a nondeterministic derivation checked on ${name} differs in exactly the changing file; the rebuild ran on ${name}, this machine built nothing`, { skip }, async () => {
    const { drv, out } = await instantiate(derivation(`rc-nondet-${name}`, NONDETERMINISTIC));
    const messages: string[] = [];
    const r = await checkOnBuilder(nix, builder(name), drv, options(messages));
    assert.equal(r.status, 'differs', JSON.stringify(r));
    assert.equal(r.machine, name);
    assert.equal(r.builtFirst, true);
    assert.ok(messages.some((m) => m === `building it on ${name} first (its outputs are not there)`), messages.join('\n'));
    const o = r.outputs[0];
    assert.deepEqual(o?.files?.map((f) => [f.path, f.kind]), [['stamp', 'changed']]);
    // Both trees were brought from the builder: the copies hold what its store holds.
    assert.ok(o?.firstCopy && o.rebuildCopy);
    const stamp = (dir: string) => readFileSync(path.join(dir, 'stamp'), 'utf8');
    const remoteStore = path.join(lab.builder(name).storeRoot, 'store');
    assert.equal(stamp(o.firstCopy), stamp(path.join(remoteStore, path.basename(out))));
    assert.equal(stamp(o.rebuildCopy), stamp(path.join(remoteStore, path.basename(fallbackPath(drv, out)))));
    assert.notEqual(stamp(o.firstCopy), stamp(o.rebuildCopy));
    // Of both trees only the differing file is kept (the whole trees were compared, then removed).
    assert.deepEqual([readdirSync(o.firstCopy), readdirSync(o.rebuildCopy), readdirSync(path.dirname(o.rebuildCopy)).sort()], [['stamp'], ['stamp'], ['out-first', 'out-round1']]);
    assert.ok(lab.hasStorePath(name, out), `${name}'s store has the output`);
    assert.ok(lab.hasStorePath(name, fallbackPath(drv, out)), `${name}'s store has the rebuild`);
    assert.ok(!existsSync(out) && !existsSync(fallbackPath(drv, out)), 'this machine built neither');
  });

  test(`a deterministic derivation checked on ${name} is reproducible (built there first, then checked again without building)`, { skip }, async () => {
    const { drv, out } = await instantiate(derivation(`rc-det-${name}`, DETERMINISTIC));
    const r = await checkOnBuilder(nix, builder(name), drv, options());
    assert.equal(r.status, 'reproducible', JSON.stringify(r));
    assert.equal(r.builtFirst, true);
    // Nix 2.8 leaves a rebuild that matched at its fallback path; 2.26 removes it.
    if (name === 'b1') assert.ok(lab.hasStorePath(name, fallbackPath(drv, out)), `${name}'s store has the rebuild`);
    const again = await checkOnBuilder(nix, builder(name), drv, { ...options(), rounds: 2 });
    assert.equal(again.status, 'reproducible', JSON.stringify(again));
    assert.equal(again.builtFirst, false);
    assert.equal(again.rounds, 2);
    assert.ok(!existsSync(out), 'this machine built nothing');
  });
}

test('an output of 5 MB comes back from b1 whole, in chunks, byte for byte', async () => {
  const { drv, out } = await instantiate(derivation('rc-big', '/bin/mkdir $out; /usr/bin/head -c 5000000 /dev/urandom > $out/big; printf "constant\\n" > $out/constant'));
  const r = await checkOnBuilder(nix, builder('b1'), drv, options());
  const o = r.outputs[0];
  assert.deepEqual(o?.files?.map((f) => [f.path, f.kind, f.first?.size, f.rebuild?.size]), [['big', 'changed', 5_000_000, 5_000_000]], JSON.stringify(r));
  const remoteStore = path.join(lab.builder('b1').storeRoot, 'store');
  assert.ok(o?.firstCopy && o.rebuildCopy);
  assert.ok(readFileSync(path.join(o.firstCopy, 'big')).equals(readFileSync(path.join(remoteStore, path.basename(out), 'big'))));
  assert.ok(readFileSync(path.join(o.rebuildCopy, 'big')).equals(readFileSync(path.join(remoteStore, path.basename(fallbackPath(drv, out)), 'big'))));
});

test('two outputs on b1: only the second differs (the first is reproducible, nothing of it kept); both differ (both listed, though Nix names only the first)', async () => {
  const twoOutputs = (name: string, script: string) => derivation(name, script).replace('builder =', 'outputs = [ "out" "dev" ]; builder =');
  const onlyDev = await instantiate(twoOutputs('rc-two', 'read -r t < /proc/sys/kernel/random/uuid; /bin/mkdir $out $dev; printf "same\\n" > $out/a; printf "%s\\n" "$out" > $out/self; printf "%s\\n" "$t" > $dev/b'));
  const r = await checkOnBuilder(nix, builder('b1'), onlyDev.drv, options());
  assert.equal(r.status, 'differs', JSON.stringify(r));
  const out = r.outputs.find((x) => x.name === 'out');
  const dev = r.outputs.find((x) => x.name === 'dev');
  assert.equal(out?.status, 'reproducible', JSON.stringify(out));
  assert.equal(dev?.status, 'differs');
  assert.deepEqual(dev?.files?.map((f) => [f.path, f.kind]), [['b', 'changed']]);
  assert.ok(dev?.rebuildCopy && existsSync(dev.rebuildCopy));
  assert.deepEqual(readdirSync(path.dirname(dev.rebuildCopy)).sort(), ['dev-first', 'dev-round1']);

  const both = await instantiate(twoOutputs('rc-both', 'read -r t < /proc/sys/kernel/random/uuid; /bin/mkdir $out $dev; printf "%s\\n" "$t" > $out/a; printf "%s\\n" "$dev" > $dev/self; printf "%s\\n" "$t" > $dev/b'));
  const r2 = await checkOnBuilder(nix, builder('b1'), both.drv, options());
  // In the order of nix-store --query --outputs (by store path).
  assert.deepEqual(r2.outputs.map((x) => [x.name, x.status, x.files?.map((f) => f.path)]).sort(), [['dev', 'differs', ['b']], ['out', 'differs', ['a']]]);
  assert.match(r2.summary, /^not reproducible: 2 of 2 outputs differ \((out: 1 file, dev: 1 file|dev: 1 file, out: 1 file)\)$/);
});

test('the 2.26 client (whose store this process cannot read) checks on b1 all the same: the trees come from b1', { skip: found.skip }, async () => {
  if (found.skip !== undefined) return;
  const client226 = new Nix(new ExecaRunner(), { binDir: found.bin, env: lab.env });
  const inst = await client226.run(client226.bin('nix-instantiate'), ['-E', derivation('rc-from-226', NONDETERMINISTIC)], { timeoutMs: 60_000 });
  assert.equal(inst.kind, 'ok', inst.stderr);
  const drv = inst.stdout.trim().split('\n').pop() ?? '';
  const r = await checkOnBuilder(client226, builder('b1'), drv, options());
  assert.equal(r.status, 'differs', JSON.stringify(r));
  assert.deepEqual(r.outputs[0]?.files?.map((f) => [f.path, f.kind]), [['stamp', 'changed']]);
  assert.ok(lab.hasStorePath('b1', fallbackPath(drv, r.outputs[0]?.path ?? '')), "b1's store has the rebuild");
});

test('a stale .check on b1 (an earlier nix-build --check --keep-failed there) is not taken for the rebuild: Nix names where it left it', async () => {
  const { drv, out } = await instantiate(derivation('rc-stale', NONDETERMINISTIC));
  assert.equal((await checkOnBuilder(nix, builder('b1'), drv, options())).status, 'differs');
  const stale = path.join(lab.builder('b1').storeRoot, 'store', `${path.basename(out)}.check`);
  await mkdir(stale, { recursive: true });
  await writeFile(path.join(stale, 'stamp'), 'stale\n');
  const r = await checkOnBuilder(nix, builder('b1'), drv, options());
  const o = r.outputs[0];
  assert.ok(o?.rebuildCopy, JSON.stringify(r));
  const stamp = (dir: string) => readFileSync(path.join(dir, 'stamp'), 'utf8');
  assert.equal(stamp(o.rebuildCopy), stamp(path.join(lab.builder('b1').storeRoot, 'store', path.basename(fallbackPath(drv, out)))));
  assert.notEqual(stamp(o.rebuildCopy), 'stale\n');
});

test('a rebuild that fails on b1 says why from Nix\'s lines, though over ssh-ng its exit code is 1: its builder\'s exit code', async () => {
  // The builders see this machine's files (loopback, no sandbox): the marker makes the rebuild fail.
  const marker = path.join(scratch, `fail-${randomUUID()}`);
  const { drv } = await instantiate(derivation('rc-fails', `if [ -e ${marker} ]; then echo the marker is there >&2; exit 3; fi; /bin/mkdir $out`));
  assert.equal((await checkOnBuilder(nix, builder('b1'), drv, options())).status, 'reproducible');
  await writeFile(marker, '');
  const r = await checkOnBuilder(nix, builder('b1'), drv, options());
  assert.equal(r.status, 'not-checked', JSON.stringify(r));
  assert.match(r.outputs[0]?.reason ?? '', /^the rebuild on b1 failed: its builder exited with code 3; \S*nix-store exited with code 1/, JSON.stringify(r));
});

test('the naive way, nix-build --check --builders b1 --max-jobs 0, passes the same nondeterministic derivation (exit 0: nothing was compared)', async () => {
  const { drv, out } = await instantiate(derivation('rc-naive', NONDETERMINISTIC));
  const b1 = buildersOption([lab.builder('b1')]);
  const built = await runClient(lab, 'nix-build', ['--no-out-link', '--max-jobs', '0', '--builders', b1, drv]);
  assert.equal(built.code, 0, built.stderr);
  const naive = await runClient(lab, 'nix-build', ['--no-out-link', '--check', '--max-jobs', '0', '--builders', b1, drv]);
  assert.equal(naive.code, 0, `the naive check passed it: ${naive.stderr}`);
  assert.doesNotMatch(naive.stderr, /may not be deterministic/);
  // The same derivation checked for real on b1 differs.
  const r = await checkOnBuilder(nix, builder('b1'), drv, options());
  assert.equal(r.status, 'differs', JSON.stringify(r));
  assert.deepEqual(r.outputs[0]?.files?.map((f) => f.path), ['stamp']);
  await runClient(lab, 'nix-store', ['--delete', out]);
});

async function openFile(name: string, text: string): Promise<string> {
  const file = path.join(scratch, name);
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  client.open(uri, text);
  return uri;
}

const command = <T>(id: string, arg: unknown, workDoneToken?: string) =>
  client.request<T>('workspace/executeCommand', { command: id, arguments: [arg], ...(workDoneToken ? { workDoneToken } : {}) });

test('the command on a builder named as listBuilders names it: checked on b1, its progress said so', async () => {
  const uri = await openFile('nd.nix', `{ nd = ${derivation('rc-cmd-nondet', NONDETERMINISTIC)}; }\n`);
  const token = `check-${randomUUID()}`;
  const r = await command<CheckReproducibilityResult>(ServerCommands.checkReproducibility, { uri, attribute: 'nd', builder: 'b1' }, token);
  assert.equal(r.status, 'differs', JSON.stringify(r));
  assert.equal(r.machine, 'b1');
  assert.deepEqual(r.outputs[0]?.files?.map((f) => f.path), ['stamp']);
  const messages = client.notifications.filter((m) => m.method === '$/progress' && (m.params as { token: string }).token === token).map((m) => (m.params as { value: { message?: string } }).value.message);
  assert.ok(messages.includes('rebuilding on b1 to compare'), JSON.stringify(messages));
  assert.ok(!existsSync(r.outputs[0]?.path ?? '/'), 'this machine built nothing');
});

test('cancelling a check on b1 (window/workDoneProgress/cancel) ends its processes there', async () => {
  const marker = `rc-cancel-${randomUUID()}`;
  const uri = await openFile('slow.nix', `{ slow = ${derivation('rc-cancel', `: ${marker}; /bin/sleep 600; /bin/mkdir $out`)}; }\n`);
  const token = `cancel-${randomUUID()}`;
  const answer = command(ServerCommands.checkReproducibility, { uri, attribute: 'slow', builder: 'b1' }, token).then(() => 'answered', (e: Error) => e.message);
  const onB1 = () => lab.processIds().filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
    } catch {
      return false;
    }
  });
  await until(() => onB1().length > 0, 'the build started on b1');
  client.notify('window/workDoneProgress/cancel', { token });
  assert.match(await answer, /cancelled/);
  await until(() => onB1().length === 0, `the build on b1 ended: ${onB1().join(' ')}`);
});

test('compareMachines: a nondeterministic derivation built on b1 and b2 differs in its changing file; a deterministic one is the same on b1 and here', async () => {
  const nd = await instantiate(derivation('rc-cmp-nondet', NONDETERMINISTIC));
  const both: Machine[] = [{ kind: 'builder', builder: builder('b1') }, { kind: 'builder', builder: builder('b2') }];
  const r = await compareMachines(nix, nd.drv, both, { ...options(), substituters: [] });
  assert.equal(r.status, 'differs', JSON.stringify(r));
  const o = r.outputs[0];
  assert.deepEqual(o?.hashes.map((h) => [h.machine, h.source, /^sha256:/.test(h.narHash ?? '')]), [['b1', 'built', true], ['b2', 'built', true]]);
  assert.deepEqual(o?.files?.map((f) => [f.path, f.kind]), [['stamp', 'changed']]);
  assert.ok(o?.firstCopy && o.otherCopy);
  assert.deepEqual(o.compared, ['b1', 'b2']);
  assert.deepEqual([readdirSync(o.firstCopy), readdirSync(o.otherCopy), readdirSync(path.dirname(o.otherCopy)).sort()], [['stamp'], ['stamp'], ['out-first-b1', 'out-other-b2']]);
  assert.match(r.summary, /^built differently on b1 and b2 \(out: 1 file\)$/);
  assert.ok(lab.hasStorePath('b1', nd.out) && lab.hasStorePath('b2', nd.out) && !existsSync(nd.out));

  const uri = await openFile('det.nix', `{ det = ${derivation('rc-cmp-det', DETERMINISTIC)}; }\n`);
  const same = await command<CompareMachinesResult>(ServerCommands.compareMachines, { uri, attribute: 'det', machines: ['b1', 'local'] });
  assert.equal(same.status, 'same', JSON.stringify(same));
  assert.equal(same.summary, 'built the same on b1 and here');
  assert.deepEqual(same.outputs[0]?.hashes.map((h) => h.machine), ['b1', 'this machine']);
  await runClient(lab, 'nix-store', ['--delete', same.outputs[0]?.path ?? '']);
});

test('compareMachines with a file:// cache that holds a differing copy: "built the same on b1 and here; the cache\'s copy differs"', async () => {
  // The output reads a flag file: present when the cache's copy was built, gone for the comparison.
  const flag = path.join(scratch, `flag-${randomUUID()}`);
  const { drv, out } = await instantiate(derivation('rc-cache', `/bin/mkdir $out; if [ -e ${flag} ]; then printf "cached\\n" > $out/a; else printf "built\\n" > $out/a; fi`));
  const cache = `file://${path.join(scratch, 'cache')}`;
  await writeFile(flag, '');
  const local = await runClient(lab, 'nix-store', ['--option', 'builders', '', '--realise', drv]);
  assert.equal(local.code, 0, local.stderr);
  const pushed = await runClient(lab, 'nix', ['copy', '--to', cache, out]);
  assert.equal(pushed.code, 0, pushed.stderr);
  const deleted = await runClient(lab, 'nix-store', ['--delete', out]);
  assert.equal(deleted.code, 0, deleted.stderr);
  await rm(flag);

  const r = await compareMachines(nix, drv, [{ kind: 'builder', builder: builder('b1') }, { kind: 'local' }], { ...options(), substituters: [cache, 'ssh://b2'] });
  assert.equal(r.status, 'differs', JSON.stringify(r));
  assert.equal(r.summary, `built the same on b1 and here; ${cache}'s copy differs`);
  const hashes = r.outputs[0]?.hashes ?? [];
  assert.equal(hashes[0]?.narHash, hashes[1]?.narHash);
  assert.notEqual(hashes[2]?.narHash, hashes[0]?.narHash);
  assert.deepEqual(hashes.map((h) => [h.machine, h.source]), [['b1', 'built'], ['this machine', 'built'], [cache, 'substituter'], ['ssh://b2', 'substituter']]);
  assert.match(hashes[3]?.reason ?? '', /not asked/);
  const one = await compareMachines(nix, drv, [{ kind: 'builder', builder: builder('b1') }, { kind: 'local' }], { ...options(), substituters: [cache] });
  assert.equal(one.summary, "built the same on b1 and here; the cache's copy differs");
  await runClient(lab, 'nix-store', ['--delete', out]);
});

test('compareMachines builds the derivation itself but takes its inputs from the caches; an output already there is said to be', async () => {
  // Both read a flag file: present when the cache's copies were built, gone for the comparison.
  const flag = path.join(scratch, `flag-${randomUUID()}`);
  const script = `/bin/mkdir $out; if [ -e ${flag} ]; then printf "cached\\n" > $out/a; else printf "built\\n" > $out/a; fi`;
  const input = derivation('rc-input', script);
  const { drv, out } = await instantiate(derivation('rc-top', `${script}; printf "%s\\n" "$input" > $out/input`).replace('builder =', `input = ${input}; builder =`));
  const inputOut = (await runClient(lab, 'nix-store', ['--query', '--references', drv])).stdout.split('\n').find((l) => l.endsWith('.drv'));
  assert.ok(inputOut);
  const inputPath = (await runClient(lab, 'nix-store', ['--query', '--outputs', inputOut])).stdout.trim();
  const cache = `file://${path.join(scratch, 'cache2')}`;
  await writeFile(flag, '');
  assert.equal((await runClient(lab, 'nix-store', ['--option', 'builders', '', '--realise', drv])).code, 0);
  assert.equal((await runClient(lab, 'nix', ['copy', '--to', cache, out])).code, 0);
  assert.equal((await runClient(lab, 'nix-store', ['--delete', out, inputPath])).code, 0);
  await rm(flag);

  const cached = new Nix(new ExecaRunner(), { binDir: '', env: { ...lab.env, NIX_CONFIG: `substituters = ${cache}\nrequire-sigs = false` } });
  const r = await compareMachines(cached, drv, [{ kind: 'local' }], { ...options(), substituters: [cache] });
  assert.equal(r.summary, "built here; the cache's copy differs", JSON.stringify(r));
  assert.equal(readFileSync(path.join(out, 'a'), 'utf8'), 'built\n', 'the derivation itself was built here');
  assert.equal(readFileSync(path.join(inputPath, 'a'), 'utf8'), 'cached\n', 'its input came from the cache');
  const again = await compareMachines(cached, drv, [{ kind: 'local' }], { ...options(), substituters: [cache] });
  assert.equal(again.outputs[0]?.hashes[0]?.note, 'already in its store: not built now');
  await runClient(lab, 'nix-store', ['--delete', out, inputPath]);
});

/** Polls `ok` every 100 ms, failing with `what` after `tries`. */
async function until(ok: () => boolean, what: string, tries = 600): Promise<void> {
  for (let i = 0; !ok(); i++) {
    assert.ok(i < tries, what);
    await new Promise((r) => setTimeout(r, 100));
  }
}
