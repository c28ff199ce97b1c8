// The tokens of a Nix text that the server reads without Nix: names, strings, `<…>` and
// punctuation, outside comments, with what is inside a string's `${…}` marked as such. Not a
// parser: numbers, paths and operators come out as single characters or short tokens.

export interface NixToken {
  kind: 'id' | 'string' | 'spath' | 'punct' | 'other';
  /** The token's text; a string's whole literal. */
  text: string;
  /** A string without `${…}`: its value; a `<…>`: its name. */
  value?: string;
  /** 0-based line, UTF-16 columns of its start and end (on the line it starts on). */
  line: number;
  column: number;
  endColumn: number;
  /** Inside the `${…}` of a string. */
  interpolated: boolean;
}

// Nix's lexer: ID [a-zA-Z\_][a-zA-Z0-9\_\'\-]*; SPATH \<{PATH_CHAR}+(\/{PATH_CHAR}+)*\>, PATH_CHAR [a-zA-Z0-9\.\_\-\+].
const ID = /[A-Za-z_][A-Za-z0-9_'-]*/y;
const SPATH = /<([a-zA-Z0-9._\-+]+(?:\/[a-zA-Z0-9._\-+]+)*)>/y;
const PUNCT = new Set(['{', '}', '(', ')', '[', ']', ';', '=', '.', ':', '@', ',']);
// Operators that hold a PUNCT character but are none of them.
const OPERATORS = ['==', '!=', '<=', '>=', '//', '...'];
const ESCAPES: Record<string, string> = { n: '\n', r: '\r', t: '\t' };

/** The tokens of `text`, in order; an unterminated string or comment ends them, without throwing. */
export function nixTokens(text: string): NixToken[] {
  const tokens: NixToken[] = [];
  let i = 0;
  let line = 0;
  let lineStart = 0;
  /** Moves to `end`, counting the lines passed. */
  const advance = (end: number) => {
    for (; i < end; i++) {
      if (text[i] === '\n') {
        line++;
        lineStart = i + 1;
      }
    }
  };
  const push = (kind: NixToken['kind'], start: number, startLine: number, startLineStart: number, interpolated: boolean, value?: string) => {
    const t: NixToken = { kind, text: text.slice(start, i), line: startLine, column: start - startLineStart, endColumn: (startLine === line ? i : text.indexOf('\n', start)) - startLineStart, interpolated };
    if (value !== undefined) t.value = value;
    return t;
  };

  /** Code up to the `}` that closes a `${` (`inString`), or to the end. */
  const code = (inString: boolean): void => {
    let depth = 0;
    while (i < text.length) {
      const c = text[i] as string;
      if (c === '\n' || c === ' ' || c === '\t' || c === '\r') advance(i + 1);
      else if (c === '#') {
        const end = text.indexOf('\n', i);
        advance(end < 0 ? text.length : end);
      } else if (c === '/' && text[i + 1] === '*') {
        const end = text.indexOf('*/', i + 2);
        advance(end < 0 ? text.length : end + 2);
      } else if (c === '"') string(inString, '"');
      else if (c === "'" && text[i + 1] === "'") string(inString, "''");
      else {
        const start = i;
        const op = OPERATORS.find((o) => text.startsWith(o, i));
        ID.lastIndex = SPATH.lastIndex = i;
        const id = op ? null : ID.exec(text);
        const spath = op || id || c !== '<' ? null : SPATH.exec(text);
        if (c === '}' && inString && depth === 0) {
          i++;
          return;
        }
        if (c === '{') depth++;
        else if (c === '}') depth--;
        if (op) {
          advance(i + op.length);
          tokens.push(push('other', start, line, lineStart, inString));
        } else if (id) {
          advance(i + id[0].length);
          tokens.push(push('id', start, line, lineStart, inString));
        } else if (spath) {
          advance(i + spath[0].length);
          tokens.push(push('spath', start, line, lineStart, inString, spath[1]));
        } else {
          advance(i + 1);
          tokens.push(push(PUNCT.has(c) ? 'punct' : 'other', start, line, lineStart, inString));
        }
      }
    }
  };

  /** A "…" or ''…'' string from its opening quote; what its `${…}` hold are tokens too (before it). */
  const string = (interpolated: boolean, quote: '"' | "''"): void => {
    const start = i;
    const startLine = line;
    const startLineStart = lineStart;
    const slot = tokens.length;
    tokens.push(push('string', start, line, lineStart, interpolated));
    advance(i + quote.length);
    let value: string | undefined = '';
    for (;;) {
      if (i >= text.length) {
        tokens.length = slot; // unterminated: nothing more to say
        return;
      }
      const c = text[i] as string;
      if (quote === '"' && c === '"') {
        advance(i + 1);
        break;
      } else if (quote === '"' && c === '\\') {
        const e = text[i + 1] ?? '';
        if (value !== undefined) value += ESCAPES[e] ?? e;
        advance(i + 2);
      } else if (quote === "''" && text.startsWith("''", i)) {
        // '' ends it unless it escapes: ''' (a '), ''$ (a $), ''\x (x).
        const e = text[i + 2];
        if (e === "'" || e === '$') {
          if (value !== undefined) value += e;
          advance(i + 3);
        } else if (e === '\\') {
          if (value !== undefined) value += ESCAPES[text[i + 3] ?? ''] ?? text[i + 3] ?? '';
          advance(i + 4);
        } else {
          advance(i + 2);
          break;
        }
      } else if (c === '$' && text[i + 1] === '{') {
        value = undefined;
        advance(i + 2);
        code(true);
      } else {
        if (value !== undefined) value += c;
        advance(i + 1);
      }
    }
    const end = i;
    const t = { ...(tokens[slot] as NixToken), text: text.slice(start, end), endColumn: (startLine === line ? end : text.indexOf('\n', start)) - startLineStart };
    // An indented string's value is not de-indented: only a simple "…" name is ever looked up.
    if (value !== undefined) t.value = value;
    tokens[slot] = t;
  };

  code(false);
  return tokens;
}
