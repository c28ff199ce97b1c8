// Editing a machines file on disk: only the target entry's bytes change, the previous content is
// kept as `<file>.bak`, refusals leave the file untouched, and no temp file is ever left behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, chown, lstat, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { editMachinesFile, formatMachineLine, tempFilePattern, writeFileAtomic } from '../../language-server/builders/machinesEdit';
import type { EditResult, MachinesEdit } from '../../language-server/protocol';
import { parseMachineLine, parseMachines, type Machine } from '../../language-server/nix/machines';

const MODULE = path.join(__dirname, '..', '..', 'language-server', 'builders', 'machinesEdit.ts');
const isRoot = process.getuid?.() === 0;

const LF = `# Our builders
ssh://b1 x86_64-linux /root/.ssh/id 4 2 kvm,big-parallel - c3NoLWVkMjU1MTkgQUFBQQ==

  b2 aarch64-linux,armv7l-linux - 1 1   # the Pi
ssh-ng://user@b3 - - - - - benchmark ; ssh://b4 x86_64-linux
@/etc/nix/more-machines

# end
`;
const CRLF = LF.replace(/\n/g, '\r\n');

/** Where an entry starts, found by its whole text rather than by the parser under test, and that text. */
function at(text: string, entry: string): { line: number; column: number; expected: string } {
  const lines = text.split('\n');
  const line = lines.findIndex((l) => l.includes(entry));
  assert.ok(line >= 0, `fixture has ${entry}`);
  return { line, column: (lines[line] as string).indexOf(entry), expected: entry };
}

const B1 = 'ssh://b1 x86_64-linux /root/.ssh/id 4 2 kvm,big-parallel - c3NoLWVkMjU1MTkgQUFBQQ==';
const B2 = 'b2 aarch64-linux,armv7l-linux - 1 1';
const B3 = 'ssh-ng://user@b3 - - - - - benchmark';
const B4 = 'ssh://b4 x86_64-linux';

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'nix-builders-edit-'));
}

async function withFile(content: string | undefined, fn: (file: string, dir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  try {
    const file = path.join(dir, 'machines');
    if (content !== undefined) await writeFile(file, content);
    await fn(file, dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function assertNoTempFiles(dir: string): Promise<void> {
  const leftovers = (await readdir(dir)).filter((n) => n.includes('.nix-builders-'));
  assert.deepEqual(leftovers, [], 'no temp file is left behind');
}

function assertOk(r: EditResult): asserts r is Extract<EditResult, { ok: true }> {
  assert.ok(r.ok, `edit failed: ${JSON.stringify(r)}`);
}

/** Edit, then check the whole new text, the backup and the absence of temp files. */
async function expectEdit(original: string, edit: MachinesEdit, expected: string): Promise<void> {
  await withFile(original, async (file, dir) => {
    const r = await editMachinesFile(file, edit, { expectedText: original });
    assertOk(r);
    assert.equal(r.newText, expected);
    assert.equal(await readFile(file, 'utf8'), expected);
    assert.equal(r.backup, `${file}.bak`);
    assert.equal(await readFile(`${file}.bak`, 'utf8'), original);
    assert.ok(parseMachines(expected).entries.every((e) => !e.error));
    await assertNoTempFiles(dir);
  });
}

test('add appends one line and keeps every other byte (LF, CRLF, no final newline)', async () => {
  const entry = 'ssh://b5 x86_64-linux - 2';
  await expectEdit(LF, { kind: 'add', entry }, `${LF}${entry}\n`);
  await expectEdit(CRLF, { kind: 'add', entry }, `${CRLF}${entry}\r\n`);
  await expectEdit('b1 x86_64-linux # no newline', { kind: 'add', entry }, `b1 x86_64-linux # no newline\n${entry}\n`);
  await expectEdit('b1 x86_64-linux\r\nb2 x86_64-linux', { kind: 'add', entry }, `b1 x86_64-linux\r\nb2 x86_64-linux\r\n${entry}\r\n`);
  // Surrounding blanks of the given entry are not written.
  await expectEdit(LF, { kind: 'add', entry: `  ${entry}\t` }, `${LF}${entry}\n`);
  // An include is an entry too.
  await expectEdit(LF, { kind: 'add', entry: '@/etc/nix/even-more' }, `${LF}@/etc/nix/even-more\n`);
});

test('replace rewrites exactly the target entry, also beside a ; neighbour and in CRLF files', async () => {
  const b4 = 'ssh://b4 x86_64-linux';
  const new4 = 'ssh://b4 x86_64-linux,i686-linux - 8';
  await expectEdit(LF, { kind: 'replace', ...at(LF, b4), entry: new4 }, LF.replace(b4, new4));
  const b3 = 'ssh-ng://user@b3 - - - - - benchmark';
  await expectEdit(LF, { kind: 'replace', ...at(LF, b3), entry: 'ssh-ng://user@b3' }, LF.replace(b3, 'ssh-ng://user@b3'));
  const b2 = 'b2 aarch64-linux,armv7l-linux - 1 1';
  const new2 = 'b2 aarch64-linux - 4 1';
  assert.deepEqual(at(LF, b2), { line: 3, column: 2, expected: b2 });
  await expectEdit(LF, { kind: 'replace', line: 3, column: 2, expected: b2, entry: new2 }, LF.replace(b2, new2));
  await expectEdit(CRLF, { kind: 'replace', line: 3, column: 2, expected: b2, entry: new2 }, CRLF.replace(b2, new2));
  await expectEdit(CRLF, { kind: 'replace', line: 1, column: 0, expected: B1, entry: 'ssh://b1 x86_64-linux' }, CRLF.replace(B1, 'ssh://b1 x86_64-linux'));
});

test('remove takes out the entry, its own line or one ; separator, nothing else', async () => {
  const b1Line = 'ssh://b1 x86_64-linux /root/.ssh/id 4 2 kvm,big-parallel - c3NoLWVkMjU1MTkgQUFBQQ==\n';
  await expectEdit(LF, { kind: 'remove', line: 1, column: 0, expected: B1 }, LF.replace(b1Line, ''));
  await expectEdit(CRLF, { kind: 'remove', line: 1, column: 0, expected: B1 }, CRLF.replace(b1Line.replace('\n', '\r\n'), ''));
  await expectEdit(LF, { kind: 'remove', ...at(LF, B4) }, LF.replace(' ; ssh://b4 x86_64-linux', ''));
  await expectEdit(CRLF, { kind: 'remove', ...at(LF, B4) }, CRLF.replace(' ; ssh://b4 x86_64-linux', ''));
  await expectEdit(LF, { kind: 'remove', ...at(LF, B3) }, LF.replace('ssh-ng://user@b3 - - - - - benchmark ; ', ''));
  await expectEdit(LF, { kind: 'remove', ...at(LF, '@/etc/nix/more-machines') }, LF.replace('@/etc/nix/more-machines\n', ''));
  // An entry with a trailing comment: the comment stays (removeEntry only removes whole lines of blanks).
  await expectEdit(LF, { kind: 'remove', line: 3, column: 2, expected: B2 }, LF.replace('b2 aarch64-linux,armv7l-linux - 1 1', ''));
});

test('a sequence of edits only ever touches the target entries', async () => {
  await withFile(CRLF, async (file, dir) => {
    let text = CRLF;
    const steps: MachinesEdit[] = [
      { kind: 'add', entry: 'ssh://b5 x86_64-linux' },
      { kind: 'remove', ...at(CRLF, B4) },
      { kind: 'replace', line: 1, column: 0, expected: B1, entry: 'ssh://b1 x86_64-linux' },
    ];
    for (const edit of steps) {
      const r = await editMachinesFile(file, edit, { expectedText: text });
      assertOk(r);
      assert.equal(await readFile(`${file}.bak`, 'utf8'), text, 'the backup is the previous content');
      text = r.newText;
    }
    assert.equal(
      text,
      CRLF.replace(' ; ssh://b4 x86_64-linux', '')
        .replace('ssh://b1 x86_64-linux /root/.ssh/id 4 2 kvm,big-parallel - c3NoLWVkMjU1MTkgQUFBQQ==', 'ssh://b1 x86_64-linux') +
        'ssh://b5 x86_64-linux\r\n',
    );
    assert.equal(await readFile(file, 'utf8'), text);
    await assertNoTempFiles(dir);
  });
});

test('a malformed new entry is refused with the parser message; the file is untouched and no backup made', async () => {
  const cases: Array<[string, RegExp]> = [
    ['ssh://b5 x86_64-linux - lots', /^column 4 \(max jobs\) must be a whole number, not 'lots'$/],
    ['ssh://b5 x86_64-linux - 1 1 - - not~base64', /column 8 \(host key\) is not valid base64/],
    ['b5 a b c d e f g h', /too many columns/],
    ['', /store URI is missing/],
    ['-', /store URI is missing/],
    ['@', /'@' must be followed by the path/],
    ['b5 x86_64-linux ; b6 x86_64-linux', /two entries/],
    ['b5 x86_64-linux # comment', /comment/],
    ['b5 x86_64-linux\nb6 x86_64-linux', /line break/],
  ];
  await withFile(LF, async (file, dir) => {
    const before = await stat(file);
    for (const [entry, message] of cases) {
      for (const edit of [{ kind: 'add', entry }, { kind: 'replace', line: 1, column: 0, expected: B1, entry }] as MachinesEdit[]) {
        const r = await editMachinesFile(file, edit);
        assert.equal(r.ok, false, entry);
        if (r.ok) continue;
        assert.equal(r.reason, 'invalid-entry');
        assert.match(r.message, message);
      }
    }
    assert.equal(await readFile(file, 'utf8'), LF);
    assert.equal((await stat(file)).mtimeMs, before.mtimeMs);
    assert.deepEqual(await readdir(dir), ['machines']);
  });
});

test('changed on disk since it was read, or no entry at that position: refused, nothing written', async () => {
  await withFile(LF, async (file, dir) => {
    const stale = LF.replace('# end', '# the end');
    for (const edit of [
      { kind: 'add', entry: 'b5 x86_64-linux' },
      { kind: 'remove', line: 1, column: 0, expected: B1 },
      { kind: 'replace', line: 1, column: 0, expected: B1, entry: 'b5 x86_64-linux' },
    ] as MachinesEdit[]) {
      const r = await editMachinesFile(file, edit, { expectedText: stale });
      assert.equal(r.ok, false);
      if (!r.ok) {
        assert.equal(r.reason, 'changed-on-disk');
        assert.match(r.message, new RegExp(`${file}.*changed`));
      }
    }
    // Line 3 starts with two blanks: b2 is at column 2, not 0. Line 2 is blank; line 0 is a comment.
    for (const [line, column] of [[3, 0], [2, 0], [0, 0], [99, 0], [4, 5]] as const) {
      const r = await editMachinesFile(file, { kind: 'remove', line, column, expected: B2 });
      assert.equal(r.ok, false);
      if (!r.ok) {
        assert.equal(r.reason, 'no-such-entry');
        assert.match(r.message, new RegExp(`line ${line + 1}, column ${column + 1}`));
      }
    }
    assert.equal(await readFile(file, 'utf8'), LF);
    assert.deepEqual(await readdir(dir), ['machines']);
  });
});

test('a missing file is created by add (no backup); replace and remove report not-found', async () => {
  await withFile(undefined, async (file, dir) => {
    const missing = await editMachinesFile(file, { kind: 'remove', line: 0, column: 0, expected: B1 });
    assert.deepEqual(missing, { ok: false, reason: 'not-found', message: `${file} does not exist.` });
    const r = await editMachinesFile(file, { kind: 'add', entry: 'ssh://b1 x86_64-linux' }, { expectedText: '' });
    assertOk(r);
    assert.equal(r.backup, undefined);
    assert.equal(await readFile(file, 'utf8'), 'ssh://b1 x86_64-linux\n');
    assert.deepEqual(await readdir(dir), ['machines']);
    const noFolder = await editMachinesFile(path.join(dir, 'nope', 'machines'), { kind: 'add', entry: 'b1 x86_64-linux' });
    assert.equal(noFolder.ok, false);
    if (!noFolder.ok) assert.equal(noFolder.reason, 'not-found');
  });
});

test('mode, owner and symbolic links are kept; the backup gets the same mode', async () => {
  await withFile(LF, async (file, dir) => {
    await chmod(file, 0o640);
    if (isRoot) await chown(file, 65534, 65534);
    const r = await editMachinesFile(file, { kind: 'add', entry: 'b5 x86_64-linux' });
    assertOk(r);
    for (const p of [file, `${file}.bak`]) {
      const st = await stat(p);
      assert.equal(st.mode & 0o7777, 0o640, p);
      if (isRoot) assert.deepEqual([st.uid, st.gid], [65534, 65534], p);
    }
    // A link (like NixOS's /etc/nix/machines) stays a link; its target is written.
    await mkdir(path.join(dir, 'real'));
    const target = path.join(dir, 'real', 'machines');
    await writeFile(target, LF);
    const link = path.join(dir, 'link');
    await symlink(target, link);
    const viaLink = await editMachinesFile(link, { kind: 'remove', line: 1, column: 0, expected: B1 });
    assertOk(viaLink);
    assert.equal(viaLink.backup, `${target}.bak`);
    assert.ok((await lstat(link)).isSymbolicLink());
    assert.equal(await readFile(target, 'utf8'), viaLink.newText);
    await assertNoTempFiles(dir);
    await assertNoTempFiles(path.join(dir, 'real'));
  });
});

test('a file that is not UTF-8 is left untouched rather than re-encoded', async () => {
  await withFile(undefined, async (file, dir) => {
    const bytes = Buffer.concat([Buffer.from('b1 x86_64-linux # caf'), Buffer.from([0xe9]), Buffer.from('\n')]);
    await writeFile(file, bytes);
    const r = await editMachinesFile(file, { kind: 'add', entry: 'b2 x86_64-linux' });
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.reason, 'io-error');
    assert.ok((await readFile(file)).equals(bytes));
    assert.deepEqual(await readdir(dir), ['machines']);
  });
});

test('stale temp files of a killed writer are removed after a minute; fresh and foreign ones stay', async () => {
  await withFile(LF, async (file, dir) => {
    const pattern = tempFilePattern(file);
    const old = '.machines.nix-builders-0123456789abcdef.tmp';
    const oldBak = '.machines.bak.nix-builders-0123456789abcdef.tmp';
    const fresh = '.machines.nix-builders-fedcba9876543210.tmp';
    const foreign = ['.nix.conf.nix-builders-0123456789abcdef.tmp', '.machines.nix-builders-mine.tmp', 'machines.nix-builders-0123456789abcdef.tmp'];
    assert.ok(pattern.test(old) && pattern.test(fresh) && !foreign.some((n) => pattern.test(n)));
    const longAgo = new Date(Date.now() - 2 * 60_000);
    for (const name of [old, oldBak, fresh, ...foreign]) {
      await writeFile(path.join(dir, name), 'half a machines fi');
      if (name !== fresh) await utimes(path.join(dir, name), longAgo, longAgo);
    }
    assertOk(await editMachinesFile(file, { kind: 'add', entry: 'b5 x86_64-linux' }));
    assert.deepEqual((await readdir(dir)).sort(), ['machines', 'machines.bak', fresh, ...foreign].sort());
  });
});

test('writeFileAtomic creates, replaces with an optional backup, and leaves no temp file', async () => {
  await withFile(undefined, async (_file, dir) => {
    const conf = path.join(dir, 'nix.conf');
    await writeFileAtomic(conf, 'builders = @/etc/nix/machines\n');
    assert.equal(await readFile(conf, 'utf8'), 'builders = @/etc/nix/machines\n');
    await writeFileAtomic(conf, 'builders =\n', { backup: true });
    assert.equal(await readFile(conf, 'utf8'), 'builders =\n');
    assert.equal(await readFile(`${conf}.bak`, 'utf8'), 'builders = @/etc/nix/machines\n');
    await writeFileAtomic(conf, 'x\n');
    assert.equal(await readFile(`${conf}.bak`, 'utf8'), 'builders = @/etc/nix/machines\n', 'no backup unless asked');
    await assert.rejects(writeFileAtomic(path.join(dir, 'no', 'such', 'folder'), 'x'), { code: 'ENOENT' });
    await assertNoTempFiles(dir);
  });
});

// ---- Permission denied, for real: in a child process as `nobody`, or on a read-only mount. ----

const CHILD = `
const { execFileSync } = require('node:child_process');
const [roBind, file, edit] = process.argv.slice(1);
if (roBind) {
  execFileSync('mount', ['--bind', roBind, roBind]);
  execFileSync('mount', ['-o', 'remount,bind,ro', roBind]);
}
require(${JSON.stringify(MODULE)}).editMachinesFile(file, JSON.parse(edit))
  .then((r) => process.stdout.write(JSON.stringify(r)));
`;

async function editInChild(prefix: string[], roBind: string, file: string, edit: MachinesEdit): Promise<EditResult> {
  const argv = [...prefix, process.execPath, '--import', 'tsx', '-e', CHILD, roBind, file, JSON.stringify(edit)];
  const { stdout } = await promisify(execFile)(argv[0] as string, argv.slice(1), { cwd: path.join(__dirname, '..', '..'), timeout: 15_000 });
  return JSON.parse(stdout) as EditResult;
}

const AS_NOBODY = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--'];

test('permission denied (as nobody): the message names the file and the fix, lineToPaste is the entry', { skip: !isRoot && 'needs root to switch to nobody' }, async () => {
  await withFile(LF, async (file, dir) => {
    await chmod(dir, 0o755); // nobody may look, not write
    const entry = 'ssh://b5 x86_64-linux - 2';
    const add = await editInChild(AS_NOBODY, '', file, { kind: 'add', entry: `${entry} ` });
    assert.deepEqual(add, {
      ok: false,
      reason: 'permission-denied',
      message: `Cannot write ${file}: permission denied. Edit it as root (for example: sudoedit ${file}) and add this line:`,
      lineToPaste: entry,
    });
    const replace = await editInChild(AS_NOBODY, '', file, { kind: 'replace', line: 3, column: 2, expected: B2, entry });
    assert.equal(replace.ok, false);
    if (!replace.ok) {
      assert.equal(replace.reason, 'permission-denied');
      assert.match(replace.message, /replace the entry on line 4 \('b2 aarch64-linux,armv7l-linux - 1 1'\) with this line:$/);
      assert.equal(replace.lineToPaste, entry);
    }
    const remove = await editInChild(AS_NOBODY, '', file, { kind: 'remove', line: 1, column: 0, expected: B1 });
    assert.equal(remove.ok, false);
    if (!remove.ok) {
      assert.equal(remove.reason, 'permission-denied');
      assert.match(remove.message, /remove the entry on line 2 \('ssh:\/\/b1 .*'\)\.$/);
      assert.equal(remove.lineToPaste, undefined);
    }
    // Unreadable: refused on read.
    await chmod(file, 0o600);
    const unreadable = await editInChild(AS_NOBODY, '', file, { kind: 'add', entry });
    assert.equal(unreadable.ok, false);
    if (!unreadable.ok) {
      assert.equal(unreadable.reason, 'permission-denied');
      assert.match(unreadable.message, new RegExp(`^Cannot read ${file}: permission denied to read it\\.`));
      assert.equal(unreadable.lineToPaste, entry);
    }
    assert.equal(await readFile(file, 'utf8'), LF);
    assert.deepEqual(await readdir(dir), ['machines']);
  });
});

test('read-only file system stops even root: permission-denied, file untouched, no temp file', { skip: !isRoot && 'needs root to mount' }, async () => {
  await withFile(LF, async (file, dir) => {
    const entry = 'ssh://b5 x86_64-linux';
    const r = await editInChild(['unshare', '--mount', '--propagation', 'private', '--'], dir, file, { kind: 'add', entry });
    assert.deepEqual(r, {
      ok: false,
      reason: 'permission-denied',
      message: `Cannot write ${file}: it is on a read-only file system. Edit it as root (for example: sudoedit ${file}) and add this line:`,
      lineToPaste: entry,
    });
    assert.equal(await readFile(file, 'utf8'), LF);
    assert.deepEqual(await readdir(dir), ['machines']);
  });
});

test('an entry that moved or changed since it was listed is never overwritten: refused, saying where it is now', async () => {
  // Listed: b2 on line 4 (column 3), b3 on line 5. Then b1's line (line 2) is removed by someone else.
  const moved = LF.replace(`${B1}\n`, '');
  await withFile(moved, async (file, dir) => {
    const replace = await editMachinesFile(file, { kind: 'replace', line: 3, column: 2, expected: B2, entry: 'b2 aarch64-linux - 4' });
    assert.equal(replace.ok, false);
    if (!replace.ok) {
      assert.equal(replace.reason, 'no-such-entry');
      assert.equal(replace.message, `${file} changed since its builders were listed: there is no entry at line 4, column 3 any more, and '${B2}' is on line 3. Nothing was written: refresh the Builders view and try again.`);
    }
    // Where b3 was listed, the include now starts: removing "line 5" would remove the wrong entry.
    const remove = await editMachinesFile(file, { kind: 'remove', line: 4, column: 0, expected: B3 });
    assert.equal(remove.ok, false);
    if (!remove.ok) {
      assert.equal(remove.reason, 'entry-changed');
      assert.match(remove.message, /the entry at line 5, column 1 is now '@\/etc\/nix\/more-machines', and 'ssh-ng:\/\/user@b3 - - - - - benchmark' is on line 4\. Nothing was written/);
    }
    // And an entry that is gone altogether.
    const gone = await editMachinesFile(file, { kind: 'remove', line: 1, column: 0, expected: B1 });
    assert.equal(gone.ok, false);
    if (!gone.ok) assert.match(gone.message, /there is no entry at line 2, column 1 any more, and 'ssh:\/\/b1 .*' is not in it any more/);
    assert.equal(await readFile(file, 'utf8'), moved);
    assert.deepEqual(await readdir(dir), ['machines']);
  });
});

const MACHINE: Machine = { uri: 'ssh://b5', systems: ['x86_64-linux', 'i686-linux'], sshKey: '/home/alice/.ssh/id_ed25519', maxJobs: 4, speedFactor: 2, supportedFeatures: ['kvm'], mandatoryFeatures: [], publicHostKey: undefined };

test('formatMachineLine writes the 8 columns, defaults as -, and reads back as the same machine', () => {
  const r = formatMachineLine(MACHINE);
  assert.deepEqual(r, { ok: true, line: 'ssh://b5 x86_64-linux,i686-linux /home/alice/.ssh/id_ed25519 4 2 kvm' });
  assert.deepEqual(parseMachineLine(r.ok ? r.line : '').machine, MACHINE);
  assert.deepEqual(formatMachineLine({ ...MACHINE, systems: [], sshKey: undefined, supportedFeatures: [], mandatoryFeatures: ['big-parallel'], publicHostKey: 'c3NoLWVkMjU1MTkgQUFBQQ==' }), {
    ok: true,
    line: 'ssh://b5 - - 4 2 - big-parallel c3NoLWVkMjU1MTkgQUFBQQ==',
  });
});

test('formatMachineLine refuses what Nix would read as other columns: a key path with a blank, #, ;, commas in a list', () => {
  // What Nix makes of a key path with a space written as is: the columns after it shift.
  assert.match(parseMachineLine('ssh://b5 x86_64-linux /home/alice/my keys/id 4').error ?? '', /column 4 \(max jobs\) must be a whole number, not 'keys\/id'/);
  const spaced = formatMachineLine({ ...MACHINE, sshKey: '/home/alice/my keys/id' });
  assert.deepEqual(spaced, {
    ok: false,
    message:
      "The SSH key path '/home/alice/my keys/id' cannot be written to a machines file: Nix splits a machines entry into columns at blanks, with no quoting or escaping, so it would be read as several columns. Move or link the key to a path without blanks, or leave the key column '-' and name the key in the store URI, percent-encoded (ssh://b5?ssh-key=/home/alice/my%20keys/id), which Nix decodes.",
  });
  const cases: Array<[Partial<Machine>, RegExp]> = [
    [{ sshKey: '/keys/a\tb' }, /SSH key path .* at blanks/],
    [{ sshKey: '/keys/#1' }, /SSH key path '\/keys\/#1' .*'#' starts a comment there.*\(ssh:\/\/b5\?ssh-key=\/keys\/%231\)/],
    [{ sshKey: '-' }, /SSH key path '-' .*means the default/],
    [{ uri: 'ssh://b5;rm' }, /store URI .*';' separates entries/],
    [{ uri: '@/etc/nix/machines' }, /store URI/],
    [{ systems: ['x86_64-linux,aarch64-linux'] }, /The system 'x86_64-linux,aarch64-linux' cannot contain ','/],
    [{ supportedFeatures: ['big parallel'] }, /The feature 'big parallel' .* at blanks/],
    [{ maxJobs: 1.5 }, /Max jobs must be a whole number, not 1\.5/],
    [{ speedFactor: 0 }, /speed factor must be a number above 0/],
    [{ publicHostKey: 'c3No LWVk' }, /The host key 'c3No LWVk' .* at blanks/],
    [{ publicHostKey: 'not~base64' }, /column 8 \(host key\) is not valid base64/],
  ];
  for (const [change, message] of cases) {
    const r = formatMachineLine({ ...MACHINE, ...change });
    assert.equal(r.ok, false, JSON.stringify(change));
    if (!r.ok) assert.match(r.message, message);
  }
});
