// What an evaluation depends on, and who shares it: the language server over stdio against the
// real Nix of this machine. Results follow the files a document imports (the server watches them;
// a client may report changes too), and the diagnostics, code lenses and hovers of one document
// version share one nix-instantiate process, which only the last waiting requester can cancel.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient, type Diagnostic } from './lspClient';
import { evaluationsIn, nixCommand } from './nixUnderTest';

let dir: string;
/** Every nix-instantiate the server starts appends a line here (see the wrapper in `before`). */
let runs: string;
const clients: StdioLspClient[] = [];

const CHANGED = 2;
const CREATED = 1;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-share-'));
  // This machine builds x86_64-linux only, and there are no builders.
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'extra-platforms =', 'builders =', ''].join('\n'));
  // A Nix bin folder whose nix-instantiate counts its runs, then is the real one (of the Nix under test).
  const bin = path.join(dir, 'bin');
  await mkdir(bin);
  runs = path.join(dir, 'runs');
  await writeFile(runs, '');
  const real = (name: string) => execFileSync('sh', ['-c', 'command -v "$1"', 'sh', nixCommand(name)], { encoding: 'utf8' }).trim();
  for (const name of ['nix', 'nix-store', 'nix-build']) await symlink(real(name), path.join(bin, name));
  await writeFile(path.join(bin, 'nix-instantiate'), `#!/bin/sh\necho "$$" >> '${runs}'\nexec '${real('nix-instantiate')}' "$@"\n`);
  await chmod(path.join(bin, 'nix-instantiate'), 0o755);
});

after(async () => {
  for (const c of clients) await c.shutdown();
  await rm(dir, { recursive: true, force: true });
});

async function start(opts: { watchedFiles?: boolean; timeoutSeconds?: number } = {}): Promise<StdioLspClient> {
  const client = new StdioLspClient();
  clients.push(client);
  const capabilities = opts.watchedFiles ? { workspace: { didChangeWatchedFiles: { dynamicRegistration: true } } } : {};
  await client.initialize(
    { settings: { nixBinDir: path.join(dir, 'bin'), env: { NIX_CONF_DIR: dir }, evaluation: { timeoutSeconds: opts.timeoutSeconds ?? 30 } } },
    undefined,
    capabilities,
  );
  return client;
}

/** A fresh folder for one test's files. */
async function folder(name: string): Promise<string> {
  const f = path.join(dir, name);
  await mkdir(f);
  return f;
}

const drvUsing = (system: string) => `derivation { name = "dep"; system = ${system}; builder = "/bin/sh"; args = [ "-c" ": > $out" ]; }`;
const runCount = async () => (await readFile(runs, 'utf8')).split('\n').filter(Boolean).length;
type Derivations = { state: string; derivations: Array<{ system: string; drvPath: string }> };

async function until(what: string, done: () => boolean): Promise<void> {
  for (let i = 0; !done(); i++) {
    assert.ok(i < 600, what);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('an imported file changed on disk: the server sees it itself and evaluates the importer again', async () => {
  const client = await start();
  const src = await folder('watch');
  await writeFile(path.join(src, 'lib.nix'), '{ system = "x86_64-linux"; }\n');
  const text = `let lib = import ./lib.nix; in {\n  d = ${drvUsing('lib.system')};\n}\n`;
  const file = path.join(src, 'default.nix');
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  const first = client.diagnostics(uri);
  client.open(uri, text);
  assert.deepEqual(await first, []);
  const before = await client.request<Derivations>('nixBuilders/derivations', { uri });
  assert.equal(before.derivations[0]?.system, 'x86_64-linux');

  // The client does not report file changes (no didChangeWatchedFiles capability).
  const next = client.diagnostics(uri, (ds) => ds.some((d) => d.code === 'no-builder-system'));
  await writeFile(path.join(src, 'lib.nix'), '{ system = "aarch64-linux"; }\n');
  const d = (await next).find((x) => x.code === 'no-builder-system') as Diagnostic;
  assert.equal(d.range.start.line, 1);
  const after = await client.request<Derivations>('nixBuilders/derivations', { uri });
  assert.equal(after.derivations[0]?.system, 'aarch64-linux');
  assert.notEqual(after.derivations[0]?.drvPath, before.derivations[0]?.drvPath);
});

test('a client that watches files: the server registers for Nix files, and a reported new file is evaluated', async () => {
  const client = await start({ watchedFiles: true });
  await until('the server registers file watchers', () => client.serverRequests.some((m) => m.method === 'client/registerCapability'));
  const registration = client.serverRequests.find((m) => m.method === 'client/registerCapability')?.params as {
    registrations: Array<{ method: string; registerOptions: { watchers: Array<{ globPattern: string }> } }>;
  };
  const watched = registration.registrations.find((r) => r.method === 'workspace/didChangeWatchedFiles');
  assert.deepEqual(watched?.registerOptions.watchers.map((w) => w.globPattern), ['**/*.nix', '**/flake.lock']);

  // It imports a file that does not exist yet: nothing the server could watch by itself.
  const src = await folder('reported');
  const text = `let lib = import ./lib.nix; in {\n  d = ${drvUsing('lib.system')};\n}\n`;
  const file = path.join(src, 'default.nix');
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  const first = client.diagnostics(uri);
  client.open(uri, text);
  assert.match((await first).map((x) => x.message).join('\n'), /lib\.nix/);

  const next = client.diagnostics(uri, (ds) => ds.some((d) => d.code === 'no-builder-system'));
  const lib = path.join(src, 'lib.nix');
  await writeFile(lib, '{ system = "aarch64-linux"; }\n');
  client.notify('workspace/didChangeWatchedFiles', { changes: [{ uri: pathToFileURL(lib).href, type: CREATED }] });
  await next;

  // A change the client reports and the server also sees is evaluated (once each time it really changed).
  const again = client.diagnostics(uri, (ds) => ds.length === 0);
  await writeFile(lib, '{ system = "x86_64-linux"; }\n');
  client.notify('workspace/didChangeWatchedFiles', { changes: [{ uri: pathToFileURL(lib).href, type: CHANGED }] });
  await again;
});

test('didOpen, codeLens and hover arriving together start ONE evaluation', async () => {
  const client = await start();
  const src = await folder('together');
  const text = `{\n  arm = ${drvUsing('"aarch64-linux"')};\n}\n`;
  const file = path.join(src, 'default.nix');
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  const before = await runCount();
  const diagnostics = client.diagnostics(uri);
  client.open(uri, text);
  const [lenses, hover] = await Promise.all([
    client.request<unknown[]>('textDocument/codeLens', { textDocument: { uri } }),
    client.request<{ contents: { value: string } } | null>('textDocument/hover', { textDocument: { uri }, position: { line: 1, character: 3 } }),
  ]);
  assert.ok(lenses.length > 0);
  assert.match(hover?.contents.value ?? '', /\*\*arm\*\*/);
  assert.ok((await diagnostics).some((d) => d.code === 'no-builder-system'));
  assert.equal((await runCount()) - before, 1);
});

test('a cancelled hover does not kill the evaluation the diagnostics still wait for; the last requester cancelling does', async () => {
  const client = await start({ timeoutSeconds: 120 });
  const src = await folder('cancel');
  const fifo = path.join(src, 'fifo');
  execFileSync('mkfifo', [fifo]);
  // Blocks on the FIFO until the test writes it.
  const text = `{\n  hang = builtins.readFile ${JSON.stringify(fifo)};\n  arm = ${drvUsing('"aarch64-linux"')};\n}\n`;
  const file = path.join(src, 'default.nix');
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  const before = await runCount();
  const diagnostics = client.diagnostics(uri);
  client.open(uri, text);
  const cancel = new AbortController();
  const hover = client.request('textDocument/hover', { textDocument: { uri }, position: { line: 2, character: 3 } }, cancel.signal);
  await until('the evaluation started', () => evaluationsIn(src).length === 1);
  cancel.abort();
  await assert.rejects(hover, /cancel/i);
  // The diagnostics' evaluation goes on: opening the FIFO for writing lets it finish (writing
  // nothing: Nix 2.26 reads a FIFO as long as its size, 0, and may close it before any write).
  await writeFile(fifo, '');
  assert.ok((await diagnostics).some((d) => d.code === 'no-builder-system'));
  assert.equal((await runCount()) - before, 1);

  // A file that is not open: the derivations request is its only requester; cancelling it ends Nix.
  const other = await folder('cancel-only');
  const fifo2 = path.join(other, 'fifo');
  execFileSync('mkfifo', [fifo2]);
  const lonely = path.join(other, 'default.nix');
  await writeFile(lonely, `{ hang = builtins.readFile ${JSON.stringify(fifo2)}; }\n`);
  const alone = new AbortController();
  const request = client.request('nixBuilders/derivations', { uri: pathToFileURL(lonely).href }, alone.signal);
  await until('the evaluation started', () => evaluationsIn(other).length === 1);
  alone.abort();
  await assert.rejects(request, /cancel/i);
  await until('the evaluation is killed', () => evaluationsIn(other).length === 0);
  assert.ok(existsSync(fifo2));
});
