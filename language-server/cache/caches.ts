// The Caches view's facts: the substituters of the effective configuration in the order Nix asks
// them (Priority of nix-cache-info or `?priority=`, lower first, then the configured order —
// `extra-substituters` are in `substituters` already, after it), each with whether it answers,
// its nix-cache-info, and whether the key its paths are signed with is among trusted-public-keys;
// the push targets (nixBuilders.cache.pushTargets); the signing keys; the push queue; and what a
// consumer of the first push target puts in its configuration.
import { createPublicKey, verify } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Nix } from '../nix/nix';
import { parseStoreUri, storeBase } from '../nix/storeUri';
import { cachePriority, readBinaryCacheFile, urlPriority, type CacheReader } from '../builds/substituters';
import { nixString } from '../builders/testBuild';
import type { CacheInfo, CacheSettings, CachesInfo, PushQueueStatus } from '../protocol';
import { listSigningKeys, type SigningKey } from './keys';

export interface CachesSources {
  nix: Nix;
  cache: CacheSettings;
  /** The push queue's state (cache/queue.ts), when the server runs one. */
  queueStatus?: () => Promise<PushQueueStatus | undefined>;
  read?: CacheReader;
  /** Per cache (default 5 s): a cache that does not answer by then is said to be unreachable. */
  requestTimeoutMs?: number;
}

/** Caches whose signing key is known without asking them. */
const KNOWN_KEYS: Readonly<Record<string, string>> = { 'https://cache.nixos.org': 'cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=' };

/** How many of a file:// cache's narinfo files are read for their signatures. */
const SIGNATURE_SAMPLE = 16;

export async function listCaches(src: CachesSources, signal?: AbortSignal): Promise<CachesInfo> {
  const config = await src.nix.config(signal);
  const queue = await src.queueStatus?.().catch(() => undefined);
  const substituters = config.ok ? config.value.substituters : [];
  const trustedPublicKeys = config.ok ? config.value.trustedPublicKeys : [];
  const keys = await listSigningKeys(src.cache.signingKeyFile ?? '', config.ok ? config.value.secretKeyFiles : []);
  const pushKey = keys.find((k) => k.publicKey !== undefined);
  const probe = (uri: string, i: number, origin: CacheInfo['origin']) => probeCache(uri, origin, { trustedPublicKeys, pushKey, read: src.read ?? readBinaryCacheFile, timeoutMs: src.requestTimeoutMs ?? 5_000, signal }).then((c) => ({ c, i }));
  const ordered = (await Promise.all(substituters.map((s, i) => probe(s, i, 'substituters')))).sort((a, b) => (a.c.priority ?? 0) - (b.c.priority ?? 0) || a.i - b.i);
  const pushTargets = src.cache.pushTargets ?? [];
  const targets = await Promise.all(pushTargets.map((t, i) => probe(t, i, 'push-target')));
  const first = pushTargets[0];
  return {
    caches: [...ordered, ...targets].map((x) => x.c),
    keys,
    trustedPublicKeys,
    ...(queue ? { queue } : {}),
    ...(first !== undefined ? { consumerSnippets: consumerSnippets(first, pushKey?.publicKey) } : {}),
    ...(config.ok ? {} : { problem: config.message }),
  };
}

interface ProbeContext {
  trustedPublicKeys: readonly string[];
  /** The key pushes sign with. */
  pushKey: SigningKey | undefined;
  read: CacheReader;
  timeoutMs: number;
  signal: AbortSignal | undefined;
}

/** One cache: does it answer, its nix-cache-info, its priority, and whether its key is trusted. */
export async function probeCache(uri: string, origin: CacheInfo['origin'], ctx: ProbeContext): Promise<CacheInfo> {
  const scheme = parseStoreUri(uri)?.scheme;
  const info: CacheInfo = { uri, origin, reachable: 'unknown' };
  const messages: string[] = [];
  const fromUrl = urlPriority(uri);
  if (scheme === 'file' || scheme === 'http' || scheme === 'https') {
    const timeout = AbortSignal.timeout(ctx.timeoutMs);
    let text: string | undefined;
    try {
      text = await ctx.read(uri, 'nix-cache-info', ctx.signal ? AbortSignal.any([ctx.signal, timeout]) : timeout);
    } catch (e) {
      info.reachable = 'no';
      messages.push(timeout.aborted ? `no answer within ${Math.round(ctx.timeoutMs / 1000)} s` : `cannot be read: ${(e as Error).message}`);
    }
    if (text !== undefined) {
      info.reachable = 'yes';
      info.cacheInfo = parseCacheInfo(text);
      info.priority = fromUrl ?? cachePriority(text);
    } else if (info.reachable === 'unknown' && scheme === 'file') {
      const exists = await fs.stat(fileURLToPath(storeBase(uri))).then((s) => s.isDirectory(), () => false);
      info.reachable = exists ? 'yes' : 'no';
      messages.push(exists ? 'no nix-cache-info yet: Nix writes it at the first push' : 'the folder does not exist: Nix creates it at the first push (nix copy --to)');
      info.priority = fromUrl ?? 0;
    } else if (info.reachable === 'unknown') {
      info.reachable = 'no';
      messages.push('answers, but has no nix-cache-info: Nix cannot use it as a binary cache');
    }
  } else {
    messages.push(scheme === 'ssh' || scheme === 'ssh-ng' ? 'an SSH store: not probed here (the Builders view checks SSH hosts)' : scheme === 's3' ? 'an S3 bucket: not probed here' : 'not a binary cache that can be asked here');
    info.priority = fromUrl ?? 0;
  }
  const trust = await keyTrust(uri, scheme, origin, ctx);
  if (trust.keyTrusted !== undefined) info.keyTrusted = trust.keyTrusted;
  if (trust.message) messages.push(trust.message);
  if (messages.length > 0) info.message = messages.join('; ');
  return info;
}

/** `Key: value` lines. */
export function parseCacheInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return fields;
}

/** The names of the keys of a narinfo's `Sig:` lines. */
export function signatureKeyNames(narinfo: string): string[] {
  return narinfoSignatures(narinfo).map((x) => x.keyName);
}

/** A narinfo's `Sig:` lines: `name:base64(64-byte Ed25519 signature)`. */
function narinfoSignatures(narinfo: string): Array<{ keyName: string; signature: string }> {
  return [...narinfo.matchAll(/^Sig:\s*([^:\s]+):(\S*)/gm)].map((m) => ({ keyName: m[1] as string, signature: m[2] as string }));
}

/**
 * What a narinfo's signatures sign, as Nix computes it (ValidPathInfo::fingerprint in
 * src/libstore/path-info.cc): `1;<store path>;sha256:<nix32 NAR hash>;<NAR size>;<references as
 * full store paths, sorted, comma-separated>`. Undefined when the narinfo lacks a field or writes
 * its NarHash in another form (Nix would convert it; this does not).
 */
export function narinfoFingerprint(narinfo: string): string | undefined {
  const f = parseCacheInfo(narinfo);
  const storePath = f.StorePath;
  if (!storePath?.startsWith('/') || !/^sha256:[0-9a-df-np-sv-z]{52}$/.test(f.NarHash ?? '') || !/^[1-9]\d*$/.test(f.NarSize ?? '')) return undefined;
  const storeDir = storePath.slice(0, storePath.lastIndexOf('/'));
  const refs = (f.References ?? '').split(/\s+/).filter(Boolean).map((r) => `${storeDir}/${r}`).sort();
  return `1;${storePath};${f.NarHash};${f.NarSize};${refs.join(',')}`;
}

/** Whether `signature` (base64) of `fingerprint` is made by the public key `name:base64(32 bytes)`. */
export function signatureVerifies(fingerprint: string, signature: string, publicKey: string): boolean {
  const raw = Buffer.from(publicKey.slice(publicKey.indexOf(':') + 1), 'base64');
  const sig = Buffer.from(signature, 'base64');
  if (raw.length !== 32 || sig.length !== 64) return false;
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
  return verify(null, Buffer.from(fingerprint), key, sig);
}

const nameOf = (publicKey: string) => publicKey.slice(0, Math.max(0, publicKey.indexOf(':')));

/** How a signing key's name stands against trusted-public-keys. */
type KeyStanding = 'verified' | 'name-only' | 'other-key' | 'untrusted';

/**
 * Whether the cache's key is trusted here, by the whole public key: a file:// cache's narinfo
 * signatures are verified with the trusted-public-keys of their key's name (a different key with
 * a trusted key's name is not trusted); a known cache's public key is looked up in
 * trusted-public-keys; for an empty push target, the key pushes sign with.
 */
async function keyTrust(uri: string, scheme: string | undefined, origin: CacheInfo['origin'], ctx: ProbeContext): Promise<{ keyTrusted?: boolean; message?: string }> {
  /** Per key name, the best standing seen in the narinfo files read. */
  const standing = new Map<string, KeyStanding>();
  const rank: Record<KeyStanding, number> = { verified: 3, 'name-only': 2, 'other-key': 1, untrusted: 0 };
  const see = (name: string, s: KeyStanding) => {
    const was = standing.get(name);
    if (was === undefined || rank[s] > rank[was]) standing.set(name, s);
  };
  let unsigned = 0;
  if (scheme === 'file') {
    const dir = fileURLToPath(storeBase(uri));
    const files = (await fs.readdir(dir).catch(() => [] as string[])).filter((f) => /^[0-9a-df-np-sv-z]{32}\.narinfo$/.test(f)).sort().slice(0, SIGNATURE_SAMPLE);
    for (const f of files) {
      const narinfo = await fs.readFile(`${dir}/${f}`, 'utf8').catch(() => '');
      const sigs = narinfoSignatures(narinfo);
      if (sigs.length === 0) unsigned++;
      const fingerprint = narinfoFingerprint(narinfo);
      for (const { keyName, signature } of sigs) {
        const keys = ctx.trustedPublicKeys.filter((k) => nameOf(k) === keyName);
        if (keys.length === 0) see(keyName, 'untrusted');
        else if (fingerprint === undefined) see(keyName, 'name-only');
        else see(keyName, keys.some((k) => signatureVerifies(fingerprint, signature, k)) ? 'verified' : 'other-key');
      }
    }
    if (files.length > 0 && standing.size === 0) return { keyTrusted: false, message: 'its paths are not signed: Nix substitutes them only where require-sigs is false; push them signed' };
  } else {
    const known = KNOWN_KEYS[storeBase(uri)];
    if (known) see(nameOf(known), ctx.trustedPublicKeys.includes(known) ? 'verified' : ctx.trustedPublicKeys.some((k) => nameOf(k) === nameOf(known)) ? 'other-key' : 'untrusted');
  }
  if (standing.size > 0) {
    const named = (s: KeyStanding) => [...standing].filter(([, v]) => v === s).map(([k]) => k).join(', ');
    const also = unsigned > 0 ? ` (${unsigned} of the paths read are unsigned)` : '';
    const others = named('other-key') ? `; signed by a key named ${named('other-key')} too, which is not the public key of that name in trusted-public-keys` : '';
    if (named('verified')) return { keyTrusted: true, message: `signed by ${named('verified')}, a trusted key (the signature checked with its public key in trusted-public-keys)${others}${also}` };
    if (named('name-only')) return { keyTrusted: true, message: `signed by ${named('name-only')}, a trusted key by its name: only the key's name was compared (the narinfo could not be checked against the public key)${others}${also}` };
    if (named('other-key')) return { keyTrusted: false, message: `signed by a key named ${named('other-key')}, but not by the public key of that name in trusted-public-keys (another key with the same name): Nix refuses its paths; push them signed by the trusted key, or trust this one's public key${also}` };
    return { keyTrusted: false, message: `signed by ${named('untrusted')}, not in trusted-public-keys: add its public key there to substitute from it${also}` };
  }
  if (origin === 'push-target' && ctx.pushKey?.publicKey) {
    const k = ctx.pushKey;
    const trusted = ctx.trustedPublicKeys.includes(k.publicKey as string);
    return { keyTrusted: trusted, message: `nothing signed in it yet; pushes sign with ${k.keyName}, ${trusted ? 'a trusted key' : 'not in trusted-public-keys here'}` };
  }
  return {};
}

/** What a consumer of `target` adds: in nix.conf, a flake's nixConfig, and NixOS. */
export function consumerSnippets(target: string, publicKey: string | undefined): NonNullable<CachesInfo['consumerSnippets']> {
  const noKey = '# No signing key yet: Nix substitutes only signed paths. Generate one (Nix Builders: Generate Signing Key…) and push again.';
  // A file:// cache is a folder of this machine: another machine's Nix cannot read it.
  const local = parseStoreUri(target)?.scheme === 'file' ? [`# ${target} is readable only on this machine: for other machines serve its folder over HTTP (any web server) and give that URL, or push to ssh://host instead.`] : [];
  const list = (x: string) => `[ ${nixString(x)} ]`;
  const nixConf = [...local, `extra-substituters = ${target}`, publicKey ? `extra-trusted-public-keys = ${publicKey}` : noKey];
  const flake = [
    ...local,
    '# A flake\'s nixConfig applies only with accept-flake-config (or a yes when Nix asks), and its extra-trusted-public-keys only for',
    '# users in trusted-users (the daemon ignores it from others): everyone else puts these settings in nix.conf.',
    'nixConfig = {',
    `  extra-substituters = ${list(target)};`,
    publicKey ? `  extra-trusted-public-keys = ${list(publicKey)};` : `  ${noKey}`,
    '};',
  ];
  const nixos = [...local, `nix.settings.substituters = ${list(target)};`, publicKey ? `nix.settings.trusted-public-keys = ${list(publicKey)};` : noKey];
  return { nixConf: `${nixConf.join('\n')}\n`, flakeNixConfig: `${flake.join('\n')}\n`, nixos: `${nixos.join('\n')}\n` };
}
