// UI test: the Builders view of a real VS Code (code-server) lists the lab's builders.
// Run by test/e2e/run.ts, which starts the lab and code-server and passes them in E2E_* variables.
import * as assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { notificationTexts, screenshot, type BrowserSession } from '../browser';
import { escapeRegExp as escape, eventually, nixBuildersViewRows, openTrustedSession, uiEnv, withScreenshot } from './env';

const env = uiEnv();
let session: BrowserSession;
let page: Page;

before(async () => {
  session = await openTrustedSession(env, 'ui-open-workbench-failure');
  page = session.page;
});

after(async () => {
  await session?.close();
});

/** The rows of the Builders view (view nixBuilders.builders in the container nixBuilders). */
const builderRows = (p: Page) => nixBuildersViewRows(p, 'Builders');

test('the Builders view lists every lab builder with its systems', { timeout: 90_000 }, async () => {
  await withScreenshot(page, 'ui-builders-view-failure', async () => {
    // The "Nix Builders" view container in the activity bar.
    await page.locator('.part.activitybar').getByRole('tab', { name: /^Nix Builders/ }).click();
    const rows = builderRows(page);
    for (const b of env.builders) {
      const name = new URL(b.uri).hostname;
      const row = rows.filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${escape(name)}$`) }) });
      await row.first().waitFor({ state: 'visible', timeout: 60_000 });
      // The description lists the builder's systems.
      const description = row.first().locator('.label-description');
      for (const system of b.systems) {
        await description.filter({ hasText: system }).waitFor({ timeout: 10_000 }).catch(async () => {
          assert.fail(`row ${name}: description ${JSON.stringify(await description.innerText())} lacks ${system}`);
        });
      }
    }
    const labels = await rows.locator('.label-name').allInnerTexts();
    console.log(`Builders view rows: ${labels.join(', ')}`);
    await screenshot(page, 'builders-view.png');
  });
});

/** The Builders view row of one builder. */
function builderRow(p: Page, name: string) {
  return builderRows(p).filter({ has: p.locator('.label-name', { hasText: new RegExp(`^${escape(name)}$`) }) }).first();
}

test('each builder shows its health, and a test build runs from the view', { timeout: 120_000 }, async () => {
  await withScreenshot(page, 'ui-builder-health-failure', async () => {
    // The doctor ran when the view opened: states arrive in the rows' descriptions.
    // Healthy — or, when this machine (which all lab builders share) is loaded, "busy".
    await builderRow(page, 'b1').locator('.label-description', { hasText: /healthy|is busy/ }).waitFor({ timeout: 60_000 });
    await builderRow(page, 'b2').locator('.label-description', { hasText: /healthy|is busy/ }).waitFor({ timeout: 60_000 });
    await builderRow(page, 'b3').locator('.label-description', { hasText: /not (in trusted-users|trusted)/ }).waitFor({ timeout: 60_000 });
    await builderRow(page, 'b4').locator('.label-description', { hasText: /nix|Nix/ }).waitFor({ timeout: 60_000 });
    await screenshot(page, 'builders-view-health.png');

    // The inline "Test Build on Builder" action of b1.
    const row = builderRow(page, 'b1');
    await row.hover();
    await row.locator('.action-label[aria-label="Test Build on Builder"]').click();
    await eventually(async () => (await notificationTexts(page)).find((t) => /^Test build on b1: /.test(t)), 60_000).then((text) => {
      assert.match(text, /b1/);
      console.log(`notification: ${text}`);
    });
    await screenshot(page, 'builders-view-test-build.png');
  });
});
