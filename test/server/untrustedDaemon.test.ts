// The server against a real local nix-daemon that does not trust this user (trusted-users =
// nobody): such a daemon silently ignores the builders a client passes, so the diagnostics and the
// hover must not promise a builder from the extension's settings, and must say why. The daemon is
// started here on its own socket, on this machine's store; the server reaches it with NIX_REMOTE.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient } from './lspClient';
import { nixCommand } from './nixUnderTest';

let dir: string;
let daemon: ChildProcess;
let client: StdioLspClient;
/** Clients of the cases with their own settings. */
const others: StdioLspClient[] = [];
let socket: string;
const user = userInfo().username;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-daemon-'));
  // The daemon's own builders (nix.conf `builders`): b1, x86_64-linux with kvm, and b3 (riscv64-linux) from a file it includes.
  await writeFile(path.join(dir, 'machines'), `ssh://b1 x86_64-linux - 1 1 kvm\n@${path.join(dir, 'machines-more')}\n`);
  await writeFile(path.join(dir, 'machines-more'), 'ssh://b3 riscv64-linux\n');
  // The user's machines file (setting nixBuilders.machinesFiles): b2, aarch64-linux.
  await writeFile(path.join(dir, 'user-machines'), 'ssh://b2 aarch64-linux\n');
  await writeFile(
    path.join(dir, 'nix.conf'),
    ['build-users-group =', 'substituters =', 'extra-platforms =', 'system-features = big-parallel', 'trusted-users = nobody', `builders = @${path.join(dir, 'machines')}`, ''].join('\n'),
  );
  socket = path.join(dir, 'socket');
  daemon = spawn(nixCommand('nix-daemon'), [], { env: { ...process.env, NIX_CONF_DIR: dir, NIX_DAEMON_SOCKET_PATH: socket }, stdio: 'ignore' });
  for (let i = 0; !existsSync(socket); i++) {
    assert.ok(i < 400 && daemon.exitCode === null, 'nix-daemon listens');
    await new Promise((r) => setTimeout(r, 25));
  }
  client = new StdioLspClient();
  await client.initialize({
    settings: { env: { NIX_CONF_DIR: dir, NIX_REMOTE: 'daemon', NIX_DAEMON_SOCKET_PATH: socket }, machinesFiles: [path.join(dir, 'user-machines')], evaluation: { timeoutSeconds: 30 } },
  });
});

after(async () => {
  await client?.shutdown();
  await Promise.all(others.map((c) => c.shutdown()));
  daemon?.kill('SIGTERM');
  await rm(dir, { recursive: true, force: true });
});

test('an untrusted user of the local daemon: no "builds on b2" for a builder the daemon ignores, but why and the fix', async () => {
  const src = path.join(dir, 'src');
  await mkdir(src);
  const file = path.join(src, 'default.nix');
  const text = '{\n  arm = derivation { name = "arm"; system = "aarch64-linux"; builder = "/bin/sh"; };\n  vm = derivation { name = "vm"; system = "x86_64-linux"; builder = "/bin/sh"; requiredSystemFeatures = [ "kvm" ]; };\n}\n';
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  const published = client.diagnostics(uri);
  client.open(uri, text);
  const ds = await published;
  const arm = ds.find((d) => (d.data as { attrPath?: string[] } | undefined)?.attrPath?.[0] === 'arm');
  assert.equal(arm?.code, 'no-builder-system', JSON.stringify(ds, null, 1));
  assert.match(arm?.message ?? '', new RegExp(`\\nb2 could build it, but the local nix-daemon does not trust ${user}: it silently ignores --builders`));
  assert.match(arm?.message ?? '', /\nFix: add `trusted-users = nobody .*` to \/etc\/nix\/nix\.conf and restart nix-daemon\.$/);
  // The daemon's own builder still takes what it can.
  const vm = ds.find((d) => (d.data as { attrPath?: string[] } | undefined)?.attrPath?.[0] === 'vm');
  assert.match(vm?.message ?? '', /^builds on b1 /);

  const hover = await client.request<{ contents: { value: string } } | null>('textDocument/hover', { textDocument: { uri }, position: { line: 1, character: 3 } });
  assert.match(hover?.contents.value ?? '', /Nix would now: nothing can build it: .*\(b2 would fit, but the local nix-daemon does not trust/);
});

const TEXT = [
  '{',
  '  arm = derivation { name = "arm"; system = "aarch64-linux"; builder = "/bin/sh"; };',
  '  vm = derivation { name = "vm"; system = "x86_64-linux"; builder = "/bin/sh"; requiredSystemFeatures = [ "kvm" ]; };',
  '  riscv = derivation { name = "riscv"; system = "riscv64-linux"; builder = "/bin/sh"; };',
  '}',
  '',
].join('\n');

/** A client of the same daemon with `env` added; its diagnostics of TEXT by attribute, and the hover on `arm`. */
async function predicted(name: string, env: Record<string, string>) {
  const c = new StdioLspClient();
  others.push(c);
  await c.initialize({ settings: { env: { NIX_CONF_DIR: dir, NIX_REMOTE: 'daemon', NIX_DAEMON_SOCKET_PATH: socket, ...env }, evaluation: { timeoutSeconds: 30 } } });
  const src = path.join(dir, name);
  await mkdir(src);
  const file = path.join(src, 'default.nix');
  await writeFile(file, TEXT);
  const uri = pathToFileURL(file).href;
  const published = c.diagnostics(uri);
  c.open(uri, TEXT);
  const ds = await published;
  const of = (attr: string) => ds.find((d) => (d.data as { attrPath?: string[] } | undefined)?.attrPath?.[0] === attr);
  const hover = await c.request<{ contents: { value: string } } | null>('textDocument/hover', { textDocument: { uri }, position: { line: 1, character: 3 } });
  return { ds, of, hover: hover?.contents.value ?? '' };
}

const IGNORED = `could build it, but the local nix-daemon does not trust ${user}: it silently ignores --builders and uses only its own \`builders\` setting`;

test("the user's nix.conf replaces `builders`: the prediction names the daemon's own builders (and those its machines file includes) and says the user's are ignored", async () => {
  await writeFile(path.join(dir, 'user-machines-b'), 'ssh://u1 aarch64-linux\n');
  await writeFile(path.join(dir, 'user.conf'), `builders = @${path.join(dir, 'user-machines-b')}\n`);
  const { ds, of, hover } = await predicted('user-conf', { NIX_USER_CONF_FILES: path.join(dir, 'user.conf') });
  const arm = of('arm');
  assert.equal(arm?.code, 'no-builder-system', JSON.stringify(ds, null, 1));
  assert.match(arm?.message ?? '', /^requires aarch64-linux: no builder provides it \(.*builders: b1 x86_64-linux \{kvm\}, b3 riscv64-linux \{\}\)/);
  assert.ok(arm?.message.includes(`\nu1 ${IGNORED}`), arm?.message);
  assert.match(of('vm')?.message ?? '', /^builds on b1 /);
  // b3 is in a file that the daemon's /etc/nix/machines (here: its nix.conf's @file) includes: the daemon's too.
  assert.match(of('riscv')?.message ?? '', /^builds on b3 /);
  assert.match(hover, /Nix would now: nothing can build it: .*\(u1 would fit, but the local nix-daemon does not trust/);
});

test('NIX_CONFIG from nixBuilders.env replaces `builders`: its builders are ignored too, the daemon\'s are used', async () => {
  const { ds, of, hover } = await predicted('nix-config', { NIX_CONFIG: 'builders = ssh://e1 aarch64-linux' });
  const arm = of('arm');
  assert.equal(arm?.code, 'no-builder-system', JSON.stringify(ds, null, 1));
  assert.ok(arm?.message.includes(`\ne1 ${IGNORED}`), arm?.message);
  assert.match(of('vm')?.message ?? '', /^builds on b1 /);
  assert.match(of('riscv')?.message ?? '', /^builds on b3 /);
  assert.match(hover, /\(e1 would fit, but the local nix-daemon does not trust/);
});
