import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseConfigText, toNixConfig } from '../../language-server/nix/nixConf';
import { collectBuilders } from '../../language-server/builders/collect';

// Recorded with Nix 2.8.0: `NIX_CONF_DIR=<dir> nix --extra-experimental-features nix-command show-config`
// for a nix.conf with inline and @file builders, max-jobs 0, trusted users and keys.
const SHOW_CONFIG = readFileSync(path.join(__dirname, '../fixtures/nix-2.8.0/show-config.txt'), 'utf8');

test('the effective configuration is read from `nix show-config` (Nix 2.8.0)', () => {
  const c = toNixConfig(parseConfigText(SHOW_CONFIG));
  assert.equal(c.system, 'x86_64-linux');
  assert.deepEqual(c.extraPlatforms, ['aarch64-linux']);
  assert.deepEqual(c.systemFeatures, ['benchmark', 'big-parallel', 'kvm', 'nixos-test']);
  assert.equal(c.maxJobs, 0);
  assert.equal(c.cores, 4);
  assert.equal(c.builders, '@/etc/nix/machines ; ssh://inline x86_64-linux');
  assert.equal(c.buildersUseSubstitutes, false);
  assert.deepEqual(c.substituters, []);
  assert.deepEqual(c.trustedUsers, ['root', 'alice', '@wheel']);
  assert.deepEqual(c.trustedPublicKeys, ['lab:AAAA=', 'cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=']);
});

test('builders: inline and @file entries, each with its source; a missing /etc/nix/machines is normal', async () => {
  const files: Record<string, string> = { '/etc/nix/machines': 'ssh://m1 aarch64-linux\n@extra\n', '/etc/nix/extra': 'ssh://m2 x86_64-linux\n' };
  const read = async (f: string) => {
    const t = files[f];
    if (t === undefined) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
    return t;
  };
  const c = toNixConfig(parseConfigText(SHOW_CONFIG));
  const got = await collectBuilders(c.builders, { machinesFiles: [], builders: [] }, read);
  assert.deepEqual(
    got.builders.map((b) => [b.name, b.source.label]),
    [
      ['m1', '/etc/nix/machines'],
      ['m2', '/etc/nix/extra (included)'],
      ['inline', 'nix.conf builders'],
    ],
  );
  assert.deepEqual(got.problems, []);
  const none = await collectBuilders('@/etc/nix/machines', { machinesFiles: ['/nowhere/machines'], builders: [] }, async () => {
    throw Object.assign(new Error('missing'), { code: 'ENOENT' });
  });
  assert.deepEqual(none.builders, []);
  assert.equal(none.problems.length, 1, 'only the file the user named is a problem');
  assert.match(none.problems[0]?.message ?? '', /\/nowhere\/machines does not exist/);
});

test('an include loop is reported, not followed forever', async () => {
  const got = await collectBuilders('@/a', { machinesFiles: [], builders: [] }, async (f) => (f === '/a' ? '@/b\n' : '@/a\n'));
  assert.equal(got.problems.length, 1);
  assert.match(got.problems[0]?.message ?? '', /includes itself/);
});

// Recorded with Nix 2.26.3 by test/fixtures/nix-2.26.3/record.sh: `nix config show` (2.20+) for
// a nix.conf with `build-users-group =`, `substituters =` and `sandbox = false`.
test('the effective configuration is read from `nix config show` (Nix 2.26.3): empty values, defaults of a newer Nix', () => {
  const raw = parseConfigText(readFileSync(path.join(__dirname, '../fixtures/nix-2.26.3/config-show.txt'), 'utf8'));
  const c = toNixConfig(raw);
  assert.equal(c.system, 'x86_64-linux');
  assert.deepEqual(c.extraPlatforms, ['i686-linux', 'x86_64-v1-linux', 'x86_64-v2-linux', 'x86_64-v3-linux', 'x86_64-v4-linux']);
  assert.deepEqual(c.systemFeatures, ['benchmark', 'big-parallel', 'kvm', 'nixos-test', 'uid-range']);
  assert.equal(c.maxJobs, 1);
  assert.equal(c.cores, 2);
  assert.equal(c.builders, '@/tmp/nix-builders-fixtures-2.26/conf/machines');
  assert.deepEqual(c.substituters, []);
  assert.deepEqual(c.trustedUsers, ['root']);
  assert.equal(raw.get('build-users-group'), '');
  assert.equal(raw.get('access-tokens'), '');
  assert.equal(raw.get('sandbox'), 'false');
});
