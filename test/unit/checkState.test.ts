// What the extension makes of a reproducibility check's answer: the checks kept for the Builds
// view, where each side of a differing file is, the words for a file's difference, the hex view of
// the first differing bytes, and why two derivations differ as an indented text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CHECK_HISTORY, CheckStore, checkDiagnosticData, comparisonAsCheck, type ShownOutput, differenceAction, derivationDiffText, describeFile, diffTitle, differenceDocument, fileSides, firstOpenable, hexRows, looksLikeText } from '../../extension/checkState';
import type { CheckReproducibilityResult, CompareMachinesResult, DerivationDiff, FileDifference, OutputCheck } from '../../language-server/protocol';

const result = (drvPath: string, machine = 'this machine', outputs: OutputCheck[] = []): CheckReproducibilityResult => ({
  drvPath,
  machine,
  rounds: 1,
  builtFirst: false,
  status: outputs.some((o) => o.status === 'differs') ? 'differs' : 'reproducible',
  summary: 'reproducible: 1 output the same in 1 rebuild',
  outputs,
});

const time: FileDifference = { path: 'time', kind: 'changed', first: { type: 'file', size: 21, sha256: 'aa' }, rebuild: { type: 'file', size: 21, sha256: 'bb' } };
const differs = (files: FileDifference[], more: Partial<OutputCheck> = {}): OutputCheck => ({ name: 'out', path: '/nix/store/abc-x', status: 'differs', files, rebuildCopy: '/tmp/nix-builders-check-1/out-round1', ...more });

test('checks are kept newest first, one per derivation and machine, at most CHECK_HISTORY', () => {
  const store = new CheckStore();
  store.add('file:///a.nix', ['a'], result('/nix/store/a.drv'));
  store.add('file:///a.nix', ['b'], result('/nix/store/b.drv'));
  store.add('file:///a.nix', ['a'], result('/nix/store/a.drv', 'b1'));
  assert.deepEqual(store.all().map((e) => e.key), ['b1:/nix/store/a.drv', 'this machine:/nix/store/b.drv', 'this machine:/nix/store/a.drv']);
  // The same check again (the command's answer after the server's checkFinished): one entry, now first.
  const again = store.add('file:///a.nix', ['a'], result('/nix/store/a.drv'));
  assert.deepEqual(store.all().map((e) => e.key), ['this machine:/nix/store/a.drv', 'b1:/nix/store/a.drv', 'this machine:/nix/store/b.drv']);
  assert.equal(store.get(again.key), again);
  for (let i = 0; i < CHECK_HISTORY + 3; i++) store.add('file:///a.nix', [`x${i}`], result(`/nix/store/x${i}.drv`));
  assert.equal(store.all().length, CHECK_HISTORY);
  assert.equal(store.all()[0]?.attribute.join('.'), `x${CHECK_HISTORY + 2}`);
});

test('each side of a differing file: the first build in the store (or its local copy), the rebuild in its kept copy', () => {
  assert.deepEqual(fileSides(differs([time]), time), { first: '/nix/store/abc-x/time', rebuild: '/tmp/nix-builders-check-1/out-round1/time' });
  // From a builder: the first build's local copy.
  assert.deepEqual(fileSides(differs([time], { firstCopy: '/tmp/c/first' }), time).first, '/tmp/c/first/time');
  // The output is the file itself.
  const whole: FileDifference = { ...time, path: '.' };
  assert.deepEqual(fileSides(differs([whole]), whole), { first: '/nix/store/abc-x', rebuild: '/tmp/nix-builders-check-1/out-round1' });
  assert.equal(diffTitle(differs([whole]), whole), 'out (first build ↔ rebuild)');
  assert.equal(diffTitle(differs([time]), time), 'time (first build ↔ rebuild)');
  // A file on one side only, and a rebuild that was not kept.
  const added: FileDifference = { path: 'new', kind: 'only-in-rebuild', rebuild: { type: 'file', size: 3 } };
  assert.deepEqual(fileSides(differs([added]), added), { rebuild: '/tmp/nix-builders-check-1/out-round1/new' });
  assert.deepEqual(fileSides(differs([time], { rebuildCopy: undefined }), time), { first: '/nix/store/abc-x/time' });
});

test('a file difference in words, per kind', () => {
  assert.equal(describeFile(time), 'changed: 21 B → 21 B');
  assert.equal(describeFile({ ...time, text: false, rebuild: { type: 'file', size: 3 * 1024 * 1024 } }), 'changed (binary): 21 B → 3.0 MiB');
  assert.equal(describeFile({ path: 'a', kind: 'only-in-first', first: { type: 'file', size: 4, executable: true } }), 'only in the first build: 4 B, executable');
  assert.equal(describeFile({ path: 'a', kind: 'mode', first: { type: 'file', executable: true }, rebuild: { type: 'file', executable: false } }), 'mode: executable → not executable');
  assert.equal(describeFile({ path: 'l', kind: 'symlink-target', first: { type: 'symlink', target: 'a' }, rebuild: { type: 'symlink', target: 'b' } }), 'symlink target: a → b');
  assert.equal(describeFile({ path: 'd', kind: 'type', first: { type: 'directory' }, rebuild: { type: 'file', size: 1 } }), 'type: directory → file');
});

test('text is UTF-8 without NUL; a character cut at the end of the probe still reads as text', () => {
  assert.equal(looksLikeText(Buffer.from('1764590000.123456789\n')), true);
  assert.equal(looksLikeText(Buffer.from('grüße').subarray(0, 4)), true);
  assert.equal(looksLikeText(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x00])), false);
  assert.equal(looksLikeText(Buffer.from([0x61, 0xff, 0x62])), false);
});

test('the hex view: both sides of the 16-aligned row, a marker under the first differing byte', () => {
  const rows = hexRows({ offset: 0x13, first: '00112233', rebuild: '001122ff' });
  assert.deepEqual(rows.slice(0, 2), [
    'first    00000010  00 11 22 33                                      |.."3|',
    'rebuild  00000010  00 11 22 ff                                      |..".|',
  ]);
  // The marker starts under the byte's two hex digits.
  const at = rows[2]?.indexOf('^^') ?? -1;
  assert.equal(rows[0]?.slice(at, at + 2), '33');
  assert.equal(rows[1]?.slice(at, at + 2), 'ff');
  assert.match(rows[2] ?? '', /\^\^ byte 19 \(0x13\)$/);
});

test('the document of a binary difference: sizes, hashes and where each side is; the hex view only when the server sent the bytes', () => {
  const bin: FileDifference = { ...time, path: 'lib/x.so', text: false };
  const without = differenceDocument(differs([bin]), bin);
  assert.match(without, /^lib\/x\.so in output out \(\/nix\/store\/abc-x\)\nchanged \(binary\): 21 B → 21 B\n/);
  assert.match(without, /first build: 21 B \(21 bytes\)\n {2}sha256 aa\n {2}at \/nix\/store\/abc-x\/lib\/x\.so\n/);
  assert.match(without, /rebuild: 21 B \(21 bytes\)\n {2}sha256 bb\n {2}at \/tmp\/nix-builders-check-1\/out-round1\/lib\/x\.so\n/);
  assert.doesNotMatch(without, /first differ/);
  const withBytes = differenceDocument(differs([{ ...bin, firstDifference: { offset: 3, first: '7f454c46', rebuild: '7f454c47' } }]), { ...bin, firstDifference: { offset: 3, first: '7f454c46', rebuild: '7f454c47' } });
  assert.match(withBytes, /The bytes first differ at byte 3:\n\nfirst {4}00000000 {2}7f 45 4c 46/);
});

test('the difference the notification opens: a text-or-unknown changed file of a differing output that was kept', () => {
  const bin: FileDifference = { ...time, path: 'bin', text: false };
  const r = result('/nix/store/a.drv', 'this machine', [{ name: 'lib', path: '/nix/store/l', status: 'reproducible' }, differs([bin, time])]);
  assert.deepEqual(firstOpenable(r)?.file.path, 'time');
  assert.equal(firstOpenable(result('/nix/store/a.drv', 'this machine', [differs([time], { rebuildCopy: undefined })])), undefined);
});

test('why two derivations differ: each input under its parent, indented, with its .drv files as links', () => {
  const diff: DerivationDiff = {
    drvPath: ['/nix/store/a-top.drv', '/nix/store/b-top.drv'],
    name: 'top',
    differences: [{ field: 'env', name: 'dep', a: '/nix/store/a-dep', b: '/nix/store/b-dep', onlyStorePaths: true }],
    inputs: [
      {
        name: 'dep',
        diff: { drvPath: ['/nix/store/a-dep.drv', '/nix/store/b-dep.drv'], name: 'dep', differences: [{ field: 'env', name: 'GREETING', a: 'hi', b: 'hello' }, { field: 'arg', name: '1', b: '-x' }], inputs: [] },
      },
    ],
  };
  assert.equal(
    derivationDiffText(diff, ['top', 'top at HEAD']),
    [
      'Why top and top at HEAD differ',
      '',
      'top',
      '  a: file:///nix/store/a-top.drv',
      '  b: file:///nix/store/b-top.drv',
      '  environment variable dep: "/nix/store/a-dep" → "/nix/store/b-dep" (only store path hashes differ)',
      '  input dep differs:',
      '    dep',
      '      a: file:///nix/store/a-dep.drv',
      '      b: file:///nix/store/b-dep.drv',
      '      environment variable GREETING: "hi" → "hello"',
      '      argument 1: only in b: "-x"',
      '',
    ].join('\n'),
  );
  const same: DerivationDiff = { drvPath: ['/nix/store/a.drv', '/nix/store/a.drv'], name: 'a', differences: [], inputs: [] };
  assert.match(derivationDiffText(same, ['a', 'a at HEAD']), /\n {2}the same derivation\n$/);
});

test('the "not reproducible" diagnostic links to what differs while the check is kept here', () => {
  const store = new CheckStore();
  const entry = store.add('file:///w/a.nix', ['pkgs', 'x'], result('/nix/store/x.drv', 'this machine', [differs([time])]));
  const data = checkDiagnosticData({ attrPath: ['pkgs', 'x'], drvPath: '/nix/store/x.drv', machine: 'this machine', outputs: ['out'] });
  assert.ok(data);
  assert.deepEqual(differenceAction(store, data), { title: 'Show what differs: time (first build ↔ rebuild)', arguments: [entry.key, 'out', 'time'] });
  // A check this window does not keep (another window's, or before a reload), or one on another machine: nothing to open here.
  assert.equal(differenceAction(store, { ...data, machine: 'b1' }), undefined);
  assert.equal(checkDiagnosticData({ attrPath: 'x', drvPath: '/nix/store/x.drv', machine: 'this machine' }), undefined);
  assert.equal(checkDiagnosticData(undefined), undefined);
});

test('a comparison across machines as a check: the two machines compared are its sides (their copies, or this machine\'s store path), named in the diff editor, the words and the hex view', () => {
  const stamp: FileDifference = { path: 'stamp', kind: 'changed', text: false, first: { type: 'file', size: 4, sha256: 'aa' }, rebuild: { type: 'file', size: 4, sha256: 'bb' }, firstDifference: { offset: 1, first: '61626364', rebuild: '61786364' } };
  const compared: CompareMachinesResult = {
    drvPath: '/nix/store/a.drv',
    status: 'differs',
    summary: 'built differently on here and b1 (out: 1 file)',
    outputs: [
      { name: 'out', path: '/nix/store/abc-x', status: 'differs', hashes: [{ machine: 'this machine', source: 'built', narHash: 'sha256:1' }, { machine: 'b1', source: 'built', narHash: 'sha256:2' }], files: [stamp, { path: 'new', kind: 'only-in-rebuild', rebuild: { type: 'file', size: 1 } }], compared: ['this machine', 'b1'], otherCopy: '/tmp/c/out-other-b1' },
      { name: 'dev', path: '/nix/store/abc-x-dev', status: 'not-checked', hashes: [{ machine: 'this machine', source: 'built', narHash: 'sha256:3' }, { machine: 'b1', source: 'built', reason: 'the build on b1 failed' }] },
    ],
  };
  const r = comparisonAsCheck(compared, ['this machine', 'b1']);
  assert.deepEqual([r.machine, r.status, r.summary], ['this machine, b1', 'differs', compared.summary]);
  const [out, dev] = r.outputs;
  assert.ok(out && dev);
  assert.deepEqual(fileSides(out, stamp), { first: '/nix/store/abc-x/stamp', rebuild: '/tmp/c/out-other-b1/stamp' });
  assert.equal(diffTitle(out, stamp), 'stamp (this machine ↔ b1)');
  assert.equal(describeFile({ path: 'new', kind: 'only-in-rebuild', rebuild: { type: 'file', size: 1 } }, (out as ShownOutput).sides), "only in b1's build: 1 B");
  const doc = differenceDocument(out, stamp);
  assert.match(doc, /\nthis machine: 4 B \(4 bytes\)\n {2}sha256 aa\n {2}at \/nix\/store\/abc-x\/stamp\nb1: 4 B/);
  assert.match(doc, /\nthis machine 00000000 {2}61 62 63 64 [^\n]*\nb1 {11}00000000 {2}61 78 63 64 [^\n]*\n {26}\^\^ byte 1 /);
  assert.equal(firstOpenable(r)?.file, stamp);
  assert.deepEqual([dev.status, dev.reason, dev.rebuildCopy], ['not-checked', 'b1: the build on b1 failed', undefined]);
  // Kept beside the checks, under its own key.
  const store = new CheckStore();
  store.add('file:///a.nix', ['x'], result('/nix/store/a.drv'));
  const entry = store.add('file:///a.nix', ['x'], r, compared);
  assert.deepEqual(store.all().map((e) => e.key), ['compare:/nix/store/a.drv', 'this machine:/nix/store/a.drv']);
  assert.equal(entry.compared, compared);
});
