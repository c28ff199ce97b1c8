// UI test: the "Check reproducibility" code lens on a derivation that writes the time into one file
// beside a constant one. It is built first (never built before), rebuilt and compared on this
// machine; the notification says what differs, the server's diagnostic is in the Problems panel,
// the Builds view lists the check with its one differing file, and a click on the file opens VS
// Code's diff editor on the first build and the rebuild. Screenshots are kept. A check is cancelled from its progress notification: its build's
// processes end. Compare Builds Across Machines… from the palette (this machine and the lab's b1)
// lists its comparison beside the checks and opens its differing file in the diff editor; one is
// cancelled from its progress notification: its builds here and on b1 end.
import * as assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { notificationTexts, screenshot, type BrowserSession } from '../browser';
import { processesMentioning } from '../processes';
import { openFromExplorerAndBuild } from './editor';
import { escapeRegExp, eventually, nixBuildersViewRows, openFromExplorer, openTrustedSession, quickInputAsking, uiEnv, withScreenshot } from './env';

const env = uiEnv();
let session: BrowserSession;
let page: Page;
const settingsFile = path.join(env.workspace, '.vscode', 'settings.json');
const originalSettings = readFileSync(settingsFile, 'utf8');

before(async () => {
  // The diff editor side by side even in this small window (it turns inline when space is limited).
  writeFileSync(settingsFile, JSON.stringify({ ...JSON.parse(originalSettings), 'diffEditor.useInlineViewWhenSpaceIsLimited': false }, null, 2));
  session = await openTrustedSession(env, 'ui-check-open-failure');
  page = session.page;
});

after(async () => {
  writeFileSync(settingsFile, originalSettings);
  await session?.close();
});

/** The text lines of one side of the diff editor ('original': the first build, 'modified': the rebuild), not its view zones. */
const diffSide = (p: Page, side: 'original' | 'modified') => p.locator(`.monaco-diff-editor .editor.${side} .lines-content > .view-lines > .view-line`);

test('Check reproducibility: the lens rebuilds a derivation that writes the time, and the diff editor opens on the file that differs', { timeout: 240_000 }, async () => {
  await withScreenshot(page, 'ui-check-failure', async () => {
    const file = 'check-me.nix';
    writeFileSync(
      path.join(env.workspace, file),
      [
        '{',
        '  nondet = derivation {',
        `    name = "ui-check-${Date.now()}"; system = "x86_64-linux"; builder = "/bin/sh"; preferLocalBuild = true; PATH = "/usr/bin:/bin";`,
        '    args = [ "-c" "mkdir $out; echo constant > $out/constant; date +%s.%N > $out/time" ];',
        '  };',
        '}',
        '',
      ].join('\n'),
    );
    await openFromExplorer(page, file);
    const lens = page.locator('.codelens-decoration a', { hasText: /^Check reproducibility$/ });
    await lens.first().waitFor({ timeout: 60_000 });
    await lens.first().click();

    // The Builds view: the check beside the builds, its output, and the one file that differs.
    await page.locator('.part.activitybar').getByRole('tab', { name: /^Nix Builders/ }).click();
    const rows = nixBuildersViewRows(page, 'Builds');
    const checkRow = rows.filter({ hasText: /^Check nondet/ }).first();
    await checkRow.waitFor({ timeout: 180_000 });
    // One row per check (the answer and the server's checkFinished of it are the same check).
    assert.equal(await rows.filter({ hasText: /^Check nondet/ }).count(), 1);
    assert.match(await checkRow.innerText(), /not reproducible: 1 of 1 output differs \(out: 1 file\)/);
    await rows.filter({ hasText: /^out\s*differs: 1 file/ }).first().waitFor({ timeout: 10_000 });
    const timeRow = rows.filter({ has: page.locator('.label-name', { hasText: /^time$/ }) }).first();
    await timeRow.waitFor({ timeout: 10_000 });
    assert.match(await timeRow.innerText(), /changed: 21 B → 21 B/);
    assert.equal(await rows.filter({ has: page.locator('.label-name', { hasText: /^constant$/ }) }).count(), 0, 'the constant file is not listed');
    await screenshot(page, 'check-builds-view.png');

    // The server's diagnostic on the attribute, in the Problems panel (while the file is still open:
    // the diff editor below replaces its preview tab).
    await page.keyboard.press('Control+Shift+M');
    await page.locator('.markers-panel .monaco-list-row', { hasText: 'not reproducible: 1 of 1 output differs (out: 1 file)' }).first().waitFor({ timeout: 30_000 });
    await screenshot(page, 'check-problems.png');

    // A click on the file: the diff editor, first build ↔ rebuild, each side one different time.
    await timeRow.click();
    await page.locator('.tab', { hasText: 'time (first build ↔ rebuild)' }).first().waitFor({ timeout: 30_000 });
    const [first, rebuild] = await eventually(async () => {
      const sides = [await diffSide(page, 'original').first().innerText(), await diffSide(page, 'modified').first().innerText()];
      return sides.every((s) => /^\d+\.\d+$/.test(s.trim())) ? sides : undefined;
    }, 30_000);
    assert.notEqual(first, rebuild);
    await screenshot(page, 'check-diff-editor.png');

    // The notification says it (toasts are hidden in smoke-test mode: the notification centre).
    const texts = await notificationTexts(page);
    assert.ok(
      texts.some((t) => /nondet: not reproducible: 1 of 1 output differs \(out: 1 file\)\. It had not been built: it was built first/.test(t)),
      JSON.stringify(texts),
    );
  });
});

test('a check is cancelled from its progress notification: it says so, and its build ends', { timeout: 180_000 }, async () => {
  await withScreenshot(page, 'ui-check-cancel-failure', async () => {
    // Never built, so the check builds it first: a build that would sleep for ten minutes (the
    // salt in its command line marks its processes).
    const salt = `${Date.now()}`;
    const file = 'check-cancel.nix';
    writeFileSync(
      path.join(env.workspace, file),
      ['{', '  slow = derivation {', `    name = "ui-check-cancel-${salt}"; system = "x86_64-linux"; builder = "/bin/sh"; preferLocalBuild = true;`, `    args = [ "-c" "/bin/sleep 600.${salt}; : > $out" ];`, '  };', '}', ''].join('\n'),
    );
    await openFromExplorer(page, file);
    const lens = page.locator('.codelens-decoration a', { hasText: /^Check reproducibility$/ });
    await lens.first().waitFor({ timeout: 60_000 });
    await lens.first().click();
    await eventually(async () => (processesMentioning(`/bin/sleep 600.${salt}`).length > 0 ? true : undefined), 60_000);

    // The progress notification (in the notification centre: toasts are hidden in smoke-test mode) has Cancel.
    await notificationTexts(page);
    const progress = page.locator('.notifications-center .notification-list-item', { hasText: 'Checking slow for reproducibility' }).first();
    await progress.waitFor({ timeout: 30_000 });
    await screenshot(page, 'check-progress.png');
    await progress.hover();
    await progress.locator('.monaco-button', { hasText: /^Cancel$/ }).click();

    await page.locator('.notifications-center .notification-list-item-message', { hasText: 'Checking slow for reproducibility: cancelled.' }).first().waitFor({ timeout: 60_000 });
    await eventually(async () => (processesMentioning(salt).length === 0 ? true : undefined), 60_000).catch(() => {
      throw new Error(`processes of the cancelled check are left:\n${processesMentioning(salt).map((x) => `${x.pid}: ${x.cmdline}`).join('\n')}`);
    });
  });
});

test('Check Reproducibility from a built attribute in the Builds view: a deterministic derivation is reproducible', { timeout: 180_000 }, async () => {
  await withScreenshot(page, 'ui-check-from-builds-failure', async () => {
    const name = `ui-check-same-${Date.now()}`;
    const file = 'check-same.nix';
    writeFileSync(
      path.join(env.workspace, file),
      ['{', '  same = derivation {', `    name = "${name}"; system = "x86_64-linux"; builder = "/bin/sh"; preferLocalBuild = true;`, '    args = [ "-c" "echo same > $out" ];', '  };', '}', ''].join('\n'),
    );
    await openFromExplorerAndBuild(page, file);
    await page.locator('.part.activitybar').getByRole('tab', { name: /^Nix Builders/ }).click();
    const rows = nixBuildersViewRows(page, 'Builds');
    // The build ended (its row says so: no notification of it is left to refresh the view while
    // the menu is open) and its derivation's row offers the check.
    await rows.filter({ has: page.locator('.label-name', { hasText: /^same$/ }) }).filter({ has: page.locator('.label-description', { hasText: /^built\b/ }) }).first().waitFor({ timeout: 120_000 });
    const drvRow = rows.filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${escapeRegExp(name)}$`) }) }).filter({ hasText: /built here/ }).first();
    await drvRow.waitFor({ timeout: 10_000 });

    // Its context menu: Check Reproducibility (the menu ignores a click right after it opened: the keyboard chooses).
    await drvRow.click({ button: 'right' });
    const entry = page.locator('.context-view .action-item', { has: page.locator('.action-label', { hasText: /^Check Reproducibility$/ }) }).first();
    await entry.hover();
    await eventually(async () => ((await entry.getAttribute('class'))?.includes('focused') ? true : undefined), 10_000);
    await page.keyboard.press('Enter');

    const checkRow = rows.filter({ hasText: /^Check same/ }).first();
    await checkRow.waitFor({ timeout: 120_000 });
    assert.match(await checkRow.innerText(), /reproducible: 1 output the same in 1 rebuild/);
    await rows.filter({ hasText: /^out\s*reproducible/ }).first().waitFor({ timeout: 10_000 });
    await screenshot(page, 'check-reproducible-from-builds-view.png');
  });
});

/**
 * Compare Builds Across Machines… from the palette with the cursor on `line`'s text (the palette
 * opened from the editor itself: runCommandThatAsks clicks the workbench first, which moves the
 * cursor), This machine and b1 checked; the pick is left open, to be accepted.
 */
async function compareFromPalette(p: Page, attribute: string, line: string): Promise<void> {
  await p.locator('.monaco-editor .view-line', { hasText: line }).first().click();
  await p.keyboard.press('F1');
  const input = p.locator('.quick-input-widget .quick-input-box input');
  await input.fill('>Nix Builders: Compare Builds Across Machines…');
  await p.locator('.quick-input-widget .monaco-list-row', { hasText: 'Compare Builds Across Machines…' }).first().waitFor({ timeout: 10_000 });
  await input.press('Enter');
  await quickInputAsking(p, new RegExp(`^Build ${escapeRegExp(attribute)} on which machines`)).waitFor({ timeout: 60_000 });
  const choice = (label: RegExp) => p.locator('.quick-input-widget .monaco-list-row', { has: p.locator('.label-name', { hasText: label }) }).first();
  for (const label of [/^This machine$/, /^b1$/]) {
    await choice(label).click();
    await eventually(async () => ((await choice(label).getAttribute('aria-checked')) === 'true' ? true : undefined), 10_000);
  }
}

test('Compare Builds Across Machines… from the palette: the attribute at the cursor, this machine and b1 picked; its Compare row with both hashes, and its differing file in the diff editor', { timeout: 240_000 }, async () => {
  await withScreenshot(page, 'ui-compare-failure', async () => {
    const file = 'compare-me.nix';
    // The lab's builders have no PATH: sh's builtins and absolute paths only.
    writeFileSync(
      path.join(env.workspace, file),
      [
        '{',
        `  cmp = derivation { name = "ui-compare-${Date.now()}"; system = "x86_64-linux"; builder = "/bin/sh";`,
        '    args = [ "-c" "read -r t < /proc/sys/kernel/random/uuid; /bin/mkdir $out; printf \'%s\\\\n\' \\"$t\\" > $out/stamp; printf \'constant\\\\n\' > $out/constant" ]; };',
        '}',
        '',
      ].join('\n'),
    );
    await openFromExplorer(page, file);
    // Evaluated (its lenses are there); the cursor on the attribute's line.
    await page.locator('.codelens-decoration a', { hasText: /^Check reproducibility$/ }).first().waitFor({ timeout: 60_000 });
    await compareFromPalette(page, 'cmp', 'cmp = derivation');
    await screenshot(page, 'compare-machines-picked.png');
    await page.locator('.quick-input-widget .quick-input-box input').press('Enter');

    await page.locator('.part.activitybar').getByRole('tab', { name: /^Nix Builders/ }).click();
    const rows = nixBuildersViewRows(page, 'Builds');
    const compareRow = rows.filter({ hasText: /^Compare cmp/ }).first();
    await compareRow.waitFor({ timeout: 180_000 });
    assert.match(await compareRow.innerText(), /built differently on here and b1 \(out: 1 file\)/);
    for (const machine of ['this machine', 'b1']) {
      const hashRow = rows.filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${machine}$`) }) }).first();
      await hashRow.waitFor({ timeout: 10_000 });
      assert.match(await hashRow.innerText(), /sha256:[0-9a-z]{52}/);
    }
    const stampRow = rows.filter({ has: page.locator('.label-name', { hasText: /^stamp$/ }) }).first();
    assert.match(await stampRow.innerText(), /changed: 37 B → 37 B/);
    assert.equal(await rows.filter({ has: page.locator('.label-name', { hasText: /^constant$/ }) }).count(), 0, 'the constant file is not listed');
    await screenshot(page, 'compare-builds-view.png');

    // A click on the file: the diff editor, this machine's build ↔ b1's, each side one different UUID.
    await stampRow.click();
    await page.locator('.tab', { hasText: 'stamp (this machine ↔ b1)' }).first().waitFor({ timeout: 30_000 });
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
    const [here, b1] = await eventually(async () => {
      const sides = [await diffSide(page, 'original').first().innerText(), await diffSide(page, 'modified').first().innerText()];
      return sides.every((s) => uuid.test(s.trim())) ? sides : undefined;
    }, 30_000);
    assert.notEqual(here, b1);
    await screenshot(page, 'compare-diff-editor.png');
  });
});

test('a comparison across machines is cancelled from its progress notification: it says so, and its builds end here and on b1', { timeout: 180_000 }, async () => {
  await withScreenshot(page, 'ui-compare-cancel-failure', async () => {
    const salt = `${Date.now()}`;
    const file = 'compare-cancel.nix';
    writeFileSync(
      path.join(env.workspace, file),
      ['{', `  slow = derivation { name = "ui-compare-cancel-${salt}"; system = "x86_64-linux"; builder = "/bin/sh";`, `    args = [ "-c" "/bin/sleep 600.${salt}; : > $out" ]; };`, '}', ''].join('\n'),
    );
    await openFromExplorer(page, file);
    await page.locator('.codelens-decoration a', { hasText: /^Check reproducibility$/ }).first().waitFor({ timeout: 60_000 });
    await compareFromPalette(page, 'slow', 'slow = derivation');
    await page.locator('.quick-input-widget .quick-input-box input').press('Enter');
    // Both builds run (here and on b1: the lab's processes are this machine's too).
    await eventually(async () => (processesMentioning(`/bin/sleep 600.${salt}`).length >= 2 ? true : undefined), 90_000);

    await notificationTexts(page);
    const progress = page.locator('.notifications-center .notification-list-item', { hasText: 'Comparing slow across this machine, b1' }).first();
    await progress.waitFor({ timeout: 30_000 });
    await progress.hover();
    await progress.locator('.monaco-button', { hasText: /^Cancel$/ }).click();

    await page.locator('.notifications-center .notification-list-item-message', { hasText: 'Comparing slow across this machine, b1: cancelled.' }).first().waitFor({ timeout: 60_000 });
    await eventually(async () => (processesMentioning(salt).length === 0 ? true : undefined), 60_000).catch(() => {
      throw new Error(`processes of the cancelled comparison are left:\n${processesMentioning(salt).map((x) => `${x.pid}: ${x.cmdline}`).join('\n')}`);
    });
  });
});
