// Signing keys: a new key pair made with the command the installed Nix has, and the keys that sign
// (nix.conf's secret-key-files, nixBuilders.cache.signingKeyFile) with their names and public keys.
//
// A secret key is `name:base64(64 bytes)`: an Ed25519 secret key as libsodium keeps it, the 32-byte
// seed then the 32-byte public key; its public key is `name:base64(those last 32 bytes)`, which is
// what `nix key convert-secret-to-public` prints (crypto_sign_ed25519_sk_to_pk copies them). So
// the public key is read from the file here, and the secret is never handed to another process.
//
// The secret never leaves this module: not in an answer, a log line, an error message or a trace.
import { constants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Nix } from '../nix/nix';
import { describeResult } from '../nix/runner';
import { atLeast, type NixCapabilities } from '../nix/version';
import { SIGNING_KEY_NAME, type CachesInfo, type GeneratedKey, type GenerateKeyArgs } from '../protocol';

export type SigningKey = CachesInfo['keys'][number];

const KEY_TIMEOUT_MS = 30_000;

/** `nix key generate-secret` exists from Nix 2.6; before it, `nix-store --generate-binary-cache-key`. */
export const hasNixKey = (caps: NixCapabilities): boolean => atLeast(caps.version, 2, 6);

/** The name and public key of a secret key's text, or why it is not one. Never echoes the text. */
export function publicKeyOf(secret: string): { keyName: string; publicKey: string } | { problem: string } {
  const text = secret.trim();
  const colon = text.indexOf(':');
  const notAKey = 'it is not a Nix secret key (a line "name:base64" of 64 bytes, as nix key generate-secret writes it)';
  if (colon <= 0) return { problem: notAKey };
  const keyName = text.slice(0, colon);
  const data = text.slice(colon + 1);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(data)) return { problem: notAKey };
  const bytes = Buffer.from(data, 'base64');
  if (bytes.length !== 64) return { problem: notAKey };
  return { keyName, publicKey: `${keyName}:${bytes.subarray(32).toString('base64')}` };
}

/** One secret key file as the Caches view shows it: its name and public key, or what is wrong with it. */
export async function readSigningKey(file: string, origin: SigningKey['origin']): Promise<SigningKey> {
  const key: SigningKey = { secretKeyFile: file, origin };
  let text: string;
  let mode: number;
  try {
    mode = (await fs.stat(file)).mode;
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    key.problem =
      code === 'ENOENT'
        ? `${file} does not exist: generate a key there (Nix Builders: Generate Signing Key…) or correct the setting that names it.`
        : code === 'EACCES'
          ? `${file} cannot be read by this user: if it is the Nix daemon's key, the daemon signs with it (as root) and its public key is not shown here; to sign pushes, use a key of your own (nixBuilders.cache.signingKeyFile).`
          : `${file} cannot be read (${code ?? (e as Error).message}).`;
    return key;
  }
  const parsed = publicKeyOf(text);
  if ('problem' in parsed) {
    key.problem = `${file}: ${parsed.problem}.`;
    return key;
  }
  key.keyName = parsed.keyName;
  key.publicKey = parsed.publicKey;
  if ((mode & 0o077) !== 0) key.problem = `${file} can be read by others (mode ${(mode & 0o777).toString(8)}): anyone who reads it can sign paths your caches' users trust. Run chmod 600 ${file}.`;
  return key;
}

/** The keys that sign: the extension's own (nixBuilders.cache.signingKeyFile) first, as a push picks it, then secret-key-files. */
export async function listSigningKeys(signingKeyFile: string, secretKeyFiles: readonly string[]): Promise<SigningKey[]> {
  const files: Array<[string, SigningKey['origin']]> = [];
  if (signingKeyFile) files.push([signingKeyFile, 'nixBuilders']);
  for (const f of secretKeyFiles) if (!files.some(([x]) => x === f)) files.push([f, 'secret-key-files']);
  return Promise.all(files.map(([f, origin]) => readSigningKey(f, origin)));
}

/** A refusal of the arguments, said to the user as is. */
export class KeyArgumentError extends Error {}

/**
 * A new key pair: the secret file is created first (O_EXCL, mode 0600: never over an existing
 * file, never readable by others, not even for a moment), then filled with what Nix generates;
 * the public key beside it as `<secret>.pub`. Nothing is left behind when it fails.
 */
export async function generateKey(nix: Nix, args: GenerateKeyArgs, signal?: AbortSignal): Promise<GeneratedKey> {
  const { keyName, secretKeyFile } = args;
  if (typeof keyName !== 'string' || !SIGNING_KEY_NAME.test(keyName)) throw new KeyArgumentError(`The key name ${JSON.stringify(keyName)} cannot be used: give letters, digits, ".", "-", "_" or "+" (no ":" or blank), e.g. "cache.example.org-1".`);
  if (typeof secretKeyFile !== 'string' || !path.isAbsolute(secretKeyFile)) throw new KeyArgumentError(`The secret key file must be an absolute path (given: ${JSON.stringify(secretKeyFile)}).`);
  const dir = path.dirname(secretKeyFile);
  const isDir = await fs.stat(dir).then((s) => s.isDirectory(), () => false);
  if (!isDir) throw new KeyArgumentError(`The folder ${dir} does not exist: create it first (it should be readable by you alone, e.g. mkdir -m 700 ${dir}).`);
  const caps = await nix.detect();
  if (!caps.ok) throw new Error(caps.message);
  const publicKeyFile = `${secretKeyFile}.pub`;
  const created: string[] = [];
  const create = async (file: string, mode: number) => {
    try {
      const handle = await fs.open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
      created.push(file);
      // The umask may have taken bits away; the mode is exactly this.
      await handle.chmod(mode);
      return handle;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new KeyArgumentError(`${file} exists already: a key is never written over another. Choose another file, or remove it yourself if it is no longer used.`);
      throw e;
    }
  };
  try {
    const secretHandle = await create(secretKeyFile, 0o600);
    try {
      const pubHandle = await create(publicKeyFile, 0o644);
      try {
        const secret = hasNixKey(caps.value) ? await nixKeyGenerate(nix, caps.value, keyName, signal) : await nixStoreGenerate(nix, keyName, dir, signal);
        const parsed = publicKeyOf(secret);
        if ('problem' in parsed) throw new Error(`Nix made no usable key: ${parsed.problem}.`);
        await secretHandle.writeFile(secret);
        await secretHandle.sync();
        await pubHandle.writeFile(`${parsed.publicKey}\n`);
        created.length = 0;
        return { keyName: parsed.keyName, secretKeyFile, publicKey: parsed.publicKey, publicKeyFile };
      } finally {
        await pubHandle.close();
      }
    } finally {
      await secretHandle.close();
    }
  } finally {
    // Only what this call created, and only when it failed.
    for (const f of created) await fs.rm(f, { force: true });
  }
}

/** `nix key generate-secret --key-name N`: the secret on stdout. */
async function nixKeyGenerate(nix: Nix, caps: NixCapabilities, keyName: string, signal?: AbortSignal): Promise<string> {
  const result = await nix.run(nix.bin('nix'), [...caps.nixCommandPrefix, 'key', 'generate-secret', '--key-name', keyName], { timeoutMs: KEY_TIMEOUT_MS, signal });
  if (result.kind !== 'ok') throw new Error(`Generating the key failed: ${describeResult(result)}. ${result.stderr.trim()}`.trim());
  return result.stdout;
}

/**
 * `nix-store --generate-binary-cache-key N SECRET PUBLIC` (every Nix): it writes the files itself
 * (with the umask's mode), so into a folder of its own (0700) beside the chosen file, read back and removed.
 */
async function nixStoreGenerate(nix: Nix, keyName: string, dir: string, signal?: AbortSignal): Promise<string> {
  const tmp = await fs.mkdtemp(path.join(dir, '.nix-builders-key-'));
  try {
    await fs.chmod(tmp, 0o700);
    const secret = path.join(tmp, 'secret');
    const result = await nix.run(nix.bin('nix-store'), ['--generate-binary-cache-key', keyName, secret, path.join(tmp, 'public')], { timeoutMs: KEY_TIMEOUT_MS, signal });
    if (result.kind !== 'ok') throw new Error(`Generating the key failed: ${describeResult(result)}. ${result.stderr.trim()}`.trim());
    return await fs.readFile(secret, 'utf8');
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}
