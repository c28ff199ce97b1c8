// The README's run command: `scripts/demo.ts` (what `npm start` runs after set-up) serves a VS Code
// with the packaged extension, whose Builders view shows the lab's builders; Ctrl-C stops it all.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { openBrowser, screenshot, trustWorkspace, waitForWorkbench } from './browser';
import { repoRoot } from './paths';

test('npm start serves VS Code with the lab builders in the Builders view, and Ctrl-C stops everything', { timeout: 180_000 }, async () => {
  const demo = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'scripts', 'demo.ts')], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    demo.stdout.on('data', (d: Buffer) => {
      output += d.toString();
      const m = /running in VS Code at (http:\/\/127\.0\.0\.1:\d+\/\S*)/.exec(output);
      if (m) resolve(m[1] as string);
    });
    demo.once('exit', (code) => reject(new Error(`the demo exited (${code}) before serving:\n${output}`)));
  });
  const session = await openBrowser();
  try {
    const page = session.page;
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    await waitForWorkbench(page);
    await trustWorkspace(page);
    await page.locator('.part.activitybar').getByRole('tab', { name: /^Nix Builders/ }).click();
    const rows = page.locator('[id="workbench.view.extension.nixBuilders"] .monaco-list-row[role="treeitem"] .label-name');
    for (const name of ['b1', 'b2', 'b3', 'b4']) {
      await rows.filter({ hasText: new RegExp(`^${name}$`) }).first().waitFor({ timeout: 90_000 });
    }
    await screenshot(page, 'demo-builders-view.png');
  } catch (e) {
    await screenshot(session.page, 'demo-failure.png');
    throw e;
  } finally {
    await session.close();
    const exited = new Promise<number | null>((resolve) => demo.once('exit', (code) => resolve(code)));
    demo.kill('SIGINT');
    assert.equal(await exited, 0, 'the demo stops cleanly on Ctrl-C');
  }
  assert.match(output, /stopping VS Code and the lab/);
});
