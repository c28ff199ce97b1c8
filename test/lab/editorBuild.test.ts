// A build started from the editor (the server's startBuild, as the code lens sends it) runs on the
// builder that can build it, and its progress reaches the client as buildProgress notifications.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { builderMarker, saltedDerivation, startLab, type Lab } from './lab';
import { StdioLspClient } from '../server/lspClient';
import { ServerCommands, type BuildCommandResult } from '../../language-server/protocol';

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

/** A binary cache directory served over HTTP, as a real cache is: GET and HEAD of its files. */
async function serveCache(dir: string): Promise<{ url: string; requests: string[]; close: () => Promise<void> }> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const file = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(`${req.method} ${file}`);
    let body: Buffer;
    try {
      if (file.includes('..')) throw new Error('no');
      body = readFileSync(path.join(dir, file));
    } catch {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

test('a derivation whose output is in a binary cache is fetched, not built, and the plan says from which cache', async () => {
  // Build it once locally, put it in a binary cache served over HTTP, delete it from the store. An
  // empty file:// cache is asked first (and does not have it).
  const name = `cached-${Date.now()}`;
  const file = path.join(lab.dir, 'cached.nix');
  const text = `{\n  hello = derivation { name = "${name}"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo hi > $out" ]; };\n}\n`;
  writeFileSync(file, text);
  const env = { ...process.env, ...lab.env };
  const out = execFileSync('nix-build', [file, '-A', 'hello', '--no-out-link'], { env, encoding: 'utf8' }).trim();
  const cacheDir = path.join(lab.dir, 'http-cache');
  execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'copy', '--to', `file://${cacheDir}`, out], { env });
  execFileSync('nix-store', ['--delete', out], { env, stdio: 'ignore' });
  const empty = path.join(lab.dir, 'empty-cache');
  mkdirSync(empty, { recursive: true });
  writeFileSync(path.join(empty, 'nix-cache-info'), 'StoreDir: /nix/store\n');
  const served = await serveCache(cacheDir);

  const cached = new StdioLspClient();
  try {
    await cached.initialize({ settings: { env: { ...lab.env, NIX_CONFIG: `substituters = file://${empty} ${served.url}\nrequire-sigs = false` } } });
    const uri = pathToFileURL(file).href;
    cached.open(uri, text);
    await cached.diagnostics(uri);
    type Plan = { summary: string; details: string[]; fetch: { bySubstituter: Array<{ substituter: string; paths: number; downloadBytes: number; narBytes: number }>; sources: Array<{ path: string; substituter?: string }> } };
    const plan = await cached.request<Plan>('nixBuilders/planBuild', { uri, attrPaths: [['hello']] });
    assert.equal(plan.summary, `Nothing will build: ${name} comes from the cache`);
    assert.deepEqual(plan.fetch.sources, [{ path: out, substituter: served.url, downloadBytes: plan.fetch.bySubstituter[0]?.downloadBytes, narBytes: plan.fetch.bySubstituter[0]?.narBytes }]);
    assert.equal(plan.fetch.bySubstituter.length, 1);
    assert.ok((plan.fetch.bySubstituter[0]?.narBytes ?? 0) > 0, JSON.stringify(plan.fetch));
    assert.ok(plan.details.some((l) => l.startsWith(`  from ${served.url}: 1 path, `) && l.includes(name)), plan.details.join('\n'));
    const started = await cached.request<Info>('nixBuilders/startBuild', { uri, attrPaths: [['hello']] });
    const done = await cached.waitForNotification(
      (m) => m.method === 'nixBuilders/buildProgress' && (m.params as Info).buildId === started.buildId && (m.params as Info).status !== 'running',
      60_000,
    );
    const info = done.params as Info & { snapshot?: { transfers: Array<{ kind: string; state: string; from: string }> } };
    assert.equal(info.status, 'built', JSON.stringify(info.problems));
    assert.ok(!info.snapshot?.derivations.some((d) => d.state === 'built'), 'nothing was built');
    assert.ok(info.snapshot?.transfers.some((t) => t.kind === 'substitute' && t.state === 'done' && t.from === served.url), JSON.stringify(info.snapshot?.transfers));
    // Real Nix fetched the NAR over HTTP from the cache the plan named.
    assert.ok(served.requests.some((r) => /^GET \/nar\//.test(r)), served.requests.join('\n'));
  } finally {
    await cached.shutdown();
    await served.close();
  }
});

test('the plan says where every derivation would build, dependencies included, and why nothing can build one', async () => {
  const file = path.join(lab.dir, 'plan-deps.nix');
  const salt = Date.now();
  const text = [
    'rec {',
    `  arm = derivation { name = "plan-arm-${salt}"; system = "aarch64-linux"; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; };`,
    `  riscv = derivation { name = "plan-riscv-${salt}"; system = "riscv64-linux"; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; };`,
    `  top = derivation { name = "plan-top-${salt}"; system = "x86_64-linux"; builder = "/bin/sh"; deps = [ arm riscv ]; args = [ "-c" "echo > $out" ]; };`,
    '}',
    '',
  ].join('\n');
  writeFileSync(file, text);
  const uri = pathToFileURL(file).href;
  client.open(uri, text);
  await client.diagnostics(uri);
  type Plan = { summary: string; details: string[]; builds: Array<{ name: string; target: boolean; verdict: string; machine?: string; problem?: string }> };
  const plan = await client.request<Plan>('nixBuilders/planBuild', { uri, attrPaths: [['top']], remoteOnly: true });
  const byName = new Map(plan.builds.map((b) => [b.name.replace(`-${salt}`, ''), b]));
  assert.deepEqual([...byName.keys()].sort(), ['plan-arm', 'plan-riscv', 'plan-top']);
  assert.equal(byName.get('plan-top')?.target, true);
  assert.equal(byName.get('plan-arm')?.target, false);
  assert.equal(byName.get('plan-arm')?.machine, 'b2');
  assert.equal(byName.get('plan-arm')?.verdict, 'remote');
  assert.equal(byName.get('plan-top')?.verdict, 'remote');
  assert.equal(byName.get('plan-riscv')?.verdict, 'none');
  assert.match(byName.get('plan-riscv')?.problem ?? '', /^requires riscv64-linux: no builder provides it .*\nFix: add a builder for riscv64-linux/s);
  assert.match(plan.summary, new RegExp(`^3 derivations will be built \\(nothing can build plan-riscv-${salt}\\)$`));
  assert.ok(plan.details.some((l) => l.startsWith('  on b2: ') && l.includes(`plan-arm-${salt}`)), plan.details.join('\n'));
  assert.ok(plan.details.some((l) => l.startsWith(`  nothing can build plan-riscv-${salt}: requires riscv64-linux`)), plan.details.join('\n'));
});

test('Build on… as an LSP command (any editor): asked through window/showMessageRequest, built on the builder picked (b2, where Nix would not have sent it: b1 comes first), answered with its machine and output', async () => {
  const file = path.join(lab.dir, 'build-on.nix');
  const text = `{\n  here = ${saltedDerivation({ system: 'x86_64-linux', name: 'editor-build-on' })};\n}\n`;
  writeFileSync(file, text);
  const uri = pathToFileURL(file).href;
  client.open(uri, text);
  const lenses = await client.request<Array<{ command: { title: string; command: string; arguments: unknown[] } }>>('textDocument/codeLens', { textDocument: { uri } });
  const buildOn = lenses.find((l) => l.command.title === 'Build on…')?.command;
  assert.equal(buildOn?.command, ServerCommands.buildOn);
  // Left to itself, Nix would build it on b1.
  const plan = lenses.find((l) => l.command.title === 'Plan')!.command;
  const planned = await client.request<{ builds: Array<{ machine?: string }> }>('workspace/executeCommand', plan);
  assert.equal(planned.builds[0]?.machine, 'b1');
  let offered: string[] = [];
  client.answers.set('window/showMessageRequest', (p) => {
    offered = (p as { actions: Array<{ title: string }> }).actions.map((a) => a.title);
    return { title: 'b2' };
  });
  try {
    const result = await client.request<BuildCommandResult>('workspace/executeCommand', buildOn);
    assert.ok(offered.includes('b1') && offered.includes('b2'), offered.join(', '));
    assert.equal(result.status, 'built', JSON.stringify(result));
    assert.match(result.derivations[0]?.machine ?? '', /b2$/);
    assert.equal(readFileSync(result.outputs[0]!, 'utf8').trim(), builderMarker('b2'));
  } finally {
    client.answers.delete('window/showMessageRequest');
  }
});
