// What a cache holds of a closure, checked as a consumer would meet it: every path present
// (`nix path-info --store S --json`), signed (its `signatures`), by a key the consumers trust
// (`nix store verify --store S --no-contents --trusted-public-keys …`: exit bits 1 corrupted,
// 2 untrusted, 4 other), and a fresh temporary store (a local store in a new folder) substitutes
// the top paths from it (`nix-store --store DIR --realise --option substituters S …`), which also
// reads every NAR of the closure and checks its hash. Each check that fails is a problem with its
// fix; nothing is answered "verified" unless the substitution really happened.
import { chmod, lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ErrorCodes, LSPErrorCodes, ResponseError } from 'vscode-languageserver/node';
import { outputsOf } from '../check/check';
import { classify, mostImportant } from '../nix/classifier';
import type { Nix } from '../nix/nix';
import { describeResult, type RunResult } from '../nix/runner';
import { storeName } from '../nix/storePath';
import type { NixCapabilities } from '../nix/version';
import { ServerCommands, type CacheVerification, type DerivationInfo, type StartBuildParams, type VerifyCacheArgs } from '../protocol';
import { readSigningKey } from './sign';

/** One path as `nix path-info --json` describes it; `valid: false` when the store lacks it. */
export interface PathInfo {
  path: string;
  valid: boolean;
  narSize?: number;
  signatures: string[];
  ultimate: boolean;
}

/** `nix path-info --json`: a list before 2.19 (`{path, valid: false}` for a missing path), a map from path from 2.19 (null for a missing one). Undefined: not that JSON. */
export function parsePathInfoJson(text: string): PathInfo[] | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  const entries: Array<[string, unknown]> = Array.isArray(value)
    ? value.flatMap((v) => (v && typeof v === 'object' && typeof (v as { path?: unknown }).path === 'string' ? [[(v as { path: string }).path, v] as [string, unknown]] : []))
    : Object.entries(value);
  return entries.map(([p, v]) => {
    const info = (v ?? {}) as { valid?: unknown; narSize?: unknown; signatures?: unknown; ultimate?: unknown };
    const valid = v !== null && info.valid !== false;
    return {
      path: p,
      valid,
      ...(typeof info.narSize === 'number' ? { narSize: info.narSize } : {}),
      signatures: Array.isArray(info.signatures) ? info.signatures.filter((s): s is string => typeof s === 'string') : [],
      ultimate: info.ultimate === true,
    };
  });
}

/** The key names of `name:signature` entries. */
export const signerNames = (signatures: readonly string[]): string[] => [...new Set(signatures.map((s) => s.slice(0, Math.max(0, s.indexOf(':')))).filter(Boolean))];

/** `nix store verify`'s stderr: the paths it calls untrusted and those whose contents changed. */
export function parseVerifyOutput(stderr: string): { untrusted: string[]; corrupted: string[] } {
  const untrusted = [...stderr.matchAll(/^path '([^']+)' is untrusted$/gm)].map((m) => m[1] as string);
  const corrupted = [...stderr.matchAll(/^path '([^']+)' was modified!/gm)].map((m) => m[1] as string);
  return { untrusted, corrupted };
}

/** `nix store verify`'s exit code as words (bits: 1 corrupted, 2 untrusted, 4 other). */
export function decodeVerifyExit(code: number | undefined): string[] {
  if (code === undefined || code === 0 || code > 7) return [];
  return [...(code & 1 ? ['contents changed'] : []), ...(code & 2 ? ['not signed by a trusted key'] : []), ...(code & 4 ? ['could not be checked'] : [])];
}

/**
 * The paths a substitution refused for their signatures: Nix ≤ 2.2x "the substitute for '…' from
 * '…' is not signed by any of the keys in 'trusted-public-keys'", 2.26 "ignoring substitute for
 * '…' from '…', as it's not signed by any of the keys in 'trusted-public-keys'".
 */
export function substitutionRefusals(stderr: string): string[] {
  return [...stderr.matchAll(/^warning: (?:the substitute|ignoring substitute) for '([^']+)' from '[^']*',? (?:is|as it's) not signed by any of the keys/gm)].map((m) => m[1] as string);
}

/** Options that keep a check from reading Nix's narinfo disk cache (of http(s) and s3 caches): a path pushed a minute ago must not read as missing. */
const FRESH_LOOKUP = ['--option', 'narinfo-cache-negative-ttl', '0', '--option', 'narinfo-cache-positive-ttl', '0'] as const;

const lastLines = (stderr: string, n = 4) => stderr.split('\n').map((l) => l.trim()).filter((l) => l && !/^warning:/.test(l)).slice(-n).join(' ');

/** Why a command failed, classified when Nix's message is one we know. */
export function failureOf(result: RunResult): string {
  const problem = mostImportant(classify(result.stderr));
  if (problem && problem.kind !== 'unknown') return `${problem.message}: ${problem.cause} ${problem.fix}`;
  const tail = lastLines(result.stderr);
  return `${describeResult(result)}${tail ? `: ${tail}` : ''}`;
}

/** What `store` has of `paths` (each path alone, not its closure). */
export async function pathInfosIn(nix: Nix, caps: NixCapabilities, store: string, paths: readonly string[], o: { recursive?: boolean; signal: AbortSignal }): Promise<{ infos: PathInfo[] } | { failed: RunResult }> {
  const args = [...caps.nixCommandPrefix, 'path-info', '--store', store, '--json', ...FRESH_LOOKUP, ...(o.recursive ? ['-r'] : []), ...paths];
  const result = await nix.run(nix.bin('nix'), args, { timeoutMs: 0, signal: o.signal });
  const infos = result.kind === 'ok' ? parsePathInfoJson(result.stdout) : undefined;
  return infos ? { infos } : { failed: result };
}

/** Removes a temporary local store: Nix leaves its store folders read-only. */
async function removeStore(dir: string): Promise<void> {
  const writable = async (p: string): Promise<void> => {
    const st = await lstat(p).catch(() => undefined);
    if (!st?.isDirectory()) return;
    await chmod(p, 0o755).catch(() => undefined);
    for (const e of await readdir(p).catch(() => [] as string[])) await writable(path.join(p, e));
  };
  await writable(dir);
  await rm(dir, { recursive: true, force: true });
}

export interface VerifyOptions {
  store: string;
  /** The paths a consumer asks for (substituted into a fresh store). */
  tops: readonly string[];
  /** Their closure when known (from this machine's store); else asked of `store` (path-info -r). */
  closure?: readonly string[];
  trustedKeys: readonly string[];
  signal: AbortSignal;
  report: (message: string) => void;
  /** Where consumers substitute from, when not `store` itself (an S3 bucket's HTTP address for a staged copy): it must answer, or nothing is verified. */
  substituteFrom?: string;
  /** The public key that signed the push, for the consumer lines of the fix when they do not trust it (never trusted for that). */
  signingKey?: string;
}

/** The consumer lines that trust `key`: nix.conf, a flake's nixConfig, NixOS. */
export const consumerTrustLines = (key: string): string =>
  `extra-trusted-public-keys = ${key} (nix.conf; a flake: nixConfig.extra-trusted-public-keys = [ "${key}" ]; NixOS: nix.settings.trusted-public-keys = [ "${key}" ])`;

/** Whether a binary cache's HTTP address answers (its nix-cache-info): undefined when it does, else why not. */
async function unreadable(url: string, signal: AbortSignal): Promise<string | undefined> {
  const res = await fetch(`${url.replace(/\/+$/, '')}/nix-cache-info`, { signal }).catch((e: Error) => e);
  if (res instanceof Error) return `${url} cannot be reached (${(res.cause as NodeJS.ErrnoException | undefined)?.code ?? res.message})`;
  await res.body?.cancel();
  if (res.ok) return undefined;
  return res.status === 403 || res.status === 401
    ? `${url} refuses anonymous reads (HTTP ${res.status}): the bucket is private, so consumers cannot substitute over HTTP; they need the s3:// URI with credentials (a Nix with S3 support), or make the bucket public-readable`
    : `${url}/nix-cache-info answers HTTP ${res.status}`;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export async function verifyStore(nix: Nix, o: VerifyOptions): Promise<CacheVerification> {
  const trustedKeys = [...o.trustedKeys];
  const notVerified = (summary: string): CacheVerification => ({ status: 'not-verified', checked: 0, problems: [], trustedKeys, summary });
  const caps = await nix.detect();
  if (!caps.ok) return notVerified(`not verified: ${caps.message}`);
  o.report(`verifying ${o.store}: are the paths there and signed?`);
  // Without the closure: the tops first (path-info -r of a path the store lacks fails), then the closure of those it has.
  const asked = await pathInfosIn(nix, caps.value, o.store, o.closure ?? o.tops, { signal: o.signal });
  const has = 'infos' in asked ? asked.infos.filter((i) => i.valid).map((i) => i.path) : [];
  const listed = 'infos' in asked && o.closure === undefined && has.length > 0 ? await pathInfosIn(nix, caps.value, o.store, has, { recursive: true, signal: o.signal }).then((r) => ('infos' in r ? { infos: [...asked.infos.filter((i) => !i.valid), ...r.infos] } : r)) : asked;
  if ('failed' in listed) return notVerified(listed.failed.kind === 'cancelled' ? 'not verified: cancelled' : `not verified: asking ${o.store} what it has failed: ${failureOf(listed.failed)}`);
  const problems: CacheVerification['problems'] = [];
  const keyList = trustedKeys.length > 0 ? trustedKeys.map((k) => k.slice(0, k.indexOf(':'))).join(', ') : 'none';
  const present = listed.infos.filter((i) => i.valid);
  for (const i of listed.infos.filter((x) => !x.valid)) {
    problems.push({ path: i.path, problem: 'missing', message: `${i.path} is not in ${o.store}.`, fix: `Push the closure again (${ServerCommands.pushToCache}); a consumer cannot substitute ${storeName(o.tops[0] ?? i.path)} without it.` });
  }
  for (const i of present.filter((x) => x.signatures.length === 0)) {
    problems.push({
      path: i.path,
      problem: 'unsigned',
      message: `${i.path} is in ${o.store} without any signature: consumers refuse it (require-sigs).`,
      fix: 'Sign the closure and push again: give a key (keyFile, nixBuilders.cache.signingKeyFile or nix.conf\'s secret-key-files) to nixBuilders.pushToCache, or run `nix store sign --key-file KEY.sec -r PATH` before `nix copy`.',
    });
  }
  if (present.length > 0) {
    // Nix trusts the public halves of secret-key-files too: the consumers' keys alone, here.
    const verify = await nix.run(
      nix.bin('nix'),
      [...caps.value.nixCommandPrefix, ...caps.value.storeVerify, '--store', o.store, '--no-contents', '--trusted-public-keys', trustedKeys.join(' '), '--option', 'secret-key-files', '', ...FRESH_LOOKUP, ...present.map((i) => i.path)],
      { timeoutMs: 0, signal: o.signal },
    );
    if (verify.kind === 'cancelled') return notVerified('not verified: cancelled');
    const { untrusted, corrupted } = parseVerifyOutput(verify.stderr);
    const unsigned = new Set(problems.filter((p) => p.problem === 'unsigned').map((p) => p.path));
    for (const p of untrusted.filter((x) => !unsigned.has(x))) {
      const signers = signerNames(present.find((i) => i.path === p)?.signatures ?? []);
      const named = signers.filter((s) => trustedKeys.some((k) => k.startsWith(`${s}:`)));
      const ours = o.signingKey !== undefined && !trustedKeys.includes(o.signingKey) && signers.includes(o.signingKey.slice(0, o.signingKey.indexOf(':')));
      problems.push({
        path: p,
        problem: 'untrusted-key',
        message:
          named.length > 0
            ? `${p} is signed by ${named.join(', ')}, but the signature does not verify with the trusted key of that name (another key with the same name?).`
            : `${p} is signed by ${signers.join(', ') || 'no key'}, which consumers trusting ${keyList} do not accept.`,
        fix: ours
          ? `The consumers must trust the signing key: ${consumerTrustLines(o.signingKey as string)}; or sign with a key they trust and push again.`
          : `Add the signer's public key to the consumers' trusted-public-keys (nix.conf, a flake's nixConfig or NixOS: nix.settings.trusted-public-keys), or sign with a key they trust and push again.`,
      });
    }
    for (const p of corrupted) problems.push({ path: p, problem: 'other', message: `${p}: its contents in ${o.store} do not match its hash.`, fix: 'Delete it from the cache and push again.' });
    if (verify.kind !== 'ok' && untrusted.length === 0 && corrupted.length === 0) {
      problems.push({ problem: 'other', message: `nix store verify failed (${[...decodeVerifyExit(verify.kind === 'exit' ? verify.exitCode : undefined)].join(', ') || describeResult(verify)}): ${failureOf(verify)}` });
    }
  }
  const checked = listed.infos.length;
  let substituted: boolean | undefined;
  if (problems.length === 0) {
    const from = o.substituteFrom ?? o.store;
    if (o.substituteFrom && /^https?:\/\//.test(from)) {
      const why = await unreadable(from, o.signal);
      if (o.signal.aborted) return notVerified('not verified: cancelled');
      if (why) return { ...notVerified(`not verified: ${why}. What ${o.store} holds is not what consumers read, so it proves nothing.`), checked: listed.infos.length };
    }
    o.report(`verifying: a fresh store substitutes ${o.tops.map(storeName).join(', ')} from ${from}`);
    const fresh = await mkdtemp(path.join(tmpdir(), 'nix-builders-verify-'));
    try {
      const realise = await nix.run(
        nix.bin('nix-store'),
        ['--store', fresh, '--realise', '--option', 'substituters', from, '--option', 'trusted-public-keys', trustedKeys.join(' '), ...FRESH_LOOKUP, ...o.tops],
        { timeoutMs: 0, signal: o.signal },
      );
      if (realise.kind === 'cancelled') return notVerified('not verified: cancelled');
      substituted = realise.kind === 'ok';
      if (!substituted) {
        const refused = substitutionRefusals(realise.stderr);
        problems.push({
          ...(refused[0] ? { path: refused[0] } : {}),
          problem: 'not-substitutable',
          message: refused.length > 0 ? `A fresh store refused ${refused.join(', ')} from ${from}: not signed by any of ${keyList}.` : `A fresh store could not substitute ${o.tops.join(', ')} from ${from}: ${failureOf(realise)}`,
          fix: refused.length > 0 ? 'Sign with a key the consumers trust, or add the signer\'s public key to their trusted-public-keys.' : `Check that consumers can reach ${from} (substituters) and that it holds the whole closure.`,
        });
      }
    } finally {
      await removeStore(fresh);
    }
  }
  const status = problems.length > 0 ? 'problems' : 'verified';
  const counts = (kind: CacheVerification['problems'][number]['problem']) => problems.filter((p) => p.problem === kind).length;
  const summary =
    status === 'verified'
      ? `verified: ${plural(checked, 'path')} in ${o.store}, signed by ${signerNames(present.flatMap((i) => i.signatures)).filter((n) => trustedKeys.some((k) => k.startsWith(`${n}:`))).join(', ')} (trusted); a fresh store substituted ${o.tops.map(storeName).join(', ')} from ${o.substituteFrom ?? o.store}`
      : `VERIFICATION FAILED for ${o.store}: ${[
          counts('missing') && `${counts('missing')} of ${checked} paths missing`,
          counts('unsigned') && `${counts('unsigned')} of ${checked} paths UNSIGNED`,
          counts('untrusted-key') && `${counts('untrusted-key')} of ${checked} paths signed by a key the consumers do not trust (trusted: ${keyList})`,
          counts('not-substitutable') && 'a fresh store cannot substitute it',
          counts('other') && `${plural(counts('other'), 'other problem')}`,
        ]
          .filter(Boolean)
          .join('; ')}. ${problems[0]?.fix ?? ''}`.trim();
  return { status, checked, problems, trustedKeys, ...(substituted !== undefined ? { substituted } : {}), summary };
}

/** `[{ store, uri?, attribute?, paths?, trustedPublicKeys? }]`, checked. */
export function verifyArgs(arg: unknown): VerifyCacheArgs & { attrPath?: string[] } {
  const a = arg as Partial<VerifyCacheArgs> | undefined;
  const usage = `${ServerCommands.verifyCache} takes [{ store, uri, attribute } or { store, paths }, with trustedPublicKeys? ]`;
  const strings = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string' && s !== '');
  if (!a || typeof a !== 'object' || typeof a.store !== 'string' || a.store === '') throw new ResponseError(ErrorCodes.InvalidParams, `${usage}: "store" must be the cache's store URI.`);
  const attrPath = typeof a.attribute === 'string' ? a.attribute.split('.') : a.attribute;
  const byAttribute = typeof a.uri === 'string' && strings(attrPath) && attrPath.length > 0;
  if (!byAttribute && !(strings(a.paths) && a.paths.length > 0 && a.paths.every((p) => p.startsWith('/')))) throw new ResponseError(ErrorCodes.InvalidParams, `${usage}: name what to check, an attribute of a file ("uri" and "attribute") or store paths ("paths").`);
  if (a.trustedPublicKeys !== undefined && !(strings(a.trustedPublicKeys) && a.trustedPublicKeys.every((k) => /^[^:\s]+:[A-Za-z0-9+/]+={0,2}$/.test(k)))) throw new ResponseError(ErrorCodes.InvalidParams, `${usage}: "trustedPublicKeys" must be public keys, each "name:base64".`);
  return { store: a.store, ...(byAttribute ? { uri: a.uri as string, attrPath: attrPath as string[] } : { paths: a.paths as string[] }), ...(a.trustedPublicKeys ? { trustedPublicKeys: a.trustedPublicKeys } : {}) };
}

/** What the verify command needs of the server. */
export interface VerifyServer {
  nix: Nix;
  buildTargets(p: StartBuildParams): Promise<DerivationInfo[]>;
  cacheSettings(): { signingKeyFile?: string };
}

/**
 * nixBuilders.server.verifyCache: what `store` holds of an attribute's outputs or of paths. The
 * closure is this machine's when it has the paths, else the store's own; the trusted keys the
 * argument's, else the effective configuration's trusted-public-keys (the key of
 * nixBuilders.cache.signingKeyFile is not trusted for being ours: it names the consumer lines of the fix).
 */
export async function verifyCacheCommand(server: VerifyServer, a: ReturnType<typeof verifyArgs>, o: { signal: AbortSignal; report: (m: string) => void }): Promise<CacheVerification> {
  const nix = server.nix;
  let tops = a.paths ?? [];
  if (a.attrPath && a.uri) {
    const [target] = await server.buildTargets({ uri: a.uri, attrPaths: [a.attrPath] });
    if (!target) throw new ResponseError(ErrorCodes.InvalidParams, `${ServerCommands.verifyCache}: no derivation at ${a.attrPath.join('.')}.`);
    tops = (await outputsOf(nix, target.drvPath, o.signal)).map((x) => x.path);
  }
  const setting = server.cacheSettings().signingKeyFile;
  const own = setting ? await readSigningKey(setting, 'nixBuilders.cache.signingKeyFile') : undefined;
  let trustedKeys = a.trustedPublicKeys;
  if (trustedKeys === undefined) {
    const config = await nix.config(o.signal);
    trustedKeys = config.ok ? config.value.trustedPublicKeys : [];
  }
  const caps = await nix.detect();
  const local = caps.ok ? await pathInfosIn(nix, caps.value, 'auto', tops, { recursive: true, signal: o.signal }) : undefined;
  if (o.signal.aborted) throw new ResponseError(LSPErrorCodes.RequestCancelled, 'The verification was cancelled.');
  const closure = local && 'infos' in local && local.infos.every((i) => i.valid) ? local.infos.map((i) => i.path) : undefined;
  const result = await verifyStore(nix, { store: a.store, tops, ...(closure ? { closure } : {}), trustedKeys, ...(own && 'publicKey' in own ? { signingKey: own.publicKey } : {}), signal: o.signal, report: o.report });
  if (o.signal.aborted) throw new ResponseError(LSPErrorCodes.RequestCancelled, 'The verification was cancelled.');
  return result;
}
