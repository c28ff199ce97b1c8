import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSshStoreUri, parseStoreUri, storeBase, storeHost } from '../../language-server/nix/storeUri';

const parts = (uri: string) => {
  const s = parseStoreUri(uri);
  return s && { ...s, params: Object.fromEntries(s.params) };
};

test('ssh:// and ssh-ng:// with user, query and no path', () => {
  assert.deepEqual(parts('ssh://b1'), { scheme: 'ssh', authority: 'b1', host: 'b1', hostname: 'b1', path: '', params: {} });
  assert.deepEqual(parts('ssh-ng://nopath@b4?remote-program=/usr/bin/nix-daemon&ssh-key=%2Froot%2Fk'), {
    scheme: 'ssh-ng',
    authority: 'nopath@b4',
    user: 'nopath',
    host: 'b4',
    hostname: 'b4',
    path: '',
    params: { 'remote-program': '/usr/bin/nix-daemon', 'ssh-key': '/root/k' },
  });
});

test('a port stays in the host Nix hands to ssh, and is told apart', () => {
  const s = parseStoreUri('ssh://u@b1:2201');
  assert.equal(s?.host, 'b1:2201');
  assert.equal(s?.hostname, 'b1');
  assert.equal(s?.port, 2201);
  assert.equal(s?.user, 'u');
});

test('IPv6 hosts in brackets, with and without a port', () => {
  assert.deepEqual([parseStoreUri('ssh://[::1]')?.hostname, parseStoreUri('ssh://[::1]')?.port], ['::1', undefined]);
  const s = parseStoreUri('ssh-ng://root@[fe80::1]:22?compress=true');
  assert.deepEqual([s?.user, s?.host, s?.hostname, s?.port, s?.params.get('compress')], ['root', '[fe80::1]:22', 'fe80::1', 22, 'true']);
  // Unbracketed, the colons are part of the name (not a port).
  assert.deepEqual([parseStoreUri('ssh://::1')?.hostname, parseStoreUri('ssh://::1')?.port], ['::1', undefined]);
});

test('the user is what comes before the last @ (where ssh splits it)', () => {
  const s = parseStoreUri('ssh://a@corp@b1');
  assert.deepEqual([s?.user, s?.host], ['a@corp', 'b1']);
});

test('a base64 host key keeps its = padding, + and /; remote-program is decoded', () => {
  const key = 'c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUs+/Zm9v==';
  const s = parseSshStoreUri(`ssh-ng://b1?base64-ssh-public-host-key=${key}&remote-program=%2Fnix%2Fvar%2Fnix%2Fprofiles%2Fdefault%2Fbin%2Fnix-daemon`);
  assert.equal(s?.params.get('base64-ssh-public-host-key'), key);
  assert.equal(s?.params.get('remote-program'), '/nix/var/nix/profiles/default/bin/nix-daemon');
});

test('query parameters as Nix reads them: first of a repeated key, parts without = ignored, bad escapes kept', () => {
  const s = parseStoreUri('ssh://b1?remote-program=a&remote-program=b&compress&x=%zz');
  assert.deepEqual(Object.fromEntries(s?.params ?? []), { 'remote-program': 'a', x: '%zz' });
});

test('file://, http(s)://, s3:// and unix:// stores', () => {
  assert.deepEqual(parts('file:///var/cache/nix'), { scheme: 'file', authority: '', host: '', hostname: '', path: '/var/cache/nix', params: {} });
  const https = parseStoreUri('https://cache.example.org:8443/prefix?priority=30');
  assert.deepEqual([https?.scheme, https?.host, https?.hostname, https?.port, https?.path, https?.params.get('priority')], ['https', 'cache.example.org:8443', 'cache.example.org', 8443, '/prefix', '30']);
  assert.equal(parseStoreUri('http://10.0.0.2')?.hostname, '10.0.0.2');
  const s3 = parseStoreUri('s3://nix-cache?region=eu-west-1&endpoint=minio.local');
  assert.deepEqual([s3?.scheme, s3?.host, s3?.params.get('region')], ['s3', 'nix-cache', 'eu-west-1']);
  assert.deepEqual([parseStoreUri('unix:///run/nix/socket')?.scheme, parseStoreUri('unix:///run/nix/socket')?.path], ['unix', '/run/nix/socket']);
});

test('bare forms: daemon, local (with a root parameter), auto, and a path', () => {
  assert.deepEqual(parts('daemon'), { scheme: 'daemon', authority: '', host: '', hostname: '', path: '', params: {} });
  assert.deepEqual(parts('local?root=/tmp/store'), { scheme: 'local', authority: '', host: '', hostname: '', path: '', params: { root: '/tmp/store' } });
  assert.equal(parseStoreUri('auto')?.scheme, 'auto');
  assert.deepEqual([parseStoreUri('/tmp/root')?.scheme, parseStoreUri('/tmp/root')?.path], ['local', '/tmp/root']);
});

test('not a store URI: undefined, never a throw', () => {
  for (const text of ['', 'b1', 'ssh:/b1', '://b1', '1ssh://b1', '%%%']) assert.equal(parseStoreUri(text), undefined, text);
});

test('parseSshStoreUri: only ssh:// and ssh-ng:// with a host', () => {
  assert.equal(parseSshStoreUri('ssh-ng://b4')?.scheme, 'ssh-ng');
  for (const uri of ['daemon', 'https://cache.example.org', 'ssh://', 'ssh:///path', 'file:///x']) assert.equal(parseSshStoreUri(uri), undefined, uri);
});

test('storeHost: the host for lists, the URI itself for stores without one', () => {
  assert.equal(storeHost('ssh://user@b1?ssh-key=/k'), 'b1');
  assert.equal(storeHost('ssh://b1:2201'), 'b1:2201');
  assert.equal(storeHost('s3://bucket?region=x'), 'bucket');
  assert.equal(storeHost('daemon'), 'daemon');
  assert.equal(storeHost('file:///var/cache'), 'file:///var/cache');
});

test('storeBase: the URI without parameters and trailing slashes', () => {
  assert.equal(storeBase('https://cache.example.org/?priority=40'), 'https://cache.example.org');
  assert.equal(storeBase('ssh://user@b1?remote-program=/x/'), 'ssh://user@b1');
  assert.equal(storeBase('file:///var/cache/'), 'file:///var/cache');
  assert.equal(storeBase('daemon'), 'daemon');
});
