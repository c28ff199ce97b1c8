// The one reader of Nix store URIs (machines entries, substituters, `--store`), as Nix reads
// them: `scheme://authority/path?key=value&…`, and the bare forms `daemon`, `local`, `auto` and a
// path (a local store with that root). Dependency-free: the extension uses it too.

export interface StoreUri {
  /** "ssh", "ssh-ng", "file", "https", "s3", "unix", … or "daemon", "local", "auto" for the bare forms. */
  scheme: string;
  /** What follows `scheme://` up to the path or the query: `user@host:port`. */
  authority: string;
  /** Before the last `@` of the authority (where ssh splits it). */
  user?: string;
  /**
   * The authority without the user, as written: for SSH stores what Nix hands to ssh (Nix 2.8 does
   * not split off a port: `ssh://b1:2201` makes ssh look up a host named "b1:2201").
   */
  host: string;
  /** The host name alone: without port and IPv6 brackets ("b1", "::1"). */
  hostname: string;
  port?: number;
  /** "/var/cache" of `file:///var/cache`, "/root" of a bare `/root`; "" when there is none. */
  path: string;
  /** Percent-decoded query parameters; the first of a repeated key counts (as in Nix). */
  params: Map<string, string>;
}

export interface SshStoreUri extends StoreUri {
  scheme: 'ssh' | 'ssh-ng';
}

const BARE = new Set(['daemon', 'local', 'auto']);

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** `key=value&…` → map. As Nix: a part without `=` is ignored; values keep further `=` (base64). */
function parseQuery(query: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = decode(part.slice(0, eq));
    if (!params.has(key)) params.set(key, decode(part.slice(eq + 1)));
  }
  return params;
}

function splitHost(host: string): { hostname: string; port?: number } {
  const bracketed = /^\[([^\]]*)\](?::(\d+))?$/.exec(host);
  const plain = bracketed ? undefined : /^([^:]*):(\d+)$/.exec(host);
  const m = bracketed ?? plain;
  if (!m) return { hostname: host };
  return m[2] === undefined ? { hostname: m[1] as string } : { hostname: m[1] as string, port: Number(m[2]) };
}

/** Parts of a store URI; undefined for text that is not one (no scheme, not a bare form). Never throws. */
export function parseStoreUri(uri: string): StoreUri | undefined {
  const q = uri.indexOf('?');
  const base = q < 0 ? uri : uri.slice(0, q);
  const params = parseQuery(q < 0 ? '' : uri.slice(q + 1));
  if (BARE.has(base) || base.startsWith('/')) {
    return { scheme: base.startsWith('/') ? 'local' : base, authority: '', host: '', hostname: '', path: base.startsWith('/') ? base : '', params };
  }
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/]*)(.*)$/i.exec(base);
  if (!m) return undefined;
  const authority = m[2] as string;
  const at = authority.lastIndexOf('@');
  const host = authority.slice(at + 1);
  const out: StoreUri = { scheme: m[1] as string, authority, host, ...splitHost(host), path: m[3] as string, params };
  if (at > 0) out.user = authority.slice(0, at);
  return out;
}

/** An `ssh://` or `ssh-ng://` store with a host; undefined for every other store. */
export function parseSshStoreUri(uri: string): SshStoreUri | undefined {
  const store = parseStoreUri(uri);
  return store && (store.scheme === 'ssh' || store.scheme === 'ssh-ng') && store.host !== '' ? (store as SshStoreUri) : undefined;
}

/** The URI without its parameters and trailing slashes: `https://cache.example.org/?priority=40` → `https://cache.example.org`. */
export function storeBase(uri: string): string {
  const q = uri.indexOf('?');
  return (q < 0 ? uri : uri.slice(0, q)).replace(/\/+$/, '');
}

/** For people and lists: the host of a store that has one ("b1" of `ssh://user@b1?…`), else the URI. */
export function storeHost(uri: string): string {
  return parseStoreUri(uri)?.host || uri;
}
