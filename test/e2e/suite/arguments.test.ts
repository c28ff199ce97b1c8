// A file that is a function of a required argument, in the real VS Code: the "needs arguments"
// diagnostic's quick fix asks for the argument and writes nixBuilders.evaluation.arguments of the
// folder, and the file is then evaluated with it.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { eventually, workspaceTrusted } from './helpers';

const FUNCTION_FILE = [
  '{ system }:',
  '{',
  '  app = derivation { name = "app"; inherit system; builder = "/bin/sh"; args = [ "-c" ": > $out" ]; };',
  '  arm = derivation { name = "arm"; system = "aarch64-linux"; builder = "/bin/sh"; args = [ "-c" ": > $out" ]; };',
  '}',
  '',
].join('\n');

suite('Nix Builders: function files and their arguments', () => {
  test('the quick fix of "needs arguments" sets the folder’s nixBuilders.evaluation.arguments, and the file is evaluated with it', async function () {
    this.timeout(120_000);
    await workspaceTrusted();
    const folder = vscode.workspace.workspaceFolders?.[0];
    assert.ok(folder, 'a workspace folder is open');
    const uri = vscode.Uri.joinPath(folder.uri, 'needs-arguments.nix');
    await vscode.workspace.fs.writeFile(uri, Buffer.from(FUNCTION_FILE));
    const config = () => vscode.workspace.getConfiguration('nixBuilders', uri);
    try {
      await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri));
      const needs = await eventually('the "needs arguments" diagnostic', () => vscode.languages.getDiagnostics(uri).find((d) => d.code === 'required-arguments'));
      assert.match(needs.message, /"nixBuilders\.evaluation\.arguments": \{"system":"builtins\.currentSystem"\}/);
      const actions = await vscode.commands.executeCommand<vscode.CodeAction[]>('vscode.executeCodeActionProvider', uri, needs.range);
      const fix = actions.find((a) => a.command?.command === 'nixBuilders.setEvaluationArguments');
      assert.ok(fix?.command, `the quick fix is offered: ${JSON.stringify(actions.map((a) => a.title))}`);
      assert.equal(fix.title, 'Set the arguments system for this folder…');
      let done = false;
      const running = vscode.commands.executeCommand(fix.command.command, ...(fix.command.arguments ?? [])).then(() => (done = true));
      // The input box for `system` opens prefilled with its template: accept it (until the command has its answer).
      await eventually('the argument accepted', async () => {
        if (!done) await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
        return done ? true : undefined;
      });
      await running;
      assert.deepEqual(config().inspect('evaluation.arguments')?.workspaceFolderValue, { system: 'builtins.currentSystem' });
      // Evaluated with it: the derivations get their diagnostics, on their lines.
      const ds = await eventually('the derivations diagnosed', () => {
        const now = vscode.languages.getDiagnostics(uri);
        return now.some((d) => d.code === 'required-arguments') || !now.some((d) => d.range.start.line === 3) ? undefined : now;
      });
      assert.ok(
        ds.some((d) => d.range.start.line === 3 && /aarch64-linux/.test(d.message)),
        JSON.stringify(ds.map((d) => [d.code, d.range.start.line, d.message])),
      );
    } finally {
      await config().update('evaluation.arguments', undefined, vscode.ConfigurationTarget.WorkspaceFolder);
      await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
      await vscode.workspace.fs.delete(uri);
    }
  });
});
