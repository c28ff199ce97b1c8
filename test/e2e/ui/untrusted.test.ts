// UI test: in a workspace that is not trusted, the status bar says so, the server does not evaluate
// the workspace's Nix files (no diagnostics for a file that has some), and once the user trusts the
// workspace the status bar says ready and the diagnostics appear. A fresh browser starts the
// window in Restricted Mode (trust is remembered per browser profile).
import * as assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { isRestricted, openBrowser, runCommand, screenshot, trustWorkspace, waitForWorkbench, type BrowserSession } from '../browser';
import { openFromExplorer, uiEnv, withScreenshot } from './env';

const env = uiEnv();
let session: BrowserSession;
let page: Page;

before(async () => {
  session = await openBrowser();
  page = session.page;
});

after(async () => {
  await session?.close();
});

test('untrusted: the status bar says so and no diagnostics appear; after trusting, they do', { timeout: 180_000 }, async () => {
  await withScreenshot(page, 'ui-untrusted-failure', async () => {
    // A derivation for a system no lab builder has: an error diagnostic once evaluated.
    const file = 'untrusted.nix';
    writeFileSync(
      path.join(env.workspace, file),
      '{\n  rv = derivation { name = "e2e-riscv"; system = "riscv64-linux"; builder = "/bin/sh"; args = [ "-c" ": > $out" ]; };\n}\n',
    );
    await page.goto(env.workbenchUrl, { waitUntil: 'domcontentloaded' });
    await waitForWorkbench(page);
    const nixItem = page.locator('.statusbar-item', { hasText: /Nix \d/ }).first();
    await nixItem.waitFor({ timeout: 60_000 });
    assert.ok(await isRestricted(page), 'a fresh browser opens the folder in Restricted Mode');
    await nixItem.locator('.codicon-workspace-untrusted').waitFor({ timeout: 10_000 });
    await nixItem.hover();
    await page.locator('.monaco-hover, .workbench-hover', { hasText: 'this workspace is not trusted, so its Nix files are not evaluated' }).first().waitFor({ timeout: 10_000 });
    await screenshot(page, 'status-untrusted.png');

    await openFromExplorer(page, file);
    // The server got the file and decided not to evaluate it: it says so in the log, once (the
    // output wraps the line: its start is enough).
    await runCommand(page, 'Nix Builders: Show Log');
    await page.locator('.part.panel .monaco-editor .view-line', { hasText: 'This workspace is not trusted: Nix Builders' }).first().waitFor({ timeout: 60_000 });
    await page.keyboard.press('Control+Shift+M');
    const problems = page.locator('.markers-panel');
    await problems.waitFor({ timeout: 10_000 });
    await page.locator('.markers-panel-container .message-box-container, .markers-panel .message', { hasText: /No problems have been detected/ }).first().waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('.codelens-decoration a', { hasText: /^Build$/ }).count(), 0, 'no Build lens in an untrusted workspace');

    // Trust the workspace as a user would: the status bar says ready, the file is evaluated.
    await trustWorkspace(page);
    await nixItem.locator('.codicon-server-environment').waitFor({ timeout: 30_000 });
    if (!(await problems.isVisible())) await page.keyboard.press('Control+Shift+M');
    await page.locator('.markers-panel .monaco-list-row', { hasText: 'requires riscv64-linux' }).first().waitFor({ timeout: 60_000 });
    await screenshot(page, 'problems-after-trust.png');
  });
});
