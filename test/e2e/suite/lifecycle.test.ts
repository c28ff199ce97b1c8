// The language server's lifecycle as the extension shows it, in the real extension host: the server
// process is killed (a crash) while a build runs. The build's waiter is rejected with a clear error
// (no hang), the status bar says the server stopped, the client restarts it, and requests work again.
// The killed server could not end the build's processes: the restarted one ends them.
// And a start that fails (the server's module missing) leaves no dead client: a later request
// starts a new one.
import * as assert from 'node:assert/strict';
import { rename } from 'node:fs/promises';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { NixBuildersApi, ServerState } from '../../../extension/api';
import { eventually, EXTENSION_ID, workspaceTrusted } from './helpers';
import { processesMentioning } from '../processes';


/** The language server: the child of this extension host that runs dist/server.js. */
function serverPid(): number | undefined {
  return processesMentioning('dist/server.js').find((p) => p.ppid === process.pid)?.pid;
}

suite('Nix Builders: the language server crashes', () => {
  test('a crash mid-build: the build fails with a clear error, the status bar says stopped, then the restarted server answers', async function () {
    this.timeout(180_000);
    await workspaceTrusted();
    const ext = vscode.extensions.getExtension<NixBuildersApi>(EXTENSION_ID);
    assert.ok(ext);
    const api = await eventually('the extension to activate', () => (ext.isActive ? ext.exports : undefined));
    await eventually('the server to run', () => (api.serverState().state === 'running' ? true : undefined), 60_000);
    const before = await eventually('the server process', serverPid);

    // A build that runs for ten minutes, here (the salt is in every process of it).
    const folder = vscode.workspace.workspaceFolders![0]!;
    const salt = `${Date.now()}`;
    const file = vscode.Uri.joinPath(folder.uri, `crash-${salt}.nix`);
    const text = `{\n  long = derivation { name = "crash-${salt}"; system = "x86_64-linux"; preferLocalBuild = true; builder = "/bin/sh"; args = [ "-c" "/bin/sleep 600.${salt}; : > $out" ]; };\n}\n`;
    await vscode.workspace.fs.writeFile(file, new TextEncoder().encode(text));
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(file));
    const build = api.build({ uri: file.toString(), attrPaths: [['long']] });
    const outcome = build.then(
      (b) => ({ resolved: b }),
      (e: Error) => ({ rejected: e }),
    );
    await eventually('the build to run', () => (processesMentioning(`/bin/sleep 600.${salt}`).length > 0 ? true : undefined), 120_000);

    // What the status bar said at each change of the server's state, from the kill on.
    const seen: Array<{ state: ServerState; statusText: string; statusTooltip: string }> = [];
    const runningAgain = new Promise<void>((resolve) => {
      const sub = api.onDidChangeServerState((state) => {
        seen.push(api.serverState());
        if (state === 'running') {
          sub.dispose();
          resolve();
        }
      });
    });
    process.kill(before, 'SIGKILL');

    const result = await outcome;
    assert.ok('rejected' in result, `the build's promise settled with ${JSON.stringify(result)}`);
    assert.match(result.rejected.message, /The Nix Builders language server stopped \(see the log: Nix Builders: Show Log\)/);
    assert.deepEqual(api.buildStatus(file.toString()).map((s) => s.state), ['cancelled'], 'the line no longer says building');

    await runningAgain;
    const stopped = seen.find((s) => s.state === 'stopped');
    assert.ok(stopped, `the status bar went through stopped: ${JSON.stringify(seen)}`);
    assert.match(stopped.statusText, /server stopped/);
    assert.match(stopped.statusTooltip, /not running .*Click to restart it/);
    assert.equal(seen.at(-1)?.state, 'running');
    assert.match(api.serverState().statusText, /Nix \d/);

    // The restarted server is another process, and answers.
    const after = await eventually('the restarted server process', serverPid);
    assert.notEqual(after, before);
    assert.ok((await api.listBuilders()).length > 0);
    assert.match((await api.nixVersion()) ?? '', /^\d+\.\d+/);

    // The build's nix-store and its builder, left running by the killed server, are ended by the
    // restarted one (from its registry of process groups).
    // (The restarted server's own evaluation of the open file may name it: not the build.)
    const buildProcesses = () => processesMentioning(salt).filter((p) => !p.cmdline.includes('nix-instantiate'));
    await eventually('the build of the killed server to end', () => (buildProcesses().length === 0 ? true : undefined), 60_000).catch((e: Error) => {
      throw new Error(`${e.message}; still running: ${buildProcesses().map((p) => p.cmdline).join('; ')}`);
    });
  });

  test('a start that fails leaves no dead client behind: once the server can start, the next request starts it', async function () {
    this.timeout(120_000);
    const ext = vscode.extensions.getExtension<NixBuildersApi>(EXTENSION_ID);
    assert.ok(ext?.isActive);
    const api = ext.exports;
    await eventually('the server to run', () => (api.serverState().state === 'running' ? true : undefined), 60_000);
    // The server's module missing (a broken install): the restart fails.
    const server = path.join(ext.extensionPath, 'dist', 'server.js');
    const hidden = `${server}.hidden-by-test`;
    await rename(server, hidden);
    try {
      await vscode.commands.executeCommand('nixBuilders.restartServer');
      await eventually('the failed start to show', () => (api.serverState().state === 'stopped' ? true : undefined), 60_000);
      assert.match(api.serverState().statusText, /server stopped/);
    } finally {
      await rename(hidden, server);
    }
    // The next request makes a new client, which starts the server.
    assert.ok((await api.listBuilders()).length > 0);
    assert.equal(api.serverState().state, 'running');
  });
});
