// Where a document writes its attributes, read from its text: for text Nix has given no positions
// for. Nix 2.16 and newer report no position (unsafeGetAttrPos) for text read from stdin, which is
// how an unsaved document is evaluated; Nix's own positions are kept whenever it has them.
import { nixTokens, type NixToken } from './nixLexer';
import type { WalkerPosition } from './walker';

/** An attribute the text defines: its path from the document's value, where its name starts (0-based line, UTF-16 column). */
export interface AttributeDefinition {
  path: string[];
  line: number;
  column: number;
}

interface Frame {
  kind: 'set' | 'let' | 'group';
  /** The attribute path of this set in the document's value (null: not part of it, e.g. a let binding's). */
  base: string[] | null;
  /** A set or let: reading a binding's name (`key`) or its value. */
  state: 'key' | 'value';
  /** The path a set written in the current value would have. */
  valueBase: string[] | null;
  /** `with …;` and `assert …;` seen in the current value: their `;` ends no binding. */
  pendingSemicolons: number;
}

const isPunct = (t: NixToken | undefined, c: string) => t?.kind === 'punct' && t.text === c;

/**
 * The attributes of the document's value that its text writes: bindings of its sets (`name =`,
 * `"name" =`, dotted `a.b.c =`, `inherit`), nested sets under the binding they are the value of
 * (also inside `rec`, `let … in`, `with`, calls and `//`). Not let bindings, a function's formals,
 * dynamic names (`${…}`) or what is inside strings and comments. The first definition of a path wins.
 */
export function attributeDefinitions(text: string): AttributeDefinition[] {
  const tokens = nixTokens(text).filter((t) => !t.interpolated);
  // The index of the `}` that closes each `{`.
  const closing = new Map<number, number>();
  const open: number[] = [];
  tokens.forEach((t, k) => {
    if (isPunct(t, '{')) open.push(k);
    else if (isPunct(t, '}') && open.length > 0) closing.set(open.pop() as number, k);
  });
  const found = new Map<string, AttributeDefinition>();
  const define = (path: string[], at: NixToken) => {
    const key = JSON.stringify(path);
    if (!found.has(key)) found.set(key, { path, line: at.line, column: at.column });
  };
  const frames: Frame[] = [{ kind: 'group', base: [], state: 'value', valueBase: [], pendingSemicolons: 0 }];
  const top = () => frames[frames.length - 1] as Frame;
  const push = (kind: Frame['kind'], base: string[] | null) =>
    frames.push({ kind, base, state: kind === 'group' ? 'value' : 'key', valueBase: kind === 'group' ? base : null, pendingSemicolons: 0 });
  const pop = () => {
    if (frames.length > 1) frames.pop();
  };
  /** A name at `k` (an identifier or a string without `${…}`), or undefined. */
  const nameAt = (k: number) => {
    const t = tokens[k];
    return t?.kind === 'id' ? t.text : t?.kind === 'string' ? t.value : undefined;
  };

  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k] as NixToken;
    const f = top();
    if (f.kind !== 'group' && f.state === 'key') {
      if (isPunct(t, '}') && f.kind === 'set') pop();
      else if (t.kind === 'id' && t.text === 'in' && f.kind === 'let') pop();
      else if (t.kind === 'id' && t.text === 'inherit') {
        k++;
        if (isPunct(tokens[k], '(')) {
          for (let depth = 0; k < tokens.length; k++) {
            if (isPunct(tokens[k], '(')) depth++;
            else if (isPunct(tokens[k], ')') && --depth === 0) break;
          }
          k++;
        }
        for (; k < tokens.length && !isPunct(tokens[k], ';'); k++) {
          const name = nameAt(k);
          if (name !== undefined && f.base) define([...f.base, name], tokens[k] as NixToken);
        }
      } else {
        // An attribute path, then `=`.
        const path: string[] = [];
        let j = k;
        for (;;) {
          const name = nameAt(j);
          if (name === undefined) break;
          path.push(name);
          j++;
          if (!isPunct(tokens[j], '.')) break;
          j++;
        }
        const complete = path.length > 0 && isPunct(tokens[j], '=');
        if (complete && f.base) for (let n = 1; n <= path.length; n++) define([...f.base, ...path.slice(0, n)], t);
        f.state = 'value';
        f.valueBase = complete && f.base ? [...f.base, ...path] : null;
        f.pendingSemicolons = 0;
        // A dynamic or unreadable name: its value is read as any other, under no path.
        k = complete ? j : k - 1;
      }
      continue;
    }
    // In a value.
    const base = f.valueBase;
    if (isPunct(t, ';')) {
      if (f.pendingSemicolons > 0) f.pendingSemicolons--;
      else if (f.kind !== 'group') f.state = 'key';
    } else if (isPunct(t, '{')) {
      const end = closing.get(k);
      const after = end === undefined ? undefined : tokens[end + 1];
      // A function's formals ({ a, b ? 1, ... }: or { … }@args:), not a set.
      if (end !== undefined && (isPunct(after, ':') || isPunct(after, '@'))) k = end;
      else push('set', base);
    } else if (isPunct(t, '}')) {
      // The set or let this value is in ends without a `;` (a syntax error Nix reports itself).
      if (f.kind !== 'group') pop();
    } else if (isPunct(t, '(') || isPunct(t, '[')) push('group', base);
    else if ((isPunct(t, ')') || isPunct(t, ']')) && f.kind === 'group') pop();
    else if (t.kind === 'id' && t.text === 'let') push('let', null);
    else if (t.kind === 'id' && (t.text === 'with' || t.text === 'assert')) f.pendingSemicolons++;
  }
  return [...found.values()];
}

/**
 * Places attribute paths in a text where Nix gave no position in the document: at the deepest
 * attribute of the path that the text writes (as the walker picks among Nix's), or null.
 */
export function placerFor(text: string): (attrPath: readonly string[]) => WalkerPosition | null {
  const byPath = new Map(attributeDefinitions(text).map((d) => [JSON.stringify(d.path), d]));
  const lines = text.split('\n');
  return (attrPath) => {
    for (let n = attrPath.length; n > 0; n--) {
      const d = byPath.get(JSON.stringify(attrPath.slice(0, n)));
      if (!d) continue;
      // Nix counts columns in bytes of UTF-8, from 1.
      const column = Buffer.byteLength((lines[d.line] ?? '').slice(0, d.column), 'utf8') + 1;
      return { line: d.line + 1, column, inDoc: true, file: null };
    }
    return null;
  };
}

/** The walker's items, each without a position in the document placed by its text. */
export function placeUnpositioned<T extends { path: string[]; pos: WalkerPosition | null }>(text: string, items: readonly T[]): T[] {
  if (items.every((i) => i.pos?.inDoc)) return [...items];
  const place = placerFor(text);
  return items.map((i) => {
    if (i.pos?.inDoc) return i;
    const pos = place(i.path);
    return pos ? { ...i, pos } : i;
  });
}
