// Where a document writes its attributes, read from its text (for text Nix 2.16+ gives no
// positions for: an unsaved document, evaluated from stdin).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attributeDefinitions, placerFor, placeUnpositioned } from '../../language-server/eval/attrPositions';
import { scanSearchPaths } from '../../language-server/eval/searchPath';
import { nixTokens } from '../../language-server/eval/nixLexer';

const defs = (text: string) => attributeDefinitions(text).map((d) => [d.path.join('.'), d.line, d.column]);

test('bindings, quoted names, dotted paths, inherit and nested sets, at their names (0-based line, UTF-16 column)', () => {
  const text = [
    '{',
    '  a = 1;',
    '  "b c" = { d = 2; };',
    '  e.f.g = 3;',
    '  inherit (builtins) map;',
    '  inherit x;',
    '  h = rec { i = 4; };',
    '}',
  ].join('\n');
  assert.deepEqual(defs(text), [
    ['a', 1, 2],
    ['b c', 2, 2],
    ['b c.d', 2, 12],
    ['e', 3, 2],
    ['e.f', 3, 2],
    ['e.f.g', 3, 2],
    ['map', 4, 21],
    ['x', 5, 10],
    ['h', 6, 2],
    ['h.i', 6, 12],
  ]);
});

test('comments and strings hide names; string escapes and ${…} end nothing', () => {
  const text = [
    '# a = 1;',
    '/* b = 2; { c = 3; } */ {',
    '  s = "x = 1; } ${ { y = 2; }.y } \\" z = 3;";',
    "  t = ''p = 1; ''' ''${q} ${ \"}\" } '';",
    '  u = 1; # v = 2;',
    '}',
  ].join('\n');
  assert.deepEqual(defs(text), [
    ['s', 2, 2],
    ['t', 3, 2],
    ['u', 4, 2],
  ]);
});

test('a function’s formals, let bindings, with/assert, calls and // are no attributes of the value; the sets they lead to are', () => {
  const text = [
    '{ system ? "x86_64-linux", pkgs ? import <nixpkgs> { inherit system; }, ... }@args:',
    'let',
    '  helper = { hidden = 1; };',
    'in with pkgs; assert true; {',
    '  top = let inner = 1; in { deep = 1; };',
    '  called = f { arg = 1; } // { merged = 2; };',
    '  listed = [ { item = 1; } ];',
    '  fn = x: { body = x; };',
    '  after = with lib; assert x; 1;',
    '  last = 2;',
    '}',
  ].join('\n');
  assert.deepEqual(
    attributeDefinitions(text).map((d) => d.path.join('.')),
    ['top', 'top.deep', 'called', 'called.arg', 'called.merged', 'listed', 'listed.item', 'fn', 'fn.body', 'after', 'last'],
  );
});

test('dynamic names and broken text: no definition for them, the rest still read, nothing thrown', () => {
  assert.deepEqual(defs('{ ${n} = { x = 1; }; "a${b}" = 2; ok = 3; }'), [['ok', 0, 34]]);
  assert.deepEqual(defs('{ a = 1 }; b = 2;'), [['a', 0, 2]]);
  assert.deepEqual(defs('{ a = "unterminated; b = 2; }'), [['a', 0, 2]]);
  assert.deepEqual(defs('{ a = { b = 1; '), [['a', 0, 2], ['a.b', 0, 8]]);
});

test('a path is placed at its deepest written attribute, in Nix’s terms (1-based, UTF-8 byte columns); Nix’s own positions are kept', () => {
  const text = '{\n  /* é😀 */ nested = import ./other.nix // {\n    deep = 1;\n  };\n}\n';
  const place = placerFor(text);
  // é is 2 bytes, 😀 4: the name starts at byte 15, UTF-16 column 12.
  assert.deepEqual(place(['nested', 'deep']), { line: 3, column: 5, inDoc: true, file: null });
  assert.deepEqual(place(['nested', 'fromOther']), { line: 2, column: 16, inDoc: true, file: null });
  assert.equal(place(['absent']), null);
  const nix = { line: 9, column: 9, inDoc: true, file: null };
  const other = { line: 1, column: 3, inDoc: false, file: '/elsewhere/other.nix' };
  assert.deepEqual(
    placeUnpositioned(text, [
      { path: ['nested', 'deep'], pos: nix },
      { path: ['nested', 'fromOther'], pos: other },
      { path: ['nested', 'deep'], pos: null },
      { path: ['absent'], pos: other },
    ]).map((i) => i.pos),
    [nix, { line: 2, column: 16, inDoc: true, file: null }, { line: 3, column: 5, inDoc: true, file: null }, other],
  );
});

test('the lexer: `<…>` inside a string’s ${…} is marked as interpolated (and is a search path Nix looks up); operators are not `=`', () => {
  const tokens = nixTokens('{ a = "${<p>}"; b = x == y; }');
  assert.deepEqual(tokens.filter((t) => t.kind === 'spath').map((t) => [t.value, t.interpolated]), [['p', true]]);
  assert.deepEqual(scanSearchPaths('{ a = "x ${<p>} <q>"; b = \'\'${toString <r>}\'\'; }').map((o) => [o.name, o.column]), [['p', 11], ['r', 39]]);
  assert.deepEqual(tokens.filter((t) => t.text === '=' || t.text === '==').map((t) => t.text), ['=', '=', '==']);
});
