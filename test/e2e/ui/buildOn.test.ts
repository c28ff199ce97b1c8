// UI test: the "Build on…" code lens asks which builders to use and builds there only. An
// x86_64-linux derivation that Nix would send to b1 (speed factor 2) is built on b2 because b2 is
// the one picked: its output lands in b2's store and not in b1's, and says it was built on b2.
import * as assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { screenshot, type BrowserSession } from '../browser';
import { builderMarker } from '../../lab/lab';
import { eventually, inBuilderStore, openFromExplorer, openTrustedSession, outPathOf, uiEnv, waitForInline, withScreenshot } from './env';

const env = uiEnv();
let session: BrowserSession;
let page: Page;

before(async () => {
  session = await openTrustedSession(env, 'ui-build-on-open-failure');
  page = session.page;
});

after(async () => {
  await session?.close();
});

test('Build on… builds on the builder picked in its list, not where Nix would have sent it', { timeout: 180_000 }, async () => {
  await withScreenshot(page, 'ui-build-on-failure', async () => {
    const file = 'build-on.nix';
    writeFileSync(
      path.join(env.workspace, file),
      [
        '{',
        '  picked = derivation {',
        `    name = "ui-build-on-${Date.now()}"; system = "x86_64-linux"; builder = "/bin/sh";`,
        '    args = [ "-c" "read -r l < /etc/nix/nix.conf; echo $l > $out" ];',
        '  };',
        '}',
        '',
      ].join('\n'),
    );
    await openFromExplorer(page, file);
    const lens = page.locator('.codelens-decoration a', { hasText: /^Build on…$/ });
    await lens.first().waitFor({ timeout: 60_000 });
    await lens.first().click();

    // The list of builders: every lab builder, none checked; check b2 and accept.
    const rows = page.locator('.quick-input-widget .quick-input-list .monaco-list-row');
    for (const b of env.builders) await rows.filter({ hasText: b.uri }).first().waitFor({ timeout: 30_000 });
    await screenshot(page, 'build-on-pick.png');
    const b2 = rows.filter({ hasText: 'ssh://b2' }).first();
    await b2.click();
    // A multi-select list: a click on the label toggles the row's check box (role checkbox).
    await eventually(async () => ((await b2.getAttribute('aria-checked')) === 'true' ? true : undefined), 10_000);
    await page.locator('.quick-input-widget .quick-input-box input').press('Enter');

    const built = await waitForInline(page, /^(built|failed)/, 150_000);
    assert.match(built, /^built on b2/);
    const out = outPathOf(env, file, 'picked');
    assert.ok(inBuilderStore(env, 'b2', out), `${out} is in b2's store`);
    assert.ok(!inBuilderStore(env, 'b1', out), `${out} is not in b1's store`);
    assert.equal(readFileSync(out, 'utf8').trim(), builderMarker('b2'));
    await screenshot(page, 'build-on-built-on-b2.png');
  });
});
