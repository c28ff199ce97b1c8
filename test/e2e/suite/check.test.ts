// Check Reproducibility and Why Do These Derivations Differ? in the real extension host, against the
// real server and Nix: the quick fixes of the "not reproducible" diagnostic (diffoscope's report opens
// in the editor, the diff editor on what differs); a
// binary file that differs opens as its sizes and hashes (no diff editor), a text file in the diff
// editor on the first build and the kept rebuild; two attributes whose inputs differ in a variable
// show that input and the variable; Compare Builds Across Machines (this machine and the lab's b1)
// puts its answer in the Builds view and opens its differing file in the diff editor. The Builds
// view tells VS Code of a change only once until VS Code read it (a refresh in between would leave
// a row's context-menu command without its row).
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as vscode from 'vscode';
import { eventually, EXTENSION_ID, workspaceTrusted } from './helpers';
import type { NixBuildersApi } from '../../../extension/api';
import type { BuildInfo, CheckReproducibilityResult, CompareMachinesResult, DrvSnapshot } from '../../../language-server/protocol';
import { BuildStore } from '../../../extension/buildState';
import { CheckStore } from '../../../extension/checkState';
import { BuildsView } from '../../../extension/views/buildsView';

const salt = () => `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;

async function writeWorkspaceFile(name: string, text: string): Promise<vscode.Uri> {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'a workspace folder is open');
  const uri = vscode.Uri.joinPath(folder.uri, name);
  await vscode.workspace.fs.writeFile(uri, Buffer.from(text));
  await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri));
  return uri;
}

suite('Nix Builders: reproducibility checks', () => {
  test('the diagnostic’s quick fixes link to the check; a differing binary file opens as its sizes and hashes; a differing text file in the diff editor, first build ↔ rebuild', async function () {
    this.timeout(180_000);
    await workspaceTrusted();
    const script = "mkdir $out; printf 'bin\\000' > $out/blob; cat /proc/sys/kernel/random/uuid >> $out/blob; cat /proc/sys/kernel/random/uuid > $out/text";
    const uri = await writeWorkspaceFile(
      'check-suite.nix',
      `{\n  twofiles = derivation { name = "suite-check-${salt()}"; system = "x86_64-linux"; builder = "/bin/sh"; preferLocalBuild = true; PATH = "/usr/bin:/bin"; args = [ "-c" ${JSON.stringify(script)} ]; };\n}\n`,
    );
    try {
      const result = await vscode.commands.executeCommand<CheckReproducibilityResult>('nixBuilders.checkReproducibility', { uri: uri.toString(), attribute: ['twofiles'] });
      assert.equal(result?.status, 'differs', JSON.stringify(result));
      const out = result.outputs[0];
      assert.deepEqual(out?.files?.map((f) => f.path).sort(), ['blob', 'text']);
      const key = `${result.machine}:${result.drvPath}`;

      // The server's "not reproducible" diagnostic on the attribute: its quick fixes (the server's, and
      // the editor's link to what differs); the server's diffoscope fix opens the report in the editor.
      const diagnostic = await eventually('the "not reproducible" diagnostic', () => vscode.languages.getDiagnostics(uri).find((d) => d.code === 'not-reproducible'));
      assert.equal(diagnostic.message, result.summary);
      const actions = await vscode.commands.executeCommand<vscode.CodeAction[]>('vscode.executeCodeActionProvider', uri, diagnostic.range);
      const titles = actions.map((a) => a.title);
      assert.ok(titles.some((t) => /^Show what differs: text \(first build ↔ rebuild\)$/.test(t)), JSON.stringify(titles));
      assert.ok(titles.includes('Check reproducibility again'), JSON.stringify(titles));
      const diffoscope = actions.find((a) => a.title === "diffoscope's report of output 'out'")?.command;
      assert.ok(diffoscope, JSON.stringify(titles));
      await vscode.commands.executeCommand(diffoscope.command, ...(diffoscope.arguments ?? []));
      const report = vscode.window.activeTextEditor?.document;
      assert.notEqual(report?.uri.toString(), uri.toString(), 'a report is open, not the Nix file');
      // Only the differing files: the first build's copied beside the rebuild's.
      assert.match(report?.getText() ?? '', new RegExp(`^--- ${out?.rebuildCopy}-first\n\\+\\+\\+ ${out?.rebuildCopy}\n[\\s\\S]*blob`));

      await vscode.commands.executeCommand('nixBuilders.openCheckDifference', key, 'out', 'blob');
      const doc = vscode.window.activeTextEditor?.document;
      assert.equal(doc?.uri.scheme, 'nix-builders-check');
      const text = doc.getText();
      assert.match(text, /^blob in output out \(\/nix\/store\/[^)]+\)\nchanged/);
      assert.match(text, /first build: 41 B \(41 bytes\)\n {2}sha256 [0-9a-f]{64}\n/);
      assert.match(text, /rebuild: 41 B \(41 bytes\)\n {2}sha256 [0-9a-f]{64}\n {2}at \/.*\/out-round1\/blob\n/);
      // The first differing bytes in hex (the server's firstDifference): 'bin\0' and the start of each uuid.
      assert.match(text, /The bytes first differ at byte \d+:\n\nfirst {4}00000000 {2}62 69 6e 00 [\s\S]*\nrebuild {2}00000000 {2}62 69 6e 00 [^\n]*\n {29,}\^\^ byte \d+/);

      await vscode.commands.executeCommand('nixBuilders.openCheckDifference', key, 'out', 'text');
      const tab = vscode.window.tabGroups.activeTabGroup.activeTab;
      assert.ok(tab?.input instanceof vscode.TabInputTextDiff, `a diff editor is open: ${tab?.label}`);
      assert.equal(tab.label, 'text (first build ↔ rebuild)');
      // The first build's differing files are kept beside the rebuild's (the store path is not a GC root).
      assert.equal(tab.input.original.fsPath, `${out?.firstCopy}/text`);
      assert.equal(tab.input.modified.fsPath, `${out?.rebuildCopy}/text`);
    } finally {
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
      await vscode.workspace.fs.delete(uri);
    }
  });

  test('Check Reproducibility on…: this machine, as many rebuilds as nixBuilders.check.rounds offers', async function () {
    this.timeout(180_000);
    await workspaceTrusted();
    const uri = await writeWorkspaceFile(
      'check-on.nix',
      `{\n  same = derivation { name = "suite-check-on-${salt()}"; system = "x86_64-linux"; builder = "/bin/sh"; preferLocalBuild = true; args = [ "-c" "echo same > $out" ]; };\n}\n`,
    );
    const config = () => vscode.workspace.getConfiguration('nixBuilders');
    try {
      await config().update('check.rounds', 2, vscode.ConfigurationTarget.Workspace);
      let done = false;
      const running = vscode.commands.executeCommand<CheckReproducibilityResult>('nixBuilders.checkReproducibilityOn', { uri: uri.toString(), attribute: ['same'] }).then((r) => {
        done = true;
        return r;
      });
      // Which machine (This machine, the first) and how many rounds (offered: the setting's 2): accepted as offered.
      await eventually(
        'the questions answered',
        async () => {
          if (!done) await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
          return done ? true : undefined;
        },
        150_000,
      );
      const result = await running;
      assert.deepEqual([result?.machine, result?.status, result?.builtFirst, result?.rounds], ['this machine', 'reproducible', true, 2], JSON.stringify(result));
    } finally {
      await config().update('check.rounds', undefined, vscode.ConfigurationTarget.Workspace);
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
      await vscode.workspace.fs.delete(uri);
    }
  });

  test('Compare Builds Across Machines: a nondeterministic derivation built here and on b1 — its Compare row, each machine\'s hash and the differing file, which opens in the diff editor (this machine ↔ b1)', async function () {
    this.timeout(240_000);
    await workspaceTrusted();
    // The lab's builders have no PATH: sh's builtins and absolute paths only.
    const script = 'read -r t < /proc/sys/kernel/random/uuid; /bin/mkdir $out; printf "%s\\n" "$t" > $out/stamp; printf "constant\\n" > $out/constant';
    const uri = await writeWorkspaceFile('compare-suite.nix', `{\n  cmp = derivation { name = "suite-compare-${salt()}"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" ${JSON.stringify(script)} ]; };\n}\n`);
    try {
      const result = await vscode.commands.executeCommand<CompareMachinesResult>('nixBuilders.compareMachines', { uri: uri.toString(), attribute: ['cmp'], machines: ['local', 'b1'], substituters: false });
      assert.equal(result?.status, 'differs', JSON.stringify(result));
      const out = result.outputs[0];
      assert.deepEqual([out?.compared, out?.files?.map((f) => [f.path, f.kind, f.text])], [['this machine', 'b1'], [['stamp', 'changed', true]]], JSON.stringify(result));
      assert.ok(out?.otherCopy, JSON.stringify(out));

      // The Builds view: the Compare row beside the checks, its output, each machine's hash, the file.
      const api = vscode.extensions.getExtension<NixBuildersApi>(EXTENSION_ID)?.exports;
      assert.ok(api, 'the extension\'s API');
      const rows = api.checkRows();
      const at = rows.findIndex((r) => r.depth === 0 && r.label === 'Compare cmp');
      assert.ok(at >= 0, JSON.stringify(rows));
      const end = rows.findIndex((r, i) => i > at && r.depth === 0);
      const mine = rows.slice(at, end < 0 ? undefined : end);
      assert.deepEqual(mine.map((r) => [r.depth, r.label, r.description]), [
        [0, 'Compare cmp', result.summary],
        [1, 'out', 'differs: 1 file'],
        [2, 'this machine', out.hashes[0]?.narHash],
        [2, 'b1', out.hashes[1]?.narHash],
        [2, 'stamp', 'changed: 37 B → 37 B'],
      ]);
      assert.match(result.summary, /^built differently on here and b1 \(out: 1 file\)$/);

      // A click on the file's row: the diff editor, this machine's build (its store path) ↔ b1's (only its differing file kept here).
      const open = mine.at(-1)?.command;
      assert.ok(open, JSON.stringify(mine));
      await vscode.commands.executeCommand(open.command, ...open.arguments);
      const tab = vscode.window.tabGroups.activeTabGroup.activeTab;
      assert.ok(tab?.input instanceof vscode.TabInputTextDiff, `a diff editor is open: ${tab?.label}`);
      assert.equal(tab.label, 'stamp (this machine ↔ b1)');
      assert.equal(tab.input.original.fsPath, `${out.path}/stamp`);
      assert.equal(tab.input.modified.fsPath, `${out.otherCopy}/stamp`);
      assert.deepEqual(await vscode.workspace.fs.readDirectory(vscode.Uri.file(out.otherCopy)), [['stamp', vscode.FileType.File]]);
    } finally {
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
      await vscode.workspace.fs.delete(uri);
    }
  });

  test('Why do these derivations differ? Two attributes whose same-named input differs in a variable: that input and the variable', async function () {
    this.timeout(120_000);
    await workspaceTrusted();
    const s = salt();
    const drv = (name: string, extra: string) => `derivation { name = "${name}"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" ": > $out" ]; ${extra} }`;
    const uri = await writeWorkspaceFile(
      'why-differ.nix',
      [
        'rec {',
        `  dep1 = ${drv(`dep-${s}`, 'GREETING = "hi";')};`,
        `  dep2 = ${drv(`dep-${s}`, 'GREETING = "hello";')};`,
        `  a = ${drv(`top-${s}`, 'dep = dep1;')};`,
        `  b = ${drv(`top-${s}`, 'dep = dep2;')};`,
        '}',
        '',
      ].join('\n'),
    );
    try {
      await vscode.commands.executeCommand('nixBuilders.whyDerivationsDiffer', { a: { uri: uri.toString(), attribute: ['a'] }, b: { uri: uri.toString(), attribute: ['b'] } });
      const doc = vscode.window.activeTextEditor?.document;
      assert.equal(doc?.uri.scheme, 'nix-builders-check');
      const text = doc.getText();
      assert.match(text, /^Why a and b differ\n\ntop-/);
      assert.match(text, new RegExp(`\\n {2}input dep-${s} differs:\\n {4}dep-${s}\\n {6}a: file:///nix/store/[^\\n]+\\.drv\\n {6}b: file:///nix/store/[^\\n]+\\.drv\\n`));
      assert.match(text, /\n {6}environment variable GREETING: "hi" → "hello"\n/);
    } finally {
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
      await vscode.workspace.fs.delete(uri);
    }
  });

  test('Why do these derivations differ? This attribute now and at the last commit (HEAD)', async function () {
    this.timeout(120_000);
    await workspaceTrusted();
    const folder = vscode.workspace.workspaceFolders?.[0];
    assert.ok(folder, 'a workspace folder is open');
    const dir = vscode.Uri.joinPath(folder.uri, `why-head-${salt()}`);
    const uri = vscode.Uri.joinPath(dir, 'default.nix');
    const text = (v: string) => `{\n  x = derivation { name = "why-head"; system = "x86_64-linux"; builder = "/bin/sh"; V = "${v}"; args = [ "-c" ": > $out" ]; };\n}\n`;
    try {
      await vscode.workspace.fs.writeFile(uri, Buffer.from(text('committed')));
      const git = (...args: string[]) => execFileSync('git', ['-C', dir.fsPath, '-c', 'user.name=e2e', '-c', 'user.email=e2e@example.invalid', ...args]);
      git('init', '-q');
      git('add', 'default.nix');
      git('commit', '-qm', 'committed');
      await vscode.workspace.fs.writeFile(uri, Buffer.from(text('edited')));
      await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri));
      await vscode.commands.executeCommand('nixBuilders.whyDerivationsDiffer', { a: { uri: uri.toString(), attribute: ['x'] }, b: { uri: uri.toString(), attribute: ['x'], revision: 'HEAD' } });
      const doc = vscode.window.activeTextEditor?.document;
      assert.equal(doc?.uri.scheme, 'nix-builders-check');
      assert.match(doc.getText(), /^Why x and x at HEAD differ\n\nwhy-head\n/);
      assert.match(doc.getText(), /\n {2}environment variable V: "edited" → "committed"\n/);
    } finally {
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
      await vscode.workspace.fs.delete(dir, { recursive: true });
    }
  });

  test('the Builds view tells VS Code of a change once until VS Code read it: a build that starts, runs and ends between two reads is one refresh, and a row VS Code shows is not refreshed again for what it shows', () => {
    // The notifications of a build that ends at once (start, update, end within VS Code's 200 ms
    // debounce): each change told is a refresh, during which a command run from a row's context
    // menu gets undefined instead of the row (microsoft/vscode#144250).
    const store = new BuildStore();
    const checks = new CheckStore();
    const view = new BuildsView(store, checks);
    const told: Array<string | undefined> = [];
    view.onDidChangeTreeData((node) => told.push(node === undefined ? undefined : JSON.stringify(node)));
    const drv = (state: DrvSnapshot['state']): DrvSnapshot => ({ drvPath: '/nix/store/aaa-same.drv', name: 'same', state, machine: '', logLineCount: 0, logDropped: 0, log: [] });
    const snapshot = (state: DrvSnapshot['state'], done: number) => ({ derivations: [drv(state)], transfers: [], progress: { done, expected: 1, running: 1 - done, failed: 0 }, copyProgress: { done: 0, expected: 0, running: 0, failed: 0 }, messages: [], events: 1 });
    const start: BuildInfo = { buildId: 'b-1', uri: 'file:///same.nix', targets: [{ attrPath: ['same'], drvPath: '/nix/store/aaa-same.drv', line: 1 }], plan: { summary: '1 to build', toBuild: [], toFetch: [], problems: [] }, status: 'running' };
    const notify = (p: Parameters<BuildStore['apply']>[0]) => view.update(store.apply(p)?.buildId ?? assert.fail('the store took the notification'));
    notify(start);
    notify({ buildId: 'b-1', status: 'running', snapshot: { ...snapshot('building', 0), partial: true } });
    notify({ ...start, status: 'built', snapshot: snapshot('built', 1) });
    assert.deepEqual(told, [undefined], 'one refresh of the whole tree');

    // VS Code reads the tree: the roots, each one's row, the children of the expanded build.
    const read = (node?: Parameters<BuildsView['getChildren']>[0]): void => {
      for (const child of view.getChildren(node)) {
        view.getTreeItem(child);
        read(child);
      }
    };
    read();
    const drvRow = view.getChildren(view.getChildren()[0]).map((n) => view.getTreeItem(n))[0];
    assert.equal(drvRow?.contextValue, 'drv-built-attribute');
    assert.match(String(drvRow?.description), /built here/);

    // A check answered, and the server's checkFinished of the same check before VS Code read the first: one refresh.
    const result: CheckReproducibilityResult = { drvPath: '/nix/store/aaa-same.drv', machine: 'this machine', rounds: 1, builtFirst: false, status: 'reproducible', summary: 'reproducible: 1 output the same in 1 rebuild', outputs: [] };
    checks.add('file:///same.nix', ['same'], result);
    view.checksChanged();
    checks.add('file:///same.nix', ['same'], result);
    view.checksChanged();
    assert.deepEqual(told, [undefined, undefined]);
    read();

    // A build VS Code shows changes: its row is refreshed once until VS Code read it again.
    const again: BuildInfo = { ...start, buildId: 'b-2' };
    notify(again);
    read();
    notify({ buildId: 'b-2', status: 'running', snapshot: { ...snapshot('building', 0), partial: true } });
    notify({ buildId: 'b-2', status: 'running', snapshot: { ...snapshot('built', 1), partial: true } });
    assert.deepEqual(told, [undefined, undefined, undefined, JSON.stringify({ kind: 'build', buildId: 'b-2' })]);
    read();
    notify({ ...again, status: 'built', snapshot: snapshot('built', 1) });
    assert.equal(told.length, 5, 'a change after VS Code read the row is told');
  });
});
