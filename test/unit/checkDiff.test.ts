// The tree comparison of a reproducibility check (two trees read with Node in chunks: text or the
// first differing bytes), the private copy of a rebuild, where Nix leaves a rebuild (its fallback
// path), its exit bits, the bounded copies, and diffoscope's arguments.
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { compareTrees, copyDifferences, copyTree, TEXT_LIMIT } from '../../language-server/check/treeDiff';
import { CheckCopies, checkAnswer, decodeBuildExit, fallbackPath } from '../../language-server/check/check';
import { diffoscopeArgs } from '../../language-server/check/diffoscope';
import { parseSettings } from '../../language-server/config';
import type { FileDifference } from '../../language-server/protocol';

async function tree(root: string, files: Record<string, string | { link: string } | { exec: string } | 'dir'>): Promise<string> {
  await mkdir(root, { recursive: true });
  for (const [name, v] of Object.entries(files)) {
    const p = path.join(root, name);
    await mkdir(path.dirname(p), { recursive: true });
    if (v === 'dir') await mkdir(p, { recursive: true });
    else if (typeof v === 'string') await writeFile(p, v);
    else if ('link' in v) await symlink(v.link, p);
    else {
      await writeFile(p, v.exec);
      await chmod(p, 0o755);
    }
  }
  return root;
}

test('every kind of difference, relative to the output, sorted, with sizes and sha256 of each side; equal files are not listed', async () => {
  const d = await mkdtemp(path.join(tmpdir(), 'nb-checkdiff-'));
  try {
    const a = await tree(path.join(d, 'a'), { same: 'x', 'sub/changed': 'one', 'only-a': 'a', mode: { exec: 'm' }, link: { link: 'same' }, kind: 'file', gone: 'dir', 'gone/deep': 'z' });
    const b = await tree(path.join(d, 'b'), { same: 'x', 'sub/changed': 'three', 'only-b': 'b', mode: 'm', link: { link: 'sub' }, kind: 'dir' });
    const diff = await compareTrees(a, b);
    assert.deepEqual(diff.map((f) => [f.path, f.kind]), [
      ['gone', 'only-in-first'],
      ['kind', 'type'],
      ['link', 'symlink-target'],
      ['mode', 'mode'],
      ['only-a', 'only-in-first'],
      ['only-b', 'only-in-rebuild'],
      ['sub/changed', 'changed'],
    ]);
    const changed = diff.find((f) => f.path === 'sub/changed');
    assert.deepEqual(changed?.first, { type: 'file', size: 3, sha256: '7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed', executable: false });
    assert.equal(changed?.rebuild?.size, 5);
    assert.deepEqual([diff.find((f) => f.path === 'link')?.first?.target, diff.find((f) => f.path === 'link')?.rebuild?.target], ['same', 'sub']);
    assert.deepEqual(await compareTrees(a, a), []);
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});

test('an output that is one file is compared as ".", and the rebuild\'s fallback hashes read as the real ones', async () => {
  const d = await mkdtemp(path.join(tmpdir(), 'nb-checkdiff-'));
  const real = 'a'.repeat(32);
  const fallback = 'b'.repeat(32);
  try {
    await writeFile(path.join(d, 'first'), `/nix/store/${real}-x`);
    await writeFile(path.join(d, 'rebuild'), `/nix/store/${fallback}-x`);
    assert.deepEqual((await compareTrees(path.join(d, 'first'), path.join(d, 'rebuild'))).map((f) => [f.path, f.kind]), [['.', 'changed']]);
    assert.deepEqual(await compareTrees(path.join(d, 'first'), path.join(d, 'rebuild'), [[fallback, real]]), []);
    await symlink(`/nix/store/${real}-x/bin`, path.join(d, 'l1'));
    await symlink(`/nix/store/${fallback}-x/bin`, path.join(d, 'l2'));
    assert.deepEqual(await compareTrees(path.join(d, 'l1'), path.join(d, 'l2'), [[fallback, real]]), []);
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});

test('copyTree keeps files, the executable bit, symlinks as they are and folders, all removable by this user', async () => {
  const d = await mkdtemp(path.join(tmpdir(), 'nb-checkdiff-'));
  try {
    const src = await tree(path.join(d, 'src'), { 'bin/run': { exec: '#!/bin/sh' }, 'share/doc': 'text', abs: { link: '/nix/store/none' } });
    await chmod(path.join(src, 'share'), 0o555);
    await copyTree(src, path.join(d, 'copy'));
    assert.deepEqual(await compareTrees(src, path.join(d, 'copy')), []);
    assert.equal(readlinkSync(path.join(d, 'copy', 'abs')), '/nix/store/none');
    assert.equal(lstatSync(path.join(d, 'copy', 'share')).mode & 0o777, 0o700);
    assert.equal(await readFile(path.join(d, 'copy', 'share', 'doc'), 'utf8'), 'text');
    await chmod(path.join(src, 'share'), 0o755);
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});

/** Every path under `root`, relative, sorted (folders too). */
const listed = (root: string) => (readdirSync(root, { recursive: true }) as string[]).sort();

test('copyDifferences keeps only each side\'s differing entries at their paths (a one-sided folder whole), and nothing of what is the same', async () => {
  const d = await mkdtemp(path.join(tmpdir(), 'nb-checkdiff-'));
  try {
    const same = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`lib/same${i}`, 'x']));
    const a = await tree(path.join(d, 'a'), { ...same, 'sub/deep/changed': 'one', 'only-a': 'a', mode: { exec: 'm' }, link: { link: 'same' }, kind: 'file' });
    const b = await tree(path.join(d, 'b'), { ...same, 'sub/deep/changed': 'three', 'gained/x': 'y', mode: 'm', link: { link: 'nowhere' }, kind: 'dir', 'kind/in': 'z' });
    const files = await compareTrees(a, b);
    await copyDifferences(a, path.join(d, 'first'), files, 'first');
    await copyDifferences(b, path.join(d, 'rebuild'), files, 'rebuild');
    assert.deepEqual(listed(path.join(d, 'first')), ['kind', 'link', 'mode', 'only-a', 'sub', 'sub/deep', 'sub/deep/changed']);
    assert.deepEqual(listed(path.join(d, 'rebuild')), ['gained', 'gained/x', 'kind', 'kind/in', 'link', 'mode', 'sub', 'sub/deep', 'sub/deep/changed']);
    // Each copy reads as its side at every differing path: compared, they differ exactly as the trees do.
    assert.deepEqual(await compareTrees(path.join(d, 'first'), path.join(d, 'rebuild')), files);
    assert.equal(lstatSync(path.join(d, 'first', 'mode')).mode & 0o777, 0o700);
    assert.equal(lstatSync(path.join(d, 'rebuild', 'sub', 'deep')).mode & 0o777, 0o700);
    // An output that is one file ('.'): the file itself.
    await writeFile(path.join(d, 'f1'), 'one');
    await writeFile(path.join(d, 'f2'), 'two');
    await copyDifferences(path.join(d, 'f2'), path.join(d, 'fcopy'), await compareTrees(path.join(d, 'f1'), path.join(d, 'f2')), 'rebuild');
    assert.equal(await readFile(path.join(d, 'fcopy'), 'utf8'), 'two');
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});

test('the fallback path Nix 2.8 rebuilds a valid output at (seen in the store after a --check)', () => {
  assert.equal(
    fallbackPath('/nix/store/3g9cs258n18nxcvlhzfg4xbldrmivldp-nd-x2.drv', '/nix/store/2db3jn955acc9r0s3lwp7fr7drdd94h6-nd-x2'),
    '/nix/store/ny8vafl4wykb98m90x3rgj5vd3638gzn-nd-x2',
  );
  assert.equal(
    fallbackPath('/nix/store/3g9cs258n18nxcvlhzfg4xbldrmivldp-nd-x2.drv', '/nix/store/b7dlffhka1q53ssnfbrfflf5kby7138b-nd-x2-dev'),
    '/nix/store/06b4z35rzgbp5xmv1ybxy9mcx0dkqgq3-nd-x2-dev',
  );
});

test('Nix\'s build exit bits are decoded; other codes say nothing', () => {
  assert.deepEqual(decodeBuildExit(100), ['a build failed']);
  assert.deepEqual(decodeBuildExit(101), ['a build timed out']);
  assert.deepEqual(decodeBuildExit(102), ['a fixed-output hash did not match']);
  assert.deepEqual(decodeBuildExit(104), ['an output differs from its rebuild']);
  assert.deepEqual(decodeBuildExit(108), ['a build failed', 'an output differs from its rebuild']);
  assert.deepEqual(decodeBuildExit(109), ['a build timed out', 'an output differs from its rebuild']);
  assert.deepEqual(decodeBuildExit(1), []);
  assert.deepEqual(decodeBuildExit(undefined), []);
});

test('the summary names the outputs not checked beside those that differ, and says "files not compared" where the trees were not', () => {
  const b: FileDifference = { path: 'b', kind: 'changed' };
  const unreadable = 'this process cannot read /nix/store/a-x (the store is not at its paths here), so the trees were not compared';
  // What Nix 2.26 in another root answers: Nix names dev, out could not be read.
  const r = checkAnswer('/nix/store/d-x.drv', 'this machine', [
    { name: 'out', path: '/nix/store/a-x', status: 'not-checked', reason: unreadable },
    { name: 'dev', path: '/nix/store/b-x-dev', status: 'differs', reason: `Nix says it differs; ${unreadable}` },
  ], false, 1);
  assert.equal(r.summary, `not reproducible: 1 of 2 outputs differs (dev: files not compared); out not checked: ${unreadable}`);
  const two = checkAnswer('/nix/store/d-x.drv', 'this machine', [
    { name: 'out', path: '/nix/store/a-x', status: 'differs', files: [b] },
    { name: 'dev', path: '/nix/store/b-x-dev', status: 'differs', files: [b, { ...b, path: 'c' }] },
    { name: 'doc', path: '/nix/store/c-x-doc', status: 'not-checked', reason: 'the rebuild failed' },
  ], false, 1);
  assert.equal(two.summary, 'not reproducible: 2 of 3 outputs differ (out: 1 file, dev: 2 files); doc not checked: the rebuild failed');
  assert.equal(checkAnswer('/nix/store/d-x.drv', 'this machine', [{ name: 'out', path: '/nix/store/a-x', status: 'not-checked', reason: 'the first build failed' }], true, 0).summary, 'not checked: out: the first build failed');
});

test('CheckCopies keeps the newest folders only, each private, and removes the rest', async () => {
  const copies = new CheckCopies(2);
  try {
    const made = [await copies.create(), await copies.create(), await copies.create()];
    assert.equal(existsSync(made[0]!), false);
    for (const m of made.slice(1)) assert.equal(lstatSync(m).mode & 0o777, 0o700);
    await copies.dispose();
    assert.deepEqual(made.filter((m) => existsSync(m)), []);
  } finally {
    await copies.dispose();
  }
});

test('a changed text file says text; a binary one gives the first differing byte with 16 bytes of each side from the 16-aligned offset before it', async () => {
  const d = await mkdtemp(path.join(tmpdir(), 'nb-checkdiff-'));
  try {
    const bin = (s: string) => Buffer.concat([Buffer.from('\u0000ELF'), Buffer.from(s)]);
    const a = await tree(path.join(d, 'a'), { 'doc.txt': 'héllo\nworld\n', 'latin1.txt': 'x' });
    const b = await tree(path.join(d, 'b'), { 'doc.txt': 'héllo\nthere\n', 'latin1.txt': 'y' });
    await writeFile(path.join(a, 'prog'), bin('0123456789abcdefghijKLMNOPQRSTUVWXYZ'));
    await writeFile(path.join(b, 'prog'), bin('0123456789abcdefghijKLMNOPQRSTUVWXYz'));
    // Not UTF-8 (a Latin-1 é), without any NUL.
    await writeFile(path.join(b, 'latin1.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9]));
    await writeFile(path.join(a, 'short'), bin('abc'));
    await writeFile(path.join(b, 'short'), bin('abcdef'));
    const diff = Object.fromEntries((await compareTrees(a, b)).map((f) => [f.path, f]));
    assert.equal(diff['doc.txt']?.text, true);
    assert.equal(diff['doc.txt']?.firstDifference, undefined);
    assert.equal(diff['latin1.txt']?.text, false);
    assert.deepEqual(diff['latin1.txt']?.firstDifference, { offset: 0, first: '78', rebuild: '636166e9' });
    const prog = diff.prog;
    assert.equal(prog?.text, false);
    // The 'Z' at offset 4 + 35 = 39: shown from 32.
    assert.deepEqual(prog?.firstDifference, {
      offset: 39,
      first: Buffer.from('STUVWXYZ').toString('hex'),
      rebuild: Buffer.from('STUVWXYz').toString('hex'),
    });
    // One side a prefix of the other: they differ where the shorter ends.
    assert.deepEqual(diff.short?.firstDifference, { offset: 7, first: bin('abc').toString('hex'), rebuild: bin('abcdef').toString('hex') });
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});

test('files are read in chunks: a difference past the first chunk is found, a fallback hash across a chunk\'s edge reads as the real one, a big text file is not offered as text', async () => {
  const d = await mkdtemp(path.join(tmpdir(), 'nb-checkdiff-'));
  const real = 'a'.repeat(32);
  const fallback = 'b'.repeat(32);
  try {
    await mkdir(path.join(d, 'a'));
    await mkdir(path.join(d, 'b'));
    // The hash starts 10 bytes before the end of the first 64 KiB chunk.
    const text = (hash: string, tail: string) => `${'x'.repeat(64 * 1024 - 10)}${hash}${'y'.repeat(100_000)}${tail}`;
    await writeFile(path.join(d, 'a', 'edge'), text(real, 'same'));
    await writeFile(path.join(d, 'b', 'edge'), text(fallback, 'same'));
    await writeFile(path.join(d, 'a', 'far'), text(real, 'one'));
    await writeFile(path.join(d, 'b', 'far'), text(fallback, 'two'));
    await writeFile(path.join(d, 'a', 'big'), 'z'.repeat(TEXT_LIMIT) + 'one');
    await writeFile(path.join(d, 'b', 'big'), 'z'.repeat(TEXT_LIMIT) + 'two');
    const diff = await compareTrees(path.join(d, 'a'), path.join(d, 'b'), [[fallback, real]]);
    assert.deepEqual(diff.map((f) => [f.path, f.text, f.firstDifference?.offset]), [
      ['big', false, TEXT_LIMIT],
      ['far', true, undefined],
    ]);
    const big = diff[0]!;
    // TEXT_LIMIT is 16-aligned: the bytes shown start at the difference, and each side has 3 left.
    assert.deepEqual(big.firstDifference, { offset: TEXT_LIMIT, first: Buffer.from('one').toString('hex'), rebuild: Buffer.from('two').toString('hex') });
    assert.equal(big.first?.sha256, createHash('sha256').update('z'.repeat(TEXT_LIMIT) + 'one').digest('hex'));
    const far = diff[1]!;
    assert.equal(far.rebuild?.sha256, createHash('sha256').update(text(real, 'two')).digest('hex'), 'the rebuild\'s hash is of its rewritten bytes');
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});

test('copyTree makes the rewrites, so that the copy reads as it was compared', async () => {
  const d = await mkdtemp(path.join(tmpdir(), 'nb-checkdiff-'));
  const real = 'a'.repeat(32);
  const fallback = 'b'.repeat(32);
  try {
    const src = await tree(path.join(d, 'src'), { 'bin/run': { exec: `#!/nix/store/${fallback}-sh/bin/sh` }, self: { link: `/nix/store/${fallback}-x/bin` } });
    await copyTree(src, path.join(d, 'copy'), [[fallback, real]]);
    assert.equal(await readFile(path.join(d, 'copy', 'bin', 'run'), 'utf8'), `#!/nix/store/${real}-sh/bin/sh`);
    assert.equal(lstatSync(path.join(d, 'copy', 'bin', 'run')).mode & 0o777, 0o700);
    assert.equal(readlinkSync(path.join(d, 'copy', 'self')), `/nix/store/${real}-x/bin`);
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});

test('diffoscope\'s arguments: the folders\' own metadata always ignored; with noise ignored (nixBuilders.check.diffoscopeIgnoreNoise, on unless false) archive members\' too and dates and times masked', () => {
  assert.deepEqual(diffoscopeArgs('/nix/store/a-x', '/tmp/c/out-round1', '/tmp/c/r.txt', false), ['--text', '/tmp/c/r.txt', '--output-empty', '--exclude-directory-metadata=yes', '--', '/nix/store/a-x', '/tmp/c/out-round1']);
  const noisy = diffoscopeArgs('/nix/store/a-x', '/tmp/c/out-round1', '/tmp/c/r.txt', true);
  assert.deepEqual(noisy.slice(3, -3), ['--exclude-directory-metadata=recursive', '--diff-mask=[0-9]{4}-[0-9]{2}-[0-9]{2}', '--diff-mask=[0-9]{1,2}:[0-9]{2}:[0-9]{2}']);
  assert.equal(parseSettings(undefined).check?.diffoscopeIgnoreNoise, true);
  assert.equal(parseSettings({ check: { diffoscopeIgnoreNoise: false } }).check?.diffoscopeIgnoreNoise, false);
  assert.equal(parseSettings({ check: { diffoscopeIgnoreNoise: 'no' as unknown as boolean } }).check?.diffoscopeIgnoreNoise, true);
});
