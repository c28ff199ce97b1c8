// package.json's contributions agree with the code: one command table, settings read by config.ts;
// and the VSIX holds only what VS Code can load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { COMMAND_IDS } from '../../extension/commandIds';
import { RUNNING_BUILD } from '../../extension/buildState';

const root = path.join(__dirname, '../..');
const manifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));

test('every command in the table is contributed with a category, and nothing else is', () => {
  const contributed = manifest.contributes.commands as Array<{ command: string; title: string; category?: string }>;
  assert.deepEqual(contributed.map((c) => c.command).sort(), [...COMMAND_IDS].sort());
  for (const c of contributed) assert.equal(c.category, 'Nix Builders', `${c.command} has the category`);
  const menus = Object.values(manifest.contributes.menus as Record<string, Array<{ command: string }>>).flat();
  for (const m of menus) assert.ok((COMMAND_IDS as readonly string[]).includes(m.command), `menu item ${m.command} is a known command`);
});

test('menus of tree rows name context values the views set', () => {
  const views = [...readdirSync(path.join(root, 'extension/views')).map((f) => `views/${f}`), 'buildState.ts'].map((f) => readFileSync(path.join(root, 'extension', f), 'utf8')).join('\n');
  const items = (manifest.contributes.menus['view/item/context'] as Array<{ command: string; when: string }>).flatMap((m) => [...m.when.matchAll(/viewItem == ([\w-]+)/g)].map((x) => [m.command, x[1]]));
  assert.ok(items.length > 0);
  for (const [command, value] of items) assert.ok(views.includes(`'${value}'`), `${command}: no view sets the context value ${value}`);
});

test('Cancel Build: an inline button on running builds in the Builds view, and in the palette while a build runs', () => {
  const menus = manifest.contributes.menus as Record<string, Array<{ command: string; when: string; group?: string }>>;
  const inline = menus['view/item/context']?.find((m) => m.command === 'nixBuilders.cancelBuild' && m.group === 'inline');
  assert.equal(inline?.when, `view == nixBuilders.builds && viewItem == ${RUNNING_BUILD}`);
  assert.ok(manifest.contributes.views.nixBuilders.some((v: { id: string }) => v.id === 'nixBuilders.builds'));
  assert.deepEqual(menus.commandPalette?.find((m) => m.command === 'nixBuilders.cancelBuild'), { command: 'nixBuilders.cancelBuild', when: 'nixBuilders.buildRunning' });
  const contributed = (manifest.contributes.commands as Array<{ command: string; title: string; icon?: string }>).find((c) => c.command === 'nixBuilders.cancelBuild');
  assert.deepEqual([contributed?.title, contributed?.icon], ['Cancel Build', '$(debug-stop)']);
});

test('activation is on Nix files, flakes, default.nix, or the view/commands — never "*"', () => {
  assert.deepEqual(manifest.activationEvents, ['onLanguage:nix', 'workspaceContains:**/flake.nix', 'workspaceContains:**/default.nix', 'onTaskType:nix-builders']);
  assert.deepEqual(manifest.extensionKind, ['workspace']);
  assert.equal(manifest.capabilities.untrustedWorkspaces.supported, 'limited');
});

test('every setting that config.ts reads is contributed', () => {
  const source = readFileSync(path.join(root, 'extension/config.ts'), 'utf8');
  const read = [...source.matchAll(/c\.get<[^>]+>\('([^']+)'/g), ...source.matchAll(/strings\('([^']+)'\)/g)].map((m) => `nixBuilders.${m[1]}`);
  const contributed = Object.keys(manifest.contributes.configuration.properties);
  for (const key of read) assert.ok(contributed.includes(key), `${key} is contributed`);
});

test('the VSIX ships no .node file: native modules built for this Node do not load in VS Code\'s Electron', async () => {
  // What `npm run package` packs: the production build, filtered by .vscodeignore, as `vsce ls` lists it.
  const dir = mkdtempSync(path.join(tmpdir(), 'nix-builders-vsix-'));
  try {
    for (const f of ['package.json', '.vscodeignore', 'README.md', 'LICENSE', 'media']) cpSync(path.join(root, f), path.join(dir, f), { recursive: true });
    const run = promisify(execFile);
    await run(process.execPath, [path.join(root, 'scripts/build.mjs'), '--production', `--outdir=${path.join(dir, 'dist')}`], { cwd: root });
    const { stdout } = await run(process.execPath, [path.join(root, 'node_modules/@vscode/vsce/vsce'), 'ls', '--no-dependencies'], { cwd: dir });
    const files = stdout.split('\n').filter((l) => l.length > 0);
    assert.ok(files.includes('dist/server.js') && files.includes('dist/extension.js'), files.join(', '));
    assert.deepEqual(files.filter((f) => f.endsWith('.node')), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('no setting is contributed twice (JSON.parse keeps the last one silently; two merged branches each added one)', () => {
  const text = readFileSync(path.join(root, 'package.json'), 'utf8');
  const keys = [...text.matchAll(/^ {8}"(nixBuilders\.[^"]+)": \{$/gm)].map((m) => m[1] as string);
  assert.ok(keys.length >= Object.keys(manifest.contributes.configuration.properties).length, 'every setting is found in the text');
  assert.deepEqual(keys.filter((k, i) => keys.indexOf(k) !== i), []);
});

test('where builds are pushed is the user\'s choice: the push settings are machine-scoped (user settings only) and restricted in untrusted workspaces', () => {
  const push = ['nixBuilders.cache.pushTargets', 'nixBuilders.cache.signingKeyFile', 'nixBuilders.cache.queue.enabled', 'nixBuilders.cache.queue.dir'];
  const properties = manifest.contributes.configuration.properties as Record<string, { scope?: string }>;
  for (const key of push) assert.equal(properties[key]?.scope, 'machine', `${key}: a workspace's settings cannot set it`);
  const restricted = manifest.capabilities.untrustedWorkspaces.restrictedConfigurations as string[];
  for (const key of push) assert.ok(restricted.includes(key), `${key} is restricted in untrusted workspaces`);
});
