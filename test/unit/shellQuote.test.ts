// Remote commands against hostile input, checked by real shells: the quoting for /bin/sh must read
// back exactly the value as one word, and the command string every login shell runs must hand the
// script to /bin/sh whatever the login shell is (fish reads quotes differently from POSIX shells).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { REMOTE_COMMAND, shellCommand, shellQuote, shScript, UnquotableError } from '../../language-server/remote/shellQuote';

/** POSIX shells, which read shellQuote's quoting (the script's /bin/sh is one of them). */
const SHELLS = ['/bin/sh', '/usr/bin/dash', '/bin/bash', '/usr/bin/zsh', '/usr/bin/ksh'].filter((s) => existsSync(s));
/** Login shells sshd may run a remote command with (scripts/setup.sh installs zsh and fish). */
const LOGIN_SHELLS = ['/usr/bin/dash', '/bin/bash', '/usr/bin/zsh', '/usr/bin/fish', ...['/usr/bin/tcsh', '/usr/bin/ksh'].filter((s) => existsSync(s))];

/** What `shell -c <command>` prints on stdout (as an sshd would run an exec request). */
function runIn(shell: string, command: string): string {
  const r = spawnSync(shell, ['-c', command], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent' } });
  assert.equal(r.status, 0, `${shell} -c ${JSON.stringify(command)} failed: ${r.stderr}`);
  return r.stdout;
}

/** A shell reads the quoted word back as exactly the value. */
function roundTrips(value: string): void {
  for (const shell of SHELLS) {
    assert.equal(runIn(shell, `printf '%s' ${shellQuote(value)}`), value, `${shell}: ${JSON.stringify(value)}`);
  }
}

const HOSTILE = [
  '',
  ' ',
  "'",
  "''",
  "'\\''",
  '"',
  '\\',
  '\\\\',
  "a'b\"c\\d",
  '$(touch /tmp/pwned-by-shellquote)',
  '`touch /tmp/pwned-by-shellquote`',
  '${HOME}',
  '$HOME',
  '$0 $1 $@ $* $# $? $$ $!',
  '; rm -rf /tmp/pwned-by-shellquote',
  '&& true || false',
  '| cat',
  '> /tmp/pwned-by-shellquote',
  '< /etc/passwd',
  'a\nb',
  'line1\nline2\n',
  '\n',
  'tab\there',
  'cr\rhere',
  '*',
  '/*',
  '?',
  '[a-z]*',
  '{a,b}',
  '~',
  '~root',
  '~/x',
  '-n',
  '-e',
  '--',
  '!',
  '!!',
  'a=b',
  'PATH=/evil',
  '#comment',
  'a #b',
  '%s%n%d',
  '\x1b[31mred\x1b[0m',
  'unicode: ünïcödé ✓ 🚀 \u2028 \u00a0',
  '\x01\x02\x7f',
  '  leading and trailing  ',
  "end with quote'",
  "'start with quote",
  "''''''",
  'x'.repeat(10_000),
];

test('shellQuote: every hostile value comes back from sh, dash and bash exactly', () => {
  assert.ok(SHELLS.length >= 2, `need real shells, have ${SHELLS.join(', ')}`);
  for (const value of HOSTILE) roundTrips(value);
  assert.ok(!existsSync('/tmp/pwned-by-shellquote'), 'a quoted value was executed');
});

test('shellQuote: random bytes (no NUL) and random code points round-trip', () => {
  let seed = 12345;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  for (let i = 0; i < 60; i++) {
    const len = rand() % 40;
    let s = '';
    for (let j = 0; j < len; j++) {
      // Mostly ASCII including every shell metacharacter, sometimes any BMP character.
      const c = rand() % 10 === 0 ? 0xa0 + (rand() % 0xd000) : 1 + (rand() % 127);
      s += String.fromCharCode(c);
    }
    roundTrips(s);
  }
});

test('shellQuote: plain words stay readable, everything else is single-quoted', () => {
  assert.equal(shellQuote('nix-store'), 'nix-store');
  assert.equal(shellQuote('/nix/var/nix/profiles/default/bin/nix-store'), '/nix/var/nix/profiles/default/bin/nix-store');
  assert.equal(shellQuote('--extra-experimental-features'), '--extra-experimental-features');
  assert.equal(shellQuote(''), "''");
  assert.equal(shellQuote('nix-command flakes'), "'nix-command flakes'");
  assert.equal(shellQuote("it's"), "'it'\\''s'");
  // `=` and `~` are quoted: a first word a=b would be an assignment, ~ would expand.
  assert.equal(shellQuote('a=b'), "'a=b'");
  assert.equal(shellQuote('~'), "'~'");
});

test('shellQuote: a NUL byte is refused, not cut off', () => {
  assert.throws(() => shellQuote('a\0b'), UnquotableError);
  assert.throws(() => shellCommand(['echo', '\0']), UnquotableError);
  assert.throws(() => shellCommand([]), UnquotableError);
});

test('shellCommand: each word arrives as one argument', () => {
  const words = ['a b', "c'd", '$(x)', '', '*', 'e\nf'];
  for (const shell of SHELLS) {
    const out = runIn(shell, `printf '[%s]' ${shellCommand(words.map(String))}`);
    assert.equal(out, words.map((w) => `[${w}]`).join(''));
  }
});

/** Values that would run `touch <marker>` if any shell read them as code. */
function injections(marker: string): string[] {
  const touch = `touch ${marker}`;
  return [
    `$(${touch})`,
    `\`${touch}\``,
    `; ${touch}`,
    `'; ${touch}; '`,
    // fish: `\'` inside single quotes is an escaped quote, so POSIX quoting of this closed the quote.
    `\\';${touch};#`,
    `\\'\\'; ${touch} #`,
    `\\`,
    `\n${touch}\n`,
    `x\n${touch}`,
    // fish command substitution, also inside double quotes since fish 3.4
    `(${touch})`,
    `"$(${touch})"`,
    // csh: history and variables expand inside single quotes
    `!! ; ${touch}`,
    `$status && ${touch}`,
    `| ${touch}`,
    `&& ${touch}`,
    `> ${marker}`,
    `"; ${touch}; "`,
  ];
}

/** What `shell -c REMOTE_COMMAND` (an sshd running an exec request) prints for that stdin. */
function runRemote(shell: string, stdin: string): string {
  const r = spawnSync(shell, ['-c', REMOTE_COMMAND], { input: stdin, encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent' } });
  assert.equal(r.status, 0, `${shell} -c ${JSON.stringify(REMOTE_COMMAND)} failed: ${r.stderr}`);
  return r.stdout;
}

test('REMOTE_COMMAND: plain words only, so every login shell reads it the same', () => {
  assert.match(REMOTE_COMMAND, /^[A-Za-z0-9_./ -]+$/);
  for (const shell of LOGIN_SHELLS) assert.equal(runRemote(shell, 'echo "$0"'), '/bin/sh\n', shell);
});

test('shScript: hostile arguments reach the script as data under bash, dash, zsh and fish (and tcsh, ksh)', () => {
  assert.ok(LOGIN_SHELLS.every((s) => existsSync(s)), `need real shells: ${LOGIN_SHELLS.join(', ')}`);
  const dir = mkdtempSync(path.join(tmpdir(), 'nbp-shellquote-'));
  try {
    const marker = path.join(dir, 'injected');
    const args = [...injections(marker), ...HOSTILE.slice(0, 20), ''];
    // A script that reads stdin itself must not eat the rest of the script.
    const script = `cat; printf '[%s]' "$0" "$@"; printf '#%s' "$#"`;
    for (const shell of LOGIN_SHELLS) {
      const out = runRemote(shell, shScript(script, args));
      assert.equal(out, `[/bin/sh]${args.map((a) => `[${a}]`).join('')}#${args.length}`, shell);
      assert.deepEqual(readdirSync(dir), [], `${shell} ran an injected command`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
