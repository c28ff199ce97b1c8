// Host keys as OpenSSH checks them. The keys, fingerprints and hashed known_hosts lines below were
// made by OpenSSH 9.2 (ssh-keygen -t …, ssh-keygen -lf, ssh-keygen -H), so the expectations are
// OpenSSH's own output, not ours.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  fingerprintSha256,
  hashHostName,
  hostPatternsMatch,
  keyFromBlob,
  knownHostsLine,
  knownHostsName,
  machinesColumnEntries,
  machinesHostKeyColumn,
  parseKnownHosts,
  parseMachinesHostKey,
  parsePublicKeyLine,
  preferredHostKeyAlgorithms,
  verifyHostKey,
} from '../../language-server/remote/hostKeys';

// ssh-keygen -t ed25519 / -t ecdsa, and `ssh-keygen -lf` of each.
const K1 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICheyNS+5lzd/FAxVj5aHbqeoGbSjBotu4U9T+300Ech hk1';
const K1_FP = 'SHA256:rRwSAKPleXh3xzdYhE3nSlplgS40CxriWYvJ37Km29s';
const K2 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID9NDHtHBMiX9hudeX+gejJ7LIl0NX7sFfHsOMsS2onf hk2';
const K2_FP = 'SHA256:hOBu1Bs5dNegsOjucCObmm/BpzUGmjhTuM93Ncbqq8s';
const K3 = 'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEVIyPxRptWPZrXNBeY2EXYiNTxN2asOD9q3syCQP/ity5unbMY8z06yFqU6YxPZwSAtKb2gC/Yh+jEDjoL1YBU= hk3';
const K3_FP = 'SHA256:ojkb9xBbZzuCvzi/hj6NWbOVL51CpBxSbe3fX8t7MEo';

// `ssh-keygen -H` of "b1 <K1>" and "[127.0.0.1]:2201 <K2>".
const HASHED = [
  '|1|LTKNcmgsfR3inmONW6zFoDyi51o=|k7m8J1L7dJ8oO5NQ5zMcwmbuUGE= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICheyNS+5lzd/FAxVj5aHbqeoGbSjBotu4U9T+300Ech',
  '|1|ACk9hsDO7JmAEJUqYfZaCTl/asU=|vVob/go3bJQUseR4ijBut63p3oc= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID9NDHtHBMiX9hudeX+gejJ7LIl0NX7sFfHsOMsS2onf',
].join('\n');

const key = (line: string) => {
  const k = parsePublicKeyLine(line);
  assert.ok(k, line);
  return k;
};

test('public key lines parse; SHA256 fingerprints are what ssh-keygen -lf prints', () => {
  const k1 = key(K1);
  assert.equal(k1.type, 'ssh-ed25519');
  assert.equal(k1.comment, 'hk1');
  assert.equal(fingerprintSha256(k1), K1_FP);
  assert.equal(fingerprintSha256(key(K2)), K2_FP);
  assert.equal(fingerprintSha256(key(K3)), K3_FP);
  // The blob a server presents gives the same key and fingerprint.
  const fromBlob = keyFromBlob(k1.blob);
  assert.equal(fromBlob?.type, 'ssh-ed25519');
  assert.equal(fingerprintSha256(k1.blob), K1_FP);
});

test('parsePublicKeyLine is total: junk gives undefined', () => {
  for (const junk of ['', 'ssh-ed25519', 'ssh-ed25519 !!!', 'ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAICheyNS+5lzd/FAxVj5aHbqeoGbSjBotu4U9T+300Ech', 'hello world', 'ssh-ed25519 QUFBQQ==']) {
    assert.equal(parsePublicKeyLine(junk), undefined, junk);
  }
  assert.equal(keyFromBlob(Buffer.alloc(0)), undefined);
  assert.equal(keyFromBlob(Buffer.from([0, 0, 0, 200, 1])), undefined);
});

test('machines column 8 is base64 of the "ssh-ed25519 AAAA…" line', () => {
  const k1 = key(K1);
  const column = machinesHostKeyColumn(k1);
  assert.equal(Buffer.from(column, 'base64').toString(), K1.split(' ').slice(0, 2).join(' '));
  const parsed = parseMachinesHostKey(column);
  assert.ok(parsed.ok);
  assert.equal(parsed.keys.length, 1);
  assert.equal(fingerprintSha256(parsed.keys[0]!), K1_FP);
  // With a comment, as some people paste the whole .pub file.
  const withComment = parseMachinesHostKey(Buffer.from(`${K1}\n`).toString('base64'));
  assert.ok(withComment.ok);
  assert.equal(withComment.keys[0]?.comment, 'hk1');
});

test('machines column 8 mistakes get a message that says how to fix them', () => {
  const bare = parseMachinesHostKey(K1.split(' ')[1]!);
  assert.equal(bare.ok, false);
  assert.match(!bare.ok ? bare.message : '', /bare key.*use c3NoLWVkMjU1MTkg/);
  const notBase64 = parseMachinesHostKey('ssh-ed25519 AAAA');
  assert.equal(notBase64.ok, false);
  const notAKey = parseMachinesHostKey(Buffer.from('hello world').toString('base64'));
  assert.equal(notAKey.ok, false);
  assert.match(!notAKey.ok ? notAKey.message : '', /decodes to 'hello world'/);
});

test('known_hosts: plain, list, wildcard, negated, hashed and bracketed-port entries', () => {
  const text = [
    '# comment',
    '',
    `b1,b1.example.org ${K1}`,
    `*.lab.example.org,!evil.lab.example.org ${K2}`,
    `[127.0.0.1]:2201 ${K3}`,
    'garbage line',
    '@unknown-marker b1 ' + K1,
    HASHED,
  ].join('\n');
  const parsed = parseKnownHosts(text, '/home/u/.ssh/known_hosts');
  assert.equal(parsed.entries.length, 5);
  assert.deepEqual(parsed.badLines, [6, 7]);
  assert.equal(parsed.entries[0]?.line, 3);

  assert.ok(hostPatternsMatch('b1,b1.example.org', 'b1'));
  assert.ok(hostPatternsMatch('b1,b1.example.org', 'B1.EXAMPLE.ORG'), 'host names are case-insensitive');
  assert.ok(!hostPatternsMatch('b1,b1.example.org', 'b10'));
  assert.ok(hostPatternsMatch('*.lab.example.org,!evil.lab.example.org', 'b7.lab.example.org'));
  assert.ok(!hostPatternsMatch('*.lab.example.org,!evil.lab.example.org', 'evil.lab.example.org'), 'negation wins');
  assert.ok(hostPatternsMatch('b?', 'b2'));
  assert.ok(!hostPatternsMatch('b?', 'b22'));
  assert.ok(!hostPatternsMatch('b.', 'bx'), 'a dot is not a regex wildcard');
  // Hashed lines made by ssh-keygen -H.
  const hashed = parseKnownHosts(HASHED, 'kh').entries;
  assert.ok(hostPatternsMatch(hashed[0]!.hostPatterns, 'b1'));
  assert.ok(!hostPatternsMatch(hashed[0]!.hostPatterns, 'b2'));
  assert.ok(hostPatternsMatch(hashed[1]!.hostPatterns, '[127.0.0.1]:2201'));
  assert.ok(!hostPatternsMatch(hashed[1]!.hostPatterns, '127.0.0.1'));
  assert.ok(!hostPatternsMatch('|1|junk', 'b1'));
  // Our own hashing agrees with ssh-keygen's.
  const salt = Buffer.from('LTKNcmgsfR3inmONW6zFoDyi51o=', 'base64');
  assert.equal(hashHostName('b1', salt), '|1|LTKNcmgsfR3inmONW6zFoDyi51o=|k7m8J1L7dJ8oO5NQ5zMcwmbuUGE=');
});

test('the name ssh looks up: HostKeyAlias, else HostName, bracketed with a non-22 port', () => {
  assert.equal(knownHostsName('127.0.0.1', 2201, 'b1'), 'b1');
  assert.equal(knownHostsName('127.0.0.1', 2201), '[127.0.0.1]:2201');
  assert.equal(knownHostsName('builder.example.org', 22), 'builder.example.org');
  assert.equal(knownHostsLine('[127.0.0.1]:2201', key(K1)), `[127.0.0.1]:2201 ${K1.split(' ').slice(0, 2).join(' ')}`);
});

test('verdicts: match, changed (same type), changed (other type), unknown, revoked, hashed', () => {
  const entries = parseKnownHosts([`b1 ${K1}`, `b3 ${K3}`, `@cert-authority * ${K2}`, HASHED].join('\n'), '/kh').entries;
  const k1 = key(K1);
  const k2 = key(K2);
  assert.equal(verifyHostKey(k1, entries, 'b1').kind, 'match');
  const changed = verifyHostKey(k2, entries, 'b1');
  assert.equal(changed.kind, 'mismatch');
  assert.ok(changed.kind === 'mismatch' && changed.sameType);
  assert.equal(changed.kind === 'mismatch' ? changed.expected[0]?.line : 0, 1);
  const otherType = verifyHostKey(k1, entries, 'b3');
  assert.ok(otherType.kind === 'mismatch' && !otherType.sameType);
  assert.equal(verifyHostKey(k1, entries, 'b9').kind, 'unknown', '@cert-authority lines do not pin plain keys');
  // Hashed entries count like plain ones.
  assert.equal(verifyHostKey(k2, entries, '[127.0.0.1]:2201').kind, 'match');
  assert.equal(verifyHostKey(k1, entries, '[127.0.0.1]:2201').kind, 'mismatch');
  const revoked = parseKnownHosts(`@revoked * ${K1}\nb1 ${K1}`, '/kh').entries;
  assert.equal(verifyHostKey(k1, revoked, 'b1').kind, 'revoked');
});

test('column 8 entries live under the URI host, as Nix writes them', () => {
  const k1 = key(K1);
  const entries = machinesColumnEntries('b1', [k1]);
  assert.equal(verifyHostKey(k1, entries, 'b1').kind, 'match');
  // ssh looks up [127.0.0.1]:2201 when there is no HostKeyAlias: the pinned key is not found.
  assert.equal(verifyHostKey(k1, entries, '[127.0.0.1]:2201').kind, 'unknown');
  assert.equal(verifyHostKey(key(K2), entries, 'b1').kind, 'mismatch');
});

test('host-key algorithms: known key types first, as OpenSSH orders them', () => {
  const all = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
  assert.deepEqual(preferredHostKeyAlgorithms([key(K3)], all), ['ecdsa-sha2-nistp256', 'ssh-ed25519', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
  assert.deepEqual(preferredHostKeyAlgorithms([], all), all);
  const rsa = { type: 'ssh-rsa', blob: Buffer.alloc(0) };
  assert.deepEqual(preferredHostKeyAlgorithms([rsa], all).slice(0, 3), ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
});
