// Editor helpers of the UI tests: building a file's attribute through its code lens.
import type { Page } from 'playwright-core';
import { openFromExplorer } from './env';

/** Opens a workspace file from the Explorer (Quick Open's index may not have a new file yet) and clicks its first Build lens (or `lens`). */
export async function openFromExplorerAndBuild(p: Page, file: string, lensText: RegExp = /^Build$/): Promise<void> {
  await openFromExplorer(p, file);
  const lens = p.locator('.codelens-decoration a', { hasText: lensText });
  await lens.first().waitFor({ timeout: 60_000 });
  await lens.first().click();
}
