// Signing a closure before a push: which secret key (the command's keyFile, else the setting
// nixBuilders.cache.signingKeyFile, else nix.conf's secret-key-files), refused unless only its
// owner can read it, and `nix store sign --key-file K -r` (`nix sign-paths` on 2.3) over the
// closure. The secret never leaves the file: its public half is read by keys.ts (the last 32 bytes
// of the 64-byte ed25519 secret Nix writes), and neither is logged; Nix reads the file itself.
// A user the nix-daemon does not trust may not add signatures to this machine's store (Nix's
// daemon.cc, wopAddSignatures: "you are not privileged to add signatures"): then the copy in the
// target is signed instead (`--store <to>`, no -r: the paths named).
import * as path from 'node:path';
import type { Nix } from '../nix/nix';
import { describeResult, type RunResult } from '../nix/runner';
import { readSigningKey as readKeyFile } from './keys';

export interface SigningKey {
  file: string;
  /** The name before the colon (`cache.example.org-1`). */
  keyName: string;
  /** `name:base64` of the public key. */
  publicKey: string;
  origin: 'argument' | 'nixBuilders.cache.signingKeyFile' | 'secret-key-files';
}

/** The secret-key-files of the effective configuration (space-separated paths). */
export const secretKeyFilesOf = (raw: ReadonlyMap<string, string>): string[] => (raw.get('secret-key-files') ?? '').split(/\s+/).filter(Boolean);

/**
 * Reads a secret key file for its name and public key (keys.ts reads it, never quoting its text).
 * Refused when it is not an absolute path, missing, unreadable, readable by others than its owner
 * (the fix: `chmod 600`), or not a Nix secret key.
 */
export async function readSigningKey(file: string, origin: SigningKey['origin']): Promise<SigningKey | { problem: string }> {
  const where = origin === 'argument' ? 'the key file given' : origin;
  if (!path.isAbsolute(file)) return { problem: `The signing key ${file} (${where}) is not an absolute path: give the secret key file's full path.` };
  const read = await readKeyFile(file, origin === 'secret-key-files' ? 'secret-key-files' : 'nixBuilders');
  if (read.problem !== undefined || read.keyName === undefined || read.publicKey === undefined) return { problem: `The signing key (${where}): ${read.problem ?? `${file} is not a Nix secret key.`}` };
  return { file, origin, keyName: read.keyName, publicKey: read.publicKey };
}

/**
 * The key to sign with: the command's, else the setting's, else the first of nix.conf's
 * secret-key-files. Undefined key and problem: none is configured (the push is unsigned).
 */
export async function resolveSigningKey(o: { keyFile?: string; settingKeyFile?: string; secretKeyFiles: readonly string[] }): Promise<{ key?: SigningKey; problem?: string }> {
  const [file, origin]: [string | undefined, SigningKey['origin']] =
    o.keyFile !== undefined ? [o.keyFile, 'argument'] : o.settingKeyFile ? [o.settingKeyFile, 'nixBuilders.cache.signingKeyFile'] : [o.secretKeyFiles[0], 'secret-key-files'];
  if (file === undefined) return {};
  const read = await readSigningKey(file, origin);
  return 'problem' in read ? { problem: read.problem } : { key: read };
}

/** Nix's refusal of signatures from a user the nix-daemon does not trust (daemon.cc, wopAddSignatures). */
export const notPrivilegedToSign = (stderr: string): boolean => /you are not privileged to add signatures/.test(stderr);

/**
 * Signs with `key`: the closures of `paths` in this machine's store, or with `store` the paths
 * themselves in that store (a cache's copy). `notPrivileged`: the daemon refused this user.
 */
export async function signClosure(
  nix: Nix,
  signPaths: readonly string[],
  prefix: readonly string[],
  key: SigningKey,
  paths: readonly string[],
  signal: AbortSignal,
  store?: string,
): Promise<{ result: RunResult; problem?: string; notPrivileged?: boolean }> {
  const args = [...prefix, ...signPaths, ...(store ? ['--store', store] : []), '--key-file', key.file, ...(store ? [] : ['-r']), ...paths];
  const result = await nix.run(nix.bin('nix'), args, { timeoutMs: 0, signal });
  if (result.kind === 'ok' || result.kind === 'cancelled') return { result };
  const tail = result.stderr.split('\n').map((l) => l.trim()).filter((l) => l && !/^warning:/.test(l)).slice(-4).join(' ');
  const notPrivileged = notPrivilegedToSign(result.stderr);
  const fix = notPrivileged
    ? " This user is not trusted by the nix-daemon, which adds signatures only for trusted users: add it to trusted-users in the daemon's nix.conf, or sign the cache's copy."
    : /permission denied|not allowed|Operation not permitted/i.test(result.stderr)
      ? ' Signing writes the signatures into this machine\'s Nix database: run as root or as a trusted user of the nix-daemon (trusted-users).'
      : '';
  return { result, notPrivileged, problem: `Signing with ${key.keyName}${store ? ` in ${store}` : ''} failed (${describeResult(result)}${tail ? `: ${tail}` : ''}).${fix}` };
}
