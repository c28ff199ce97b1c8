// UI test: the "Build remotely only" code lens on an aarch64-linux attribute starts a build on the
// lab's b2; the inline status after the line goes from building to built. A screenshot is kept.
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { openCommandPalette, runCommand, screenshot, type BrowserSession } from '../browser';
import { openFromExplorerAndBuild } from './editor';
import { nixBuildersViewRows, openTrustedSession, uiEnv, waitForInline, withScreenshot } from './env';
import { chattyBuildFile } from '../../server/chattyBuild';

const env = uiEnv();
let session: BrowserSession;
let page: Page;

before(async () => {
  session = await openTrustedSession(env, 'ui-build-open-failure');
  page = session.page;
});

after(async () => {
  await session?.close();
});

test('the code lens builds an aarch64-linux attribute on b2 and the line shows building, then built', { timeout: 120_000 }, async () => {
  await withScreenshot(page, 'ui-build-failure', async () => {
    // A fresh aarch64-linux derivation (salted, 2 s long) so that it really builds, on b2.
    const name = `ui-build-${Date.now()}`;
    writeFileSync(
      path.join(env.workspace, 'build-me.nix'),
      [
        '{',
        '  arm = derivation {',
        `    name = "${name}"; system = "aarch64-linux"; builder = "/bin/sh";`,
        '    args = [ "-c" "/bin/sleep 2; read -r l < /etc/nix/nix.conf; echo $l > $out" ];',
        '  };',
        '}',
        '',
      ].join('\n'),
    );
    await openCommandPalette(page);
    const input = page.locator('.quick-input-widget .quick-input-box input');
    await input.fill('build-me.nix');
    await page.locator('.quick-input-widget .monaco-list-row', { hasText: 'build-me.nix' }).first().waitFor();
    await input.press('Enter');
    const lens = page.locator('.codelens-decoration a', { hasText: 'Build remotely only' });
    await lens.first().waitFor({ timeout: 60_000 });
    await lens.first().click();
    const building = await waitForInline(page, /^building on b2/, 60_000);
    await screenshot(page, 'editor-building-on-b2.png');
    console.log(`inline status: ${building}`);
    const built = await waitForInline(page, /^built on b2/, 60_000);
    console.log(`inline status: ${built}`);
    await screenshot(page, 'editor-built-on-b2.png');
  });
});

test('a build of 301 derivations and a million log lines: grouped in the Builds view, the editor answers meanwhile', { timeout: 300_000 }, async () => {
  await withScreenshot(page, 'ui-large-build-failure', async () => {
    // Everything prefers this machine: 300 small derivations and one that prints 1 M lines.
    const salt = `${Date.now()}`;
    writeFileSync(
      path.join(env.workspace, 'large-build.nix'),
      chattyBuildFile({ attribute: 'large', derivations: 300, lines: 1_000_000, salt, system: 'x86_64-linux', preferLocalBuild: true }),
    );
    await openFromExplorerAndBuild(page, 'large-build.nix');

    // The Builds view: a large build lists its derivations in groups by state, with counts.
    await page.locator('.part.activitybar').getByRole('tab', { name: /^Nix Builders/ }).click();
    const rows = nixBuildersViewRows(page, 'Builds');
    const builtGroup = rows.filter({ has: page.locator('.label-name', { hasText: /^Built$/ }) }).first();
    await builtGroup.waitFor({ timeout: 120_000 });
    console.log(`Builds view while running: ${(await rows.allInnerTexts()).map((t) => t.replace(/\s+/g, ' ')).join(' | ')}`);

    // While the chatty derivation streams ~100 MB of log through the server, the editor's language
    // features answer: a hover on the attribute comes from the language server through the
    // extension host.
    const chatty = await waitForInline(page, /^building here/, 240_000);
    console.log(`inline status while the log streams: ${chatty}`);
    // The cursor on `large` (Home: the line's first non-blank), then Show Hover (Ctrl+K Ctrl+I).
    await page.locator('.monaco-editor .view-line', { hasText: 'large = let' }).first().click();
    await page.keyboard.press('Home');
    await page.keyboard.press('Control+K');
    await page.keyboard.press('Control+I');
    const hover = page.locator('.monaco-hover-content', { hasText: 'preferLocalBuild' });
    await hover.first().waitFor({ timeout: 60_000 });
    await screenshot(page, 'builds-view-large-build-running.png');

    // It ends built, here, on the attribute's line.
    const built = await waitForInline(page, /^built here/, 240_000);
    console.log(`inline status: ${built}`);
    await rows.filter({ hasText: /^large\s*built — 301\/301 built/ }).first().waitFor({ timeout: 30_000 });
    await screenshot(page, 'builds-view-large-build-done.png');
  });
});

test('a failed build: the line says failed, and its hover opens the log at the error', { timeout: 180_000 }, async () => {
  await withScreenshot(page, 'ui-failed-build-failure', async () => {
    const salt = `${Date.now()}`;
    writeFileSync(
      path.join(env.workspace, 'broken.nix'),
      [
        '{',
        '  broken = derivation {',
        `    name = "ui-broken-${salt}"; system = "x86_64-linux"; builder = "/bin/sh"; preferLocalBuild = true;`,
        '    args = [ "-c" "echo compiling; echo boom: this build fails on purpose >&2; exit 1" ];',
        '  };',
        '}',
        '',
      ].join('\n'),
    );
    await openFromExplorerAndBuild(page, 'broken.nix');
    const failed = await waitForInline(page, /^failed/, 120_000);
    console.log(`inline status: ${failed}`);

    // Hover the line: its hover says so and links to the log.
    await page.locator('.monaco-editor .view-line', { hasText: 'broken = derivation' }).first().locator('span').filter({ hasText: /broken/ }).first().hover();
    const link = page.locator('.monaco-hover-content a', { hasText: 'Show the log' });
    await link.first().waitFor({ timeout: 30_000 });
    await screenshot(page, 'editor-build-failed-hover.png');
    await link.first().click();
    // The log opens in a read-only editor: Nix's failure on top, the cursor on the last line the
    // builder printed (line 4: two header lines, "compiling", then the error).
    await page.locator('.monaco-editor .view-line', { hasText: 'boom: this build fails on purpose' }).first().waitFor({ timeout: 30_000 });
    await page.locator('.monaco-editor .view-line', { hasText: /^#\sbuilder\sfor\s'\/nix\/store\// }).first().waitFor({ timeout: 10_000 });
    await page.locator('.statusbar-item', { hasText: /^Ln 4, Col 1$/ }).first().waitFor({ timeout: 10_000 });
    await screenshot(page, 'build-log-at-error.png');

    // The failed derivation's log is also in the output channel (nixBuilders.build.logsInOutput: failed).
    await runCommand(page, 'Nix Builders: Show Log');
    await page.locator('.part.panel .monaco-editor .view-line', { hasText: 'boom: this build fails on purpose' }).first().waitFor({ timeout: 30_000 });
  });
});

test('Plan: the dialog says what builds where, dependencies included, and the build starts from it', { timeout: 180_000 }, async () => {
  await withScreenshot(page, 'ui-plan-failure', async () => {
    const salt = `${Date.now()}`;
    writeFileSync(
      path.join(env.workspace, 'plan.nix'),
      [
        'rec {',
        `  arm = derivation { name = "plan-arm-${salt}"; system = "aarch64-linux"; builder = "/bin/sh"; args = [ "-c" ": > $out" ]; };`,
        `  top = derivation { name = "plan-top-${salt}"; system = "x86_64-linux"; builder = "/bin/sh"; dep = arm; args = [ "-c" ": > $out" ]; };`,
        '}',
        '',
      ].join('\n'),
    );
    await runCommand(page, 'View: Show Explorer');
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'plan.nix' }).first().click();
    // The second attribute's lenses (top).
    const plan = page.locator('.codelens-decoration a', { hasText: /^Plan$/ });
    await plan.nth(1).waitFor({ timeout: 60_000 });
    await plan.nth(1).click();
    const dialog = page.locator('.monaco-dialog-box');
    await dialog.locator('.dialog-message-text', { hasText: '2 derivations will be built' }).waitFor({ timeout: 60_000 });
    await dialog.locator('.dialog-message-detail', { hasText: `on b2: plan-arm-${salt}` }).waitFor({ timeout: 10_000 });
    await screenshot(page, 'plan-dialog.png');
    await dialog.locator('.monaco-button', { hasText: 'Build Remotely Only' }).click();
    const built = await waitForInline(page, /^built on b[12]/, 120_000);
    console.log(`inline status after building from the plan: ${built}`);
  });
});
