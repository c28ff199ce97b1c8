// The tree comparison of a reproducibility check (two trees read with Node), the private copy of a
// rebuild, where Nix leaves a rebuild (its fallback path), its exit bits, and the bounded copies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readlinkSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { compareTrees, copyTree } from '../../language-server/check/treeDiff';
import { CheckCopies, decodeBuildExit, fallbackPath } from '../../language-server/check/check';

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
