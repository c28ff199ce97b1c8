// The guided nix.conf set-ups and Push to Cache from a Builds view row, in the real extension host
// against the real server and Nix: Set Up diff-hook… and Set Up post-build-hook… on a temporary
// nix.conf (the command's argument) write their lines there, keep its comments and leave the old
// file beside it as .bak; a built attribute's row runs Push to Cache… with that attribute.
import * as assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { eventually, EXTENSION_ID, workspaceTrusted } from './helpers';
import type { NixBuildersApi } from '../../../extension/api';
import type { NixConfSetUpResult } from '../../../language-server/protocol';
import { hashPart } from '../../../language-server/nix/storePath';

const CONF = ['# my nix.conf', 'sandbox = false # keep this', '', '# the end', ''].join('\n');

/** Runs a command that asks in quick picks, accepting what each offers first, until it answers. */
async function acceptingFirst<T>(command: string, ...args: unknown[]): Promise<T | undefined> {
  let done = false;
  const running = vscode.commands.executeCommand<T>(command, ...args).then((r) => {
    done = true;
    return r;
  });
  await eventually(
    `${command} answered`,
    async () => {
      if (!done) await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
      return done ? true : undefined;
    },
    120_000,
  );
  return running;
}

suite('Nix Builders: set-ups and Push to Cache from the Builds view', () => {
  let dir: string;
  setup(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'nb-suite-setup-'));
  });
  teardown(async () => {
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    rmSync(dir, { recursive: true, force: true });
  });

  test('Set Up diff-hook… writes diff-hook and run-diff-hook into the nix.conf given, its comments kept, the old file as .bak', async function () {
    this.timeout(150_000);
    await workspaceTrusted();
    const nixConf = path.join(dir, 'nix.conf');
    writeFileSync(nixConf, CONF);
    const r = await acceptingFirst<NixConfSetUpResult>('nixBuilders.setUpDiffHook', { nixConf });
    assert.equal(r?.status, 'written', JSON.stringify(r));
    assert.equal(r.backup, `${nixConf}.bak`);
    const text = readFileSync(nixConf, 'utf8');
    assert.ok(text.startsWith(CONF), `the comments and settings kept:\n${text}`);
    assert.match(text, /^diff-hook = \/\S+\/diff-hook$/m);
    assert.match(text, /^run-diff-hook = true$/m);
    assert.equal(readFileSync(`${nixConf}.bak`, 'utf8'), CONF);
    assert.ok(r.notes.some((n) => /restart the daemon/.test(n)), JSON.stringify(r.notes));
  });

  test('Set Up post-build-hook… writes post-build-hook into the nix.conf given, its comments kept, the old file as .bak; the queue folder and the systemd unit', async function () {
    this.timeout(150_000);
    await workspaceTrusted();
    const nixConf = path.join(dir, 'nix.conf');
    const queueDir = path.join(dir, 'queue');
    writeFileSync(nixConf, CONF);
    const r = await acceptingFirst<NixConfSetUpResult>('nixBuilders.setUpPostBuildHook', { nixConf, queueDir });
    assert.equal(r?.status, 'written', JSON.stringify(r));
    assert.equal(readFileSync(nixConf, 'utf8'), `${CONF}post-build-hook = ${r.script}\n`);
    assert.equal(readFileSync(`${nixConf}.bak`, 'utf8'), CONF);
    assert.ok(existsSync(queueDir), 'the queue folder is made');
    assert.match(r.systemdUnit?.text ?? '', new RegExp(`^ExecStart=.* --queue ${queueDir}`, 'm'));
    assert.ok(r.notes.some((n) => /runs as root/.test(n)), JSON.stringify(r.notes));
  });

  test('Push to Cache… from a built attribute\'s row in the Builds view pushes that attribute to the push target picked', async function () {
    this.timeout(180_000);
    await workspaceTrusted();
    const api = vscode.extensions.getExtension<NixBuildersApi>(EXTENSION_ID)?.exports;
    assert.ok(api, 'the extension\'s API');
    const folder = vscode.workspace.workspaceFolders?.[0];
    assert.ok(folder, 'a workspace folder is open');
    const uri = vscode.Uri.joinPath(folder.uri, 'push-row.nix');
    const salt = `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
    await vscode.workspace.fs.writeFile(uri, Buffer.from(`{\n  row = derivation { name = "suite-push-row-${salt}"; system = "x86_64-linux"; builder = "/bin/sh"; preferLocalBuild = true; args = [ "-c" "echo ${salt} > $out" ]; };\n}\n`));
    const cache = path.join(dir, 'cache');
    const config = vscode.workspace.getConfiguration('nixBuilders');
    await config.update('cache.pushTargets', [`file://${cache}`], vscode.ConfigurationTarget.Global);
    try {
      await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri));
      const build = await api.build({ uri: uri.toString(), attrPaths: [['row']] });
      assert.equal(build.status, 'built', JSON.stringify(build));
      const target = build.targets[0];
      assert.ok(target, JSON.stringify(build.targets));
      const out = readFileSync(target.drvPath, 'utf8').match(/"out","(\/nix\/store\/[^"]+)"/)?.[1];
      assert.ok(out, 'the output path, from the .drv');
      // The row as the Builds view passes it to its context menu's command.
      const row = { kind: 'drv', build, drv: { drvPath: target.drvPath } };
      // No editor: the attribute can come from the row only. The push target is offered first; the
      // command then says the result in a message (not awaited).
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
      void vscode.commands.executeCommand('nixBuilders.pushToCache', row);
      const narinfo = path.join(cache, `${hashPart(out)}.narinfo`);
      await eventually(
        'the row\'s attribute in the cache',
        async () => {
          if (existsSync(narinfo)) return true;
          await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
          return undefined;
        },
        150_000,
      );
      assert.match(readFileSync(narinfo, 'utf8'), new RegExp(`^StorePath: ${out}$`, 'm'));
    } finally {
      await config.update('cache.pushTargets', undefined, vscode.ConfigurationTarget.Global);
      await vscode.workspace.fs.delete(uri);
    }
  });
});
