// The .drv reader against store derivations written by real Nix 2.8.0 (test/fixtures/nix-2.8.0/derivation-*.drv).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseATerm, parseDerivation, readDerivation, readDerivations } from '../../language-server/nix/derivationFile';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'nix-2.8.0');
const fixture = (name: string) => readFileSync(path.join(FIXTURES, name), 'utf8');

test('platform, features and preferLocalBuild from the environment; escapes in strings', () => {
  const d = parseDerivation('/nix/store/p5rgwszg39h1rylnfbs8gmprvw79hzvp-needs-kvm.drv', fixture('derivation-features.drv'));
  assert.ok(d);
  assert.equal(d.name, 'needs-kvm');
  assert.equal(d.system, 'aarch64-linux');
  assert.deepEqual(d.requiredSystemFeatures, ['kvm', 'big-parallel']);
  assert.equal(d.preferLocalBuild, true);
  assert.deepEqual(d.inputDrvs, []);
  const term = parseATerm(fixture('derivation-features.drv'));
  assert.ok(Array.isArray(term));
  assert.deepEqual(term[5], ['-c', 'echo "quoted\\\\ \n tab\t" > $out']);
});

test('structured attributes: features from the JSON', () => {
  const d = parseDerivation('/nix/store/x-structured.drv', fixture('derivation-structured-attrs.drv'));
  assert.ok(d);
  assert.equal(d.system, 'x86_64-linux');
  assert.deepEqual(d.requiredSystemFeatures, ['nixos-test']);
  assert.equal(d.preferLocalBuild, true);
});

test('input derivations', () => {
  const d = parseDerivation('/nix/store/x-top.drv', fixture('derivation-with-inputs.drv'));
  assert.ok(d);
  assert.equal(d.inputDrvs.length, 2);
  assert.ok(d.inputDrvs.every((p) => /^\/nix\/store\/[0-9a-z]{32}-d\d\.drv$/.test(p)));
  assert.deepEqual(d.requiredSystemFeatures, []);
  assert.equal(d.preferLocalBuild, false);
});

test('the versioned form of newer Nix is read by position after the version', () => {
  const text = fixture('derivation-features.drv').replace(/^Derive\(\[/, 'DrvWithVersion("xp-dyn-drv",[');
  const d = parseDerivation('/nix/store/x-needs-kvm.drv', text);
  assert.equal(d?.system, 'aarch64-linux');
  assert.deepEqual(d?.requiredSystemFeatures, ['kvm', 'big-parallel']);
});

test('total: anything that is not a derivation gives undefined, never throws', () => {
  const good = fixture('derivation-features.drv');
  for (const bad of ['', 'Derive(', 'Derive([("out"', '{"json":1}', good.slice(0, -1), `${good}x`, 'Derive([],[],[])', 'Derive("a\\', '\u0000']) {
    assert.equal(parseDerivation('/nix/store/x.drv', bad), undefined, JSON.stringify(bad.slice(0, 40)));
  }
  // Every prefix of a real derivation: no throw.
  for (let i = 0; i < good.length; i += 7) parseDerivation('/nix/store/x.drv', good.slice(0, i));
});

test('reading files: missing, not a .drv path, or not a derivation gives undefined', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nb-drv-'));
  const junk = path.join(dir, 'junk.drv');
  writeFileSync(junk, '{"not": "a derivation"}');
  assert.equal(await readDerivation('/nonexistent/x.drv'), undefined);
  assert.equal(await readDerivation('relative.drv'), undefined);
  assert.equal(await readDerivation(path.join(FIXTURES, 'README.md')), undefined);
  assert.equal(await readDerivation(junk), undefined);
  const good = [path.join(FIXTURES, 'derivation-features.drv'), path.join(FIXTURES, 'derivation-with-inputs.drv')];
  const many = await readDerivations([good[0] as string, '/nonexistent/y.drv', junk, good[1] as string]);
  assert.deepEqual([...many.keys()].sort(), [...good].sort());
  assert.equal(many.get(good[0] as string)?.system, 'aarch64-linux');
});

test('a .drv this process cannot read (a store elsewhere) is read through Nix when a reader is given; only those', async () => {
  const good = path.join(FIXTURES, 'derivation-features.drv');
  const text = readFileSync(good, 'utf8');
  const asked: string[] = [];
  const many = await readDerivations([good, '/nonexistent/store/abc-elsewhere.drv', 'relative.drv'], {
    readThroughNix: (p) => {
      asked.push(p);
      return Promise.resolve(text);
    },
  });
  assert.deepEqual(asked, ['/nonexistent/store/abc-elsewhere.drv']);
  assert.equal(many.get('/nonexistent/store/abc-elsewhere.drv')?.system, 'aarch64-linux');
  assert.equal(many.size, 2);
});
