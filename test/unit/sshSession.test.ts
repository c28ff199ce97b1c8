// connectSsh hands over to OpenSSH where ssh2 cannot follow, before or during the handshake: an
// ssh2 server on loopback offers only a key exchange that OpenSSH has and ssh2's client does not
// use by default, as a newer sshd with only post-quantum key exchanges would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Server, utils } from 'ssh2';
import { connectSsh } from '../../language-server/remote/sshSession';
import { parseSshG } from '../../language-server/remote/sshConfig';
import { writeSecurityKey } from '../lab/securityKey';

const config = (port: number, extra = '') =>
  parseSshG(`host b1\nhostname 127.0.0.1\nport ${port}\nuser root\nuserknownhostsfile /nonexistent/known_hosts\nidentityfile /nonexistent/id\n${extra}`, 'b1', {
    home: '/nonexistent',
    localUser: 'root',
  });
const timeouts = { tcpMs: 5000, handshakeMs: 10_000, authMs: 10_000 };

test('no algorithm in common with the server: needs OpenSSH, not a failed handshake', async () => {
  const hostKey = utils.generateKeyPairSync('ed25519').private;
  const server = new Server({ hostKeys: [hostKey], algorithms: { kex: ['diffie-hellman-group14-sha1'] } }, (client) => client.on('error', () => {}));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const { port } = server.address() as AddressInfo;
    const conn = await connectSsh({ config: config(port), uriHost: 'b1', timeouts });
    assert.equal(conn.ok, false);
    assert.deepEqual(!conn.ok && conn.failure, {
      kind: 'needs-openssh',
      reasons: ['ssh2 and the server share no algorithm (Handshake failed: no matching key exchange algorithm)'],
      message: 'only OpenSSH can check b1: ssh2 and the server share no algorithm (Handshake failed: no matching key exchange algorithm)',
    });
  } finally {
    server.close();
  }
});

test('a ProxyJump host: needs OpenSSH before any connection', async () => {
  const conn = await connectSsh({ config: config(1, 'proxyjump jump.example.org\n'), uriHost: 'b1', timeouts });
  assert.deepEqual(!conn.ok && conn.failure, { kind: 'needs-openssh', reasons: ['it is reached through ProxyJump jump.example.org'], message: 'only OpenSSH can check b1: it is reached through ProxyJump jump.example.org' });
  assert.deepEqual(conn.report, {}, 'no TCP connection was tried');
});

test('a security-key identity file: needs OpenSSH before any connection', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nbp-sk-'));
  try {
    const key = path.join(dir, 'id_ed25519_sk');
    writeSecurityKey(key, 'test security key');
    const conn = await connectSsh({ config: config(1, `identityfile ${key}\n`), uriHost: 'b1', timeouts });
    assert.deepEqual(!conn.ok && conn.failure.kind === 'needs-openssh' && conn.failure.reasons, [`${key} is a security-key (sk-ssh-ed25519@openssh.com) key`]);
    assert.deepEqual(conn.report, {});
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
