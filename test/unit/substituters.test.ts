// Which substituter a path comes from: narinfo / nix-cache-info as real Nix 2.8.0 writes them
// (test/fixtures/nix-2.8.0/cache.narinfo, nix-cache-info.txt: `nix copy --to file://…`), the order
// Nix asks caches in, and what happens when a cache cannot be asked. The HTTP path is exercised
// against a real cache served over HTTP, with real Nix fetching from it, in test/lab/editorBuild.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { cachePriority, findSubstituters, parseNarInfo, readBinaryCacheFile, type CacheReader } from '../../language-server/builds/substituters';
import { describePlan, summarizeDryRun } from '../../language-server/builds/plan';
import type { PlannedDerivation } from '../../language-server/protocol';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'nix-2.8.0');
const fixture = (name: string) => readFileSync(path.join(FIXTURES, name), 'utf8');
const PATH = '/nix/store/kj5fmy9qscw8aja65ygzhngx1i9sj816-top';

test('narinfo: store path, sizes, compression', () => {
  assert.deepEqual(parseNarInfo(fixture('cache.narinfo')), {
    storePath: PATH,
    url: 'nar/1mg4msy99nq6krrbjkwldj1mxpjlzkpycssl82xfmzlj3kxzlkvi.nar.xz',
    compression: 'xz',
    fileSize: 128,
    narSize: 120,
  });
  assert.equal(parseNarInfo(''), undefined);
  assert.equal(parseNarInfo('<html>404</html>'), undefined);
  assert.deepEqual(parseNarInfo('StorePath: /nix/store/x\nFileSize: -1\nNarSize: lots'), { storePath: '/nix/store/x' });
});

test('cache priority: the store default 0 when absent (2.8 file:// caches write none; real Nix\'s order: test/server/caches.test.ts)', () => {
  assert.equal(cachePriority(fixture('nix-cache-info.txt')), 0);
  assert.equal(cachePriority('StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n'), 40);
  assert.equal(cachePriority(undefined), 0);
});

/** An in-memory set of caches: substituter -> file -> text; 'down' throws like an unreachable host. */
function caches(files: Record<string, Record<string, string> | 'down'>): { read: CacheReader; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    read: async (s, file) => {
      asked.push(`${s} ${file}`);
      const c = files[s];
      if (c === 'down') throw new TypeError('fetch failed');
      return c?.[file];
    },
  };
}

const narinfo = (p: string, fileSize: number, narSize: number) => `StorePath: ${p}\nURL: nar/x.nar.xz\nFileSize: ${fileSize}\nNarSize: ${narSize}\n`;
const A = '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a';
const B = '/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b';
const C = '/nix/store/cccccccccccccccccccccccccccccccc-c';

test('each path from the first cache in priority order that has it; others are not asked for it', async () => {
  const { read, asked } = caches({
    'https://low': { 'nix-cache-info': 'Priority: 40', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.narinfo': narinfo(A, 100, 300) },
    'https://high': { 'nix-cache-info': 'Priority: 10', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.narinfo': narinfo(B, 10, 30), 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.narinfo': narinfo(A, 1, 3) },
  });
  const r = await findSubstituters([A, B, C], ['https://low', 'https://high', 'ssh://builder'], { read });
  assert.deepEqual(r.sources, [
    { path: A, substituter: 'https://high', downloadBytes: 1, narBytes: 3 },
    { path: B, substituter: 'https://high', downloadBytes: 10, narBytes: 30 },
    { path: C },
  ]);
  assert.deepEqual(r.bySubstituter, [{ substituter: 'https://high', paths: 2, downloadBytes: 11, narBytes: 33 }]);
  assert.deepEqual(r.unchecked, [{ substituter: 'ssh://builder', reason: 'not a file:// or http(s):// binary cache: not asked' }]);
  assert.ok(!asked.includes('https://low aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.narinfo'), 'A was found first in the higher-priority cache');
  assert.ok(asked.includes('https://low cccccccccccccccccccccccccccccccc.narinfo'));
});

test('a cache that cannot be reached is named with the reason; the others still answer', async () => {
  const { read } = caches({ 'https://down': 'down', 'http://up': { 'nix-cache-info': '', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.narinfo': narinfo(A, 5, 6) } });
  const r = await findSubstituters([A], ['https://down', 'http://up'], { read });
  assert.deepEqual(r.sources, [{ path: A, substituter: 'http://up', downloadBytes: 5, narBytes: 6 }]);
  assert.deepEqual(r.unchecked, [{ substituter: 'https://down', reason: 'could not be asked: fetch failed' }]);
});

test('a cache that fails while asked: its paths stay unknown, not credited to a lower cache', async () => {
  const asked: string[] = [];
  const read: CacheReader = async (s, file) => {
    asked.push(`${s} ${file}`);
    if (s === 'https://flaky') {
      if (file === 'nix-cache-info') return 'Priority: 10';
      throw new Error('HTTP 500 Internal Server Error');
    }
    return file === 'nix-cache-info' ? 'Priority: 40' : narinfo(A, 1, 1);
  };
  const r = await findSubstituters([A], ['https://low', 'https://flaky'], { read });
  assert.deepEqual(r.sources, [{ path: A }]);
  assert.deepEqual(r.unchecked, [{ substituter: 'https://flaky', reason: 'could not be asked: HTTP 500 Internal Server Error' }]);
  assert.ok(!asked.some((a) => a.startsWith('https://low a')), 'the lower cache is not asked for it');
});

test('priority from the URL (?priority=N) before nix-cache-info; an HTTP cache without nix-cache-info is not used', async () => {
  const { read } = caches({
    'https://a?priority=5': { 'nix-cache-info': 'Priority: 90', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.narinfo': narinfo(A, 1, 1) },
    'https://b': { 'nix-cache-info': 'Priority: 10', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.narinfo': narinfo(A, 2, 2) },
    'https://nocache': { 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.narinfo': narinfo(A, 3, 3) },
  });
  const r = await findSubstituters([A], ['https://nocache', 'https://b', 'https://a?priority=5'], { read });
  assert.equal(r.sources[0]?.substituter, 'https://a?priority=5');
  assert.deepEqual(r.unchecked, [{ substituter: 'https://nocache', reason: 'has no nix-cache-info: Nix cannot use it as a binary cache' }]);
});

test('nothing to fetch: no cache is asked', async () => {
  const { read, asked } = caches({ 'https://c': { 'nix-cache-info': '' } });
  assert.deepEqual(await findSubstituters([], ['https://c'], { read }), { sources: [], bySubstituter: [], unchecked: [] });
  assert.deepEqual(asked, []);
});

test('a narinfo for another path (a hash collision or a broken cache) does not count', async () => {
  const { read } = caches({ 'https://c': { 'nix-cache-info': '', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.narinfo': narinfo(B, 1, 1) } });
  const r = await findSubstituters([A], ['https://c'], { read });
  assert.deepEqual(r.sources, [{ path: A }]);
});

test('a file:// cache is read from disk; a missing narinfo is "not there", not an error', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nb-cache-'));
  writeFileSync(path.join(dir, 'nix-cache-info'), fixture('nix-cache-info.txt'));
  writeFileSync(path.join(dir, 'kj5fmy9qscw8aja65ygzhngx1i9sj816.narinfo'), fixture('cache.narinfo'));
  const r = await findSubstituters([PATH, A], [`file://${dir}`]);
  assert.deepEqual(r.sources, [{ path: PATH, substituter: `file://${dir}`, downloadBytes: 128, narBytes: 120 }, { path: A }]);
  assert.deepEqual(r.unchecked, []);
  assert.equal(await readBinaryCacheFile(`file://${dir}`, 'nope.narinfo', new AbortController().signal), undefined);
  // A cache directory that does not exist has nothing.
  const gone = await findSubstituters([A], ['file:///nonexistent/cache']);
  assert.deepEqual(gone.sources, [{ path: A }]);
  assert.deepEqual(gone.unchecked, []);
});

test('an HTTP cache written with a trailing slash and a query is asked at <cache>/<file>, not <cache>//<file>', async () => {
  const asked: string[] = [];
  const server = http.createServer((req, res) => {
    asked.push(req.url ?? '');
    res.end('StoreDir: /nix/store\n');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const { port } = server.address() as AddressInfo;
    const text = await readBinaryCacheFile(`http://127.0.0.1:${port}/cache/?priority=40`, 'nix-cache-info', new AbortController().signal);
    assert.equal(text, 'StoreDir: /nix/store\n');
    assert.deepEqual(asked, ['/cache/nix-cache-info']);
  } finally {
    server.close();
  }
});

test('a cache that never answers is given up after the timeout', async () => {
  // Like a real request, it holds a handle while pending (AbortSignal.timeout's timer does not keep
  // the process alive on its own).
  const never: CacheReader = (_s, _f, signal) =>
    new Promise((_, reject) => {
      const socket = setInterval(() => undefined, 1000);
      signal.addEventListener('abort', () => {
        clearInterval(socket);
        reject(signal.reason);
      });
    });
  const r = await findSubstituters([A], ['https://slow'], { read: never, timeoutMs: 50 });
  assert.deepEqual(r.unchecked, [{ substituter: 'https://slow', reason: 'could not be asked: no answer in time' }]);
});

test('the plan for people: builds grouped by machine, nothing-can-build with the fix, fetches by cache', () => {
  const drv = (name: string, p: Partial<PlannedDerivation>): PlannedDerivation => ({
    drvPath: `/nix/store/${'x'.repeat(32)}-${name}.drv`,
    name,
    system: 'x86_64-linux',
    requiredSystemFeatures: [],
    target: false,
    verdict: 'remote',
    summary: '',
    ...p,
  });
  const builds = [
    drv('a', { machine: 'b2' }),
    drv('b', { machine: 'b2' }),
    drv('c', { verdict: 'local', machine: 'this machine' }),
    drv('d', { verdict: 'none', problem: 'requires riscv64-linux: no builder provides it (…)\nFix: add a builder for riscv64-linux' }),
  ];
  const fetch = { sources: [{ path: A, substituter: 'https://c', downloadBytes: 2 ** 20, narBytes: 2 ** 21 }, { path: B }], bySubstituter: [{ substituter: 'https://c', paths: 1, downloadBytes: 2 ** 20, narBytes: 2 ** 21 }], unchecked: [{ substituter: 's3://x', reason: 'not asked' }] };
  assert.deepEqual(describePlan({ toFetch: [A, B], downloadMiB: 1, unpackedMiB: 2 }, builds, fetch), [
    'Build 4 derivations:',
    '  on b2: a, b',
    '  on this machine: c',
    '  nothing can build d: requires riscv64-linux: no builder provides it (…)\nFix: add a builder for riscv64-linux',
    'Fetch 2 paths (1.00 MiB download, 2.00 MiB unpacked):',
    '  from https://c: 1 path, 1.00 MiB download, 2.00 MiB unpacked (a)',
    '  from a substituter not asked here: b',
    '  s3://x not asked',
  ]);
  assert.equal(summarizeDryRun({ toBuild: builds.map((b) => b.drvPath), toFetch: [] }, [builds[3]?.drvPath as string]), '4 derivations will be built (nothing can build d)');
  // Many names: a few, then how many more.
  const many = Array.from({ length: 20 }, (_, i) => drv(`n${i}`, { machine: 'b1' }));
  assert.deepEqual(describePlan({ toFetch: [] }, many, { sources: [], bySubstituter: [], unchecked: [] }), ['Build 20 derivations:', '  on b1: n0, n1, n2, n3, n4, n5, n6, n7 and 12 more']);
});
