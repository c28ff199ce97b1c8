// What test/e2e/run.ts hands to the UI tests, and helpers they share.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { openBrowser, openCommandPalette, openTrustedWorkbench, runCommand, screenshot, type BrowserSession } from '../browser';

export interface UiEnv {
  /** code-server's base URL. */
  codeServerUrl: string;
  /** The demo workspace folder (a temporary copy). */
  workspace: string;
  /** The workbench on that folder, without the extension under development. */
  folderUrl: string;
  /** The workbench on that folder with the extension loaded (dev path or installed .vsix). */
  workbenchUrl: string;
  /** The lab's builders; storeRoot is the host path of a builder's /nix (its outputs are in <storeRoot>/store). */
  builders: Array<{ name: string; uri: string; systems: string[]; storeRoot: string }>;
  /** code-server's Remote settings file: the user settings that machine-scoped settings are read from. */
  machineSettings: string;
}

export function uiEnv(): UiEnv {
  const get = (name: string) => {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is not set: run the UI tests through test/e2e/run.ts (npm run test:e2e -- --only=ui)`);
    return v;
  };
  return {
    codeServerUrl: get('E2E_CODE_SERVER_URL'),
    workspace: get('E2E_WORKSPACE'),
    folderUrl: get('E2E_FOLDER_URL'),
    workbenchUrl: get('E2E_WORKBENCH_URL'),
    builders: JSON.parse(get('E2E_LAB_BUILDERS')) as UiEnv['builders'],
    machineSettings: get('E2E_MACHINE_SETTINGS'),
  };
}

/** Runs `fn`; when it throws, keeps a screenshot test-results/<name>.png and rethrows. */
export async function withScreenshot<T>(page: Page, name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const file = await screenshot(page, name);
    console.error(`screenshot of the failure: ${file ?? '(none could be taken)'}`);
    throw e;
  }
}

/**
 * A fresh browser on the workbench with the extension, trusted as a user would trust the demo
 * folder (a fresh browser starts in Restricted Mode). `shot` names the screenshot kept on failure.
 */
export async function openTrustedSession(env: UiEnv, shot: string): Promise<BrowserSession> {
  const session = await openBrowser();
  await withScreenshot(session.page, shot, () => openTrustedWorkbench(session.page, env.folderUrl, env.workbenchUrl));
  return session;
}

/** The rows of one view ("Builders", "Builds") of the Nix Builders container. */
export function nixBuildersViewRows(page: Page, view: string) {
  return page
    .locator('[id="workbench.view.extension.nixBuilders"] .pane', { has: page.locator(`.pane-header[aria-label^="${view}"]`) })
    .locator('.monaco-list-row[role="treeitem"]');
}

/** The text of every after-line decoration in the editor (rendered as CSS ::after content); runs in the page. */
function inlineTextsInPage(): string[] {
  // DOM names come from the browser's globals.
  const g = globalThis as unknown as {
    document: { querySelectorAll(s: string): Iterable<unknown> };
    getComputedStyle(e: unknown, pseudo: string): { content: string };
  };
  return [...g.document.querySelectorAll('.monaco-editor .view-lines span')]
    .map((e) => g.getComputedStyle(e, '::after').content)
    .filter((c) => c && c !== 'none' && c !== 'normal')
    .map((c) => c.replace(/^"|"$/g, ''));
}

/** Waits until an after-line decoration matches `re`, checked by the browser on each animation frame. */
export async function waitForInline(p: Page, re: RegExp, timeoutMs: number): Promise<string> {
  // An expression, so that the one DOM reader above runs in the page.
  const find = `(${inlineTextsInPage.toString()})().find((t) => ${re.toString()}.test(t))`;
  try {
    return (await (await p.waitForFunction(find, undefined, { timeout: timeoutMs })).jsonValue()) as string;
  } catch (e) {
    const have = await p.evaluate(inlineTextsInPage).catch(() => []);
    throw new Error(`no inline status matching ${re} (have: ${JSON.stringify(have)}): ${(e as Error).message.split('\n')[0]}`);
  }
}

/** Opens a workspace file from the Explorer (Quick Open's index may not have a new file yet). */
export async function openFromExplorer(p: Page, file: string): Promise<void> {
  await runCommand(p, 'View: Show Explorer');
  await p.locator('.explorer-folders-view .monaco-list-row', { hasText: file }).first().click();
}

/** Polls until `probe` returns a value (waits on the page's state, not on time). */
export async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`no result within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The `nixBuilders.env` of the workspace as run.ts wrote it: the lab's NIX_CONF_DIR, NIX_SSHOPTS, TMPDIR. */
export function labNixEnv(env: UiEnv): Record<string, string> {
  const settings = JSON.parse(readFileSync(path.join(env.workspace, '.vscode', 'settings.json'), 'utf8')) as { 'nixBuilders.env': Record<string, string> };
  return settings['nixBuilders.env'];
}

/** The output path of attribute `attr` of a workspace file, as this machine's Nix (with the lab's configuration) instantiates it. */
export function outPathOf(env: UiEnv, file: string, attr: string): string {
  const nixEnv = { ...process.env, ...labNixEnv(env) };
  const drv = execFileSync('nix-instantiate', [path.join(env.workspace, file), '-A', attr], { env: nixEnv, encoding: 'utf8' }).trim().split('\n').pop() ?? '';
  return execFileSync('nix-store', ['--query', '--outputs', drv], { env: nixEnv, encoding: 'utf8' }).trim();
}

/** Whether a store path is in that lab builder's own store. */
export function inBuilderStore(env: UiEnv, builder: string, storePath: string): boolean {
  const b = env.builders.find((x) => x.name === builder);
  if (!b) throw new Error(`no lab builder ${builder} (have ${env.builders.map((x) => x.name).join(', ')})`);
  return existsSync(path.join(b.storeRoot, 'store', path.basename(storePath)));
}

/**
 * Runs a command by its palette label when the command asks something in a quick pick or input
 * box of its own: resolves once the palette has given way to that question (`placeholder` or prompt).
 */
export async function runCommandThatAsks(p: Page, label: string, question: string | RegExp): Promise<void> {
  await openCommandPalette(p);
  const input = p.locator('.quick-input-widget .quick-input-box input');
  await input.fill(`>${label}`);
  await p.locator('.quick-input-widget .monaco-list-row', { hasText: label }).first().waitFor({ state: 'visible', timeout: 10_000 });
  await input.press('Enter');
  await quickInputAsking(p, question).waitFor({ state: 'visible', timeout: 60_000 });
}

/** The quick input's text box while it asks `question` (its placeholder, or its prompt below). */
export function quickInputAsking(p: Page, question: string | RegExp) {
  const re = typeof question === 'string' ? new RegExp(`^${escapeRegExp(question)}`) : question;
  return p
    .locator('.quick-input-widget')
    .filter({ has: p.locator('.quick-input-box input').and(p.getByPlaceholder(re)).or(p.locator('.quick-input-message', { hasText: re })) })
    .locator('.quick-input-box input');
}
