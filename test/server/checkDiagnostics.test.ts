// The diagnostic a reproducibility check leaves on its attribute, from a plain LSP client against
// real Nix: published with the check's summary at the attribute's name, hidden while the document
// evaluates the attribute to another derivation, shown again for the same one, and removed by a
// check that finds it reproducible; its quick fixes; and nixBuilders/checkFinished after each check.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { StdioLspClient, type Diagnostic } from './lspClient';
import { NIX_BIN } from './nixUnderTest';
import { Notifications, ServerCommands, type CheckReproducibilityResult } from '../../language-server/protocol';

const SERVER = path.join(__dirname, '../../language-server/main.ts');

let dir: string;
let client: StdioLspClient;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-checkdiag-'));
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', ''].join('\n'));
  client = new StdioLspClient(process.env, ['--import', 'tsx', SERVER]);
  await client.initialize({ settings: { env: { NIX_CONF_DIR: dir } } }, dir);
});

after(async () => {
  await client?.shutdown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

type Published = { uri: string; version?: number; diagnostics: Diagnostic[] };

/** The next diagnostics published for `uri` at `version`. */
const publishedAt = (uri: string, version: number) =>
  client
    .waitForNotification((m) => m.method === 'textDocument/publishDiagnostics' && (m.params as Published).uri === uri && (m.params as Published).version === version, 120_000, false)
    .then((m) => (m.params as Published).diagnostics);

const notReproducible = (ds: Diagnostic[]) => ds.filter((d) => d.code === 'not-reproducible');

test('a check that differs leaves a warning on the attribute until its derivation changes or a check finds it reproducible', { skip: NIX_BIN ? 'comparing reads the store at /nix/store: not for a Nix in another root' : false, timeout: 300_000 }, async () => {
  const marker = path.join(dir, 'dev-b');
  const name = `chkdiag-${Date.now()}-${process.pid}`;
  // `dev` differs in every build until the marker holds what its file must be.
  const script = `mkdir $out $dev; echo same > $out/a; if [ -e ${marker} ]; then cat ${marker} > $dev/b; else read u < /proc/sys/kernel/random/uuid; echo $u > $dev/b; fi`;
  const text = (extra: string) =>
    `{\n  pkg = derivation {\n    name = "${name}"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin";${extra}\n    outputs = [ "out" "dev" ]; args = [ "-c" ${JSON.stringify(script)} ];\n  };\n}\n`;
  const file = path.join(dir, 'diag.nix');
  await writeFile(file, text(''));
  const uri = pathToFileURL(file).href;
  const evaluated = publishedAt(uri, 1);
  client.open(uri, text(''), 1);
  assert.deepEqual(notReproducible(await evaluated), []);

  const check = () => client.request<CheckReproducibilityResult>('workspace/executeCommand', { command: ServerCommands.checkReproducibility, arguments: [{ uri, attribute: 'pkg' }] });
  const shown = client.diagnostics(uri, (ds) => notReproducible(ds).length > 0, 240_000);
  const r = await check();
  assert.equal(r.status, 'differs', JSON.stringify(r));
  const [d, ...others] = notReproducible(await shown);
  assert.deepEqual(others, []);
  assert.equal(d?.message, 'not reproducible: 1 of 2 outputs differs (dev: 1 file)');
  assert.equal(d?.severity, 2, 'a warning');
  assert.deepEqual(d?.range, { start: { line: 1, character: 2 }, end: { line: 1, character: 5 } });
  assert.deepEqual(d?.data, { attrPath: ['pkg'], drvPath: r.drvPath, machine: 'this machine', outputs: ['dev'] });
  // A link to the result for any editor: the rebuild's copy of the differing file.
  const dev = r.outputs.find((o) => o.name === 'dev');
  assert.ok(dev?.rebuildCopy, JSON.stringify(dev));
  const related = (d as Diagnostic & { relatedInformation?: Array<{ location: { uri: string }; message: string }> }).relatedInformation;
  assert.deepEqual(related?.map((x) => [x.location.uri, x.message]), [[pathToFileURL(path.join(dev.rebuildCopy, 'b')).href, "dev: b changed (the rebuild's copy)"]]);
  assert.notEqual(await readFile(fileURLToPath(related?.[0]?.location.uri ?? ''), 'utf8'), await readFile(path.join(dev.path, 'b'), 'utf8'), 'the rebuild\'s file, not the first build\'s');
  // Its quick fixes: check again, diffoscope's report of the differing output.
  const actions = await client.request<Array<{ title: string; command: { command: string; arguments: unknown[] } }>>('textDocument/codeAction', { textDocument: { uri }, range: d!.range, context: { diagnostics: [d] } });
  assert.deepEqual(actions.map((a) => [a.title, a.command.command, a.command.arguments]), [
    ['Check reproducibility again', ServerCommands.checkReproducibility, [{ uri, attribute: ['pkg'] }]],
    ["diffoscope's report of output 'dev'", ServerCommands.diffoscope, [{ drvPath: r.drvPath, output: 'dev' }]],
  ]);
  const finished = await client.waitForNotification((m) => m.method === Notifications.checkFinished.method);
  assert.deepEqual(finished.params, { uri, attribute: ['pkg'], result: r });

  // Another derivation (an edit): hidden; the same one again: shown again.
  const changed = publishedAt(uri, 2);
  client.change(uri, text(' extra = "1";'), 2);
  assert.deepEqual(notReproducible(await changed), []);
  const back = publishedAt(uri, 3);
  client.change(uri, text(''), 3);
  assert.equal(notReproducible(await back)[0]?.message, d?.message);

  // A check that finds it reproducible removes it.
  await copyFile(path.join(r.outputs.find((o) => o.name === 'dev')!.path, 'b'), marker);
  const gone = client.diagnostics(uri, (ds) => notReproducible(ds).length === 0, 240_000);
  const again = await check();
  assert.equal(again.status, 'reproducible', JSON.stringify(again));
  await gone;
  assert.equal(client.notifications.filter((m) => m.method === Notifications.checkFinished.method).length, 2);
});
