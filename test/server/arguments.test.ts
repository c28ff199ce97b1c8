// Files that are functions, and `<nixpkgs>`: the language server over stdio with the real Nix of
// this machine, settings pulled per folder (workspace/configuration with the document's URI), and
// a stand-in nixpkgs (test/fixtures/channel/nixpkgs) reached through the search path, since the
// tests run offline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient, type Diagnostic } from './lspClient';

const ERROR = 1;
const WARNING = 2;
const FIXTURES = path.resolve(__dirname, '../fixtures');
const CHANNEL = path.join(FIXTURES, 'channel/nixpkgs');

let dir: string;
let client: StdioLspClient;

/** Each folder's `nixBuilders` settings, as an editor answers workspace/configuration for a URI in it. */
const folders: Record<string, object> = {
  withargs: { evaluation: { arguments: { version: '"1.0"' } } },
  channel: { evaluation: { searchPath: [`nixpkgs=${CHANNEL}`], depth: 4 } },
};

async function openFile(folder: string, name: string, text: string): Promise<string> {
  await mkdir(path.join(dir, folder), { recursive: true });
  const file = path.join(dir, folder, name);
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  client.open(uri, text);
  return uri;
}

const only = (ds: Diagnostic[], code: string) => {
  const found = ds.filter((d) => d.code === code);
  assert.equal(found.length, 1, `one ${code} diagnostic in ${JSON.stringify(ds, null, 1)}`);
  return found[0] as Diagnostic;
};

before(async () => {
  dir = await realpath(await mkdtemp(path.join(tmpdir(), 'nb-args-')));
  // This machine: x86_64-linux and no builder, no substituter; nothing on the search path but what a test adds.
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'extra-platforms =', 'builders =', ''].join('\n'));
  const env = { ...process.env };
  delete env.NIX_PATH;
  client = new StdioLspClient(env);
  client.configuration = (item) => {
    const folder = item.scopeUri && Object.keys(folders).find((f) => item.scopeUri?.startsWith(pathToFileURL(path.join(dir, f)).href + '/'));
    return { env: { NIX_CONF_DIR: dir, NIX_PATH: `fixtures=${FIXTURES}` }, ...(folder ? folders[folder] : {}) };
  };
  // As the VS Code extension does: it runs nixBuilders.setEvaluationArguments itself.
  await client.initialize({ settings: { env: { NIX_CONF_DIR: dir, NIX_PATH: `fixtures=${FIXTURES}` } }, clientCommands: ['nixBuilders.setEvaluationArguments'] }, undefined, {
    workspace: { configuration: true },
  });
});

after(async () => {
  await client.shutdown();
  await rm(dir, { recursive: true, force: true });
});

const FUNCTION_FILE = [
  '{ version, system ? "x86_64-linux" }:',
  '{',
  '  app = derivation { name = "app-${version}"; inherit system; builder = "/bin/sh"; args = [ "-c" ": > $out" ]; };',
  '  arm = derivation { name = "arm-${version}"; system = "aarch64-linux"; builder = "/bin/sh"; args = [ "-c" ": > $out" ]; };',
  '}',
  '',
].join('\n');

test('a function file with a required argument and no setting: the diagnostic names the setting and the JSON to add', async () => {
  const uri = await openFile('noargs', 'pkg.nix', FUNCTION_FILE);
  const d = only(await client.diagnostics(uri), 'required-arguments');
  assert.match(d.message, /function with required arguments \(version\)/);
  assert.match(d.message, /"nixBuilders\.evaluation\.arguments": \{"version":"null"\}/);
  assert.deepEqual(d.data, { attrPath: [], required: ['version'] });
  // Its quick fix: the client's command, with the document and a template for each missing argument.
  const actions = await client.request<Array<{ title: string; command?: { command: string; arguments: unknown[] } }>>('textDocument/codeAction', {
    textDocument: { uri },
    range: d.range,
    context: { diagnostics: [d] },
  });
  assert.deepEqual(
    actions.map((a) => [a.title, a.command?.command, a.command?.arguments]),
    [['Set the arguments version for this folder…', 'nixBuilders.setEvaluationArguments', [uri, { version: 'null' }]]],
  );
});

test('with the folder’s arguments: the function is called with them, its derivations diagnosed on their lines', async () => {
  const uri = await openFile('withargs', 'pkg.nix', FUNCTION_FILE);
  const ds = await client.diagnostics(uri);
  const arm = only(ds, 'no-builder-system');
  assert.equal(arm.range.start.line, 3);
  assert.match(arm.message, /^requires aarch64-linux: no builder provides it/);
  assert.equal(ds.length, 1, JSON.stringify(ds));
  const listing = await client.request<{ state: string; derivations: Array<{ attrPath: string[]; name: string; line?: number }> }>('nixBuilders/derivations', { uri });
  assert.deepEqual(
    listing.derivations.map((d) => [d.attrPath.join('.'), d.name, d.line]),
    [
      ['app', 'app-1.0', 2],
      ['arm', 'arm-1.0', 3],
    ],
  );
});

const SEED = '(import <nixpkgs> { system = "aarch64-linux"; }).runCommand "seed" { } ": > $out"\n';
const NIXPKGS_SET = ['let', '  pkgs = import <nixpkgs> { };', 'in {', '  inherit pkgs;', '  arm = (import <nixpkgs> { system = "aarch64-linux"; }).hello;', '}', ''].join('\n');

test('the seed case through the stand-in channel on -I (the folder’s searchPath): an aarch64-linux runCommand is an error', async () => {
  const uri = await openFile('channel', 'seed.nix', SEED);
  const d = only(await client.diagnostics(uri), 'no-builder-system');
  assert.equal(d.severity, ERROR);
  assert.equal(d.range.start.line, 0);
  assert.match(d.message, /^requires aarch64-linux: no builder provides it/);
});

test('derivations found inside nixpkgs (pkgs.pkgsCross.*, depth 4) are diagnosed like any other', async () => {
  const uri = await openFile('channel', 'set.nix', NIXPKGS_SET);
  const ds = await client.diagnostics(uri);
  // Another system through <nixpkgs>: an error on its attribute.
  const arm = only(ds, 'no-builder-system');
  assert.equal(arm.range.start.line, 4);
  assert.match(arm.message, /^requires aarch64-linux/);
  assert.equal(ds.length, 1, JSON.stringify(ds));
  const listing = await client.request<{ derivations: Array<{ attrPath: string[]; name: string; system: string; line?: number }> }>('nixBuilders/derivations', { uri });
  const found = new Map(listing.derivations.map((d) => [d.attrPath.join('.'), d]));
  assert.equal(found.get('pkgs.hello')?.system, 'x86_64-linux');
  // A cross package set builds on this machine (as in nixpkgs): found, and nothing to say about it.
  const cross = found.get('pkgs.pkgsCross.aarch64-multiplatform.hello');
  assert.deepEqual([cross?.name, cross?.system, cross?.line], ['hello-2.12-aarch64-unknown-linux-gnu', 'x86_64-linux', 3]);
  assert.equal(found.get('arm')?.system, 'aarch64-linux');
});

test('without nixpkgs on the search path: "not on the search path" on each <nixpkgs>, with the fix', async () => {
  // The whole file fails: an error on the <nixpkgs> of the seed.
  const seed = await openFile('nochannel', 'seed.nix', SEED);
  const d = only(await client.diagnostics(seed), 'not-on-search-path');
  assert.equal(d.severity, ERROR);
  assert.deepEqual(d.range, { start: { line: 0, character: 8 }, end: { line: 0, character: 17 } });
  assert.match(d.message, /^<nixpkgs> is not on the search path/);
  assert.match(d.message, /Fix: set NIX_PATH .*nix-path = nixpkgs=.*"nixBuilders\.evaluation\.searchPath"/s);
  // Attributes that use it fail: each <nixpkgs> says why.
  const set = await openFile('nochannel', 'set.nix', NIXPKGS_SET);
  const ds = (await client.diagnostics(set)).filter((x) => x.code === 'not-on-search-path');
  assert.deepEqual(
    ds.map((x) => [x.range.start.line, x.range.start.character, x.range.end.character, x.severity]),
    [
      [1, 16, 25, WARNING],
      [4, 16, 25, WARNING],
    ],
  );
});

const hoverText = async (uri: string, line: number, character: number) =>
  (await client.request<{ contents: { value: string }; range: unknown } | null>('textDocument/hover', { textDocument: { uri }, position: { line, character } }))?.contents.value ?? '';

test('the hover on <…> says which search path entry resolves it, where that entry comes from, and the path', async () => {
  const uri = await openFile('channel', 'hover.nix', '# <nixpkgs> in a comment\n{ a = <nixpkgs>; b = <fixtures/channel>; c = <nowhere>; }\n');
  await client.diagnostics(uri);
  const fromSetting = await hoverText(uri, 1, 8);
  assert.match(fromSetting, new RegExp(`→ \`${CHANNEL}\``));
  assert.match(fromSetting, new RegExp(`from the search path entry \`nixpkgs=${CHANNEL}\` \\(the setting "nixBuilders\\.evaluation\\.searchPath" \\(passed as -I\\)\\)`));
  const fromNixPath = await hoverText(uri, 1, 24);
  assert.match(fromNixPath, new RegExp(`→ \`${path.join(FIXTURES, 'channel')}\``));
  assert.match(fromNixPath, new RegExp(`from the search path entry \`fixtures=${FIXTURES}\` \\(NIX_PATH\\)`));
  assert.match(await hoverText(uri, 1, 48), /<nowhere> is not on the search path/);
  // Not in a comment.
  assert.equal(await hoverText(uri, 0, 4), '');
});
