// Adding, probing and removing a builder through the language server (over stdio), against the
// lab: the probe suggests what the builder really is, and edits keep the user's file intact.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { startLab, type Lab } from './lab';
import { StdioLspClient } from '../server/lspClient';

let lab: Lab;
let client: StdioLspClient;
let machines: string;
const ORIGINAL = '# my builders — keep this comment\n\n# (none yet)\n';

before(async () => {
  lab = await startLab();
  machines = path.join(lab.dir, 'user-machines');
  writeFileSync(machines, ORIGINAL);
  client = new StdioLspClient();
  // Only this file: the lab's own machines file stays out of the listing.
  const env = { ...lab.env, NIX_CONFIG: 'builders =' };
  await client.initialize({ settings: { env, machinesFiles: [machines] } });
});

after(async () => {
  await client?.shutdown();
  await lab?.stop();
});

type Listing = { builders: Array<{ name: string; uri: string; systems: string[]; source: { label: string; path?: string; line?: number; column?: number; text?: string } }> };

test('probe, add, refuse a malformed entry, remove: the file ends byte-identical', async () => {
  const b2 = lab.builder('b2');
  const probe = await client.request<{ status: string; facts: { system?: string; extraPlatforms?: string[]; cores?: number } }>('nixBuilders/probeBuilder', {
    entry: `${b2.uri} - ${lab.clientKey}`,
  });
  assert.equal(probe.facts.system, 'x86_64-linux');
  assert.ok(probe.facts.extraPlatforms?.includes('aarch64-linux'), JSON.stringify(probe.facts));

  const added = await client.request<{ ok: boolean; backup?: string }>('nixBuilders/editMachines', {
    file: machines,
    edit: { kind: 'add', entry: b2.machinesLine },
  });
  assert.equal(added.ok, true);
  assert.equal(readFileSync(machines, 'utf8'), `${ORIGINAL}${b2.machinesLine}\n`);
  assert.equal(readFileSync(`${machines}.bak`, 'utf8'), ORIGINAL);
  const listing = await client.request<Listing>('nixBuilders/listBuilders');
  const entry = listing.builders.find((b) => b.uri === b2.uri);
  assert.ok(entry, JSON.stringify(listing.builders));
  assert.equal(entry.source.path, machines);
  assert.equal(entry.source.line, 3);

  const refused = await client.request<{ ok: boolean; reason?: string; message?: string }>('nixBuilders/editMachines', {
    file: machines,
    edit: { kind: 'replace', line: entry.source.line, column: entry.source.column, expected: entry.source.text, entry: 'ssh://b2 x86_64-linux - many' },
  });
  assert.equal(refused.ok, false);
  assert.equal(refused.reason, 'invalid-entry');
  assert.match(refused.message ?? '', /max jobs/);
  assert.equal(readFileSync(machines, 'utf8'), `${ORIGINAL}${b2.machinesLine}\n`);

  const removed = await client.request<{ ok: boolean }>('nixBuilders/editMachines', {
    file: machines,
    edit: { kind: 'remove', line: entry.source.line, column: entry.source.column, expected: entry.source.text },
  });
  assert.equal(removed.ok, true);
  assert.equal(readFileSync(machines, 'utf8'), ORIGINAL);
  assert.ok(existsSync(`${machines}.bak`));
});
