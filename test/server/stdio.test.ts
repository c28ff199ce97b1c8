// The language server standalone over stdio, driven by a raw JSON-RPC client (no
// vscode-languageclient), against the real Nix installed on this machine.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { StdioLspClient } from './lspClient';
import { nixCommand } from './nixUnderTest';

let realNixVersion = '';
before(() => {
  realNixVersion = /(\d+\.\d+(?:\.\d+)?)/.exec(execFileSync(nixCommand('nix'), ['--version'], { encoding: 'utf8' }))?.[1] ?? '';
});

test('initialize over stdio answers with the server name and reports the real Nix version', async () => {
  const client = new StdioLspClient();
  try {
    const init = (await client.initialize()) as { serverInfo: { name: string } };
    assert.equal(init.serverInfo.name, 'nix-builders-language-server');
    const status = await client.request<{ version?: string; problem?: string }>('nixBuilders/status');
    assert.equal(status.version, realNixVersion);
    assert.equal(status.problem, undefined);
    // The server also says so in its log.
    const log = await client.waitForNotification((m) => m.method === 'window/logMessage');
    assert.match((log.params as { message: string }).message, new RegExp(`Nix ${realNixVersion.replace(/\./g, '\\.')}`));
  } finally {
    assert.equal(await client.shutdown(), 0);
  }
});

test('a missing nix gives a clear problem naming the fix, not a crash', async () => {
  const emptyDir = await mkdtemp(path.join(tmpdir(), 'nb-no-nix-'));
  const client = new StdioLspClient();
  try {
    await client.initialize({ settings: { nixBinDir: emptyDir } });
    const status = await client.request<{ version?: string; problem?: string }>('nixBuilders/status');
    assert.equal(status.version, undefined);
    assert.match(status.problem ?? '', /Nix was not found/);
    assert.match(status.problem ?? '', /nixBuilders\.nixBinDir/);
    const listing = await client.request<{ builders: unknown[]; nix: { problem?: string } }>('nixBuilders/listBuilders');
    assert.deepEqual(listing.builders, []);
    assert.match(listing.nix.problem ?? '', /Nix was not found/);
  } finally {
    assert.equal(await client.shutdown(), 0);
  }
});

test('listBuilders reads nix.conf builders (@file) and the settings, each labelled with its source', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nb-conf-'));
  const machines = path.join(dir, 'machines');
  await writeFile(machines, '# lab machines\nssh://b1 x86_64-linux - 2 1 kvm,big-parallel\nssh://b2 aarch64-linux\n');
  await writeFile(path.join(dir, 'nix.conf'), `builders = @${machines}\nsystem-features = kvm\n`);
  const userMachines = path.join(dir, 'user-machines');
  await writeFile(userMachines, 'ssh://u1 x86_64-linux\nnot-a-number-line x86_64-linux - many\n');
  const client = new StdioLspClient();
  try {
    await client.initialize({
      settings: { env: { NIX_CONF_DIR: dir }, machinesFiles: [userMachines], builders: ['ssh://s1 riscv64-linux'] },
    });
    const listing = await client.request<{
      builders: Array<{ name: string; uri: string; systems: string[]; maxJobs: number; supportedFeatures: string[]; source: { label: string; line?: number } }>;
      problems: Array<{ message: string; path?: string; line?: number }>;
      local: { systemFeatures: string[] };
    }>('nixBuilders/listBuilders');
    assert.deepEqual(
      listing.builders.map((b) => [b.name, b.source.label, b.source.line]),
      [
        ['b1', `nix.conf builders @${machines}`, 1],
        ['b2', `nix.conf builders @${machines}`, 2],
        ['u1', `machines file ${userMachines}`, 0],
        ['s1', 'setting nixBuilders.builders', undefined],
      ],
    );
    assert.deepEqual(listing.builders[0]?.supportedFeatures, ['kvm', 'big-parallel']);
    assert.equal(listing.builders[0]?.maxJobs, 2);
    assert.deepEqual(listing.local.systemFeatures, ['kvm']);
    assert.equal(listing.problems.length, 1);
    assert.match(listing.problems[0]?.message ?? '', /column 4 \(max jobs\) must be a whole number, not 'many'/);
    assert.equal(listing.problems[0]?.path, userMachines);
    assert.equal(listing.problems[0]?.line, 1);

    // Editing the machines file is noticed: the server tells the client to list again.
    client.notifications.length = 0;
    await writeFile(machines, 'ssh://b1 x86_64-linux\nssh://b3 aarch64-linux\n');
    await client.waitForNotification((m) => m.method === 'nixBuilders/buildersChanged');
    const again = await client.request<{ builders: Array<{ name: string }> }>('nixBuilders/listBuilders');
    assert.deepEqual(again.builders.map((b) => b.name), ['b1', 'b3', 'u1', 's1']);
  } finally {
    assert.equal(await client.shutdown(), 0);
  }
});

test('a machines file open in the editor gets a diagnostic on each malformed line', async () => {
  const client = new StdioLspClient();
  try {
    await client.initialize({ workspaceTrusted: false });
    const uri = 'file:///tmp/nix-builders-test/machines';
    client.notify('textDocument/didOpen', {
      textDocument: { uri, languageId: 'nix-machines', version: 1, text: '# ok\nssh://b1 x86_64-linux\nssh://b2 x86_64-linux - two\n' },
    });
    const m = await client.waitForNotification((n) => n.method === 'textDocument/publishDiagnostics');
    const { diagnostics } = m.params as { diagnostics: Array<{ range: { start: { line: number; character: number } }; message: string }> };
    assert.equal(diagnostics.length, 1);
    assert.deepEqual(diagnostics[0]?.range.start, { line: 2, character: 0 });
    assert.match(diagnostics[0]?.message ?? '', /column 4 \(max jobs\) must be a whole number, not 'two'/);
  } finally {
    assert.equal(await client.shutdown(), 0);
  }
});
