// Dependencies count: a derivation whose dependency nothing can build gets a diagnostic on its own
// attribute, from the language server over stdio with the real Nix of this machine. What is
// already valid is not a problem; the evaluation's diagnostics come first, the dependencies' after
// (one dry run), and a newer version of the document cancels that dry run.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient, type Diagnostic } from './lspClient';
import { nixCommand } from './nixUnderTest';

const ERROR = 1;
const DEPENDENCY = 'dependency-no-builder';

type Related = { location: { uri: string }; message: string };
type Published = { uri: string; version?: number; diagnostics: Array<Diagnostic & { relatedInformation?: Related[] }> };

let dir: string;
let client: StdioLspClient;
const salt = randomBytes(4).toString('hex');
const feature = `foo-feature-${salt}`;

/** A derivation that only a machine with `features` builds (nothing here has them). */
const needs = (name: string, features: string[]) =>
  `derivation { name = "${name}"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo ${salt} > $out" ]; requiredSystemFeatures = [ ${features.map((f) => `"${f}"`).join(' ')} ]; }`;
/** A derivation this machine builds, depending on `input`. */
const dependent = (name: string, input: string) => `derivation { name = "${name}"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" ": \${${input}} > $out" ]; }`;

const INPUT_1 = needs('input-1', [feature]);
const PREBUILT = needs('prebuilt', [feature, 'prebuilt']);
const DOCUMENT = `let
  input-1 = ${INPUT_1};
  prebuilt = ${PREBUILT};
in {
  top = ${dependent('top', 'input-1')};
  fine = ${dependent('fine', 'prebuilt')};
}
`;

function nixConf(folder: string, substituters = ''): Promise<void> {
  // This machine: x86_64-linux with kvm; one builder, without the feature.
  return writeFile(
    path.join(folder, 'nix.conf'),
    ['build-users-group =', `substituters = ${substituters}`, 'sandbox = false', 'extra-platforms =', 'system-features = kvm', `builders = @${path.join(folder, 'machines')}`, ''].join('\n'),
  );
}

async function openFile(c: StdioLspClient, folder: string, name: string, text: string): Promise<string> {
  const file = path.join(folder, 'src', name);
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  c.open(uri, text);
  return uri;
}

const published = (c: StdioLspClient, uri: string): Published[] =>
  c.notifications.filter((m) => m.method === 'textDocument/publishDiagnostics' && (m.params as Published).uri === uri).map((m) => m.params as Published);

const dependencyDiagnostics = (p: Published) => p.diagnostics.filter((d) => d.code === DEPENDENCY);

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-deps-'));
  await mkdir(path.join(dir, 'src'));
  await writeFile(path.join(dir, 'machines'), 'ssh://b1 x86_64-linux - 1 1 big-parallel\n');
  await nixConf(dir);
  // `prebuilt` is valid here: built once by a Nix that has its features.
  execFileSync(nixCommand('nix-build'), ['--no-out-link', '--option', 'system-features', `kvm ${feature} prebuilt`, '-E', PREBUILT], {
    env: { ...process.env, NIX_CONF_DIR: dir },
    stdio: 'pipe',
  });
  client = new StdioLspClient();
  await client.initialize({ settings: { env: { NIX_CONF_DIR: dir } } });
});

after(async () => {
  await client.shutdown();
  await rm(dir, { recursive: true, force: true });
});

// The server reads the dry run's .drv files from this machine's /nix/store (derivationFile.ts), as
// for any local Nix; the 2.26 wrappers' store is another folder here, so those tests cannot pass there.

test("a dependency that nothing can build is an error on its dependent's attribute, published after the evaluation's diagnostics", async () => {
  const uri = await openFile(client, dir, 'deps.nix', DOCUMENT);
  const ds = await client.diagnostics(uri, (x) => x.some((d) => d.code === DEPENDENCY));
  const found = ds.filter((d) => d.code === DEPENDENCY) as Published['diagnostics'];
  // `fine` depends on `prebuilt`, which needs the same feature but is valid: no problem.
  assert.equal(found.length, 1, JSON.stringify(ds, null, 1));
  const d = found[0] as Published['diagnostics'][number];
  assert.equal(d.severity, ERROR);
  assert.deepEqual(d.range, { start: { line: 4, character: 2 }, end: { line: 4, character: 5 } });
  assert.deepEqual((d.data as { attrPath: string[] }).attrPath, ['top']);
  assert.equal(
    d.message,
    `top: its dependency input-1 requires x86_64-linux with {${feature}}: no builder provides it (local x86_64-linux {kvm}; builders: b1 x86_64-linux {big-parallel})\n` +
      `Fix: add a x86_64-linux builder that has {${feature}}, or add the feature to column 6 of a builder's machines line if it has it.`,
  );
  const related = d.relatedInformation ?? [];
  assert.equal(related.length, 1);
  assert.match(related[0]?.location.uri ?? '', /^file:\/\/\/nix\/store\/[0-9a-z]{32}-input-1\.drv$/);
  assert.equal(related[0]?.message, `top → input-1: requires x86_64-linux {${feature}}`);
  // The quick fixes of a missing builder, for the dependency's system.
  const actions = await client.request<Array<{ title: string }>>('textDocument/codeAction', { textDocument: { uri }, range: d.range, context: { diagnostics: [d] } });
  assert.equal(actions[0]?.title, 'Add a builder for x86_64-linux…');
  // The evaluation's answer went out first, without the dependencies; then again with them.
  const all = published(client, uri);
  assert.equal(all.length, 2, JSON.stringify(all, null, 1));
  assert.deepEqual(all.map((p) => [p.version, dependencyDiagnostics(p).length]), [
    [1, 0],
    [1, 1],
  ]);
});

test('the answer is remembered by derivation: another document with the same derivations has it in its first publish', async () => {
  const file = path.join(dir, 'src', 'same.nix');
  await writeFile(file, DOCUMENT);
  const uri = pathToFileURL(file).href;
  const first = client.diagnostics(uri);
  client.open(uri, DOCUMENT);
  assert.equal((await first).filter((d) => d.code === DEPENDENCY).length, 1);
  assert.equal(published(client, uri).length, 1);
});

/** The dry runs of the server whose NIX_CONF_DIR is `folder` that are running now. */
function dryRunsUnder(folder: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
        if (/^\d+ \(.*\) Z/.test(stat)) return false;
        const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        return argv.includes('--dry-run') && readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').includes(`NIX_CONF_DIR=${folder}`);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("a newer version of the document cancels the older version's dependency check", async () => {
  // A substituter that accepts connections and never answers: the dry run waits for it.
  const sockets = new Set<import('node:net').Socket>();
  const hanging: Server = createServer(() => undefined);
  hanging.on('connection', (s) => sockets.add(s));
  await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
  const folder = await mkdtemp(path.join(tmpdir(), 'nb-deps-cancel-'));
  const other = new StdioLspClient();
  try {
    await mkdir(path.join(folder, 'src'));
    await writeFile(path.join(folder, 'machines'), '');
    await nixConf(folder, `http://127.0.0.1:${(hanging.address() as AddressInfo).port}`);
    await other.initialize({ settings: { env: { NIX_CONF_DIR: folder } } });
    const uri = await openFile(other, folder, 'cancel.nix', DOCUMENT);
    await other.diagnostics(uri);
    const older = await until('the dry run of version 1', () => dryRunsUnder(folder)[0]);
    other.change(uri, `# version 2\n${DOCUMENT}`, 2);
    await until('the dry run of version 1 ended', () => (dryRunsUnder(folder).includes(older) ? undefined : true));
    // Version 2 is answered and checks its own dependencies.
    await until('the diagnostics of version 2', () => published(other, uri).find((p) => p.version === 2));
    const newer = await until('the dry run of version 2', () => dryRunsUnder(folder)[0]);
    assert.notEqual(newer, older);
    assert.ok(published(other, uri).every((p) => dependencyDiagnostics(p).length === 0));
  } finally {
    await other.shutdown();
    for (const s of sockets) s.destroy();
    hanging.close();
    await rm(folder, { recursive: true, force: true });
  }
  assert.deepEqual(dryRunsUnder(folder), []);
});
