// Push to a cache: the closure of an attribute's outputs (built first when they are not valid),
// signed closure-wide, copied with `nix copy --to` to a file://, ssh://, ssh-ng:// or s3:// store,
// then verified as a consumer meets it (verify.ts). What will happen is said before it does
// ("Pushing 12 paths (30 already in the cache) to …", and for an ssh target whose user Nix does
// not trust: that only signatures it trusts get in, since Nix ignores --no-check-sigs for such a
// user), each path's bytes while it is copied, and after, what was pushed and skipped and why.
//
// s3://: a Nix with S3 support copies there itself. One without (Debian's: "don't know how to open
// Nix store 's3://…'") stages the closure into a file:// cache of its own per bucket
// (`stagingRoot`) and hands that folder to a StagedUpload, the one call that uploads what the
// bucket lacks; without one the push fails and says why. The staged copy is removed once uploaded
// and verified (from the bucket's HTTP address: the staged copy proves nothing to consumers).
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import * as path from 'node:path';
import { ErrorCodes, LSPErrorCodes, ResponseError } from 'vscode-languageserver/node';
import { outputsOf } from '../check/check';
import { classify, mostImportant, type NixProblem } from '../nix/classifier';
import { InternalJsonLogParser, type LogEvent } from '../nix/logParser';
import { readFullDerivation } from '../nix/derivationFile';
import type { Nix, Outcome } from '../nix/nix';
import type { NixConfig } from '../nix/nixConf';
import type { RunResult } from '../nix/runner';
import { hashPart, storeName } from '../nix/storePath';
import { parseStoreUri } from '../nix/storeUri';
import type { NixCapabilities } from '../nix/version';
import { ServerCommands, type BuildInfo, type BuildProgress, type DerivationInfo, type PushToCacheArgs, type PushToCacheResult, type StartBuildParams } from '../protocol';
import { parseS3StoreUri } from './s3';
import { resolveSigningKey, secretKeyFilesOf, signClosure, type SigningKey } from './sign';
import { failureOf, pathInfosIn, verifyStore, type PathInfo } from './verify';

/** Uploads a staged file:// cache to `to` (an s3:// store this Nix cannot open): what it uploaded, and what the bucket already had. */
export type StagedUpload = (o: { stagingDir: string; to: string; signal: AbortSignal; onProgress: (m: string) => void }) => Promise<{ uploaded: string[]; skipped: string[] }>;

/** Where staged caches live: `$XDG_CACHE_HOME/nix-builders/push-staging` (~/.cache when unset). */
export function defaultStagingRoot(env: Readonly<Record<string, string | undefined>>): string {
  return path.join(env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'nix-builders', 'push-staging');
}

/**
 * Where consumers substitute from an s3:// store over plain HTTP: its endpoint path-style
 * (`http(s)://endpoint/bucket`) or virtual-host style, else AWS's (`https://<bucket>.s3.<region>.amazonaws.com`).
 */
export function bucketHttpAddress(to: string): string {
  const t = parseS3StoreUri(to);
  if (!t.endpoint) return `https://${t.bucket}.s3.${t.region}.amazonaws.com`;
  const endpoint = t.endpoint.replace(/\/+$/, '');
  return t.forcePathStyle ? `${endpoint}/${t.bucket}` : endpoint.replace(/^(https?:\/\/)/, `$1${t.bucket}.`);
}

/** The staging folder of one target: readable name, and a hash so that two buckets never share one. */
export function stagingDirFor(root: string, to: string): string {
  const readable = to.replace(/^[a-z0-9+-]+:\/\//, '').replace(/\?.*$/, '').replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 60);
  return path.join(root, `${readable}-${createHash('sha256').update(to).digest('hex').slice(0, 12)}`);
}

const MiB = 1024 * 1024;
const formatBytes = (n: number) => (n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * Progress of a `nix copy` from its internal-json log: copyPath activities (100) name the path;
 * their progress results (105, Nix 2.2x: `[done, expected]` bytes) the bytes, else the NAR sizes
 * of this machine's path-info stand for them when a path ends.
 */
export class CopyProgress {
  private readonly running = new Map<string, { path: string; done: number; expected: number }>();
  readonly copied: string[] = [];
  private bytesDone = 0;

  constructor(
    private readonly total: number,
    private readonly sizes: ReadonlyMap<string, number>,
    private readonly totalBytes: number,
  ) {}

  /** The line to show after this event, or undefined when it changes nothing. */
  event(ev: LogEvent): string | undefined {
    if (ev.kind === 'start' && ev.copyPath) {
      const size = this.sizes.get(ev.copyPath.path) ?? 0;
      this.running.set(ev.id, { path: ev.copyPath.path, done: 0, expected: size });
      return this.line();
    }
    if (ev.kind === 'result' && ev.progress) {
      const r = this.running.get(ev.id);
      if (!r) return undefined;
      r.done = ev.progress.done;
      if (ev.progress.expected > 0) r.expected = ev.progress.expected;
      return this.line();
    }
    if (ev.kind === 'stop') {
      const r = this.running.get(ev.id);
      if (!r) return undefined;
      this.running.delete(ev.id);
      this.copied.push(r.path);
      this.bytesDone += this.sizes.get(r.path) ?? r.expected;
      return this.line();
    }
    return undefined;
  }

  line(): string {
    const inFlight = [...this.running.values()];
    const bytes = this.bytesDone + inFlight.reduce((n, r) => n + r.done, 0);
    const now = inFlight.map((r) => `${storeName(r.path)} (${r.done > 0 ? `${formatBytes(r.done)} of ` : ''}${formatBytes(r.expected)})`);
    return `${this.copied.length}/${this.total} paths, ${formatBytes(bytes)} of ${formatBytes(this.totalBytes)}${now.length ? ` · copying ${now.join(', ')}` : ''}`;
  }
}

export type Trust = 'trusted' | 'untrusted' | 'unknown';

/** `Trusted: 1` / `Trusted: 0` of `nix store info` / `store ping` (2.15+, either stream); undefined when it says nothing. */
export function parseStoreTrust(text: string): boolean | undefined {
  const m = /^Trusted: (\d)$/m.exec(text);
  return m ? m[1] === '1' : undefined;
}

/** Whether an ssh store's remote user is trusted (its --no-check-sigs honoured): as the store says (2.15+), root always is, else unknown. */
async function storeTrust(nix: Nix, caps: NixCapabilities, to: string, signal: AbortSignal): Promise<Trust> {
  const uri = parseStoreUri(to);
  if (caps.reportsTrust) {
    const info = await nix.run(nix.bin('nix'), [...caps.nixCommandPrefix, ...caps.storeInfo, '--store', to], { timeoutMs: 60_000, signal });
    const said = parseStoreTrust(`${info.stdout}\n${info.stderr}`);
    if (said !== undefined) return said ? 'trusted' : 'untrusted';
  }
  return uri?.user === 'root' ? 'trusted' : 'unknown';
}

/** The paths a bucket had already, which the upload does not replace: their narinfos there keep the signatures they had. */
function staleInBucket(to: string, paths: readonly string[]): string {
  const { bucket } = parseS3StoreUri(to);
  const names = paths.map((p) => `s3://${bucket}/${hashPart(p)}.narinfo`);
  const were = paths.length === 1 ? 'was' : 'were';
  return `${plural(paths.length, 'path')} of the closure ${were} in ${to} already and ${were} not uploaded again: an upload never replaces a narinfo the bucket has, so they keep the signatures they had there (signing them here does not reach the bucket). Fix: remove those narinfos (\`aws s3 rm\` ${names.slice(0, 3).join(' ')}${names.length > 3 ? ' …' : ''}) and push again.`;
}

/** A failed push's problem, said for a push: the target, the key and what to change. */
export function pushProblem(problem: NixProblem, o: { to: string; key?: SigningKey }): string {
  switch (problem.kind) {
    case 'lacks-signature': {
      const uri = parseStoreUri(o.to);
      const who = uri?.user ? `the user ${uri.user}` : 'the ssh user';
      const host = uri?.hostname ?? o.to;
      const sign = o.key
        ? `add the public key ${o.key.publicKey} to trusted-public-keys in ${host}'s nix.conf and restart its nix-daemon`
        : `sign the closure (give nixBuilders.pushToCache a keyFile, or set nixBuilders.cache.signingKeyFile) with a key whose public half is in ${host}'s trusted-public-keys`;
      return `${o.to} refused ${problem.details.path}: it is not signed by a key ${host} trusts, and ${who} is not trusted there (Nix ignores --no-check-sigs for untrusted users). Fix: ${sign}, or add ${who.replace(/^the (user )?/, '')} to trusted-users there.`;
    }
    case 's3-unsupported':
      return `This Nix cannot talk to S3 (no S3 support built in): ${problem.message}. ${problem.fix}`;
    default:
      return `${problem.message}: ${problem.cause} ${problem.fix}`;
  }
}

export interface PushOptions {
  tops: readonly string[];
  /** The closure of `tops` in this machine's store, when the caller has read it (else read here). */
  closure?: PathInfo[];
  /** The effective configuration, when the caller has begun reading it (else read here). */
  config?: Promise<Outcome<NixConfig>>;
  to: string;
  /** The command's keyFile; else `settingKeyFile`; else nix.conf's secret-key-files. */
  keyFile?: string;
  settingKeyFile?: string;
  /** The consumers' keys (default: trusted-public-keys of the effective configuration; the signing key is not trusted for being used). */
  trustedKeys?: readonly string[];
  stagingRoot: string;
  stagedUpload?: StagedUpload;
  signal: AbortSignal;
  report: (message: string) => void;
}

const cancelled = () => new ResponseError(LSPErrorCodes.RequestCancelled, 'The push was cancelled.');

/** Signs the closure of `tops`, pushes it to `to` and verifies it there. */
export async function pushClosure(nix: Nix, o: PushOptions): Promise<PushToCacheResult> {
  const caps = await nix.detect();
  const answer = (status: PushToCacheResult['status'], summary: string, rest: Partial<PushToCacheResult> = {}): PushToCacheResult => ({
    status,
    verified: false,
    to: o.to,
    summary,
    pushed: [],
    skipped: [],
    signed: { status: 'unsigned' },
    problems: [],
    ...rest,
  });
  if (!caps.ok) return answer('not-started', `Not pushed: ${caps.message}`, { problems: [caps.message] });
  const c = caps.value;
  const uri = parseStoreUri(o.to);
  if (!uri || !['file', 'ssh', 'ssh-ng', 's3'].includes(uri.scheme)) {
    throw new ResponseError(ErrorCodes.InvalidParams, `${ServerCommands.pushToCache}: "to" must be a file://, ssh://, ssh-ng:// or s3:// store URI (got ${JSON.stringify(o.to)}).`);
  }
  // The configuration (nix.conf's secret-key-files and trusted-public-keys) is read beside the rest,
  // and waited for only where it is needed.
  const config = o.config ?? nix.config(o.signal);
  o.report('reading the closure');
  const local = o.closure ? { infos: o.closure } : await pathInfosIn(nix, c, 'auto', o.tops, { recursive: true, signal: o.signal });
  if ('failed' in local) {
    if (local.failed.kind === 'cancelled') throw cancelled();
    return answer('failed', `Not pushed: the closure of ${o.tops.join(', ')} could not be read: ${failureOf(local.failed)}`, { problems: [failureOf(local.failed)] });
  }
  let secretKeyFiles: string[] = [];
  if (o.keyFile === undefined && !o.settingKeyFile) {
    const conf = await config;
    if (!conf.ok) return answer('not-started', `Not pushed: ${conf.message}`, { problems: [conf.message] });
    secretKeyFiles = secretKeyFilesOf(conf.value.raw);
  }
  const { key, problem: keyProblem } = await resolveSigningKey({ ...(o.keyFile !== undefined ? { keyFile: o.keyFile } : {}), ...(o.settingKeyFile ? { settingKeyFile: o.settingKeyFile } : {}), secretKeyFiles });
  if (keyProblem) return answer('not-started', `Not pushed: ${keyProblem}`, { problems: [keyProblem] });
  const closure = local.infos.filter((i) => i.valid);
  const sizes = new Map(closure.map((i) => [i.path, i.narSize ?? 0] as const));

  // What the target has already, whether its ssh user is trusted, and the signing (closure-wide), at once.
  o.report(`asking ${o.to} which of ${plural(closure.length, 'path')} it has${key ? `; signing them with ${key.keyName}` : ''}`);
  const [there, trust, signing] = await Promise.all([
    pathInfosIn(nix, c, o.to, closure.map((i) => i.path), { signal: o.signal }),
    uri.scheme === 'ssh' || uri.scheme === 'ssh-ng' ? storeTrust(nix, c, o.to, o.signal) : Promise.resolve<Trust>('trusted'),
    key ? signClosure(nix, c.signPaths, c.nixCommandPrefix, key, o.tops, o.signal) : undefined,
  ]);
  if (o.signal.aborted) throw cancelled();
  let staged: string | undefined;
  let present = new Set<string>();
  if ('failed' in there) {
    const problem = mostImportant(classify(there.failed.stderr));
    if (uri.scheme === 's3' && problem?.kind === 's3-unsupported') staged = stagingDirFor(o.stagingRoot, o.to);
    else return answer('failed', `Not pushed: ${problem && problem.kind !== 'unknown' ? pushProblem(problem, { to: o.to, ...(key ? { key } : {}) }) : failureOf(there.failed)}`, { problems: [failureOf(there.failed)] });
  } else present = new Set(there.infos.filter((i) => i.valid).map((i) => i.path));
  const missing = closure.filter((i) => !present.has(i.path));
  const skipped = closure.filter((i) => present.has(i.path)).map((i) => ({ path: i.path, why: `already in ${o.to}` }));

  let signed: PushToCacheResult['signed'];
  // A user the nix-daemon does not trust cannot sign in this machine's store: the target's copy is signed after the copy.
  const signThereOnly = signing?.notPrivileged === true;
  if (key) {
    if (signing?.problem && !signThereOnly) return answer('failed', `Not pushed: ${signing.problem}`, { skipped, problems: [signing.problem] });
    signed = { status: 'signed', keyName: key.keyName };
  } else {
    const unsignedPaths = closure.filter((i) => i.signatures.length === 0);
    signed =
      unsignedPaths.length === 0
        ? { status: 'already-signed', keyName: [...new Set(closure.flatMap((i) => i.signatures.map((s) => s.slice(0, s.indexOf(':')))))].join(', ') }
        : {
            status: 'unsigned',
            message: `UNSIGNED: no signing key is set (keyFile, nixBuilders.cache.signingKeyFile, nix.conf's secret-key-files), and ${plural(unsignedPaths.length, 'path')} of the closure carry no signature: consumers with require-sigs (the default) will refuse them.`,
          };
  }

  // Before pushing: what will happen.
  const notes: string[] = [];
  if (uri.scheme === 'ssh' || uri.scheme === 'ssh-ng') {
    if (trust !== 'trusted') {
      const who = uri.user ?? 'the ssh user';
      const needs = `${o.to} accepts paths from ${who} only when they are signed by a key in its trusted-public-keys, because Nix ignores --no-check-sigs for an untrusted user`;
      const state = signed.status === 'unsigned' ? 'these paths are unsigned, so the push will fail' : `they are signed by ${signed.keyName}: ${o.to} must list its public key${key ? ` (${key.publicKey})` : ''} in trusted-public-keys`;
      notes.push(trust === 'untrusted' ? `${who} is not a trusted user of ${o.to}: ${needs}; ${state}.` : `If ${who} is not in ${o.to}'s trusted-users (Nix ${c.version.text} cannot ask), ${needs}; ${state}.`);
    }
  }
  if (signed.status === 'unsigned' && signed.message) notes.push(signed.message);
  if (signThereOnly) notes.push(`This user may not add signatures to this machine's store (the nix-daemon does not trust it: "you are not privileged to add signatures"): the copy in ${staged ? `the staging cache ${staged}` : o.to} is signed with ${key?.keyName} after it is copied. To sign here, add this user to the daemon's trusted-users.`);
  const announce = staged
    ? `This Nix cannot open ${o.to} (no S3 support built in): staging ${plural(closure.length, 'path')} in ${staged}, then uploading what the bucket lacks`
    : `Pushing ${plural(missing.length, 'path')} (${skipped.length} already in the cache) to ${o.to}${signed.keyName ? `, signed by ${signed.keyName}` : ', UNSIGNED'}`;
  o.report(announce);
  for (const n of notes) o.report(n);

  const target = staged ? `file://${staged}` : o.to;
  const todo = staged ? closure : missing;
  let copied: string[] = [];
  if (todo.length > 0) {
    const progress = new CopyProgress(todo.length, sizes, todo.reduce((n, i) => n + (i.narSize ?? 0), 0));
    const parser = new InternalJsonLogParser();
    let lastReport = 0;
    const onEvents = (evs: LogEvent[]) => {
      for (const ev of evs) {
        const line = progress.event(ev);
        // A line per path, and bytes at most a few times a second.
        if (line && (ev.kind !== 'result' || Date.now() - lastReport > 250)) {
          lastReport = Date.now();
          o.report(line);
        }
      }
    };
    const log = c.internalJsonLog ? ['-v', '--log-format', 'internal-json'] : [];
    const copy = await nix.run(nix.bin('nix'), [...c.nixCommandPrefix, 'copy', '--to', target, '--no-check-sigs', ...log, ...o.tops], {
      timeoutMs: 0,
      signal: o.signal,
      onStderr: (chunk) => onEvents(parser.push(chunk)),
    });
    onEvents(parser.end());
    if (copy.kind === 'cancelled') throw cancelled();
    copied = progress.copied;
    if (copy.kind !== 'ok') return pushFailed(nix, c, o, { copy, key, skipped, signed, notes, missing });
  }

  // The target's copies that lack the key's signature: those copied unsigned, and those it had already
  // (skipped, so a push with a key signs what an unsigned push left there).
  if (key) {
    const lacksKey = (i: PathInfo) => i.valid && !i.signatures.some((sig) => sig.startsWith(`${key.keyName}:`));
    const inTarget = staged ? await pathInfosIn(nix, c, target, closure.map((i) => i.path), { signal: o.signal }) : undefined;
    if (o.signal.aborted) throw cancelled();
    const thereInfos = inTarget && 'infos' in inTarget ? inTarget.infos : 'infos' in there ? there.infos : [];
    const toSign = [...new Set([...(signThereOnly && !staged ? missing.map((i) => i.path) : []), ...thereInfos.filter(lacksKey).map((i) => i.path)])];
    if (toSign.length > 0) {
      o.report(`signing ${plural(toSign.length, 'path')} in ${target} with ${key.keyName}`);
      const signedThere = await signClosure(nix, c.signPaths, c.nixCommandPrefix, key, toSign, o.signal, target);
      if (signedThere.result.kind === 'cancelled') throw cancelled();
      if (signedThere.problem) {
        const cannot = uri.scheme === 'ssh' ? ` ${o.to} is a legacy ssh:// store, which cannot add signatures to paths it has: push to ssh-ng:// instead, or sign there (\`nix store sign --key-file KEY.sec ${toSign.map(storeName).slice(0, 3).join(' ')}…\` on ${uri.hostname ?? 'that host'}).` : '';
        const message = `${plural(toSign.length, 'path')} in ${target} lack ${key.keyName}'s signature and could not be signed there: ${signedThere.problem}${cannot}`;
        signed = { status: 'unsigned', keyName: key.keyName, message };
        notes.push(message);
      } else if (signThereOnly) signed = { ...signed, message: `signed in ${target}, after the copy` };
    }
  }

  let pushed = staged ? [] : missing.map((i) => i.path);
  let uploadSkipped: string[] = [];
  if (staged) {
    if (!o.stagedUpload) {
      const message = `this Nix cannot talk to S3 (no S3 support built in); the closure is staged in ${staged} (a file:// cache) but nothing uploads it: use a Nix built with S3 support, or sync that folder to the bucket (\`aws s3 sync ${staged} s3://…\`).`;
      return answer('failed', `Not pushed to ${o.to}: ${message}`, { signed, notes, problems: [message] });
    }
    o.report(`uploading to ${o.to} what it lacks`);
    const up = await o.stagedUpload({ stagingDir: staged, to: o.to, signal: o.signal, onProgress: o.report }).catch((e: Error) => e);
    if (o.signal.aborted) throw cancelled();
    if (up instanceof Error) {
      const message = `the upload to ${o.to} failed: ${up.message} (the closure is staged, signed, in ${staged}; a push again uploads only what the bucket lacks)`;
      return answer('failed', `Not pushed to ${o.to}: ${message}`, { signed, notes, problems: [message] });
    }
    const uploaded = new Set(up.uploaded);
    pushed = closure.map((i) => i.path).filter((p) => uploaded.has(p));
    skipped.push(...up.skipped.map((p) => ({ path: p, why: `already in ${o.to}` })));
    uploadSkipped = up.skipped;
  }

  const conf = await config;
  const configured = conf.ok ? conf.value.trustedPublicKeys : [];
  const trustedKeys = [...new Set(o.trustedKeys ?? configured)];
  const verification = await verifyStore(nix, {
    store: staged ? `file://${staged}` : o.to,
    // A staged push is proved by substituting from the bucket, never from the staged copy.
    ...(staged ? { substituteFrom: bucketHttpAddress(o.to) } : {}),
    ...(key ? { signingKey: key.publicKey } : {}),
    tops: o.tops,
    closure: closure.map((i) => i.path),
    trustedKeys,
    signal: o.signal,
    report: o.report,
  });
  if (o.signal.aborted) throw cancelled();
  // Uploaded and checked: the staged copy is removed (each push stages its closure afresh); a failed upload keeps it for a look.
  if (staged) await rm(staged, { recursive: true, force: true });
  const copiedNote = staged ? ` (staged in ${staged}, removed after the upload)` : copied.length !== pushed.length && copied.length > 0 ? ` (${copied.length} copied)` : '';
  const head = `Pushed ${plural(pushed.length, 'path')} (${skipped.length} already in the cache) to ${o.to}${copiedNote}, ${signed.status === 'unsigned' ? 'UNSIGNED' : `signed by ${signed.keyName}`}`;
  const trustNote = key && !trustedKeys.includes(key.publicKey) ? `; consumers must trust ${key.publicKey} (extra-trusted-public-keys = ${key.publicKey})` : '';
  return {
    status: 'pushed',
    verified: verification.status === 'verified',
    to: o.to,
    summary: `${head}${trustNote}. ${verification.status === 'verified' ? verification.summary : `${verification.summary}`}`,
    pushed,
    skipped,
    signed,
    verification,
    notes,
    problems: [
      ...(signed.status === 'unsigned' && signed.message ? [signed.message] : []),
      ...verification.problems.map((p) => `${p.message}${p.fix ? ` Fix: ${p.fix}` : ''}`),
      ...(verification.status === 'problems' && uploadSkipped.length > 0 ? [staleInBucket(o.to, uploadSkipped)] : []),
    ],
  };
}

/** A `nix copy` that failed: what got there (asked again), and the problem said for a push. */
async function pushFailed(
  nix: Nix,
  c: NixCapabilities,
  o: PushOptions,
  f: { copy: RunResult; key: SigningKey | undefined; skipped: PushToCacheResult['skipped']; signed: PushToCacheResult['signed']; notes: string[]; missing: PathInfo[] },
): Promise<PushToCacheResult> {
  // Its stderr's tail, internal-json or plain: the classifier reads both.
  const problem = mostImportant(classify(f.copy.stderr));
  const said = problem && problem.kind !== 'unknown' ? pushProblem(problem, { to: o.to, ...(f.key ? { key: f.key } : {}) }) : failureOf(f.copy);
  const after = await pathInfosIn(nix, c, o.to, f.missing.map((i) => i.path), { signal: o.signal });
  const got = 'infos' in after ? new Set(after.infos.filter((i) => i.valid).map((i) => i.path)) : new Set<string>();
  const pushed = f.missing.map((i) => i.path).filter((p) => got.has(p));
  return {
    status: 'failed',
    verified: false,
    to: o.to,
    summary: `Push to ${o.to} FAILED${pushed.length ? ` after ${plural(pushed.length, 'path')}` : ''}: ${said}`,
    pushed,
    skipped: f.skipped,
    signed: f.signed,
    notes: f.notes,
    problems: [said],
  };
}

/** `[{ uri, attribute, to, keyFile? }]`, checked; the attribute as a list. */
export function pushArgs(arg: unknown): { uri: string; attrPath: string[]; to: string; keyFile?: string } {
  const a = arg as Partial<PushToCacheArgs> | undefined;
  const usage = `${ServerCommands.pushToCache} takes [{ uri, attribute, to, keyFile? }]`;
  if (!a || typeof a !== 'object' || typeof a.uri !== 'string') throw new ResponseError(ErrorCodes.InvalidParams, `${usage}: "uri" must be the document's URI.`);
  const attrPath = typeof a.attribute === 'string' ? a.attribute.split('.') : a.attribute;
  if (!Array.isArray(attrPath) || attrPath.length === 0 || !attrPath.every((s) => typeof s === 'string' && s !== '')) throw new ResponseError(ErrorCodes.InvalidParams, `${usage}: "attribute" must be the attribute path, dotted or a list of names.`);
  if (typeof a.to !== 'string' || a.to === '') throw new ResponseError(ErrorCodes.InvalidParams, `${usage}: "to" must be the target store's URI (file:///…, ssh://host, ssh-ng://user@host, s3://bucket?region=…).`);
  if (a.keyFile !== undefined && (typeof a.keyFile !== 'string' || !path.isAbsolute(a.keyFile))) throw new ResponseError(ErrorCodes.InvalidParams, `${usage}: "keyFile" must be the absolute path of a secret key file.`);
  return { uri: a.uri, attrPath, to: a.to, ...(a.keyFile !== undefined ? { keyFile: a.keyFile } : {}) };
}

/** What the push command needs of the server. */
export interface PushServer {
  nix: Nix;
  buildTargets(p: StartBuildParams): Promise<DerivationInfo[]>;
  startBuild(p: StartBuildParams, o: { signal: AbortSignal; onProgress: (p: BuildProgress) => void }): Promise<{ info: BuildInfo; ended: Promise<BuildInfo> }>;
  cacheSettings(): { signingKeyFile?: string; stagingRoot: string; stagedUpload?: StagedUpload };
}

/** nixBuilders.pushToCache: the attribute's outputs (built first when they are not valid), pushed and verified. */
export async function pushToCacheCommand(server: PushServer, a: ReturnType<typeof pushArgs>, o: { signal: AbortSignal; report: (m: string) => void }): Promise<PushToCacheResult> {
  const nix = server.nix;
  const config = nix.config(o.signal);
  const [target] = await server.buildTargets({ uri: a.uri, attrPaths: [a.attrPath] });
  if (!target) throw new ResponseError(ErrorCodes.InvalidParams, `${ServerCommands.pushToCache}: no derivation at ${a.attrPath.join('.')}.`);
  const caps = await nix.detect();
  if (!caps.ok) return { status: 'not-started', verified: false, to: a.to, summary: `Not pushed: ${caps.message}`, pushed: [], skipped: [], signed: { status: 'unsigned' }, problems: [caps.message] };
  // The outputs from the .drv itself when this process can read it (no process), else through Nix.
  const drv = await readFullDerivation(target.drvPath);
  const fromDrv = drv ? [...drv.outputs.values()].map((x) => x.path) : [];
  const outputs = fromDrv.length > 0 && fromDrv.every((p) => p !== '') ? fromDrv : (await outputsOf(nix, target.drvPath, o.signal)).map((x) => x.path);
  // Their closure when they are valid; when that fails, whether they are.
  let closure = await pathInfosIn(nix, caps.value, 'auto', outputs, { recursive: true, signal: o.signal });
  if (o.signal.aborted) throw cancelled();
  let builtFirst = false;
  if ('failed' in closure) {
    const validity = await nix.run(nix.bin('nix-store'), ['--check-validity', '--print-invalid', ...outputs], { timeoutMs: 60_000, signal: o.signal });
    if (validity.kind === 'cancelled') throw cancelled();
    if (validity.kind !== 'ok' || validity.stdout.trim() !== '') {
      builtFirst = true;
      o.report(`building ${a.attrPath.join('.')} first (its outputs are not valid)`);
      const { ended } = await server.startBuild({ uri: a.uri, attrPaths: [a.attrPath] }, { signal: o.signal, onProgress: () => undefined });
      const info = await ended;
      if (o.signal.aborted || info.status === 'cancelled') throw cancelled();
      if (info.status !== 'built') {
        const why = [...(info.problems ?? []), ...info.plan.problems].join('; ') || info.status;
        return { status: 'failed', verified: false, to: a.to, summary: `Not pushed: building ${a.attrPath.join('.')} failed (${why}).`, pushed: [], skipped: [], signed: { status: 'unsigned' }, problems: [why], builtFirst };
      }
      closure = await pathInfosIn(nix, caps.value, 'auto', outputs, { recursive: true, signal: o.signal });
    }
  }
  const s = server.cacheSettings();
  const result = await pushClosure(nix, {
    tops: outputs,
    ...('infos' in closure ? { closure: closure.infos } : {}),
    config,
    to: a.to,
    ...(a.keyFile !== undefined ? { keyFile: a.keyFile } : {}),
    ...(s.signingKeyFile ? { settingKeyFile: s.signingKeyFile } : {}),
    stagingRoot: s.stagingRoot,
    ...(s.stagedUpload ? { stagedUpload: s.stagedUpload } : {}),
    signal: o.signal,
    report: o.report,
  });
  return { ...result, builtFirst, ...(builtFirst ? { summary: `Built ${a.attrPath.join('.')} first. ${result.summary}` } : {}) };
}
