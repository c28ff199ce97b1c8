// A build started from the editor (the server's startBuild, as the code lens sends it) runs on the
// builder that can build it, and its progress reaches the client as buildProgress notifications.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { startLab, type Lab } from './lab';
import { StdioLspClient } from '../server/lspClient';

let lab: Lab;
let client: StdioLspClient;

before(async () => {
  lab = await startLab();
  client = new StdioLspClient();
  await client.initialize({ settings: { env: lab.env } });
});

after(async () => {
  await client?.shutdown();
  await lab?.stop();
});

interface Info {
  buildId: string;
  status: string;
  plan: { summary: string };
  problems?: string[];
  snapshot?: { derivations: Array<{ drvPath: string; state: string; machine: string }> };
  targets: Array<{ drvPath: string; line?: number }>;
}

test('Build remotely only of an aarch64-linux attribute: planned, built on b2, reported', async () => {
  const file = path.join(lab.dir, 'build-me.nix');
  const text = `{\n  arm = derivation { name = "editor-build-${Date.now()}"; system = "aarch64-linux"; builder = "/bin/sh"; args = [ "-c" "/bin/sleep 1; read -r l < /etc/nix/nix.conf; echo $l > $out" ]; };\n}\n`;
  writeFileSync(file, text);
  const uri = pathToFileURL(file).href;
  client.open(uri, text);
  await client.diagnostics(uri);
  type Plan = { summary: string; targets: Array<{ willBuild: boolean; where: string }> };
  const plan = await client.request<Plan>('nixBuilders/planBuild', { uri, attrPaths: [['arm']], remoteOnly: true });
  assert.equal(plan.summary, '1 derivation will be built');
  assert.equal(plan.targets[0]?.willBuild, true);
  assert.match(plan.targets[0]?.where ?? '', /b2/);
  const started = await client.request<Info>('nixBuilders/startBuild', { uri, attrPaths: [['arm']], remoteOnly: true });
  assert.match(started.plan.summary, /1 derivation will be built/, JSON.stringify(started));
  assert.equal(started.targets[0]?.line, 1);
  const done = await client.waitForNotification((m) => m.method === 'nixBuilders/buildProgress' && (m.params as Info).buildId === started.buildId && (m.params as Info).status !== 'running', 60_000);
  const info = done.params as Info;
  assert.equal(info.status, 'built', JSON.stringify(info.problems));
  const drv = info.snapshot?.derivations.find((d) => d.drvPath === started.targets[0]?.drvPath);
  assert.equal(drv?.state, 'built');
  assert.match(drv?.machine ?? '', /b2$/);
  // Progress arrived while it ran, with the machine it ran on.
  assert.ok(
    client.notifications.some((m) => m.method === 'nixBuilders/buildProgress' && (m.params as Info).snapshot?.derivations.some((d) => d.state === 'building' && /b2$/.test(d.machine))),
    'a running snapshot showed it building on b2',
  );
  // Planned again, nothing is left to build.
  const after = await client.request<Plan>('nixBuilders/planBuild', { uri, attrPaths: [['arm']], remoteOnly: true });
  assert.equal(after.targets[0]?.willBuild, false);
  assert.match(after.summary, /^Nothing to do/);
});

test('a derivation whose output is in a binary cache is fetched, not built, and the plan says so', async () => {
  // Build it once locally, put it in a file:// cache, delete it from the store.
  const name = `cached-${Date.now()}`;
  const file = path.join(lab.dir, 'cached.nix');
  const text = `{\n  hello = derivation { name = "${name}"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo hi > $out" ]; };\n}\n`;
  writeFileSync(file, text);
  const env = { ...process.env, ...lab.env };
  const out = execFileSync('nix-build', [file, '-A', 'hello', '--no-out-link'], { env, encoding: 'utf8' }).trim();
  const cache = `file://${path.join(lab.dir, 'cache')}`;
  execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'copy', '--to', cache, out], { env });
  execFileSync('nix-store', ['--delete', out], { env, stdio: 'ignore' });

  const cached = new StdioLspClient();
  try {
    await cached.initialize({ settings: { env: { ...lab.env, NIX_CONFIG: `substituters = ${cache}\nrequire-sigs = false` } } });
    const uri = pathToFileURL(file).href;
    cached.open(uri, text);
    await cached.diagnostics(uri);
    const plan = await cached.request<{ summary: string }>('nixBuilders/planBuild', { uri, attrPaths: [['hello']] });
    assert.equal(plan.summary, `Nothing will build: ${name} comes from the cache`);
    const started = await cached.request<Info>('nixBuilders/startBuild', { uri, attrPaths: [['hello']] });
    const done = await cached.waitForNotification(
      (m) => m.method === 'nixBuilders/buildProgress' && (m.params as Info).buildId === started.buildId && (m.params as Info).status !== 'running',
      60_000,
    );
    const info = done.params as Info & { snapshot?: { transfers: Array<{ kind: string; state: string }> } };
    assert.equal(info.status, 'built', JSON.stringify(info.problems));
    assert.ok(!info.snapshot?.derivations.some((d) => d.state === 'built'), 'nothing was built');
    assert.ok(info.snapshot?.transfers.some((t) => t.kind === 'substitute' && t.state === 'done'), JSON.stringify(info.snapshot?.transfers));
  } finally {
    await cached.shutdown();
  }
});
