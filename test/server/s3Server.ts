// A real S3-protocol server on loopback for the tests (s3rver: S3's REST API in Node, objects in a
// folder, SigV4 checked against its one account S3RVER/S3RVER, anonymous GETs allowed as on a public
// bucket). Nix substitutes from a bucket over plain HTTP at `<url>/<bucket>`, as from any binary
// cache; the uploader talks S3 to it at `endpoint=<url>`.
import { createRequire } from 'node:module';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

interface S3rverOptions {
  address: string;
  port: number;
  directory: string;
  silent: boolean;
  configureBuckets: { name: string }[];
}
interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
}
// s3rver ships no types: the little of its API used here.
const S3rver = createRequire(__filename)('s3rver') as new (options: S3rverOptions) => S3rverInstance;

/** The credentials s3rver accepts (its built-in account). */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export interface S3Server {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** Where s3rver keeps the buckets' objects. */
  directory: string;
  stop(): Promise<void>;
}

/** Starts s3rver on a free loopback port with `buckets` made. */
export async function startS3Server(buckets: readonly string[]): Promise<S3Server> {
  const directory = await mkdtemp(path.join(tmpdir(), 'nb-s3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true, configureBuckets: buckets.map((name) => ({ name })) });
  const { port } = await server.run();
  return {
    url: `http://127.0.0.1:${port}`,
    directory,
    stop: async () => {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
