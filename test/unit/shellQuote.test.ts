// The one quoting function for ssh2 exec strings, against hostile input, checked by real shells:
// whatever the value, the shell must read back exactly that value as one word.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { shellCommand, shellQuote, shScript, UnquotableError } from '../../language-server/remote/shellQuote';

const SHELLS = ['/bin/sh', '/usr/bin/dash', '/bin/bash', '/usr/bin/zsh', '/usr/bin/ksh'].filter((s) => existsSync(s));

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

test('shScript: the script and its arguments survive the login shell and /bin/sh -c', () => {
  // What an exec request does: the login shell runs the string; it starts /bin/sh -c script.
  const script = `printf '%s|' "$0" "$@"; printf 'x%sy' "$(printf '%s' "$1" | wc -c)"`;
  const args = ["it's", '$(touch /tmp/pwned-by-shellquote)', 'two words', ''];
  for (const shell of SHELLS) {
    const out = runIn(shell, shScript(script, args));
    assert.equal(out, `nix-builders-probe|${args.join('|')}|x${Buffer.byteLength(args[0]!)}y`);
  }
  assert.ok(!existsSync('/tmp/pwned-by-shellquote'));
});
