// A security-key (FIDO) identity without the device: an unencrypted OpenSSH private key file of
// type sk-ssh-ed25519@openssh.com (public key, application "ssh:", flags, a random key handle), as
// `ssh-keygen -t ed25519-sk` writes it. ssh-add and ssh accept it; signing with it fails, since no
// authenticator holds the handle. Enough to see what a client does with such a key.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';

const TYPE = 'sk-ssh-ed25519@openssh.com';

function sshString(data: Buffer | string): Buffer {
  const b = Buffer.from(data);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(b.length);
  return Buffer.concat([length, b]);
}

/** Write `<file>` (mode 0600) and `<file>.pub`. */
export function writeSecurityKey(file: string, comment: string): void {
  const publicKey = randomBytes(32);
  const blob = Buffer.concat([sshString(TYPE), sshString(publicKey), sshString('ssh:')]);
  const check = randomBytes(4);
  let secret = Buffer.concat([check, check, sshString(TYPE), sshString(publicKey), sshString('ssh:'), Buffer.from([1]), sshString(randomBytes(64)), sshString(''), sshString(comment)]);
  for (let pad = 1; secret.length % 8 !== 0; pad++) secret = Buffer.concat([secret, Buffer.from([pad])]);
  const one = Buffer.from([0, 0, 0, 1]);
  const body = Buffer.concat([Buffer.from('openssh-key-v1\0', 'latin1'), sshString('none'), sshString('none'), sshString(''), one, sshString(blob), sshString(secret)]);
  const base64 = body.toString('base64').replace(/.{70}/g, '$&\n');
  writeFileSync(file, `-----BEGIN OPENSSH PRIVATE KEY-----\n${base64}\n-----END OPENSSH PRIVATE KEY-----\n`, { mode: 0o600 });
  writeFileSync(`${file}.pub`, `${TYPE} ${blob.toString('base64')} ${comment}\n`);
}
