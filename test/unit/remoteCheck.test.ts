// The remote check's pure parts: a NAR (recorded from Nix 2.8's `nix-store --dump`) unpacked as
// copyTree copies; the builder's store URI for `--store`; the builder a name or URI means; how a
// Nix version rebuilds on a builder; compareMachines' summary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { lstat, mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { adHocBuilder } from '../../language-server/builders/collect';
import { summarise } from '../../language-server/check/compareMachines';
import { builderStore, findBuilder, remoteFailure, remoteMethod, restoreNar } from '../../language-server/check/remoteCheck';
import { compareTrees } from '../../language-server/check/treeDiff';
import { parseMachineLine } from '../../language-server/nix/machines';
import { capabilitiesFor, parseNixVersion } from '../../language-server/nix/version';
import type { CompareMachinesResult } from '../../language-server/protocol';

const NAR = readFileSync(path.join(__dirname, '..', 'fixtures', 'nix-2.8.0', 'tree.nar'));

const builder = (line: string, label = 'machines') => {
  const { machine, error } = parseMachineLine(line);
  assert.ok(machine, error);
  return adHocBuilder(machine, `${label} ${machine.uri}`, label);
};

test('a NAR from nix-store --dump is unpacked: files, the executable bit, an empty file, a symlink, a folder', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nb-nar-'));
  try {
    const tree = path.join(dir, 'tree');
    await restoreNar(NAR, tree);
    assert.equal(await readFile(path.join(tree, 'a'), 'utf8'), 'hello\n');
    assert.equal(await readFile(path.join(tree, 'empty'), 'utf8'), '');
    assert.equal(await readlink(path.join(tree, 'link')), 'a');
    assert.equal(await readFile(path.join(tree, 'sub', 'run'), 'utf8'), '#!/bin/sh\n');
    assert.equal((await lstat(path.join(tree, 'sub', 'run'))).mode & 0o111, 0o100);
    assert.equal((await lstat(path.join(tree, 'a'))).mode & 0o111, 0);
    // Unpacked twice, the same tree.
    await restoreNar(NAR, path.join(dir, 'again'));
    assert.deepEqual(await compareTrees(tree, path.join(dir, 'again')), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('what is not a NAR is refused: truncated, wrong magic, an entry name that leaves the folder', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nb-nar-'));
  try {
    await assert.rejects(restoreNar(NAR.subarray(0, NAR.length - 16), path.join(dir, 'cut')), /not a NAR \(truncated/);
    await assert.rejects(restoreNar(Buffer.from('<html>'), path.join(dir, 'html')), /not a NAR/);
    const name = (s: string) => {
      const b = Buffer.alloc(8 + Math.ceil(s.length / 8) * 8);
      b.writeBigUInt64LE(BigInt(s.length));
      b.write(s, 8);
      return b;
    };
    const evil = Buffer.concat(['nix-archive-1', '(', 'type', 'directory', 'entry', '(', 'name', '..', 'node', '(', 'type', 'regular', 'contents', '', ')', ')', ')'].map(name));
    await assert.rejects(restoreNar(evil, path.join(dir, 'evil')), /the entry name '\.\.'/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the builder\'s store for --store: ssh-ng with the machines line\'s key and host key; a nix-store remote-program becomes the nix-daemon beside it', () => {
  const b1 = builder('ssh://b1 x86_64-linux /keys/id 2 2 kvm - c3NoLWVkMjU1MTkgQUFBQQ==');
  assert.equal(builderStore(b1), 'ssh-ng://b1?ssh-key=%2Fkeys%2Fid&base64-ssh-public-host-key=c3NoLWVkMjU1MTkgQUFBQQ%3D%3D');
  const b4 = builder('ssh://nopath@b4?remote-program=/usr/bin/nix-store x86_64-linux');
  assert.equal(builderStore(b4), 'ssh-ng://nopath@b4?remote-program=%2Fusr%2Fbin%2Fnix-daemon');
  assert.equal(builderStore(builder('ssh-ng://b5')), 'ssh-ng://b5');
  assert.throws(() => builderStore(builder('file:///cache x86_64-linux')), /not an SSH builder/);
});

test('a builder named by its name, id or URI; an SSH store URI of its own; anything else refused with the names there are', () => {
  const list = [builder('ssh://b1 x86_64-linux'), builder('ssh://nopath@b4 x86_64-linux')];
  assert.equal(findBuilder('b1', list), list[0]);
  assert.equal(findBuilder('ssh://nopath@b4', list), list[1]);
  assert.equal(findBuilder(list[1]!.id, list), list[1]);
  const adHoc = findBuilder('ssh-ng://root@b9', list);
  assert.equal(adHoc.uri, 'ssh-ng://root@b9');
  assert.equal(adHoc.name, 'b9');
  assert.throws(() => findBuilder('b7', list), /No builder 'b7': give a configured builder's name \(b1, b4\) or an ssh:\/\/ or ssh-ng:\/\/ store URI/);
});

test('how a Nix version rebuilds on a builder: nix copy --derivation and nix-store --store … --realise --check (no --keep-failed: the rebuild stays at its fallback path, and no build folder is kept there) from 2.4; refused before, saying why', () => {
  const caps = (v: string) => capabilitiesFor(parseNixVersion(`nix (Nix) ${v}`)!);
  const m = remoteMethod(caps('2.8.0'));
  assert.ok(m.ok);
  assert.deepEqual(m.copyDerivation('/nix/store/x.drv', 'ssh-ng://b1'), ['--extra-experimental-features', 'nix-command', 'copy', '--derivation', '--to', 'ssh-ng://b1', '/nix/store/x.drv']);
  assert.deepEqual(m.realise('ssh-ng://b1', true, '/nix/store/x.drv'), ['--store', 'ssh-ng://b1', '--option', 'builders', '', '--realise', '--check', '/nix/store/x.drv']);
  assert.deepEqual(m.realise('ssh-ng://b1', false, '/nix/store/x.drv'), ['--store', 'ssh-ng://b1', '--option', 'builders', '', '--realise', '/nix/store/x.drv']);
  const old = remoteMethod(caps('2.3.16'));
  assert.ok(!old.ok);
  assert.match(old.reason, /^Nix 2\.3\.16 cannot rebuild on a builder's store .*: update Nix, or check on this machine$/);
});

const out = (hashes: Array<[string, 'built' | 'substituter', string | undefined]>, status: 'same' | 'differs' | 'not-checked', files?: number): CompareMachinesResult['outputs'][number] => ({
  name: 'out',
  path: '/nix/store/x-out',
  status,
  hashes: hashes.map(([machine, source, narHash]) => ({ machine, source, ...(narHash ? { narHash } : { reason: 'no copy' }) })),
  ...(files !== undefined ? { files: Array.from({ length: files }, (_, i) => ({ path: `f${i}`, kind: 'changed' as const })) } : {}),
});

test('the summary across machines: the same here and on b1, the cache\'s copy differs; built differently; not built; no cache copy; here alone', () => {
  assert.equal(summarise([out([['this machine', 'built', 'h1'], ['file:///c', 'substituter', 'h2']], 'differs')], ['this machine']), "built here; the cache's copy differs");
  assert.equal(summarise([out([['b1', 'built', 'h1'], ['this machine', 'built', 'h1'], ['file:///c', 'substituter', 'h2']], 'differs')], ['b1', 'this machine']), "built the same on b1 and here; the cache's copy differs");
  assert.equal(summarise([out([['b1', 'built', 'h1'], ['this machine', 'built', 'h1'], ['file:///c', 'substituter', 'h1']], 'same')], ['b1', 'this machine']), "built the same on b1 and here; the cache's copy is the same");
  assert.equal(summarise([out([['b1', 'built', 'h1'], ['b2', 'built', 'h2']], 'differs', 1)], ['b1', 'b2']), 'built differently on b1 and b2 (out: 1 file)');
  assert.equal(summarise([out([['b1', 'built', 'h1'], ['b2', 'built', undefined], ['file:///c', 'substituter', undefined]], 'not-checked')], ['b1', 'b2']), 'built on b1; not built on b2; the cache has no copy');
});

const fixture = (version: string, name: string) => readFileSync(path.join(__dirname, `../fixtures/nix-${version}`, name), 'utf8');

test('a failed build on a builder says why from Nix\'s lines (over ssh-ng its exit code is 1 for all): failed, timed out, hash mismatch, not allowed', () => {
  // Recorded from Nix 2.8.0 (test/fixtures/nix-2.8.0: local builds, and b3 over ssh-ng for the refusal) and 2.26.3.
  assert.equal(remoteFailure(fixture('2.8.0', 'build-failure.stderr.txt')), 'its builder exited with code 3');
  assert.equal(remoteFailure(fixture('2.26.3', 'build-failure.stderr.txt')), 'its builder exited with code 3');
  assert.equal(remoteFailure(fixture('2.8.0', 'timeout.stderr.txt')), 'it timed out after 1 s (timeout)');
  assert.equal(remoteFailure(fixture('2.8.0', 'max-silent-time.stderr.txt')), 'it timed out after 1 s of silence (max-silent-time)');
  assert.equal(remoteFailure(fixture('2.8.0', 'hash-mismatch.stderr.txt')), 'a fixed-output hash did not match');
  assert.equal(remoteFailure(fixture('2.8.0', 'not-privileged-ssh-ng.stderr.txt')), 'it was not allowed: you are not privileged to build input-addressed derivations');
  assert.equal(remoteFailure('error: cannot open connection to remote store \'ssh-ng://b1\': error: unexpected end-of-file\n'), undefined);
});
