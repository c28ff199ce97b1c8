// Runs inside the extension host of a real VS Code (code-server), in the demo workspace that
// test/e2e/run.ts prepares: its .vscode/settings.json points the extension at the builder lab.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { NixBuildersApi } from '../../../extension/api';
import { eventually, EXTENSION_ID, workspaceTrusted } from './helpers';

/** The lab builders' URIs, from run.ts (extensionTestsEnv). */
function labUris(): string[] {
  const raw = process.env.NIX_BUILDERS_TEST_LAB_URIS;
  assert.ok(raw, 'NIX_BUILDERS_TEST_LAB_URIS is not set: run these tests through test/e2e/run.ts');
  const uris = JSON.parse(raw) as unknown;
  assert.ok(Array.isArray(uris) && uris.length > 0 && uris.every((u) => typeof u === 'string'), `bad NIX_BUILDERS_TEST_LAB_URIS: ${raw}`);
  return uris as string[];
}

suite('Nix Builders: activation and API', () => {
  let api: NixBuildersApi;

  suiteSetup(async function () {
    this.timeout(60_000);
    const folder = vscode.workspace.workspaceFolders?.[0];
    assert.ok(folder, 'no workspace folder is open');
    await workspaceTrusted();
    assert.ok(vscode.workspace.isTrusted, 'the workspace is trusted (the launcher trusts it)');
    const doc = await vscode.workspace.openTextDocument(vscode.Uri.joinPath(folder.uri, 'default.nix'));
    await vscode.window.showTextDocument(doc);
    assert.equal(doc.languageId, 'nix');
  });

  test('the extension activates by itself in a workspace with default.nix', async () => {
    const ext = vscode.extensions.getExtension<NixBuildersApi>(EXTENSION_ID);
    assert.ok(ext, `${EXTENSION_ID} is not loaded`);
    // activationEvents (workspaceContains:**/default.nix) activate it: do not call activate().
    await eventually('the extension to activate', () => (ext.isActive ? true : undefined));
    assert.ok(ext.exports, 'activate() returned no API');
    assert.equal(typeof ext.exports.listBuilders, 'function');
    assert.equal(typeof ext.exports.nixVersion, 'function');
    api = ext.exports;
  });

  test('listBuilders() returns every lab builder', async () => {
    assert.ok(api, 'the extension did not activate');
    const expected = labUris();
    const builders = await eventually(
      'listBuilders() to include the lab builders',
      async () => {
        const list = await api.listBuilders();
        return expected.every((u) => list.some((b) => b.uri === u)) ? list : undefined;
      },
    );
    for (const uri of expected) {
      const b = builders.find((x) => x.uri === uri)!;
      // The name is the host part of the URI: "ssh://nixremote@b3" -> "b3".
      assert.equal(b.name, new URL(uri).hostname, `name of ${uri}`);
      assert.equal(typeof b.source?.label, 'string', `source of ${uri}`);
      assert.ok(Array.isArray(b.systems) && b.systems.length > 0, `builder ${uri} has no systems`);
    }
  });

  test('nixVersion() returns the version of the Nix on PATH', async () => {
    assert.ok(api, 'the extension did not activate');
    const version = await api.nixVersion();
    assert.match(version ?? '', /^\d+\.\d+(\.\d+)?/, `nixVersion() returned ${JSON.stringify(version)}`);
  });

  test('the health doctor runs from VS Code against the lab: healthy, untrusted, Nix not on PATH', async function () {
    this.timeout(60_000);
    assert.ok(api, 'the extension did not activate');
    const report = await api.checkBuilders();
    const byName = new Map(report.builders.map((h) => [h.name, h]));
    // The lab's builders share this machine's CPUs: under load the doctor rightly warns that they
    // are busy. Anything else must be fine.
    for (const name of ['b1', 'b2']) {
      const notOk = byName.get(name)?.checks.filter((c) => c.status !== 'ok' && c.status !== 'skipped') ?? [];
      assert.deepEqual(notOk.filter((c) => !(c.id === 'load' && c.status === 'warning')), [], `${name}: ${JSON.stringify(notOk)}`);
    }
    const trust = byName.get('b3')?.checks.find((c) => c.id === 'trust');
    assert.equal(trust?.status, 'error');
    assert.match(trust?.fix ?? '', /trusted-users/);
    const remoteNix = byName.get('b4')?.checks.find((c) => c.id === 'remote-nix');
    assert.equal(remoteNix?.status, 'error');
    assert.match(remoteNix?.fix ?? '', /remote-program=/);
  });

  test('a test build runs on exactly the chosen builder', async function () {
    this.timeout(60_000);
    const b2 = (await api.listBuilders()).find((b) => b.name === 'b2');
    assert.ok(b2);
    const result = await api.testBuild(b2.id);
    assert.equal(result.status, 'ok', `${result.summary} ${result.cause ?? ''}`);
    assert.equal(result.ranOnThisBuilder, true);
    assert.match(result.marker ?? '', /b2/);
  });

  test('a remote build of an aarch64-linux attribute runs on b2 and the source says so', async function () {
    this.timeout(90_000);
    const folder = vscode.workspace.workspaceFolders![0]!;
    // A fresh derivation (salted), so that it really builds rather than being there already.
    const file = vscode.Uri.joinPath(folder.uri, `fresh-${Date.now()}.nix`);
    const text = `{\n  arm = derivation { name = "api-build-${Date.now()}"; system = "aarch64-linux"; builder = "/bin/sh"; args = [ "-c" ": > $out" ]; };\n}\n`;
    await vscode.workspace.fs.writeFile(file, new TextEncoder().encode(text));
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(file));
    const uri = file.toString();
    const result = await api.build({ uri, attrPaths: [['arm']], remoteOnly: true });
    assert.equal(result.status, 'built', JSON.stringify(result.problems));
    assert.match(result.plan.summary, /1 derivation will be built/);
    const target = result.snapshot?.derivations.find((d) => d.drvPath === result.targets[0]?.drvPath);
    assert.equal(target?.state, 'built');
    assert.match(target?.machine ?? '', /b2$/);
    const shown = api.buildStatus(uri).find((s) => s.line === result.targets[0]?.line);
    assert.equal(shown?.state, 'built');
    assert.match(shown?.text ?? '', /^built on b2/);
  });

  test('the plan says where each derivation would build, dependencies included', async function () {
    this.timeout(60_000);
    const folder = vscode.workspace.workspaceFolders![0]!;
    const salt = Date.now();
    const file = vscode.Uri.joinPath(folder.uri, `plan-${salt}.nix`);
    const text = `rec {\n  arm = derivation { name = "plan-arm-${salt}"; system = "aarch64-linux"; builder = "/bin/sh"; args = [ "-c" ": > $out" ]; };\n  top = derivation { name = "plan-top-${salt}"; system = "x86_64-linux"; builder = "/bin/sh"; dep = arm; args = [ "-c" ": > $out" ]; };\n}\n`;
    await vscode.workspace.fs.writeFile(file, new TextEncoder().encode(text));
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(file));
    const plan = await api.planBuild({ uri: file.toString(), attrPaths: [['top']], remoteOnly: true });
    assert.equal(plan.summary, '2 derivations will be built');
    const arm = plan.builds.find((b) => b.name === `plan-arm-${salt}`);
    assert.equal(arm?.target, false, 'a dependency');
    assert.equal(arm?.machine, 'b2');
    assert.ok(plan.details.some((l) => l.startsWith('  on b2: ') && l.includes(`plan-arm-${salt}`)), plan.details.join('\n'));
  });

  test('a build task from tasks.json builds the attribute on the builder that can', async function () {
    this.timeout(90_000);
    const folder = vscode.workspace.workspaceFolders![0]!;
    const name = `task-${Date.now()}.nix`;
    const file = vscode.Uri.joinPath(folder.uri, name);
    const text = `{\n  arm = derivation { name = "task-build-${Date.now()}"; system = "aarch64-linux"; builder = "/bin/sh"; args = [ "-c" ": > $out" ]; };\n}\n`;
    await vscode.workspace.fs.writeFile(file, new TextEncoder().encode(text));
    const tasksJson = { version: '2.0.0', tasks: [{ label: 'build arm remotely', type: 'nix-builders', file: name, attribute: 'arm', remoteOnly: true }] };
    await vscode.workspace.fs.writeFile(vscode.Uri.joinPath(folder.uri, '.vscode', 'tasks.json'), new TextEncoder().encode(JSON.stringify(tasksJson)));
    const task = await eventually('the task from tasks.json', async () =>
      (await vscode.tasks.fetchTasks({ type: 'nix-builders' })).find((t) => t.name === 'build arm remotely'),
    );
    const ended = new Promise<void>((resolve) => {
      const sub = vscode.tasks.onDidEndTask((e) => {
        if (e.execution.task.name === task.name) {
          sub.dispose();
          resolve();
        }
      });
    });
    await vscode.tasks.executeTask(task);
    await ended;
    const shown = api.buildStatus(file.toString());
    assert.equal(shown[0]?.state, 'built', JSON.stringify(shown));
    assert.match(shown[0]?.text ?? '', /^built on b2/);
  });
});
