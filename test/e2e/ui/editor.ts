// Editor helpers of the UI tests: the inline build status after a line, and building a file's
// attribute through its code lens.
import type { Page } from 'playwright-core';
import { runCommand } from '../browser';

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

/** Opens a workspace file from the Explorer (Quick Open's index may not have a new file yet) and clicks its first Build lens (or `lens`). */
export async function openFromExplorerAndBuild(p: Page, file: string, lensText: RegExp = /^Build$/): Promise<void> {
  await runCommand(p, 'View: Show Explorer');
  await p.locator('.explorer-folders-view .monaco-list-row', { hasText: file }).first().click();
  const lens = p.locator('.codelens-decoration a', { hasText: lensText });
  await lens.first().waitFor({ timeout: 60_000 });
  await lens.first().click();
}
