import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { capabilitiesFor, parseNixVersion } from '../../language-server/nix/version';

test('parses `nix --version` of Nix, pre-releases and forks', () => {
  assert.deepEqual(parseNixVersion('nix (Nix) 2.8.0\n'), { major: 2, minor: 8, patch: 0, text: '2.8.0', implementation: 'Nix' });
  assert.equal(parseNixVersion('nix (Nix) 2.3.16')?.minor, 3);
  assert.equal(parseNixVersion('nix (Nix) 2.18.1pre20231012_dirty')?.text, '2.18.1pre20231012_dirty');
  assert.equal(parseNixVersion('nix (Lix, like Nix) 2.91.1')?.implementation, 'Lix, like Nix');
  assert.equal(parseNixVersion('nix (Nix) 2.33')?.patch, 0);
  assert.equal(parseNixVersion('command not found'), undefined);
});

const caps = (v: string) => {
  const parsed = parseNixVersion(`nix (Nix) ${v}`);
  assert.ok(parsed);
  return capabilitiesFor(parsed);
};

test('spellings follow the version (2.3 -> newest)', () => {
  assert.deepEqual(caps('2.3.16').nixCommandPrefix, []);
  assert.deepEqual(caps('2.3.16').storeInfo, ['ping-store']);
  assert.deepEqual(caps('2.3.16').signPaths, ['sign-paths']);
  assert.equal(caps('2.3.16').internalJsonLog, false);
  assert.deepEqual(caps('2.8.0').nixCommandPrefix, ['--extra-experimental-features', 'nix-command']);
  assert.deepEqual(caps('2.8.0').storeInfo, ['store', 'ping']);
  assert.deepEqual(caps('2.8.0').showDerivation, ['show-derivation']);
  assert.deepEqual(caps('2.8.0').showConfig, ['show-config']);
  assert.equal(caps('2.8.0').repeatSetting, true);
  assert.equal(caps('2.8.0').reportsTrust, false);
  assert.equal(caps('2.13.0').repeatSetting, false);
  assert.equal(caps('2.34.1').asyncPostBuildHook, false);
  assert.equal(caps('2.35.0').asyncPostBuildHook, true);
  assert.equal(caps('2.14.0').storeInfoJson, true);
  assert.deepEqual(caps('2.15.0').showDerivation, ['derivation', 'show']);
  assert.equal(caps('2.15.0').reportsTrust, true);
  assert.deepEqual(caps('2.19.0').storeInfo, ['store', 'info']);
  assert.equal(caps('2.19.0').pathInfoJsonIsMap, true);
  assert.deepEqual(caps('2.3.16').storeCat, ['cat-store']);
  assert.deepEqual(caps('2.4.0').storeCat, ['store', 'cat']);
  assert.deepEqual(caps('2.3.16').storeVerify, ['verify']);
  assert.deepEqual(caps('2.4.0').storeVerify, ['store', 'verify']);
  assert.deepEqual(caps('2.4.0').signPaths, ['store', 'sign']);
  assert.deepEqual(caps('2.20.0').showConfig, ['config', 'show']);
  assert.equal(caps('2.32.0').showDerivationWrapped, false);
  assert.equal(caps('2.33.0').showDerivationWrapped, true);
  assert.deepEqual(caps('3.0.0').storeInfo, ['store', 'info']);
});

test('Nix 2.26.3 as recorded (test/fixtures/nix-2.26.3/version.txt): store info with Trusted:, config show, derivation show, path-info as a map', () => {
  const v = parseNixVersion(readFileSync(path.join(__dirname, '../fixtures/nix-2.26.3/version.txt'), 'utf8'));
  assert.ok(v);
  assert.equal(v.text, '2.26.3');
  const c = capabilitiesFor(v);
  assert.deepEqual(c.storeInfo, ['store', 'info']);
  assert.deepEqual(c.showConfig, ['config', 'show']);
  assert.deepEqual(c.showDerivation, ['derivation', 'show']);
  assert.equal(c.showDerivationWrapped, false);
  assert.equal(c.reportsTrust, true);
  assert.equal(c.storeInfoJson, true);
  assert.equal(c.pathInfoJsonIsMap, true);
  assert.equal(c.repeatSetting, false);
  assert.deepEqual(c.nixCommandPrefix, ['--extra-experimental-features', 'nix-command']);
});

test('the JSON of Nix 2.26.3 has the shapes its capabilities say (derivation-show.json, path-info.json, store-info.json)', () => {
  const json = (name: string) => JSON.parse(readFileSync(path.join(__dirname, '../fixtures/nix-2.26.3', name), 'utf8')) as Record<string, unknown>;
  const c = caps('2.26.3');
  // `derivation show` not wrapped (the {version, derivations} wrapper is 2.33's): drv path → derivation.
  assert.equal(c.showDerivationWrapped, false);
  const derivations = json('derivation-show.json');
  assert.deepEqual(Object.keys(derivations).map((k) => /^\/nix\/store\/[a-z0-9]{32}-top-226\.drv$/.test(k)), [true]);
  const top = Object.values(derivations)[0] as { env: Record<string, string>; inputDrvs: Record<string, unknown> };
  assert.equal(top.env.system, 'x86_64-linux');
  assert.equal(Object.keys(top.inputDrvs).length, 1);
  // `path-info --json` is a map from 2.19 (a list before).
  assert.equal(c.pathInfoJsonIsMap, true);
  const info = json('path-info.json');
  assert.ok(!Array.isArray(info));
  const [[storePath, fields]] = Object.entries(info) as [[string, { narSize: number; ultimate: boolean }]];
  assert.match(storePath, /^\/nix\/store\/[a-z0-9]{32}-ok-226$/);
  assert.equal(fields.ultimate, true);
  // `store info --json` (2.14+), with trust (2.15+).
  assert.equal(c.storeInfoJson, true);
  assert.deepEqual(json('store-info.json'), { trusted: 1, url: 'local', version: '2.26.3' });
});
