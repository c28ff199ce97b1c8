// The machines format of `/etc/nix/machines`, `builders = …` and `--builders`:
//   URI systems(,) ssh-key max-jobs speed-factor supported(,) mandatory(,) base64-host-key
// Entries are separated by newlines or `;`, `#` starts a comment, `-` or a missing column means the
// default, and an entry `@path` includes another machines file. This follows Nix's own
// `expandBuilderLines`/`parseBuilderLine`: the text is split on "\n;" first and a comment is cut
// from each piece afterwards.
//
// Parsing is total: a malformed entry becomes an entry with an `error`, never an exception.
// Every entry keeps the byte span it came from, so an edit rewrites exactly that span and an
// unchanged document serialises byte-for-byte to what was read.

export interface Machine {
  /** As Nix sees it: a schemeless host gets "ssh://" prepended. */
  uri: string;
  /** Empty when the column is unset: Nix then uses the local system. */
  systems: string[];
  sshKey: string | undefined;
  maxJobs: number;
  speedFactor: number;
  supportedFeatures: string[];
  mandatoryFeatures: string[];
  /** Column 8, base64 of an `ssh-ed25519 AAAA…` line. */
  publicHostKey: string | undefined;
}

export interface MachineEntry {
  /** Offsets in the document text: [start, end) of the entry without surrounding blanks. */
  start: number;
  end: number;
  /** 0-based line and column of `start`, for diagnostics. */
  line: number;
  column: number;
  text: string;
  /** `@path` include. */
  include?: string;
  machine?: Machine;
  error?: string;
}

export interface MachinesDocument {
  text: string;
  entries: MachineEntry[];
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function splitList(s: string): string[] {
  return s.split(',').filter((x) => x.length > 0);
}

/** Parse one entry (already without comment). Returns the machine or an error message. */
export function parseMachineLine(entry: string): { machine?: Machine; error?: string } {
  // Nix splits columns on blanks only (space, tab, CR), not on other Unicode spaces.
  const tokens = entry.split(/[ \t\r]+/).filter((t) => t.length > 0);
  const isSet = (i: number) => tokens.length > i && tokens[i] !== '-';
  if (!isSet(0)) return { error: 'the store URI is missing in the first column' };
  if (tokens.length > 8) {
    return { error: `too many columns (${tokens.length}; the format has 8): is a comment missing its '#'?` };
  }
  const number = (i: number, name: string, integer: boolean): number | string => {
    const raw = tokens[i] as string;
    const ok = integer ? /^\d+$/.test(raw) : /^\d+(\.\d+)?$/.test(raw);
    if (!ok) return `column ${i + 1} (${name}) must be a ${integer ? 'whole' : 'positive'} number, not '${raw}'`;
    return Number(raw);
  };
  const maxJobs = isSet(3) ? number(3, 'max jobs', true) : 1;
  if (typeof maxJobs === 'string') return { error: maxJobs };
  const speedFactor = isSet(4) ? number(4, 'speed factor', false) : 1;
  if (typeof speedFactor === 'string') return { error: speedFactor };
  if (speedFactor <= 0) return { error: 'column 5 (speed factor) must be greater than 0' };
  let publicHostKey: string | undefined;
  if (isSet(7)) {
    publicHostKey = tokens[7] as string;
    if (!BASE64.test(publicHostKey)) {
      return { error: `column 8 (host key) is not valid base64: give base64 of the 'ssh-ed25519 AAAA…' line, or '-'` };
    }
  }
  const rawUri = tokens[0] as string;
  const schemeless = !rawUri.includes('://') && !['auto', 'local', 'daemon'].includes(rawUri) && !rawUri.startsWith('/');
  return {
    machine: {
      uri: schemeless ? `ssh://${rawUri}` : rawUri,
      systems: isSet(1) ? splitList(tokens[1] as string) : [],
      sshKey: isSet(2) ? tokens[2] : undefined,
      maxJobs,
      speedFactor,
      supportedFeatures: isSet(5) ? splitList(tokens[5] as string) : [],
      mandatoryFeatures: isSet(6) ? splitList(tokens[6] as string) : [],
      publicHostKey,
    },
  };
}

/** Parse a machines document (a file's text, or a `builders` setting value). */
export function parseMachines(text: string): MachinesDocument {
  const entries: MachineEntry[] = [];
  let line = 0;
  let lineStart = 0;
  let pieceStart = 0;
  const finishPiece = (pieceEnd: number) => {
    let piece = text.slice(pieceStart, pieceEnd);
    const hash = piece.indexOf('#');
    if (hash >= 0) piece = piece.slice(0, hash);
    const lead = /^[ \t\r]*/.exec(piece)?.[0].length ?? 0;
    const body = piece.replace(/^[ \t\r]+|[ \t\r]+$/g, '');
    if (body.length === 0) return;
    const start = pieceStart + lead;
    const entry: MachineEntry = {
      start,
      end: start + body.length,
      line,
      column: start - lineStart,
      text: body,
    };
    if (body.startsWith('@')) {
      const path = body.slice(1).trim();
      if (path.length === 0) entry.error = "'@' must be followed by the path of a machines file";
      else entry.include = path;
    } else {
      Object.assign(entry, parseMachineLine(body));
    }
    entries.push(entry);
  };
  for (let i = 0; i <= text.length; i++) {
    const ch = i < text.length ? text[i] : '\n';
    if (ch === '\n' || ch === ';') {
      finishPiece(i);
      pieceStart = i + 1;
      if (ch === '\n') {
        line++;
        lineStart = i + 1;
      }
    }
  }
  return { text, entries };
}

/** Render a machine as one entry in the 8-column format, `-` for defaults. */
export function formatMachine(m: Machine): string {
  const list = (xs: string[]) => (xs.length > 0 ? xs.join(',') : '-');
  const columns = [
    m.uri,
    list(m.systems),
    m.sshKey ?? '-',
    String(m.maxJobs),
    String(m.speedFactor),
    list(m.supportedFeatures),
    list(m.mandatoryFeatures),
    m.publicHostKey ?? '-',
  ];
  // Drop trailing defaults that Nix fills in anyway, but keep at least URI and systems.
  while (columns.length > 2 && columns[columns.length - 1] === '-') columns.pop();
  return columns.join(' ');
}

/** Replace entry `index` with `replacement` (an entry's text). Everything else stays byte-identical. */
export function replaceEntry(doc: MachinesDocument, index: number, replacement: string): string {
  const e = doc.entries[index];
  if (!e) throw new RangeError(`no entry ${index}`);
  return doc.text.slice(0, e.start) + replacement + doc.text.slice(e.end);
}

/** Remove entry `index`; a line left with nothing but blanks is removed whole. */
export function removeEntry(doc: MachinesDocument, index: number): string {
  const e = doc.entries[index];
  if (!e) throw new RangeError(`no entry ${index}`);
  const lineStart = doc.text.lastIndexOf('\n', e.start - 1) + 1;
  const nl = doc.text.indexOf('\n', e.end);
  const lineEnd = nl < 0 ? doc.text.length : nl;
  const rest = doc.text.slice(lineStart, e.start) + doc.text.slice(e.end, lineEnd);
  if (/^[\s;]*$/.test(rest)) {
    return doc.text.slice(0, lineStart) + doc.text.slice(nl < 0 ? lineEnd : lineEnd + 1);
  }
  // Other entries share the line: remove this one and one adjacent separator.
  let s = e.start;
  let t = e.end;
  const after = doc.text.slice(t, lineEnd);
  const sep = /^\s*;[ \t]*/.exec(after);
  if (sep) t += sep[0].length;
  else {
    const before = doc.text.slice(lineStart, s);
    const m = /[ \t]*;\s*$/.exec(before);
    if (m) s -= m[0].length;
  }
  return doc.text.slice(0, s) + doc.text.slice(t);
}

/** Append an entry on a line of its own. */
export function appendEntry(text: string, entry: string): string {
  const eol = /\r\n/.test(text) ? '\r\n' : '\n';
  const sep = text.length === 0 || text.endsWith('\n') ? '' : eol;
  return `${text}${sep}${entry}${eol}`;
}
