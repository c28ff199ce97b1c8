import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendEntry, formatMachine, parseMachineLine, parseMachines, removeEntry, replaceEntry } from '../../language-server/nix/machines';

const FILE = `# Our builders
ssh://b1 x86_64-linux /root/.ssh/id 4 2 kvm,big-parallel - c3NoLWVkMjU1MTkgQUFBQQ==
  b2 aarch64-linux,armv7l-linux - 1 1   # the Pi
ssh-ng://user@b3 - - - - - benchmark ; ssh://b4 x86_64-linux
@/etc/nix/more-machines

`;

test('parses the 8 columns, defaults, schemeless hosts, ; separators and includes', () => {
  const doc = parseMachines(FILE);
  assert.equal(doc.entries.length, 5);
  const [b1, b2, b3, b4, inc] = doc.entries;
  assert.deepEqual(b1?.machine, {
    uri: 'ssh://b1',
    systems: ['x86_64-linux'],
    sshKey: '/root/.ssh/id',
    maxJobs: 4,
    speedFactor: 2,
    supportedFeatures: ['kvm', 'big-parallel'],
    mandatoryFeatures: [],
    publicHostKey: 'c3NoLWVkMjU1MTkgQUFBQQ==',
  });
  assert.equal(b2?.machine?.uri, 'ssh://b2');
  assert.deepEqual(b2?.machine?.systems, ['aarch64-linux', 'armv7l-linux']);
  assert.equal(b2?.line, 2);
  assert.equal(b2?.column, 2);
  assert.deepEqual(b3?.machine?.systems, []);
  assert.deepEqual(b3?.machine?.mandatoryFeatures, ['benchmark']);
  assert.equal(b3?.machine?.maxJobs, 1);
  assert.equal(b4?.machine?.uri, 'ssh://b4');
  assert.equal(b4?.line, 3);
  assert.equal(inc?.include, '/etc/nix/more-machines');
});

test('malformed entries become errors that name the column, never exceptions', () => {
  assert.match(parseMachineLine('ssh://b1 x86_64-linux - lots').error ?? '', /column 4 \(max jobs\).*'lots'/);
  assert.match(parseMachineLine('ssh://b1 x86_64-linux - 1 fast').error ?? '', /column 5 \(speed factor\)/);
  assert.match(parseMachineLine('ssh://b1 x86_64-linux - 1 0').error ?? '', /greater than 0/);
  assert.match(parseMachineLine('ssh://b1 x86_64-linux - 1 1 - - not!base64').error ?? '', /column 8/);
  assert.match(parseMachineLine('ssh://b1 a b c d e f g h i').error ?? '', /too many columns/);
  assert.match(parseMachineLine('- x86_64-linux').error ?? '', /store URI is missing/);
  const doc = parseMachines('@\n\u0000\u0001 \t;;;\n#only comment');
  assert.equal(doc.entries[0]?.error, "'@' must be followed by the path of a machines file");
});

test('an unchanged document writes back byte-identical; edits touch only their entry', () => {
  const doc = parseMachines(FILE);
  // Replace b2 and check every other byte is preserved.
  const edited = replaceEntry(doc, 1, 'ssh://b2 aarch64-linux - 2 1');
  assert.equal(edited, FILE.replace('b2 aarch64-linux,armv7l-linux - 1 1', 'ssh://b2 aarch64-linux - 2 1'));
  assert.match(edited, /# the Pi/);
  // Removing a sole entry removes its line; removing one of two on a line keeps the other.
  assert.equal(removeEntry(doc, 0), FILE.replace(/ssh:\/\/b1[^\n]*\n/, ''));
  assert.equal(removeEntry(doc, 2), FILE.replace('ssh-ng://user@b3 - - - - - benchmark ; ', ''));
  assert.equal(removeEntry(doc, 3), FILE.replace(' ; ssh://b4 x86_64-linux', ''));
  assert.equal(appendEntry('a x\n', 'b y'), 'a x\nb y\n');
  assert.equal(appendEntry('a x', 'b y'), 'a x\nb y\n');
});

test('formatMachine round-trips through the parser', () => {
  const m = parseMachineLine('ssh://b1 x86_64-linux,aarch64-linux /k 3 1.5 kvm benchmark AAAA').machine;
  assert.ok(m);
  assert.equal(formatMachine(m), 'ssh://b1 x86_64-linux,aarch64-linux /k 3 1.5 kvm benchmark AAAA');
  assert.deepEqual(parseMachineLine(formatMachine(m)).machine, m);
  const minimal = parseMachineLine('ssh://b2 x86_64-linux').machine;
  assert.ok(minimal);
  assert.equal(formatMachine(minimal), 'ssh://b2 x86_64-linux - 1 1');
});

test('only blanks separate columns (as in Nix); CRLF files stay CRLF', () => {
  assert.match(parseMachineLine('b1\u00A0x86_64-linux').machine?.uri ?? '', /\u00A0/);
  assert.equal(appendEntry('b1 x\r\n', 'b2 y'), 'b1 x\r\nb2 y\r\n');
  const crlf = parseMachines('b1 x86_64-linux\r\nb2 aarch64-linux\r\n');
  assert.deepEqual(crlf.entries.map((e) => e.machine?.systems), [['x86_64-linux'], ['aarch64-linux']]);
});
