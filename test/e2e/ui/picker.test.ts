// UI test: "Build Derivations of This File…" lists every derivation of the open file (nested ones
// included, each with its system) and builds only the one picked.
import * as assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { screenshot, type BrowserSession } from '../browser';
import { eventually, openFromExplorer, openTrustedSession, outPathOf, runCommandThatAsks, uiEnv, waitForInline, withScreenshot } from './env';

const env = uiEnv();
let session: BrowserSession;
let page: Page;

before(async () => {
  session = await openTrustedSession(env, 'ui-picker-open-failure');
  page = session.page;
});

after(async () => {
  await session?.close();
});

test('the derivation picker lists every derivation of the file and builds the one picked', { timeout: 180_000 }, async () => {
  await withScreenshot(page, 'ui-picker-failure', async () => {
    const file = 'pick.nix';
    const salt = Date.now();
    const drv = (name: string, system: string) =>
      `derivation { name = "ui-pick-${name}-${salt}"; system = "${system}"; builder = "/bin/sh"; preferLocalBuild = true; args = [ "-c" ": > $out" ]; }`;
    writeFileSync(
      path.join(env.workspace, file),
      ['{', `  first = ${drv('first', 'x86_64-linux')};`, '  nested = {', `    second = ${drv('second', 'x86_64-linux')};`, '  };', `  arm = ${drv('arm', 'aarch64-linux')};`, '}', ''].join('\n'),
    );
    await openFromExplorer(page, file);
    // Evaluated: its lenses are there.
    await page.locator('.codelens-decoration a', { hasText: /^Build$/ }).first().waitFor({ timeout: 60_000 });
    await runCommandThatAsks(page, 'Nix Builders: Build Derivations of This File…', 'Build which derivations');

    // One row per derivation: its attribute path and its system.
    const rows = page.locator('.quick-input-widget .quick-input-list .monaco-list-row');
    const expected = [
      ['first', 'x86_64-linux'],
      ['nested.second', 'x86_64-linux'],
      ['arm', 'aarch64-linux'],
    ];
    await rows.first().waitFor({ timeout: 60_000 });
    // A row's first line is its label (and description); the second, its detail (the .drv path).
    const labels = await eventually(async () => {
      const texts = (await rows.locator('.quick-input-list-row:first-child .label-name').allInnerTexts()).map((t) => t.trim());
      return texts.length === expected.length ? texts : undefined;
    }, 10_000);
    assert.deepEqual([...labels].sort(), expected.map(([a]) => a).sort());
    for (const [attr, system] of expected) {
      const row = rows.filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${attr!.replace('.', '\\.')}$`) }) }).first();
      assert.match(await row.innerText(), new RegExp(system!), `${attr} shows its system`);
    }
    await screenshot(page, 'derivation-picker.png');

    const second = rows.filter({ has: page.locator('.label-name', { hasText: /^nested\.second$/ }) }).first();
    await second.click();
    await eventually(async () => ((await second.getAttribute('aria-checked')) === 'true' ? true : undefined), 10_000);
    await page.locator('.quick-input-widget .quick-input-box input').press('Enter');

    const built = await waitForInline(page, /^(built|failed)/, 150_000);
    assert.match(built, /^built/);
    assert.ok(existsSync(outPathOf(env, file, 'nested.second')), 'the picked derivation was built');
    assert.ok(!existsSync(outPathOf(env, file, 'first')), 'first was not picked and not built');
    assert.ok(!existsSync(outPathOf(env, file, 'arm')), 'arm was not picked and not built');
  });
});
