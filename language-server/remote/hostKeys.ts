// Host keys as OpenSSH (and therefore Nix) checks them. Pure: callers read the files.
//
// Where ssh looks a host up:
//   - the name is `HostKeyAlias` if set, else the HostName, written `[HostName]:Port` when the port
//     is not 22 (OpenSSH's `get_hostfile_hostname_ipaddr`);
//   - in every UserKnownHostsFile, then every GlobalKnownHostsFile;
//   - when a machines line has column 8, Nix writes `<URI host> <decoded column 8>` to a temporary
//     file and passes `-oUserKnownHostsFile=<that file>`: the column then replaces the user's
//     known_hosts files (the global ones still count), and it is only found when the URI host
//     equals the name above — hence `HostKeyAlias` for a `Host` alias with another HostName or port.
//
// known_hosts lines: `[@cert-authority|@revoked] patterns keytype base64 [comment]`, where patterns
// is a comma list with `*`/`?` wildcards and `!` negation, or one hashed name `|1|salt|hmac-sha1`.
// Parsing is total: a line that cannot be read is skipped and counted, never thrown on.
import { createHash, createHmac } from 'node:crypto';

export interface PublicKey {
  /** e.g. "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa". */
  type: string;
  /** The SSH wire-format key (what known_hosts holds in base64, and what the server presents). */
  blob: Buffer;
  comment?: string;
}

export interface KnownHostEntry {
  /** The file, or a label such as "column 8 of the machines line". */
  source: string;
  /** 1-based line in `source`. */
  line: number;
  marker?: 'cert-authority' | 'revoked';
  /** The host-pattern field as written (possibly hashed). */
  hostPatterns: string;
  key: PublicKey;
}

export interface ParsedKnownHosts {
  entries: KnownHostEntry[];
  /** 1-based numbers of lines that were neither blank, comments nor readable entries. */
  badLines: number[];
}

export type HostKeyVerdict =
  /** A known key for this name equals the presented key. */
  | { kind: 'match'; entry: KnownHostEntry }
  /** Keys are known for this name, none equals the presented key (`sameType`: one has its type). */
  | { kind: 'mismatch'; expected: KnownHostEntry[]; sameType: boolean }
  /** The presented key is marked `@revoked` for this name. */
  | { kind: 'revoked'; entry: KnownHostEntry }
  /** No key at all is known for this name. */
  | { kind: 'unknown' };

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** The SSH string at `offset` of a wire-format blob, or undefined when the blob is too short. */
export function sshString(blob: Buffer, offset: number): { value: Buffer; next: number } | undefined {
  if (blob.length < offset + 4) return undefined;
  const length = blob.readUInt32BE(offset);
  if (blob.length < offset + 4 + length) return undefined;
  return { value: blob.subarray(offset + 4, offset + 4 + length), next: offset + 4 + length };
}

/** The key type written inside a wire-format blob (its first SSH string), if it looks like one. */
export function blobKeyType(blob: Buffer): string | undefined {
  const s = sshString(blob, 0);
  if (!s || s.value.length === 0 || s.value.length > 64) return undefined;
  const type = s.value.toString('latin1');
  return /^[a-z0-9@.+-]+$/i.test(type) ? type : undefined;
}

/** A key from the blob a server presents. */
export function keyFromBlob(blob: Buffer): PublicKey | undefined {
  const type = blobKeyType(blob);
  return type ? { type, blob: Buffer.from(blob) } : undefined;
}

/**
 * The key type of an OpenSSH private key file (`-----BEGIN OPENSSH PRIVATE KEY-----`), read from
 * the public key it holds unencrypted (also when a passphrase protects the private part).
 */
export function privateKeyType(data: Buffer): string | undefined {
  const m = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(data.toString('latin1'));
  if (!m) return undefined;
  const raw = Buffer.from((m[1] as string).replace(/\s+/g, ''), 'base64');
  const magic = Buffer.from('openssh-key-v1\0', 'latin1');
  if (!raw.subarray(0, magic.length).equals(magic)) return undefined;
  let offset = magic.length;
  for (let i = 0; i < 3; i++) {
    // cipher name, kdf name, kdf options
    const s = sshString(raw, offset);
    if (!s) return undefined;
    offset = s.next;
  }
  if (raw.length < offset + 4 || raw.readUInt32BE(offset) < 1) return undefined;
  const first = sshString(raw, offset + 4);
  return first ? blobKeyType(first.value) : undefined;
}

/** `ssh-ed25519 AAAA… [comment]` → key; undefined when it is not such a line. */
export function parsePublicKeyLine(line: string): PublicKey | undefined {
  const tokens = line.trim().split(/\s+/);
  const [type, data, ...comment] = tokens;
  if (!type || !data || !BASE64.test(data)) return undefined;
  const blob = Buffer.from(data, 'base64');
  if (blobKeyType(blob) !== type) return undefined;
  const key: PublicKey = { type, blob };
  if (comment.length > 0) key.comment = comment.join(' ');
  return key;
}

/** `SHA256:…` as `ssh-keygen -lf` and ssh's own messages print it (base64 without padding). */
export function fingerprintSha256(key: PublicKey | Buffer): string {
  const blob = Buffer.isBuffer(key) ? key : key.blob;
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** `ssh-ed25519 AAAA…` (no comment). */
export function publicKeyLine(key: PublicKey): string {
  return `${key.type} ${key.blob.toString('base64')}`;
}

/** Machines-file column 8 for a key: base64 of its `ssh-ed25519 AAAA…` line. */
export function machinesHostKeyColumn(key: PublicKey): string {
  return Buffer.from(publicKeyLine(key)).toString('base64');
}

/** A known_hosts line pinning `key` for `name`. */
export function knownHostsLine(name: string, key: PublicKey): string {
  return `${name} ${publicKeyLine(key)}`;
}

export type MachinesHostKey = { ok: true; keys: PublicKey[] } | { ok: false; message: string };

/**
 * Decode machines-file column 8 (or a store URI's `base64-ssh-public-host-key`). Nix writes the
 * decoded text after the host name into a known_hosts file, so it must be `type base64 [comment]`.
 */
export function parseMachinesHostKey(column: string): MachinesHostKey {
  const text = column.trim();
  if (!BASE64.test(text)) {
    return { ok: false, message: `column 8 is not base64: give base64 of the 'ssh-ed25519 AAAA…' line (or '-')` };
  }
  const decoded = Buffer.from(text, 'base64');
  // A common mistake: the key's own base64 (`AAAA…`) instead of base64 of the whole line.
  const blobType = blobKeyType(decoded);
  if (blobType) {
    const fixed = machinesHostKeyColumn({ type: blobType, blob: decoded });
    return {
      ok: false,
      message: `column 8 holds the bare key (the 'AAAA…' part), but Nix expects base64 of the whole line '${blobType} AAAA…': use ${fixed}`,
    };
  }
  const keys: PublicKey[] = [];
  for (const line of decoded.toString('utf8').split('\n')) {
    if (line.trim() === '') continue;
    const key = parsePublicKeyLine(line);
    if (!key) {
      return { ok: false, message: `column 8 decodes to '${printable(line)}', which is not a public key line such as 'ssh-ed25519 AAAA…'` };
    }
    keys.push(key);
  }
  if (keys.length === 0) return { ok: false, message: 'column 8 decodes to nothing: give base64 of the \'ssh-ed25519 AAAA…\' line (or \'-\')' };
  return { ok: true, keys };
}

function printable(s: string): string {
  const cut = s.length > 60 ? `${s.slice(0, 60)}…` : s;
  return cut.replace(/[\x00-\x1f\x7f]/g, '?');
}

/** Parse a known_hosts file's text. */
export function parseKnownHosts(text: string, source: string): ParsedKnownHosts {
  const entries: KnownHostEntry[] = [];
  const badLines: number[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    let tokens = line.split(/\s+/);
    let marker: KnownHostEntry['marker'];
    if (tokens[0]?.startsWith('@')) {
      if (tokens[0] === '@cert-authority') marker = 'cert-authority';
      else if (tokens[0] === '@revoked') marker = 'revoked';
      else {
        badLines.push(i + 1);
        return;
      }
      tokens = tokens.slice(1);
    }
    const [patterns, ...rest] = tokens;
    const key = patterns ? parsePublicKeyLine(rest.join(' ')) : undefined;
    if (!patterns || !key) {
      badLines.push(i + 1);
      return;
    }
    const entry: KnownHostEntry = { source, line: i + 1, hostPatterns: patterns, key };
    if (marker) entry.marker = marker;
    entries.push(entry);
  });
  return { entries, badLines };
}

/** The entries Nix's ssh sees from machines column 8: one per key, under the URI host. */
export function machinesColumnEntries(uriHost: string, keys: readonly PublicKey[], source = 'column 8 of the machines line'): KnownHostEntry[] {
  return keys.map((key) => ({ source, line: 1, hostPatterns: uriHost, key }));
}

/** The name ssh looks up in known_hosts for a connection. */
export function knownHostsName(hostName: string, port: number, hostKeyAlias?: string): string {
  if (hostKeyAlias) return hostKeyAlias;
  return port === 22 ? hostName : `[${hostName}]:${port}`;
}

/** OpenSSH `match_pattern`: `*` and `?` wildcards, case-insensitive (host names). */
function wildcardMatch(name: string, pattern: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(name);
}

/** Whether a known_hosts host field names `name` (plain pattern list, or one hashed name). */
export function hostPatternsMatch(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) {
    const [, , salt, hash] = patterns.split('|');
    if (!salt || !hash) return false;
    const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return mac === hash;
  }
  let matched = false;
  for (const pattern of patterns.split(',')) {
    if (pattern.startsWith('!')) {
      if (wildcardMatch(name, pattern.slice(1))) return false;
    } else if (pattern.length > 0 && wildcardMatch(name, pattern)) {
      matched = true;
    }
  }
  return matched;
}

/** A hashed host field for `name`, as `ssh-keygen -H` writes it (for tests and pinning). */
export function hashHostName(name: string, salt: Buffer): string {
  const mac = createHmac('sha1', salt).update(name).digest('base64');
  return `|1|${salt.toString('base64')}|${mac}`;
}

export function sameKey(a: PublicKey, b: PublicKey): boolean {
  return a.type === b.type && a.blob.equals(b.blob);
}

/**
 * OpenSSH's verdict for `presented` (a plain key) under `name`, given every entry of every file it
 * reads (in order). `@cert-authority` lines vouch for host certificates, which ssh2 cannot request:
 * a host with one is checked by OpenSSH itself (openssh.ts), so they do not count here.
 */
export function verifyHostKey(presented: PublicKey, entries: readonly KnownHostEntry[], name: string): HostKeyVerdict {
  const forName = entries.filter((e) => e.marker !== 'cert-authority' && hostPatternsMatch(e.hostPatterns, name));
  const revoked = forName.find((e) => e.marker === 'revoked' && sameKey(e.key, presented));
  if (revoked) return { kind: 'revoked', entry: revoked };
  const plain = forName.filter((e) => e.marker === undefined);
  const match = plain.find((e) => sameKey(e.key, presented));
  if (match) return { kind: 'match', entry: match };
  if (plain.length === 0) return { kind: 'unknown' };
  return { kind: 'mismatch', expected: plain, sameType: plain.some((e) => e.key.type === presented.type) };
}

/** Host-key algorithm names ssh2 can negotiate for a key type ("ssh-rsa" keys sign with rsa-sha2-*). */
export function algorithmsForKeyType(type: string): string[] {
  return type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];
}

/**
 * Order host-key algorithms so that the server presents a key of a type we already know, as
 * OpenSSH does (`order_hostkeyalgs`): otherwise a server with several host keys may present one
 * we have never seen and look "unknown" although its ed25519 key is pinned.
 */
export function preferredHostKeyAlgorithms(known: readonly PublicKey[], supported: readonly string[]): string[] {
  const first: string[] = [];
  for (const key of known) {
    for (const alg of algorithmsForKeyType(key.type)) if (supported.includes(alg) && !first.includes(alg)) first.push(alg);
  }
  return [...first, ...supported.filter((a) => !first.includes(a))];
}
