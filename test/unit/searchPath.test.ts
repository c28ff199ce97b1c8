// The pure parts of function arguments and the search path: the `<…>` scanner, the settings'
// checks, the argv they become, where a search path entry comes from, the "needs arguments"
// diagnostic's words and quick fix, and the classifier on Nix's "not found in the Nix search path".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { originOf, parseNixPathVariable, scanSearchPaths, searchPathAt, searchPathEntryProblem, notOnSearchPath } from '../../language-server/eval/searchPath';
import { argumentArgs, argumentProblem, argumentsActionsFor, requiredArgumentsMessage } from '../../language-server/eval/arguments';
import { evaluationArgs, locateEvalError } from '../../language-server/eval/evaluator';
import { parseSettings } from '../../language-server/config';
import { classify } from '../../language-server/nix/classifier';
import type { ServerSettings } from '../../language-server/protocol';

const FIXTURES = path.join(__dirname, '../fixtures');

test('the scanner finds <…> as Nix lexes it, with 0-based lines and UTF-16 columns, outside comments and strings', () => {
  const text = [
    '# <incomment> ',
    '/* <in',
    '   block> */ { a = <nixpkgs>; b = "<instring> \\" <still>";',
    "  c = ''<indented> ''' <escaped> ''${\"x\"} ''\\n <too>'';",
    '  d = <nixpkgs/lib>; /* 😀 */ é = <a-b.c+d_e>; lt = 1 < 2; gt = 2 > 1;',
    '}',
  ].join('\n');
  assert.deepEqual(
    scanSearchPaths(text).map((o) => [o.name, o.line, o.column, o.endColumn]),
    [
      ['nixpkgs', 2, 19, 28],
      ['nixpkgs/lib', 4, 6, 19],
      // 😀 is two UTF-16 code units.
      ['a-b.c+d_e', 4, 34, 45],
    ],
  );
  assert.equal(searchPathAt(text, 4, 10)?.name, 'nixpkgs/lib');
  assert.equal(searchPathAt(text, 4, 19), undefined);
  assert.equal(searchPathAt(text, 0, 4), undefined);
  // An unterminated string or comment ends the scan, without throwing.
  assert.deepEqual(scanSearchPaths('"<a> <b>'), []);
  assert.deepEqual(scanSearchPaths('/* <a>'), []);
  assert.deepEqual(
    notOnSearchPath('import <nixpkgs> { } // { x = <other>; }', ['nixpkgs']).map((o) => [o.column, o.endColumn, o.message.split('\n')[0]]),
    [[7, 16, "<nixpkgs> is not on the search path: no entry of -I, NIX_PATH or nix.conf's nix-path has 'nixpkgs'."]],
  );
});

test('search path entries: name=/absolute/path, /absolute/path or a URL; anything else is said and never passed', () => {
  for (const ok of ['nixpkgs=/src/nixpkgs', '/src/channels', 'nixpkgs=https://example.org/x.tar.gz', 'nixpkgs=channel:nixos-24.05', 'nixos-config=/etc/nixos/c.nix', 'a/b=/x'])
    assert.equal(searchPathEntryProblem(ok), undefined, ok);
  assert.match(String(searchPathEntryProblem('nixpkgs=./nixpkgs')), /not an absolute path or a URL.*Write an absolute path/);
  assert.match(String(searchPathEntryProblem('~/nixpkgs')), /not an absolute path/);
  assert.match(String(searchPathEntryProblem('bad name=/x')), /"bad name" is not a search path name/);
  assert.match(String(searchPathEntryProblem('--option=/x')), /"--option" is not a search path name/);
  assert.match(String(searchPathEntryProblem('-E')), /not an absolute path/);
  assert.match(String(searchPathEntryProblem('nixpkgs=/x\n-E')), /control character/);
  assert.match(String(searchPathEntryProblem(3)), /not a string/);
  const problems: string[] = [];
  const s = parseSettings({ evaluation: { searchPath: ['nixpkgs=/src/nixpkgs', 'relative', 7], arguments: { pkgs: 'import <nixpkgs> { }', 'not a name': 'x', empty: ' ', n: 3 } } } as unknown as Partial<ServerSettings>, problems);
  assert.deepEqual(s.evaluation.searchPath, ['nixpkgs=/src/nixpkgs']);
  assert.deepEqual(s.evaluation.arguments, { pkgs: 'import <nixpkgs> { }' });
  assert.equal(problems.length, 5, problems.join('\n'));
  assert.ok(problems.every((p) => /^"nixBuilders\.evaluation\.(searchPath|arguments)": .* It is ignored\.$/.test(p)), problems.join('\n'));
  const wrong: string[] = [];
  assert.deepEqual(parseSettings({ evaluation: { arguments: ['x'], searchPath: '/x' } } as unknown as Partial<ServerSettings>, wrong).evaluation, {
    ...parseSettings(undefined).evaluation,
  });
  assert.equal(wrong.length, 2);
});

test('arguments and search path entries reach nix-instantiate as argv data: -I entry, --arg under the walker’s prefix', () => {
  const args = evaluationArgs(
    { depth: 3, timeoutMs: 1000, allowImportFromDerivation: false, searchPath: ['nixpkgs=/a b/c'], arguments: { version: '"1.0 ${x} \\" ; "', pkgs: 'import <nixpkgs> { }' } },
    false,
    undefined,
    ['nixpkgs', 'nixpkgs/lib'],
  );
  const at = (flag: string, name?: string) => args.findIndex((a, i) => a === flag && (name === undefined || args[i + 1] === name));
  assert.equal(args[at('-I') + 1], 'nixpkgs=/a b/c');
  assert.deepEqual(args.slice(at('--arg', '__nbArg_version'), at('--arg', '__nbArg_version') + 3), ['--arg', '__nbArg_version', '"1.0 ${x} \\" ; "']);
  assert.deepEqual(args.slice(at('--arg', '__nbArg_pkgs') + 1, at('--arg', '__nbArg_pkgs') + 3), ['__nbArg_pkgs', 'import <nixpkgs> { }']);
  assert.deepEqual(args.slice(at('--argstr', 'searchNames') + 1, at('--argstr', 'searchNames') + 3), ['searchNames', 'nixpkgs nixpkgs/lib']);
  assert.equal(args.at(-1), '-');
  assert.deepEqual(argumentArgs({}), []);
});

test('NIX_PATH splits at ":" but not in a URL; an entry’s origin: the setting, NIX_PATH, the default channels, nix.conf', () => {
  assert.deepEqual(parseNixPathVariable('nixpkgs=https://x.org/a.tar.gz:/b:c=/d::'), ['nixpkgs=https://x.org/a.tar.gz', '/b', 'c=/d']);
  assert.match(originOf({ prefix: 'nixpkgs', path: '/s' }, ['nixpkgs=/s'], 'nixpkgs=/s'), /the setting "nixBuilders\.evaluation\.searchPath"/);
  assert.equal(originOf({ prefix: 'nixpkgs', path: '/s' }, [], '/other:nixpkgs=/s'), 'NIX_PATH');
  assert.equal(originOf({ prefix: '', path: '/root/.nix-defexpr/channels' }, [], undefined), "Nix's default search path (the channels)");
  assert.equal(originOf({ prefix: 'nixpkgs', path: '/nix/var/nix/profiles/per-user/root/channels/nixpkgs' }, [], undefined), "Nix's default search path (the channels)");
  assert.equal(originOf({ prefix: 'nixpkgs', path: '/s' }, [], 'nixpkgs=/t'), "nix.conf's nix-path");
});

test('"needs arguments": the message names the setting with JSON to paste; the quick fix only for a client that runs its command', () => {
  const message = requiredArgumentsMessage(['pkgs', 'version', 'system']);
  assert.match(message, /required arguments \(pkgs, version, system\)/);
  const json = /"nixBuilders\.evaluation\.arguments": (\{.*\})$/.exec(message)?.[1];
  assert.deepEqual(JSON.parse(String(json)), { pkgs: 'import <nixpkgs> { }', version: 'null', system: 'builtins.currentSystem' });
  const d = { range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, message, source: 'Nix Builders', code: 'required-arguments', data: { attrPath: [], required: ['pkgs', 'version'] } };
  const other = { ...d, code: 'no-builder-system', data: { system: 'aarch64-linux' } };
  assert.deepEqual(argumentsActionsFor('file:///p/a.nix', [d, other], false), []);
  const [fix, ...more] = argumentsActionsFor('file:///p/a.nix', [d, other], true);
  assert.equal(more.length, 0);
  assert.equal(fix?.title, 'Set the arguments pkgs, version for this folder…');
  assert.deepEqual(fix?.command, { title: 'Set Evaluation Arguments', command: 'nixBuilders.setEvaluationArguments', arguments: ['file:///p/a.nix', { pkgs: 'import <nixpkgs> { }', version: 'null' }] });
});

test('the classifier names the <…> that is not on the search path (2.8: position at it; 2.26: after the trace)', () => {
  for (const version of ['nix-2.8.0', 'nix-2.26.3']) {
    const stderr = readFileSync(path.join(FIXTURES, version, 'eval-not-on-search-path.stderr.txt'), 'utf8');
    const [p] = classify(stderr);
    assert.equal(p?.kind, 'eval-error', version);
    assert.equal(p?.kind === 'eval-error' ? p.details.searchPathName : undefined, 'nixpkgs', version);
    assert.match(String(p?.cause), /^<nixpkgs> is not on the search path/);
    assert.match(String(p?.fix), /NIX_PATH=nixpkgs=/);
    assert.equal(locateEvalError(stderr).searchPathName, 'nixpkgs', version);
  }
});

test('an error in an argument’s expression (at «string») names the setting, and is not put on the document’s lines', () => {
  const stderr = readFileSync(path.join(FIXTURES, 'nix-2.8.0', 'eval-bad-argument.stderr.txt'), 'utf8');
  for (const docFile of [undefined, '/p/fa.nix']) {
    const at = locateEvalError(stderr, docFile);
    assert.equal(at.kind, 'parse-error');
    assert.equal(at.line, undefined);
    assert.equal(at.message, `syntax error, unexpected end of file, expecting '"' (in an expression of "nixBuilders.evaluation.arguments")`);
  }
});

test('package.json’s schema for the two settings agrees with the server’s checks', () => {
  const properties = JSON.parse(readFileSync(path.join(__dirname, '../../package.json'), 'utf8')).contributes.configuration.properties;
  const entry = new RegExp(properties['nixBuilders.evaluation.searchPath'].items.pattern);
  for (const e of ['nixpkgs=/src/nixpkgs', '/src', 'nixpkgs=channel:nixos-24.05', 'a/b=/x', 'nixpkgs=./x', '-E', '--option=/x', 'bad name=/x', 'relative'])
    assert.equal(entry.test(e), searchPathEntryProblem(e) === undefined, e);
  const name = new RegExp(properties['nixBuilders.evaluation.arguments'].propertyNames.pattern);
  for (const n of ['pkgs', "a'b", 'a-b', '_x', 'not a name', '1x', '']) assert.equal(name.test(n), argumentProblem(n, 'x') === undefined, n);
});
