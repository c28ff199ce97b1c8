// Cancel Build from the command palette, in the real extension host: with two builds running it
// asks which (newest first), with one it cancels that one; each build ends cancelled and none of
// its processes is left.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { BuildInfo } from '../../../language-server/protocol';
import type { NixBuildersApi } from '../../../extension/api';
import { eventually, EXTENSION_ID, workspaceTrusted } from './helpers';
import { processesMentioning } from '../processes';


/** Runs a command that shows a quick pick and accepts its first item, polling until the command is done. */
async function runAndPickFirst(command: string): Promise<void> {
  let done = false;
  const run = Promise.resolve(vscode.commands.executeCommand(command)).finally(() => (done = true));
  await eventually(`${command} to take the first item`, async () => {
    if (done) return true;
    await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
    return undefined;
  });
  await run;
}

suite('Nix Builders: Cancel Build from the palette', () => {
  test('two builds running: it asks which (newest first); one running: it cancels that; both end cancelled, no process left', async function () {
    this.timeout(180_000);
    await workspaceTrusted();
    const ext = vscode.extensions.getExtension<NixBuildersApi>(EXTENSION_ID);
    assert.ok(ext);
    const api = await eventually('the extension to activate', () => (ext.isActive ? ext.exports : undefined));
    const folder = vscode.workspace.workspaceFolders![0]!;
    const salt = `${Date.now()}`;
    const file = vscode.Uri.joinPath(folder.uri, `cancel-${salt}.nix`);
    const long = (name: string) =>
      `  ${name} = derivation { name = "cancel-${name}-${salt}"; system = "x86_64-linux"; preferLocalBuild = true; builder = "/bin/sh"; args = [ "-c" "/bin/sleep 600.${salt}; : > $out" ]; };`;
    await vscode.workspace.fs.writeFile(file, new TextEncoder().encode(`{\n${long('first')}\n${long('second')}\n}\n`));
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(file));
    const uri = file.toString();
    const settled: Record<string, BuildInfo | Error> = {};
    const start = (attr: string) =>
      api.build({ uri, attrPaths: [[attr]] }).then(
        (b) => (settled[attr] = b),
        (e: Error) => (settled[attr] = e),
      );
    const first = start('first');
    await eventually('the first build to run', () => (api.buildStatus(uri).some((s) => s.state === 'building' || s.state === 'queued') ? true : undefined), 120_000);
    const second = start('second');
    await eventually('both builds to run', () => (api.buildStatus(uri).length === 2 ? true : undefined), 120_000);

    await runAndPickFirst('nixBuilders.cancelBuild');
    const cancelled = await second;
    assert.ok(!(cancelled instanceof Error), String(cancelled));
    assert.equal(cancelled.status, 'cancelled');
    assert.equal(settled.first, undefined, 'the first build still runs');

    await vscode.commands.executeCommand('nixBuilders.cancelBuild');
    const alsoCancelled = await first;
    assert.ok(!(alsoCancelled instanceof Error), String(alsoCancelled));
    assert.equal(alsoCancelled.status, 'cancelled');
    assert.deepEqual(api.buildStatus(uri).map((s) => s.state), ['cancelled', 'cancelled']);
    const left = await eventually('the builds\' processes to end', () => (processesMentioning(salt).length === 0 ? [] : undefined), 60_000).catch(() => processesMentioning(salt).map((x) => `${x.pid}: ${x.cmdline}`));
    assert.deepEqual(left, [], 'no process of the cancelled builds is left');
  });
});
