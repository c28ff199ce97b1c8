// What test/e2e/run.ts hands to the UI tests, and helpers they share.
import type { Page } from 'playwright-core';
import { openBrowser, openTrustedWorkbench, screenshot, type BrowserSession } from '../browser';

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
