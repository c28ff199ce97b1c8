// Remote commands that do not depend on the remote user's login shell.
//
// An SSH "exec" request carries a single string; the remote sshd hands it to the user's login shell
// as `<shell> -c <string>`, exactly as `ssh host 'nix-store --serve --write'` (what Nix runs) does.
// Login shells do not agree on quoting: fish reads `\'` and `\\` inside single quotes as escapes,
// csh expands `!` and `$` where POSIX shells do not. So the string sent is always REMOTE_COMMAND,
// which is plain words that bash, dash, zsh, ksh, fish and tcsh all read the same way, and the real
// script travels on stdin to /bin/sh, where POSIX quoting (`shellQuote`) is exact. Values are only
// ever quoted for /bin/sh, never for the login shell (CONVENTIONS.md, habit 6).
//
// The login shell still starts the command, so /bin/sh inherits the environment it gives a
// non-interactive command (PATH from ~/.bashrc, ~/.zshenv, config.fish, ~/.ssh/environment), which
// is what Nix's `nix-store --serve --write` gets too.

/** The exec string of every remote command: read the script from stdin with /bin/sh. */
export const REMOTE_COMMAND = 'exec /bin/sh -s';

/** Characters that never need quoting in any POSIX shell (no `=`: a first word `a=b` would be an assignment; no `~`). */
const SAFE = /^[A-Za-z0-9_@%+:,./-]+$/;

export class UnquotableError extends Error {}

/**
 * `value` as one word for /bin/sh (POSIX single quotes, a quote written `'\''`). Plain words
 * (letters, digits, `_@%+:,./-`) stay as they are so that scripts remain readable in logs.
 * Not for a login shell: fish reads these quotes differently (see REMOTE_COMMAND).
 * Throws `UnquotableError` for a NUL byte, which no shell word can contain.
 */
export function shellQuote(value: string): string {
  if (value.includes('\0')) throw new UnquotableError('a shell word cannot contain a NUL byte');
  if (SAFE.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A command line of separately quoted words: `shellCommand(['nix-store', '--version'])`. */
export function shellCommand(words: readonly string[]): string {
  if (words.length === 0) throw new UnquotableError('a command needs at least one word');
  return words.map(shellQuote).join(' ');
}

/**
 * The stdin of REMOTE_COMMAND that runs `script` with `args` as `$1`, `$2`, …. The script is one
 * brace group, which /bin/sh reads whole before running it, with stdin from /dev/null: no command
 * of the script can read the rest of the script as its input.
 */
export function shScript(script: string, args: readonly string[] = []): string {
  return `set -- ${args.map(shellQuote).join(' ')}\n{\n${script}\n} </dev/null\n`;
}
