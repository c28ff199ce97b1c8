// Headless Debian Chromium driven by playwright-core, and helpers for the VS Code workbench.
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { onTeardown } from './cleanup';
import { chromiumExecutable, ensureResultsDir } from './paths';

export interface BrowserSession {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

/** A fresh browser (fresh profile: nothing remembered from earlier runs) with one page. */
export async function openBrowser(): Promise<BrowserSession> {
  // Chromium writes crash-report folders under XDG_CONFIG_HOME even with a fresh profile: keep
  // them in a folder of ours.
  const home = mkdtempSync(path.join(os.tmpdir(), 'nb-chromium-'));
  const removeHome = () => rmSync(home, { recursive: true, force: true });
  const unregister = onTeardown(removeHome);
  const browser = await chromium.launch({
    executablePath: chromiumExecutable(),
    headless: true,
    env: { ...process.env, XDG_CONFIG_HOME: path.join(home, 'config'), XDG_CACHE_HOME: path.join(home, 'cache') },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-crash-reporter',
      '--disable-breakpad',
    ],
  }).catch((e: unknown) => {
    unregister();
    removeHome();
    throw e;
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  return {
    browser,
    context,
    page,
    close: async () => {
      await browser.close().catch(() => {});
      unregister();
      removeHome();
    },
  };
}

/** Saves a screenshot under test-results/ and returns its path (never throws). */
export async function screenshot(page: Page, name: string): Promise<string | undefined> {
  const file = path.resolve(ensureResultsDir(), name.endsWith('.png') ? name : `${name}.png`);
  try {
    await page.screenshot({ path: file, timeout: 10_000 });
    return file;
  } catch {
    return undefined;
  }
}

/** Waits until the workbench has rendered (activity bar and status bar present). */
export async function waitForWorkbench(page: Page, timeout = 60_000): Promise<void> {
  await page.locator('.monaco-workbench .part.activitybar').first().waitFor({ state: 'visible', timeout });
  await page.locator('.monaco-workbench .part.statusbar').first().waitFor({ state: 'visible', timeout });
}

/** Whether the window is in Restricted Mode (the workspace is not trusted). */
export async function isRestricted(page: Page): Promise<boolean> {
  return page.locator('.statusbar-item', { hasText: 'Restricted Mode' }).first().isVisible();
}

/**
 * Trusts the open folder as its user would: Restricted Mode banner (or status bar item) ->
 * Workspace Trust editor -> "Trust". (In smoke-test-driver mode no startup trust dialog is shown;
 * the window starts in Restricted Mode.) The browser remembers the decision for this folder, so a
 * window opened later in the same browser starts trusted.
 */
export async function trustWorkspace(page: Page, timeout = 30_000): Promise<void> {
  const restricted = page.locator('.statusbar-item', { hasText: 'Restricted Mode' }).first();
  await restricted.waitFor({ state: 'visible', timeout });
  const trust = page.locator('.workspace-trust-editor .workspace-trust-buttons-row .monaco-button', { hasText: /^Trust$/ });
  const manage = page.locator('.monaco-workbench .banner').getByRole('button', { name: 'Manage' });
  if (await manage.isVisible()) await manage.click();
  else await restricted.click();
  await trust.first().click({ timeout });
  await restricted.waitFor({ state: 'hidden', timeout });
  // The trust editor may open as a modal over the workbench: close it as a user would.
  const modal = page.locator('.monaco-modal-editor-block');
  if (await modal.isVisible()) {
    await modal.locator('.codicon-close, .codicon-widget-close').last().click();
    await modal.waitFor({ state: 'hidden', timeout: 10_000 });
  }
}

/** Opens the command palette, retrying F1 because keybindings register late. */
export async function openCommandPalette(page: Page, timeout = 30_000): Promise<void> {
  const input = page.locator('.quick-input-widget .quick-input-box input');
  const deadline = Date.now() + timeout;
  for (;;) {
    await page.locator('.monaco-workbench').first().click({ position: { x: 700, y: 400 } }).catch(() => {});
    await page.keyboard.press('F1');
    try {
      await input.waitFor({ state: 'visible', timeout: 1_000 });
      return;
    } catch {
      if (Date.now() > deadline) throw new Error('the command palette did not open');
    }
  }
}

/** Runs a command by its palette label (e.g. "Nix Builders: Refresh Builders"). */
export async function runCommand(page: Page, label: string): Promise<void> {
  await openCommandPalette(page);
  const input = page.locator('.quick-input-widget .quick-input-box input');
  await input.fill(`>${label}`);
  const row = page.locator('.quick-input-widget .monaco-list-row', { hasText: label }).first();
  await row.waitFor({ state: 'visible', timeout: 10_000 });
  await input.press('Enter');
  await input.waitFor({ state: 'hidden', timeout: 10_000 });
}

/** Texts of the notifications in the notification centre (toasts are hidden in smoke-test mode). */
export async function notificationTexts(page: Page): Promise<string[]> {
  const centre = page.locator('.notifications-center');
  if (!(await centre.isVisible())) {
    await runCommand(page, 'Notifications: Show Notifications');
    await centre.waitFor({ state: 'visible', timeout: 10_000 });
  }
  return page.locator('.notifications-center .notification-list-item-message').allInnerTexts();
}

/**
 * Opens the workbench with the extension (`workbenchUrl`) in a trusted window. Trust is given in a
 * plain window on the folder first (so the extension starts trusted), and again in the extension's
 * window if that one still opens in Restricted Mode: the trust granted just before a navigation is
 * not always stored yet. The extension's "Nix" status bar item shows once it is up, by which time
 * the workbench has decided whether the window is restricted.
 */
export async function openTrustedWorkbench(page: Page, folderUrl: string, workbenchUrl: string): Promise<void> {
  await page.goto(folderUrl, { waitUntil: 'domcontentloaded' });
  await waitForWorkbench(page);
  await trustWorkspace(page);
  await page.goto(workbenchUrl, { waitUntil: 'domcontentloaded' });
  await waitForWorkbench(page);
  await page.locator('.statusbar-item', { hasText: /Nix \d/ }).first().waitFor({ state: 'visible', timeout: 60_000 });
  if (await isRestricted(page)) await trustWorkspace(page);
}
