// Setting lines of a nix.conf on disk for the guided set-ups: comments and order kept, a setting
// that is there changed in place (its old value said), `.bak` kept, nothing half-written on failure,
// and the lines to paste when the file cannot be written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, readdir, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { setNixConfSettings, setSettingsInText, settingProblem } from '../../language-server/nix/nixConfEdit';
import type { NixConfSetUpResult } from '../../language-server/protocol';

const MODULE = path.join(__dirname, '..', '..', 'language-server', 'nix', 'nixConfEdit.ts');
const isRoot = process.getuid?.() === 0;

const CONF = `# My Nix settings
build-users-group =
  post-build-hook = /old/hook   # the old one

# caches
substituters = https://cache.example.org
post-build-hook = /older/hook
!include /etc/nix/extra.conf
keep-outputs = true`;

const HOOK = { key: 'post-build-hook', value: '/srv/hooks/queue.sh' };

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nb-nixconf-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a setting that is there is changed in place on the line Nix obeys (the last), indentation and comment kept; every other byte stays', () => {
  const { text, changes } = setSettingsInText(CONF, [HOOK]);
  assert.equal(text, CONF.replace('post-build-hook = /older/hook', 'post-build-hook = /srv/hooks/queue.sh'));
  assert.deepEqual(changes, [{ key: 'post-build-hook', value: '/srv/hooks/queue.sh', line: 6, old: '/older/hook' }]);
  const first = setSettingsInText('  post-build-hook   =  /a  # mine\n', [HOOK]);
  assert.equal(first.text, '  post-build-hook = /srv/hooks/queue.sh # mine\n');
});

test('new settings are appended in the given order with the file\'s line ends; a commented-out line does not count', () => {
  const crlf = '# post-build-hook = /commented\r\nsandbox = false\r\n';
  const { text, changes } = setSettingsInText(crlf, [
    { key: 'diff-hook', value: '/d.sh' },
    { key: 'run-diff-hook', value: 'true' },
  ]);
  assert.equal(text, `${crlf}diff-hook = /d.sh\r\nrun-diff-hook = true\r\n`);
  assert.deepEqual(changes.map((c) => [c.key, c.line, c.old]), [['diff-hook', 2, undefined], ['run-diff-hook', 3, undefined]]);
  assert.equal(setSettingsInText('sandbox = false', [HOOK]).text, 'sandbox = false\npost-build-hook = /srv/hooks/queue.sh\n', 'no final newline: one is added first');
  assert.equal(setSettingsInText('', [HOOK]).text, 'post-build-hook = /srv/hooks/queue.sh\n');
});

test('values Nix would not read back as written are refused', () => {
  assert.match(settingProblem({ key: 'diff-hook', value: '/a#b' }) ?? '', /comment/);
  assert.match(settingProblem({ key: 'diff-hook', value: '/a\n/b' }) ?? '', /line break/);
  assert.match(settingProblem({ key: 'diff-hook', value: '/a  b' }) ?? '', /blanks/);
  assert.match(settingProblem({ key: 'no such', value: 'x' }) ?? '', /not a nix.conf setting/);
  assert.equal(settingProblem(HOOK), undefined);
});

test('on a real file: written atomically in place, mode kept, .bak holds the original, the old value is said, no temp file; again: nothing to change', async () => {
  await withDir(async (dir) => {
    const file = path.join(dir, 'nix.conf');
    await writeFile(file, CONF);
    await chmod(file, 0o640);
    const r = await setNixConfSettings(file, [HOOK, { key: 'fallback', value: 'true' }], { notes: ['caller note'] });
    assert.equal(r.status, 'written', JSON.stringify(r));
    assert.equal(r.backup, `${await realpath(file)}.bak`);
    assert.deepEqual(r.lines, ['post-build-hook = /srv/hooks/queue.sh', 'fallback = true']);
    assert.equal(r.notes[0], 'caller note');
    assert.ok(r.notes.includes(`Changed post-build-hook on line 7 of ${file} in place: it was '/older/hook'.`), JSON.stringify(r.notes));
    assert.equal(await readFile(file, 'utf8'), `${CONF.replace('/older/hook', '/srv/hooks/queue.sh')}\nfallback = true\n`);
    assert.equal(await readFile(`${file}.bak`, 'utf8'), CONF);
    assert.equal((await stat(file)).mode & 0o777, 0o640);
    assert.deepEqual((await readdir(dir)).sort(), ['nix.conf', 'nix.conf.bak']);
    const again = await setNixConfSettings(file, [HOOK]);
    assert.equal(again.status, 'written');
    assert.match(again.message ?? '', /already sets post-build-hook = \/srv\/hooks\/queue.sh: nothing to change/);
    assert.equal(await readFile(`${file}.bak`, 'utf8'), CONF, 'an edit that changes nothing writes nothing');
  });
});

test('a missing nix.conf is created with its folder (no backup); a dry run writes nothing and gives the lines', async () => {
  await withDir(async (dir) => {
    const file = path.join(dir, 'config', 'nix', 'nix.conf');
    const dry = await setNixConfSettings(file, [HOOK], { dryRun: true });
    assert.equal(dry.status, 'paste');
    assert.deepEqual(dry.lines, ['post-build-hook = /srv/hooks/queue.sh']);
    assert.deepEqual(await readdir(dir), []);
    const r = await setNixConfSettings(file, [HOOK]);
    assert.equal(r.status, 'written', JSON.stringify(r));
    assert.equal(r.backup, undefined);
    assert.equal(await readFile(file, 'utf8'), 'post-build-hook = /srv/hooks/queue.sh\n');
  });
});

test('a failure half-way (the backup cannot be written) leaves the original untouched and no temp file', async () => {
  await withDir(async (dir) => {
    const file = path.join(dir, 'nix.conf');
    await writeFile(file, CONF);
    await mkdir(`${file}.bak`); // a folder where the backup goes: the write fails after the temp file was written
    const r = await setNixConfSettings(file, [HOOK]);
    assert.equal(r.status, 'failed', JSON.stringify(r));
    assert.match(r.message ?? '', /^Cannot write .*nix\.conf: .*Nothing was changed\.$/);
    assert.equal(await readFile(file, 'utf8'), CONF);
    assert.deepEqual((await readdir(dir)).sort(), ['nix.conf', 'nix.conf.bak']);
  });
});

test('a NixOS nix.conf (a link into the store) is never written: paste, with the NixOS option', async () => {
  await withDir(async (dir) => {
    const file = path.join(dir, 'nix.conf');
    await symlink('/nix/store/00000000000000000000000000000000-nix.conf', file);
    const r = await setNixConfSettings(file, [HOOK, { key: 'run-diff-hook', value: 'true' }]);
    assert.equal(r.status, 'paste', JSON.stringify(r));
    assert.deepEqual(r.lines, ['post-build-hook = /srv/hooks/queue.sh', 'run-diff-hook = true']);
    assert.match(r.message ?? '', /is generated by Nix \(it leads to \/nix\/store\/0+-nix\.conf\).*nix\.settings\."post-build-hook" = "\/srv\/hooks\/queue\.sh"; nix\.settings\."run-diff-hook" = true;.*nixos-rebuild switch/);
  });
});

// Not writable, for real: a read-only bind mount stops even root (in a child's own mount namespace).
const CHILD = `
const { execFileSync } = require('node:child_process');
const [dir, file] = process.argv.slice(1);
execFileSync('mount', ['--bind', dir, dir]);
execFileSync('mount', ['-o', 'remount,bind,ro', dir]);
require(${JSON.stringify(MODULE)}).setNixConfSettings(file, [${JSON.stringify(HOOK)}]).then((r) => process.stdout.write(JSON.stringify(r)));
`;

test('not writable (read-only file system): paste with the line and how, the file untouched, no temp file', { skip: !isRoot && 'needs root to mount' }, async () => {
  await withDir(async (dir) => {
    const file = path.join(dir, 'nix.conf');
    await writeFile(file, CONF);
    const { stdout } = await promisify(execFile)('unshare', ['--mount', '--propagation', 'private', '--', process.execPath, '--import', 'tsx', '-e', CHILD, dir, file], { cwd: path.join(__dirname, '..', '..'), timeout: 15_000 });
    const r = JSON.parse(stdout) as NixConfSetUpResult;
    assert.equal(r.status, 'paste');
    assert.deepEqual(r.lines, ['post-build-hook = /srv/hooks/queue.sh']);
    assert.equal(r.message, `Cannot write ${file}: it is on a read-only file system. Add this line to it as root (for example: sudoedit ${file}), replacing any line that sets the same name.`);
    assert.equal(await readFile(file, 'utf8'), CONF);
    assert.deepEqual(await readdir(dir), ['nix.conf']);
  });
});
