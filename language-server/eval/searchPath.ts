// Nix's search path (`<nixpkgs>`): where each `<…>` of a document is, which entry of `-I`,
// NIX_PATH or nix.conf's `nix-path` resolves it, and the extra entries of the setting
// `nixBuilders.evaluation.searchPath`, checked before they reach a process.
import type { Nix } from '../nix/nix';
import { describeResult } from '../nix/runner';
import { nixTokens } from './nixLexer';

/** A `<name>` or `<name/sub/path>` in a document: 0-based line, UTF-16 columns of `<` and after `>`. */
export interface SearchPathOccurrence {
  name: string;
  line: number;
  column: number;
  endColumn: number;
}

/** Every `<…>` of a Nix text, outside comments and strings (in a string's `${…}` too: Nix looks those up). */
export function scanSearchPaths(text: string): SearchPathOccurrence[] {
  return nixTokens(text)
    .filter((t) => t.kind === 'spath')
    .map((t) => ({ name: t.value as string, line: t.line, column: t.column, endColumn: t.endColumn }));
}

/** The `<…>` of a text under a position, if any. */
export function searchPathAt(text: string, line: number, character: number): SearchPathOccurrence | undefined {
  return scanSearchPaths(text).find((o) => o.line === line && character >= o.column && character < o.endColumn);
}

/** Where each of `names` (not on the search path) is written in the text, with the diagnostic's words. */
export function notOnSearchPath(text: string, names: readonly string[]): Array<SearchPathOccurrence & { message: string }> {
  return scanSearchPaths(text)
    .filter((o) => names.includes(o.name))
    .map((o) => ({ ...o, message: notOnSearchPathMessage(o.name) }));
}

// Not starting with '-': an entry never looks like an option.
const PREFIX = /^[A-Za-z0-9_.+][A-Za-z0-9_.+\-/]*$/;

/** Why an entry of `nixBuilders.evaluation.searchPath` cannot be passed as `-I`; undefined when it can. */
export function searchPathEntryProblem(entry: unknown): string | undefined {
  if (typeof entry !== 'string') return `${JSON.stringify(entry)} is not a string: write "name=/path" or "/path".`;
  if (/[\0\n\r]/.test(entry)) return `${JSON.stringify(entry)} holds a control character.`;
  // Nix splits an entry at its first '=' (prefix=path).
  const eq = entry.indexOf('=');
  const prefix = eq < 0 ? undefined : entry.slice(0, eq);
  const target = eq < 0 ? entry : entry.slice(eq + 1);
  if (prefix !== undefined && !PREFIX.test(prefix)) return `${JSON.stringify(entry)}: "${prefix}" is not a search path name (letters, digits, . _ - + /, not starting with -).`;
  if (target.startsWith('/') || /^[a-z][a-z0-9+.-]*:/.test(target)) return undefined;
  return `${JSON.stringify(entry)}: "${target}" is not an absolute path or a URL; relative paths would resolve against each file's folder. Write an absolute path.`;
}

/** `-I entry` for each entry. */
export function searchPathArgs(entries: readonly string[]): string[] {
  return entries.flatMap((e) => ['-I', e]);
}

/** An entry of Nix's search path, as `builtins.nixPath` lists it. */
export interface SearchPathEntry {
  prefix: string;
  path: string;
}

export const entryText = (e: SearchPathEntry) => (e.prefix ? `${e.prefix}=${e.path}` : e.path);

/** NIX_PATH's entries: split at ':' except the one of a URL's '://', as Nix does. */
export function parseNixPathVariable(value: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i <= value.length; i++) {
    if (i === value.length || (value[i] === ':' && value.slice(i + 1, i + 3) !== '//')) {
      if (i > start) out.push(value.slice(start, i));
      start = i + 1;
    }
  }
  return out;
}

/** Where an entry comes from, in words: the setting (-I), NIX_PATH, Nix's default channels, or nix.conf's nix-path. */
export function originOf(entry: SearchPathEntry, settingEntries: readonly string[], nixPathVariable: string | undefined): string {
  const text = entryText(entry);
  if (settingEntries.includes(text)) return 'the setting "nixBuilders.evaluation.searchPath" (passed as -I)';
  if (nixPathVariable !== undefined && parseNixPathVariable(nixPathVariable).includes(text)) return 'NIX_PATH';
  if (/\/\.nix-defexpr\/channels$|\/profiles\/per-user\/root\/channels(\/nixpkgs)?$/.test(entry.path)) return "Nix's default search path (the channels)";
  return "nix.conf's nix-path";
}

/** How Nix resolves one `<name>`: the search path in order, and the first entry that has it. */
export interface SearchPathResolution {
  nixPath: SearchPathEntry[];
  found: { entry: SearchPathEntry; path: string } | null;
}

// Data reaches this expression only as `--argstr name` (a name the scanner accepted). `toString`
// keeps the found path a string: as a path value `--json` would copy it into the store.
const RESOLVE = `{ name }:
let
  tries = map (e: { inherit e; r = builtins.tryEval (builtins.findFile [ e ] name); }) builtins.nixPath;
  hits = builtins.filter (t: t.r.success) tries;
in {
  nixPath = builtins.nixPath;
  found = if hits == [ ] then null else let h = builtins.head hits; in { entry = h.e; path = toString h.r.value; };
}`;

export type ResolveOutcome = { ok: true; value: SearchPathResolution } | { ok: false; message: string };

/** Resolve `<name>` with the evaluation's search path, environment and folder (one nix-instantiate). */
export async function resolveSearchPath(
  nix: Nix,
  name: string,
  opts: { searchPath?: readonly string[]; timeoutMs: number; cwd: string; signal?: AbortSignal },
): Promise<ResolveOutcome> {
  const result = await nix.run(
    nix.bin('nix-instantiate'),
    ['--eval', '--strict', '--json', ...searchPathArgs(opts.searchPath ?? []), '--argstr', 'name', name, '-E', RESOLVE],
    { timeoutMs: opts.timeoutMs, cwd: opts.cwd, ...(opts.signal ? { signal: opts.signal } : {}) },
  );
  if (result.kind !== 'ok') return { ok: false, message: `${describeResult(result)}${result.kind === 'exit' ? `: ${result.stderr.trim()}` : ''}` };
  try {
    return { ok: true, value: JSON.parse(result.stdout) as SearchPathResolution };
  } catch (e) {
    return { ok: false, message: `Nix printed something that is not JSON: ${(e as Error).message}` };
  }
}

/** The diagnostic's words for a `<name>` that no entry resolves, with the three fixes. */
export function notOnSearchPathMessage(name: string): string {
  const top = name.split('/')[0] as string;
  return (
    `<${name}> is not on the search path: no entry of -I, NIX_PATH or nix.conf's nix-path has '${name}'.\n` +
    `Fix: set NIX_PATH (e.g. ${top}=/path/to/${top}; for the editor only, in "nixBuilders.env"), add "nix-path = ${top}=/path/to/${top}" to nix.conf, ` +
    `or add "${top}=/path/to/${top}" to the setting "nixBuilders.evaluation.searchPath".`
  );
}
