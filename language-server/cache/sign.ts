// Signing a closure before a push: which secret key (the command's keyFile, else the setting
// nixBuilders.cache.signingKeyFile, else nix.conf's secret-key-files), refused unless only its
// owner can read it, and `nix store sign --key-file K -r` (`nix sign-paths` on 2.3) over the
// closure. The secret never leaves the file: its public half is computed here (the last 32 bytes
// of the 64-byte ed25519 secret Nix writes), and neither is logged; Nix reads the file itself.
import { readFile, stat } from 'node:fs/promises';
import * as path from 'node:path';
import type { Nix } from '../nix/nix';
import { describeResult, type RunResult } from '../nix/runner';

export interface SigningKey {
  file: string;
  /** The name before the colon (`cache.example.org-1`). */
  keyName: string;
  /** `name:base64` of the public key. */
  publicKey: string;
  origin: 'argument' | 'nixBuilders.cache.signingKeyFile' | 'secret-key-files';
}

/** The public key of a secret key file's text (`name:base64(64 bytes)`), or why it is not one. Never returns the secret. */
export function publicKeyOfSecret(text: string): { keyName: string; publicKey: string } | { problem: string } {
  const line = text.trim();
  const colon = line.indexOf(':');
  if (colon <= 0) return { problem: 'it is not a Nix secret key (expected "name:base64", as `nix key generate-secret` writes)' };
  const keyName = line.slice(0, colon);
  const data = line.slice(colon + 1);
  const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(data) ? Buffer.from(data, 'base64') : Buffer.alloc(0);
  if (bytes.length !== 64) return { problem: `it is not a Nix secret key (the part after "${keyName}:" must be 64 bytes in base64; a public key is 32)` };
  return { keyName, publicKey: `${keyName}:${bytes.subarray(32).toString('base64')}` };
}

/** The secret-key-files of the effective configuration (space-separated paths). */
export const secretKeyFilesOf = (raw: ReadonlyMap<string, string>): string[] => (raw.get('secret-key-files') ?? '').split(/\s+/).filter(Boolean);

/**
 * Reads a secret key file for its name and public key. Refused when it is missing, not a regular
 * file, readable by others than its owner (the fix: `chmod 600`), or not a Nix secret key.
 */
export async function readSigningKey(file: string, origin: SigningKey['origin']): Promise<SigningKey | { problem: string }> {
  const where = origin === 'argument' ? 'the key file given' : origin;
  if (!path.isAbsolute(file)) return { problem: `The signing key ${file} (${where}) is not an absolute path: give the secret key file's full path.` };
  const st = await stat(file).catch((e: NodeJS.ErrnoException) => e);
  if (st instanceof Error) {
    return { problem: `The signing key ${file} (${where}) cannot be read (${st.code ?? st.message}). Make one with \`nix key generate-secret --key-name NAME > ${file}\` and \`chmod 600 ${file}\`, or point ${where} at an existing one.` };
  }
  if (!st.isFile()) return { problem: `The signing key ${file} (${where}) is not a file.` };
  if ((st.mode & 0o077) !== 0) {
    return { problem: `The signing key ${file} is readable by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}): a secret key must be the owner's alone. Run \`chmod 600 ${file}\` (and make a new key if others may have read it).` };
  }
  const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => e);
  if (text instanceof Error) return { problem: `The signing key ${file} cannot be read (${text.code ?? text.message}).` };
  const parsed = publicKeyOfSecret(text);
  if ('problem' in parsed) return { problem: `The signing key ${file} (${where}): ${parsed.problem}.` };
  return { file, origin, ...parsed };
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

/** Signs the closures of `paths` in this machine's store with `key`: undefined when it did, else why not. */
export async function signClosure(nix: Nix, signPaths: readonly string[], prefix: readonly string[], key: SigningKey, paths: readonly string[], signal: AbortSignal): Promise<{ result: RunResult; problem?: string }> {
  const result = await nix.run(nix.bin('nix'), [...prefix, ...signPaths, '--key-file', key.file, '-r', ...paths], { timeoutMs: 0, signal });
  if (result.kind === 'ok' || result.kind === 'cancelled') return { result };
  const tail = result.stderr.split('\n').map((l) => l.trim()).filter((l) => l && !/^warning:/.test(l)).slice(-4).join(' ');
  const notOwner = /permission denied|not allowed|Operation not permitted/i.test(result.stderr)
    ? ' Signing writes the signatures into this machine\'s Nix database: run as root or as a trusted user of the nix-daemon (trusted-users).'
    : '';
  return { result, problem: `Signing with ${key.keyName} failed (${describeResult(result)}${tail ? `: ${tail}` : ''}).${notOwner}` };
}
