// The one quoting function for command strings sent with ssh2's `exec`.
//
// An SSH "exec" request carries a single string; the remote sshd hands it to the user's login shell
// as `<shell> -c <string>`, exactly as `ssh host 'nix-store --serve --write'` (what Nix runs) does.
// So every value that ends up in such a string goes through `shellQuote`, and command strings are
// only ever built from constant text plus quoted values (CONVENTIONS.md, habit 6).
//
// The quoting is POSIX single quotes: inside them no character is special, and a single quote is
// written as `'\''` (close, escaped quote, reopen). That is read the same way by sh, dash, bash,
// ksh, zsh and fish. A NUL byte cannot be part of any argument (C strings end there), so it is
// refused rather than silently cut off.

/** Characters that never need quoting in any POSIX shell (no `=`: a first word `a=b` would be an assignment; no `~`). */
const SAFE = /^[A-Za-z0-9_@%+:,./-]+$/;

export class UnquotableError extends Error {}

/**
 * `value` as one shell word. Plain words (letters, digits, `_@%+:,./-`) stay as they are so that
 * command strings remain readable in logs; everything else is single-quoted.
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
 * A command string that runs `script` with `/bin/sh`, whatever the user's login shell is.
 * `/bin/sh` by absolute path: a user whose non-interactive PATH lacks /bin (the very problem the
 * doctor diagnoses) must still be able to run it. `args` become `$1`, `$2`, … of the script.
 */
export function shScript(script: string, args: readonly string[] = []): string {
  return shellCommand(['/bin/sh', '-c', script, 'nix-builders-probe', ...args]);
}
