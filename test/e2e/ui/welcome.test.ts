// UI test: with no builder configured anywhere, the Builders view shows its welcome content (what
// that means, where builders come from) with an Add Builder and an Open Settings button; each
// button does what it says, and once a builder is configured the welcome gives way to the list.
import * as assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { screenshot, type BrowserSession } from '../browser';
import { labNixEnv, nixBuildersViewRows, openTrustedSession, quickInputAsking, uiEnv, withScreenshot } from './env';

const env = uiEnv();
let session: BrowserSession;
let page: Page;
const settingsFile = path.join(env.workspace, '.vscode', 'settings.json');
const originalSettings = readFileSync(settingsFile, 'utf8');

before(async () => {
  // Nix's configuration without builders, and no machines file of the extension's.
  const confDir = mkdtempSync(path.join(os.tmpdir(), 'nb-ui-welcome-'));
  writeFileSync(path.join(confDir, 'nix.conf'), 'build-users-group =\nsubstituters =\nbuilders =\n');
  writeFileSync(
    settingsFile,
    JSON.stringify({ ...JSON.parse(originalSettings), 'nixBuilders.env': { ...labNixEnv(env), NIX_CONF_DIR: confDir }, 'nixBuilders.machinesFiles': [] }, null, 2),
  );
  session = await openTrustedSession(env, 'ui-welcome-open-failure');
  page = session.page;
});

after(async () => {
  writeFileSync(settingsFile, originalSettings);
  await session?.close();
});

const welcome = () => page.locator('[id="workbench.view.extension.nixBuilders"] .pane', { has: page.locator('.pane-header[aria-label^="Builders"]') }).locator('.welcome-view-content');

test('no builder configured: the welcome text with Add Builder and Open Settings, each doing what it says', { timeout: 120_000 }, async () => {
  await withScreenshot(page, 'ui-welcome-failure', async () => {
    await page.locator('.part.activitybar').getByRole('tab', { name: /^Nix Builders/ }).click();
    const content = welcome();
    await content.filter({ hasText: 'No remote builder is configured. Nix builds everything on this machine.' }).waitFor({ timeout: 60_000 });
    const text = (await content.innerText()).replace(/\s+/g, ' ');
    // Welcome content renders links and nothing else of Markdown: a backtick would show as is.
    assert.doesNotMatch(text, /`/, 'no literal Markdown in the welcome text');
    assert.match(text, /Builders come from \/etc\/nix\/machines, the builders setting of nix\.conf, the nixBuilders\.machinesFiles and the nixBuilders\.builders settings\./);
    const addBuilder = content.locator('.monaco-button', { hasText: /^Add Builder$/ });
    const openSettings = content.locator('.monaco-button', { hasText: /^Open Settings$/ });
    await addBuilder.waitFor();
    await openSettings.waitFor();
    await screenshot(page, 'builders-view-welcome.png');

    // Open Settings: the settings editor, filtered to this extension's settings (its User tab:
    // the machine-overridable ones are on the Remote tab of a code-server window).
    await openSettings.click();
    const settingsEditor = page.locator('.settings-editor');
    await settingsEditor.locator('.setting-item-contents', { hasText: 'Nix Builders › Build: Remote Only' }).first().waitFor({ timeout: 30_000 });
    assert.match(await settingsEditor.locator('.settings-header .monaco-editor .view-line').first().innerText(), /@ext:nix-builders\.nix-builders/);
    await page.keyboard.press('Control+W');

    // Add Builder: the guided input starts by asking for the builder's address.
    await addBuilder.click();
    const asked = quickInputAsking(page, /builder/i);
    await asked.waitFor({ timeout: 30_000 });
    await asked.press('Escape');
    await asked.waitFor({ state: 'hidden', timeout: 10_000 });

    // A builder configured: the welcome gives way to the list.
    writeFileSync(settingsFile, originalSettings);
    await nixBuildersViewRows(page, 'Builders').filter({ hasText: 'b1' }).first().waitFor({ timeout: 60_000 });
    await content.waitFor({ state: 'hidden', timeout: 10_000 });
  });
});
