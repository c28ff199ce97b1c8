// UI test: Cancel Build from the Builds view. A remote build that would run for ten minutes on b2
// is started from its code lens; the inline Cancel Build button on its row in the Builds view stops
// it: the row and the line say cancelled, and no process of the build is left, neither the local
// nix and ssh nor the build on b2 (the lab's builders run on this machine: /proc shows them all).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { screenshot, type BrowserSession } from '../browser';
import { openFromExplorerAndBuild } from './editor';
import { processesMentioning } from '../processes';
import { nixBuildersViewRows, openTrustedSession, uiEnv, waitForInline, withScreenshot } from './env';

const env = uiEnv();
let session: BrowserSession;
let page: Page;

before(async () => {
  session = await openTrustedSession(env, 'ui-cancel-open-failure');
  page = session.page;
});

after(async () => {
  await session?.close();
});


/** Polls until `probe` returns true (then true), or `timeoutMs` passed (then false). */
async function until(probe: () => boolean, timeoutMs: number): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; ; ) {
    if (probe()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('Cancel Build on a running build in the Builds view stops it: cancelled, and its process tree is gone here and on b2', { timeout: 240_000 }, async () => {
  await withScreenshot(page, 'ui-cancel-failure', async () => {
    // Salted so that it really builds; the salt is in the builder's command line, the drv path
    // and /bin/sleep's argument: every process of the build mentions it.
    const salt = `${Date.now()}`;
    writeFileSync(
      path.join(env.workspace, 'cancel-me.nix'),
      [
        '{',
        '  long = derivation {',
        `    name = "ui-cancel-${salt}"; system = "aarch64-linux"; builder = "/bin/sh";`,
        `    args = [ "-c" "echo started; /bin/sleep 600.${salt}; : > $out" ];`,
        '  };',
        '}',
        '',
      ].join('\n'),
    );
    await openFromExplorerAndBuild(page, 'cancel-me.nix', /^Build remotely only$/);
    const building = await waitForInline(page, /^building on b2/, 120_000);
    console.log(`inline status: ${building}`);
    assert.ok(await until(() => processesMentioning(`/bin/sleep 600.${salt}`).length > 0, 60_000), 'the build runs /bin/sleep on b2');
    console.log(`processes of the build:\n  ${processesMentioning(salt).map((x) => `${x.pid}: ${x.cmdline}`).join('\n  ')}`);

    // The Builds view: the running build's row has an inline Cancel Build button.
    await page.locator('.part.activitybar').getByRole('tab', { name: /^Nix Builders/ }).click();
    const row = nixBuildersViewRows(page, 'Builds').filter({ hasText: /^long\s*running/ }).first();
    await row.waitFor({ timeout: 30_000 });
    await row.hover();
    const cancel = row.locator('.actions .action-label[aria-label="Cancel Build"]');
    await cancel.waitFor({ timeout: 10_000 });
    await screenshot(page, 'builds-view-cancel-button.png');
    await cancel.click();

    // The row and the line say so, and nothing of the build is left.
    const ended = nixBuildersViewRows(page, 'Builds').filter({ hasText: /^long\s*cancelled/ }).first();
    await ended.waitFor({ timeout: 60_000 });
    assert.doesNotMatch(await ended.innerText(), /building/, 'an ended build counts nothing as building');
    const shown = await waitForInline(page, /^cancelled/, 30_000);
    console.log(`inline status: ${shown}`);
    await screenshot(page, 'builds-view-cancelled.png');
    const gone = await until(() => processesMentioning(salt).length === 0, 60_000);
    assert.ok(gone, `processes of the cancelled build are left:\n${processesMentioning(salt).map((x) => `${x.pid}: ${x.cmdline}`).join('\n')}`);
  });
});
