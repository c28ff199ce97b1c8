// The Caches view's facts: the substituters of the effective configuration in the order Nix asks
// them (Priority of nix-cache-info or `?priority=`, lower first, then the configured order —
// `extra-substituters` are in `substituters` already, after it), each with whether it answers,
// its nix-cache-info, and whether the key its paths are signed with is among trusted-public-keys;
// the push targets (nixBuilders.cache.pushTargets); the signing keys; the push queue; and what a
// consumer of the first push target puts in its configuration.
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
const KNOWN_KEY_NAMES: Readonly<Record<string, string>> = { 'https://cache.nixos.org': 'cache.nixos.org-1' };

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
  return [...narinfo.matchAll(/^Sig:\s*([^:\s]+):/gm)].map((m) => m[1] as string);
}

const nameOf = (publicKey: string) => publicKey.slice(0, Math.max(0, publicKey.indexOf(':')));

/**
 * Whether the cache's key is trusted here: the key names of its paths' signatures (a file:// cache's
 * narinfo files are read) against the names in trusted-public-keys; a known cache's key; for an
 * empty push target, the key pushes sign with.
 */
async function keyTrust(uri: string, scheme: string | undefined, origin: CacheInfo['origin'], ctx: ProbeContext): Promise<{ keyTrusted?: boolean; message?: string }> {
  const trustedNames = new Set(ctx.trustedPublicKeys.map(nameOf));
  let names: string[] | undefined;
  let unsigned = 0;
  if (scheme === 'file') {
    const dir = fileURLToPath(storeBase(uri));
    const files = (await fs.readdir(dir).catch(() => [] as string[])).filter((f) => /^[0-9a-df-np-sv-z]{32}\.narinfo$/.test(f)).sort().slice(0, SIGNATURE_SAMPLE);
    names = [];
    for (const f of files) {
      const found = signatureKeyNames(await fs.readFile(`${dir}/${f}`, 'utf8').catch(() => ''));
      if (found.length === 0) unsigned++;
      names.push(...found);
    }
    names = [...new Set(names)];
    if (files.length > 0 && names.length === 0) return { keyTrusted: false, message: 'its paths are not signed: Nix substitutes them only where require-sigs is false; push them signed' };
  } else {
    const known = KNOWN_KEY_NAMES[storeBase(uri)];
    if (known) names = [known];
  }
  if (names && names.length > 0) {
    const trusted = names.filter((n) => trustedNames.has(n));
    const also = unsigned > 0 ? ` (${unsigned} of the paths read are unsigned)` : '';
    if (trusted.length > 0) return { keyTrusted: true, message: `signed by ${trusted.join(', ')}, a trusted key${also}` };
    return { keyTrusted: false, message: `signed by ${names.join(', ')}, not in trusted-public-keys: add its public key there to substitute from it${also}` };
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
  const list = (x: string) => `[ ${nixString(x)} ]`;
  const nixConf = [`extra-substituters = ${target}`, publicKey ? `extra-trusted-public-keys = ${publicKey}` : noKey];
  const flake = ['nixConfig = {', `  extra-substituters = ${list(target)};`, publicKey ? `  extra-trusted-public-keys = ${list(publicKey)};` : `  ${noKey}`, '};'];
  const nixos = [`nix.settings.substituters = ${list(target)};`, publicKey ? `nix.settings.trusted-public-keys = ${list(publicKey)};` : noKey];
  return { nixConf: `${nixConf.join('\n')}\n`, flakeNixConfig: `${flake.join('\n')}\n`, nixos: `${nixos.join('\n')}\n` };
}
