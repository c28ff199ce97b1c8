// The .drv reader against store derivations written by real Nix 2.8.0 (test/fixtures/nix-2.8.0/derivation-*.drv).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseATerm, parseDerivation, parseFullDerivation, readDerivation, readDerivations, readFullDerivation } from '../../language-server/nix/derivationFile';

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

test('the whole derivation: outputs, input derivations with the outputs used, sources, builder, arguments, environment', () => {
  const d = parseFullDerivation('/nix/store/x-top.drv', fixture('derivation-with-inputs.drv'));
  assert.ok(d);
  assert.equal(d.name, 'top');
  assert.deepEqual([...d.outputs], [['out', { path: '/nix/store/1gvq4gjjvy98szk3257h4k0f7xv7vli1-top', hashAlgo: '', hash: '' }]]);
  assert.deepEqual([...d.inputDrvs], [
    ['/nix/store/gxn3grf999722csyd82cmbspibsx8lzy-d1.drv', ['out']],
    ['/nix/store/vd5szn305hi24d4brxwfg9wz09hq5i2a-d0.drv', ['out']],
  ]);
  assert.deepEqual(d.inputSrcs, []);
  assert.equal(d.system, 'x86_64-linux');
  assert.equal(d.builder, '/bin/sh');
  assert.equal(d.args[0], '-c');
  assert.match(d.args[1] ?? '', /echo done > \$out$/);
  assert.equal(d.env.get('salt'), 's2');
  assert.equal(d.env.size, 6);
  // Dynamic derivations' richer input entry: the outputs, then the children.
  const dyn = parseFullDerivation('/nix/store/x-dyn.drv', 'DrvWithVersion("xp-dyn-drv",[("out","","r:sha256","")],[("/nix/store/a-d.drv",(["out","dev"],[]))],[],"x86_64-linux","/bin/sh",[],[])');
  assert.deepEqual([...(dyn?.inputDrvs ?? [])], [['/nix/store/a-d.drv', ['out', 'dev']]]);
  assert.deepEqual(dyn?.outputs.get('out'), { path: '', hashAlgo: 'r:sha256', hash: '' });
});

test('the whole derivation read here, or through Nix when this process cannot read it', async () => {
  const good = path.join(FIXTURES, 'derivation-features.drv');
  const text = readFileSync(good, 'utf8');
  const asked: string[] = [];
  const through = (p: string) => {
    asked.push(p);
    return Promise.resolve(text);
  };
  assert.equal((await readFullDerivation(good, through))?.system, 'aarch64-linux');
  assert.equal((await readFullDerivation('/nonexistent/store/abc-elsewhere.drv', through))?.system, 'aarch64-linux');
  assert.equal(await readFullDerivation('/nonexistent/store/abc-elsewhere.drv'), undefined);
  assert.equal(await readFullDerivation('relative.drv', through), undefined);
  assert.deepEqual(asked, ['/nonexistent/store/abc-elsewhere.drv']);
});
