// UI test: a signing key generated from the command palette (its name asked, the secret saved where
// the save dialog says, then "Sign Pushes with It"), a file:// push target set in the settings, and
// the Caches view showing both, and the consumer's nix.conf lines copied; then the "Push to cache" code lens pushes a derivation's closure,
// signed by that key, and the summary and the Caches view say so. Screenshots are kept.
import * as assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { notificationTexts, runCommand, screenshot, type BrowserSession } from '../browser';
import { escapeRegExp, eventually, labNixEnv, nixBuildersViewRows, openFromExplorer, openTrustedSession, quickInputAsking, runCommandThatAsks, uiEnv, withScreenshot } from './env';

const env = uiEnv();
let session: BrowserSession;
let page: Page;
const settingsFile = path.join(env.workspace, '.vscode', 'settings.json');
const originalSettings = readFileSync(settingsFile, 'utf8');
const originalMachineSettings = readFileSync(env.machineSettings, 'utf8');

const dir = mkdtempSync(path.join(os.tmpdir(), 'nb-ui-push-'));
const confDir = path.join(dir, 'nix-conf');
const keysDir = path.join(dir, 'keys');
const secretKeyFile = path.join(keysDir, 'e2e-cache-1.sec');
const cacheDir = path.join(dir, 'cache');
const target = `file://${cacheDir}`;
const KEY_NAME = 'e2e-cache-1';

const writeNixConf = (lines: string[]) => writeFileSync(path.join(confDir, 'nix.conf'), ['build-users-group =', 'substituters =', 'builders =', 'sandbox = false', ...lines, ''].join('\n'));
const writeSettings = (extra: Record<string, unknown>) =>
  writeFileSync(settingsFile, JSON.stringify({ ...JSON.parse(originalSettings), 'nixBuilders.env': { ...labNixEnv(env), NIX_CONF_DIR: confDir }, 'nixBuilders.machinesFiles': [], ...extra }, null, 2));
/** The push settings are machine-scoped: a workspace cannot set them, the (Remote) user settings can. Kept: what the extension wrote there (the signing key). */
const writeMachineSettings = (extra: Record<string, unknown>) =>
  writeFileSync(env.machineSettings, JSON.stringify({ ...JSON.parse(readFileSync(env.machineSettings, 'utf8')), ...extra }, null, 2));

before(async () => {
  mkdirSync(confDir);
  mkdirSync(keysDir, { mode: 0o700 });
  mkdirSync(cacheDir);
  writeNixConf([]);
  writeSettings({});
  session = await openTrustedSession(env, 'ui-push-open-failure');
  page = session.page;
  await session.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(env.codeServerUrl).origin });
  await page.locator('.part.activitybar').getByRole('tab', { name: /^Nix Builders/ }).click();
});

after(async () => {
  writeFileSync(settingsFile, originalSettings);
  writeFileSync(env.machineSettings, originalMachineSettings);
  await session?.close();
});

const pushLens = () => page.locator('.codelens-decoration a', { hasText: /^Push to cache$/ }).first();
const cachesRow = (text: RegExp) => nixBuildersViewRows(page, 'Caches').filter({ hasText: text }).first();

/** Clicks a button of the notification whose message matches `message` (in the notification centre: toasts are hidden). */
async function clickNotificationButton(message: RegExp, label: string): Promise<void> {
  await eventually(async () => (await notificationTexts(page)).find((t) => message.test(t)), 60_000);
  const item = page.locator('.notifications-center .notification-list-item', { has: page.locator('.notification-list-item-message', { hasText: message }) }).first();
  await item.locator('.monaco-button', { hasText: label }).first().click();
}

test('Generate Signing Key… from the palette: a 0600 secret where the save dialog says, used for pushes; the Caches view lists it and the file:// push target; derivations get a Push to cache lens', { timeout: 180_000 }, async () => {
  await withScreenshot(page, 'ui-push-key-failure', async () => {
    await cachesRow(/^Substituters/).waitFor({ timeout: 60_000 });
    await runCommandThatAsks(page, 'Nix Builders: Generate Signing Key…', /key's name/);
    const name = quickInputAsking(page, /key's name/);
    await name.fill(KEY_NAME);
    await name.press('Enter');
    // The save dialog (VS Code's own in the browser): the path typed whole.
    await page.locator('.quick-input-widget .quick-input-title', { hasText: 'Generate Signing Key (2/2)' }).waitFor({ timeout: 30_000 });
    const widget = page.locator('.quick-input-widget');
    const file = widget.locator('.quick-input-box input');
    // It sets its starting path (the default location) itself once it has read the folder: typed over after that.
    await eventually(async () => ((await file.inputValue()).endsWith(`${KEY_NAME}.sec`) ? true : undefined), 30_000);
    await eventually(async () => {
      if ((await file.inputValue()) === secretKeyFile) return true;
      await file.fill(secretKeyFile);
      return undefined;
    }, 10_000);
    await screenshot(page, 'generate-key-save-dialog.png');
    // The dialog may take the first Enter to settle on the typed path; it closes once it accepts it.
    for (let i = 0; i < 3 && (await widget.isVisible()); i++) {
      await file.press('Enter');
      await widget.waitFor({ state: 'hidden', timeout: 5_000 }).catch(() => undefined);
    }
    await widget.waitFor({ state: 'hidden', timeout: 5_000 });
    await clickNotificationButton(new RegExp(`^Generated the signing key ${KEY_NAME} in ${escapeRegExp(secretKeyFile)}`), 'Sign Pushes with It');
    await eventually(async () => (await notificationTexts(page)).find((t) => t.startsWith(`Pushes sign with ${KEY_NAME}`)), 30_000);

    assert.equal(statSync(secretKeyFile).mode & 0o777, 0o600);
    const publicKey = readFileSync(`${secretKeyFile}.pub`, 'utf8').trim();
    assert.match(publicKey, new RegExp(`^${KEY_NAME}:[A-Za-z0-9+/]{43}=$`));

    // The consumer's side trusts the key (as the snippet says), and a file:// push target.
    writeNixConf([`trusted-public-keys = ${publicKey}`]);
    writeMachineSettings({ 'nixBuilders.cache.pushTargets': [target] });
    await runCommand(page, 'Notifications: Clear All Notifications');
    await cachesRow(new RegExp(`^${escapeRegExp(KEY_NAME)}\\s*nixBuilders\\.cache\\.signingKeyFile`)).waitFor({ timeout: 60_000 });
    await cachesRow(new RegExp(`^${escapeRegExp(target)}\\s*reachable · key trusted`)).waitFor({ timeout: 60_000 });
    console.log(`Caches view: ${(await nixBuildersViewRows(page, 'Caches').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ')).join(' | ')}`);
    await screenshot(page, 'caches-view-key-and-target.png');

    // What a consumer of the push target adds to nix.conf, on the clipboard.
    await runCommandThatAsks(page, 'Nix Builders: Copy Consumer Configuration', 'Configuration for the consumers of');
    await page.locator('.quick-input-widget .monaco-list-row', { hasText: 'nix.conf' }).first().click();
    await eventually(async () => (await notificationTexts(page)).find((t) => t === `Copied the nix.conf configuration for ${target}.`), 30_000);
    assert.equal(await page.evaluate(() => (globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }).navigator.clipboard.readText()), `# ${target} is readable only on this machine: for other machines serve its folder over HTTP (any web server) and give that URL, or push to ssh://host instead.\nextra-substituters = ${target}\nextra-trusted-public-keys = ${publicKey}\n`);

    // With a push target, derivation attributes have a Push to cache lens.
    const salt = `${Date.now()}`;
    writeFileSync(
      path.join(env.workspace, 'push-me.nix'),
      [
        '{',
        '  pushed = derivation {',
        `    name = "ui-push-${salt}"; system = builtins.currentSystem; builder = "/bin/sh"; preferLocalBuild = true;`,
        `    args = [ "-c" "echo ${salt} > $out" ];`,
        '  };',
        '}',
        '',
      ].join('\n'),
    );
    await openFromExplorer(page, 'push-me.nix');
    await pushLens().waitFor({ timeout: 60_000 });
    await screenshot(page, 'editor-push-lens.png');
  });
});

test(
  'the Push to cache lens pushes the closure signed by the key: the summary says so, the cache holds it signed, the Caches view shows the target signed by the trusted key',
  // nixBuilders.pushToCache is cache/push.ts's (another branch of issue 12): this runs once it is merged.
  { timeout: 240_000, skip: existsSync(path.join(__dirname, '../../../language-server/cache/push.ts')) ? false : 'needs the pushToCache server command (language-server/cache/push.ts), not in this branch' },
  async () => {
    await withScreenshot(page, 'ui-push-lens-failure', async () => {
      await openFromExplorer(page, 'push-me.nix');
      await pushLens().waitFor({ timeout: 60_000 });
      await pushLens().click();
      // Built first (it is new), then pushed: "Built pushed first. Pushed 1 path (0 already in the cache) to file://…, signed by e2e-cache-1. …".
      const summary = await eventually(async () => (await notificationTexts(page)).find((t) => /Pushed \d+ paths?\b.*signed by e2e-cache-1/.test(t) || /failed/i.test(t)), 180_000);
      console.log(`push summary: ${summary}`);
      assert.match(summary, new RegExp(`Pushed \\d+ paths? .*to ${escapeRegExp(target)}.*signed by ${KEY_NAME}`));
      const narinfos = readdirSync(cacheDir).filter((f) => f.endsWith('.narinfo'));
      assert.ok(narinfos.length > 0, 'the cache holds the pushed path');
      for (const f of narinfos) assert.match(readFileSync(path.join(cacheDir, f), 'utf8'), new RegExp(`^Sig: ${KEY_NAME}:`, 'm'), `${f} is signed by the key`);
      await page.locator('.part.activitybar').getByRole('tab', { name: /^Nix Builders/ }).click();
      const row = cachesRow(new RegExp(`^${escapeRegExp(target)}\\s*reachable · key trusted`));
      await row.waitFor({ timeout: 60_000 });
      // The row reads the same before the view's refresh after the push (an empty target is judged by
      // the key pushes sign with); a hover opened on the row before that refresh keeps its old text.
      // So hover again until the tooltip is the one of the pushed cache.
      const tooltip = page.locator('.monaco-hover-content, .custom-hover', { hasText: `signed by ${KEY_NAME}, a trusted key` }).first();
      await eventually(async () => {
        await page.mouse.move(0, 0);
        await row.hover();
        return (await tooltip.waitFor({ timeout: 3_000 }).then(() => true, () => false)) || undefined;
      }, 60_000);
      await screenshot(page, 'caches-view-after-push.png');
    });
  },
);
