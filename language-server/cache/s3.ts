// Pushing to an `s3://` store with a Nix that cannot talk to S3 (Debian's 2.8 and 2.26 are built
// without it: "don't know how to open Nix store 's3://…'"): push.ts stages the closure into a local
// binary cache with `nix copy --to file://<dir>` (signed, compressed, as Nix writes any binary
// cache), and this uploads what the bucket lacks, as Nix's own S3 store would have written it:
//
// - the store URI read as Nix reads it (s3-binary-cache-store.cc, s3-url.cc): the bucket is the
//   authority; `region` (default us-east-1); `endpoint` an S3-compatible service, a URL or a bare
//   `host[:port]` that takes `scheme` (default https); with an endpoint path-style addressing, without
//   one virtual-hosted (`addressing-style` overrides, as newer Nix); `profile` an AWS profile, else
//   the SDK's default credential chain (environment, ~/.aws/credentials and config, SSO, IMDS …);
// - the same objects and content types (binary-cache-store.cc): `nix-cache-info`
//   (text/x-nix-cache-info), `nar/….nar.xz` (application/x-nix-nar), `<hash>.ls` (application/json,
//   with write-nar-listing), `<hash>.narinfo` (text/x-nix-narinfo);
// - in an order that never shows a consumer a narinfo it cannot use: every missing NAR first, then
//   the narinfos, each after those of its references (as Nix copies: dependencies first);
// - what is there is left alone: a narinfo in the bucket means the path is there (Nix's
//   isValidPath), a NAR in the bucket is not sent again (Nix's fileExists before upserting a NAR).
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { GetObjectCommand, HeadObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { parseNarInfo } from '../builds/substituters';
import { hashPart } from '../nix/storePath';
import { parseStoreUri } from '../nix/storeUri';
import { forEachLimited } from '../util/pool';

/** Where and how to reach a bucket, from an `s3://` store URI. */
export interface S3Target {
  bucket: string;
  region: string;
  /** The S3-compatible service's URL (`http://127.0.0.1:9000`); undefined: AWS's own endpoint for the region. */
  endpoint?: string;
  /** `https://host/bucket/key` rather than `https://bucket.host/key`. */
  forcePathStyle: boolean;
  /** The AWS profile to take credentials from; undefined: the SDK's default chain. */
  profile?: string;
}

export type S3ErrorKind = 'bad-uri' | 'not-a-cache' | 'no-credentials' | 'bad-credentials' | 'access-denied' | 'no-such-bucket' | 'wrong-region' | 'unreachable' | 'wrong-store' | 'cancelled' | 'failed';

/** A failed upload, with what went wrong as a kind and the message naming the cause and the fix. */
export class S3UploadError extends Error {
  constructor(
    readonly kind: S3ErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'S3UploadError';
  }
}

/** Reads an `s3://bucket?region=…&endpoint=…&scheme=…&profile=…` store URI as Nix does; throws an S3UploadError('bad-uri') for what Nix refuses. */
export function parseS3StoreUri(uri: string): S3Target {
  const store = parseStoreUri(uri);
  if (!store || store.scheme !== 's3') throw new S3UploadError('bad-uri', `'${uri}' is not an s3:// store URI: write it as s3://<bucket>?region=…`);
  const bucket = store.authority;
  if (!bucket || bucket.includes('@')) throw new S3UploadError('bad-uri', `'${uri}' names no bucket: Nix's S3 store takes the bucket as the host, s3://<bucket>?region=…`);
  if (store.path.replace(/\/+$/, '') !== '') throw new S3UploadError('bad-uri', `'${uri}' has a path after the bucket: Nix's S3 store writes at the top of the bucket, so name the bucket alone (s3://${bucket}?…)`);
  const p = store.params;
  const region = p.get('region') || 'us-east-1';
  const scheme = p.get('scheme') || 'https';
  if (scheme !== 'http' && scheme !== 'https') throw new S3UploadError('bad-uri', `scheme=${scheme} in '${uri}': Nix's S3 store takes scheme=https (the default) or scheme=http`);
  const style = p.get('addressing-style') ?? 'auto';
  if (style !== 'auto' && style !== 'path' && style !== 'virtual') throw new S3UploadError('bad-uri', `addressing-style=${style} in '${uri}': write auto, path or virtual`);
  const rawEndpoint = p.get('endpoint');
  let endpoint: string | undefined;
  if (rawEndpoint) {
    // A URL keeps its own scheme; a bare host[:port] takes `scheme` (Nix before and after 2.30 alike).
    const url = rawEndpoint.includes('://') ? rawEndpoint : `${scheme}://${rawEndpoint}`;
    try {
      const parsed = new URL(url);
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error(`scheme ${parsed.protocol}`);
      endpoint = parsed.href.replace(/\/+$/, '');
    } catch (e) {
      throw new S3UploadError('bad-uri', `endpoint=${rawEndpoint} in '${uri}' is not a host[:port] or an http(s) URL (${(e as Error).message}): write e.g. endpoint=minio.example.org:9000 or endpoint=https://minio.example.org`);
    }
  } else if (scheme === 'http') {
    endpoint = `http://s3.${region}.amazonaws.com`;
  }
  // Nix: virtual-hosted style for AWS's endpoint, path style for an endpoint of one's own; a bucket with a dot is path style (TLS).
  const forcePathStyle = style === 'path' || (style === 'auto' && (rawEndpoint !== undefined && rawEndpoint !== '' ? true : bucket.includes('.')));
  const profile = p.get('profile') || undefined;
  return { bucket, region, ...(endpoint ? { endpoint } : {}), forcePathStyle, ...(profile ? { profile } : {}) };
}

/** The store URI for people: without credentials' names or other parameters. */
const shown = (t: S3Target) => `s3://${t.bucket}${t.endpoint ? ` at ${t.endpoint}` : ` (region ${t.region})`}`;

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(1)} ${units[u]}`;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ECONNABORTED']);

/** An SDK error as one of ours, naming the cause and the fix. */
function classify(e: unknown, target: S3Target, what: string, signal: AbortSignal): S3UploadError {
  if (e instanceof S3UploadError) return e;
  const err = e as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const where = shown(target);
  if (signal.aborted || err.name === 'AbortError') return new S3UploadError('cancelled', `The upload to ${where} was cancelled (${what})`, { cause: e });
  const status = err.$metadata?.httpStatusCode;
  const name = err.name ?? '';
  const from = target.profile ? `profile '${target.profile}'` : 'the default AWS credential chain';
  if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(err.message ?? '')) {
    return new S3UploadError(
      'no-credentials',
      `No AWS credentials for ${where} from ${from}: ${err.message}. ` +
        (target.profile
          ? `Add [${target.profile}] with aws_access_key_id and aws_secret_access_key to ~/.aws/credentials (or AWS_SHARED_CREDENTIALS_FILE), or drop profile= from the store URI.`
          : `Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the language server's environment, add a [default] profile to ~/.aws/credentials, or name a profile with profile=… in the store URI.`),
      { cause: e },
    );
  }
  if (name === 'NoSuchBucket') return new S3UploadError('no-such-bucket', `The bucket '${target.bucket}' does not exist at ${where}: create it (aws s3 mb s3://${target.bucket}${target.endpoint ? ` --endpoint-url ${target.endpoint}` : ''}) or fix the bucket name in the store URI.`, { cause: e });
  if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken', 'TokenRefreshRequired', 'InvalidClientTokenId'].includes(name)) {
    return new S3UploadError('bad-credentials', `${where} does not accept the credentials from ${from} (${name}: ${err.message}): check the access key and secret${target.profile ? ` of [${target.profile}] in ~/.aws/credentials` : ' (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws/credentials)'}, or refresh an expired session.`, { cause: e });
  }
  if (name === 'PermanentRedirect' || name === 'AuthorizationHeaderMalformed' || status === 301) {
    return new S3UploadError('wrong-region', `The bucket '${target.bucket}' is not in region ${target.region} (${name || status}): set region=<the bucket's region> in the store URI.`, { cause: e });
  }
  if (name === 'AccessDenied' || status === 403) {
    return new S3UploadError('access-denied', `Access denied to ${where} while ${what} (credentials from ${from}): their policy must allow s3:PutObject and s3:GetObject on arn:aws:s3:::${target.bucket}/*.`, { cause: e });
  }
  if ((err.code && NETWORK_CODES.has(err.code)) || name === 'TimeoutError' || name === 'RequestTimeout') {
    return new S3UploadError('unreachable', `Cannot reach ${where} (${err.code ?? name}: ${err.message}), after the SDK's retries: check endpoint= and scheme= in the store URI and that the service is up.`, { cause: e });
  }
  const detail = e instanceof S3ServiceException ? `${name}${status ? ` (HTTP ${status})` : ''}: ${err.message}` : `${err.message ?? String(e)}`;
  return new S3UploadError('failed', `Uploading to ${where} failed while ${what}: ${detail}`, { cause: e });
}

/** A path of the staged cache and the files that make it there. */
interface StagedPath {
  storePath: string;
  narinfoKey: string;
  narinfo: Buffer;
  narKey: string;
  narBytes: number;
  /** `<hash>.ls`, when the staging wrote NAR listings. */
  listingKey?: string;
  references: string[];
}

async function readStaged(stagingDir: string): Promise<{ cacheInfo: Buffer; paths: StagedPath[] }> {
  const cacheInfo = await readFile(path.join(stagingDir, 'nix-cache-info')).catch((e: NodeJS.ErrnoException) => {
    throw new S3UploadError('not-a-cache', `${stagingDir} is not a binary cache (no nix-cache-info: ${e.code ?? e.message}): stage it first with nix copy --to file://${stagingDir} …`, { cause: e });
  });
  const names = new Set(await readdir(stagingDir));
  const paths: StagedPath[] = [];
  for (const name of [...names].filter((n) => n.endsWith('.narinfo')).sort()) {
    const narinfo = await readFile(path.join(stagingDir, name));
    const info = parseNarInfo(narinfo.toString('utf8'));
    const url = info?.url;
    // nix copy --to file:// writes relative URLs inside the cache (nar/….nar.xz).
    if (!info || !url || url.includes('://') || url.startsWith('/') || url.split('/').includes('..')) {
      throw new S3UploadError('not-a-cache', `${path.join(stagingDir, name)} is not a narinfo of a staged cache (${info ? `URL '${url ?? ''}'` : 'no StorePath'}): stage again with nix copy --to file://${stagingDir} …`);
    }
    const narBytes = await stat(path.join(stagingDir, url)).then(
      (st) => st.size,
      (e: NodeJS.ErrnoException) => {
        throw new S3UploadError('not-a-cache', `The staged cache ${stagingDir} lacks ${url}, the NAR of ${info.storePath} (${e.code ?? e.message}): stage again with nix copy --to file://${stagingDir} …`, { cause: e });
      },
    );
    const hash = name.slice(0, -'.narinfo'.length);
    const references = /^References:(.*)$/m.exec(narinfo.toString('utf8'))?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];
    paths.push({
      storePath: info.storePath,
      narinfoKey: name,
      narinfo,
      narKey: url,
      narBytes,
      ...(names.has(`${hash}.ls`) ? { listingKey: `${hash}.ls` } : {}),
      // References are base names (<hash>-<name>); a path's reference to itself is no dependency.
      references: references.map((r) => r.slice(0, r.indexOf('-') < 0 ? r.length : r.indexOf('-'))).filter((h) => h !== hash),
    });
  }
  return { cacheInfo, paths };
}

/** How many HEADs and uploads run at once (objects are independent; S3 takes far more). */
const PARALLEL = 8;

/**
 * Uploads a binary cache staged by `nix copy --to file://<stagingDir>` to the bucket of `to`, an
 * `s3://` store URI: what the bucket lacks, NARs before narinfos. Answers the store paths whose
 * narinfo was uploaded and those already there. Throws an S3UploadError, `cancelled` when `signal` ends it.
 */
export const uploadStagedCache = async (o: { stagingDir: string; to: string; signal: AbortSignal; onProgress: (m: string) => void }): Promise<{ uploaded: string[]; skipped: string[] }> => {
  const target = parseS3StoreUri(o.to);
  const where = shown(target);
  const staged = await readStaged(o.stagingDir);
  const client = new S3Client({
    region: target.region,
    ...(target.endpoint ? { endpoint: target.endpoint } : {}),
    forcePathStyle: target.forcePathStyle,
    ...(target.profile ? { profile: target.profile } : {}),
    // As Nix's S3 store: connect within 5 s, each request (a part of a large NAR is one) within
    // 600 s; the SDK retries what is transient (throttling, 5xx, timeouts, connection errors), 3 attempts in all.
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 600_000, throwOnRequestTimeout: true },
    // Checksums only where S3 requires them: the SDK's default trailing checksums (aws-chunked)
    // are not understood by many S3-compatible services.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  // Every request's failure is classified where it happens, with what it was doing.
  const attempt = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (e) {
      throw classify(e, target, what, o.signal);
    }
  };
  const statusOf = (e: unknown) => ((e as S3UploadError).cause as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
  /** The object's text; undefined where the bucket has none (as Nix's getFile: 404, and 403 where listing is not allowed, since S3 then hides a 404 behind a 403). */
  const get = (key: string) =>
    attempt(`reading ${key}`, async () => {
      const got = await client.send(new GetObjectCommand({ Bucket: target.bucket, Key: key }), { abortSignal: o.signal });
      return (await got.Body?.transformToString()) ?? '';
    }).catch((e: unknown) => {
      if (e instanceof S3UploadError && e.kind !== 'cancelled' && (statusOf(e) === 404 || statusOf(e) === 403)) return undefined;
      throw e;
    });
  /** Whether the bucket has the object (Nix's fileExists: the same 404 and 403). */
  const exists = (key: string) =>
    attempt(`asking for ${key}`, async () => {
      await client.send(new HeadObjectCommand({ Bucket: target.bucket, Key: key }), { abortSignal: o.signal });
      return true;
    }).catch((e: unknown) => {
      if (e instanceof S3UploadError && e.kind !== 'cancelled' && (statusOf(e) === 404 || statusOf(e) === 403)) return false;
      throw e;
    });
  const put = (key: string, body: Buffer | { file: string; size: number }, contentType: string, of?: string) =>
    attempt(`uploading ${key}`, async () => {
      const size = Buffer.isBuffer(body) ? body.length : body.size;
      o.onProgress(`Uploading ${key} (${bytes(size)})${of ? ` of ${of}` : ''} to ${where}`);
      const upload = new Upload({
        client,
        params: { Bucket: target.bucket, Key: key, Body: Buffer.isBuffer(body) ? body : createReadStream(body.file), ContentType: contentType, ContentLength: size },
        // Large NARs go in parts (S3 takes at most 5 GiB in one PUT); progress comes per part.
        partSize: 16 * 1024 * 1024,
        queueSize: 2,
      });
      upload.on('httpUploadProgress', (p) => {
        if (p.loaded !== undefined && p.loaded < size) o.onProgress(`Uploading ${key}: ${bytes(p.loaded)} of ${bytes(size)}`);
      });
      const abort = () => void upload.abort().catch(() => undefined);
      o.signal.addEventListener('abort', abort, { once: true });
      try {
        o.signal.throwIfAborted();
        await upload.done();
      } finally {
        o.signal.removeEventListener('abort', abort);
      }
    });

  try {
    // nix-cache-info: Nix refuses a cache for another store directory; so does this.
    const staging = /^StoreDir:\s*(\S+)\s*$/m.exec(staged.cacheInfo.toString('utf8'))?.[1];
    const theirs = await get('nix-cache-info');
    if (theirs === undefined) {
      await put('nix-cache-info', staged.cacheInfo, 'text/x-nix-cache-info');
    } else {
      const storeDir = /^StoreDir:\s*(\S+)\s*$/m.exec(theirs)?.[1];
      if (storeDir && staging && storeDir !== staging) {
        throw new S3UploadError('wrong-store', `${where} is a binary cache for the store ${storeDir}, not ${staging} (its nix-cache-info): push to another bucket, or from a Nix with that store directory.`);
      }
    }

    const present = new Set<string>();
    await forEachLimited(staged.paths, PARALLEL, async (p) => {
      if (await exists(p.narinfoKey)) present.add(p.storePath);
    });
    const missing = staged.paths.filter((p) => !present.has(p.storePath));
    o.onProgress(`${missing.length} of ${staged.paths.length} paths to upload to ${where} (${present.size} already there)`);

    // The NARs (and listings) of every missing path, each unless the bucket has it already.
    await forEachLimited(missing, PARALLEL, async (p) => {
      if (!(await exists(p.narKey))) await put(p.narKey, { file: path.join(o.stagingDir, p.narKey), size: p.narBytes }, 'application/x-nix-nar', p.storePath);
      if (p.listingKey) await put(p.listingKey, await readFile(path.join(o.stagingDir, p.listingKey)), 'application/json', p.storePath);
    });

    // Then the narinfos, dependencies first: a level's references are all in earlier levels or the bucket.
    const byHash = new Map(missing.map((p) => [hashPart(p.storePath), p]));
    const level = new Map<string, number>();
    const levelOf = (p: StagedPath): number => {
      const known = level.get(p.storePath);
      if (known !== undefined) return known;
      level.set(p.storePath, 0); // a cycle cannot happen in a store; this only stops one
      const deps = p.references.flatMap((h) => {
        const dep = byHash.get(h);
        return dep ? [levelOf(dep)] : [];
      });
      const l = deps.length ? Math.max(...deps) + 1 : 0;
      level.set(p.storePath, l);
      return l;
    };
    const levels: StagedPath[][] = [];
    for (const p of missing) (levels[levelOf(p)] ??= []).push(p);
    const uploaded: string[] = [];
    for (const paths of levels) {
      await forEachLimited(paths ?? [], PARALLEL, async (p) => {
        await put(p.narinfoKey, p.narinfo, 'text/x-nix-narinfo', p.storePath);
        uploaded.push(p.storePath);
      });
    }
    o.onProgress(`Uploaded ${uploaded.length} path${uploaded.length === 1 ? '' : 's'} to ${where}${present.size ? `, ${present.size} already there` : ''}`);
    return { uploaded, skipped: staged.paths.filter((p) => present.has(p.storePath)).map((p) => p.storePath) };
  } finally {
    client.destroy();
  }
};
