// UI test: a derivation that no configured machine can build shows "requires aarch64-linux" in
// the Problems panel of a real VS Code, and the problem goes away when a builder for
// aarch64-linux is added to the machines file.
import * as assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { openCommandPalette, screenshot, type BrowserSession } from '../browser';
import { openTrustedSession, uiEnv, withScreenshot } from './env';

const env = uiEnv();
let session: BrowserSession;
let page: Page;
const settingsFile = path.join(env.workspace, '.vscode', 'settings.json');
const originalSettings = readFileSync(settingsFile, 'utf8');

before(async () => {
  session = await openTrustedSession(env, 'ui-diagnostics-open-failure');
  page = session.page;
});

after(async () => {
  writeFileSync(settingsFile, originalSettings);
  await session?.close();
});

async function openFile(p: Page, name: string): Promise<void> {
  await openCommandPalette(p);
  const input = p.locator('.quick-input-widget .quick-input-box input');
  await input.fill(name);
  await p.locator('.quick-input-widget .monaco-list-row', { hasText: name }).first().waitFor({ timeout: 20_000 });
  await input.press('Enter');
  await p.locator('.tab', { hasText: name }).first().waitFor({ timeout: 20_000 });
}

const problemRows = (p: Page, text: string) => p.locator('.markers-panel .monaco-list-row', { hasText: text });

test('the Problems panel shows "requires aarch64-linux" until an aarch64-linux builder is added', { timeout: 120_000 }, async () => {
  await withScreenshot(page, 'ui-diagnostics-failure', async () => {
    // This workspace's own Nix configuration: the lab's builders without the aarch64 one (b2).
    const settings = JSON.parse(originalSettings) as { 'nixBuilders.env': Record<string, string>; 'nixBuilders.machinesFiles': string[] };
    const labMachines = readFileSync(settings['nixBuilders.machinesFiles'][0] as string, 'utf8').split('\n');
    const b2Line = labMachines.find((l) => /^ssh:\/\/b2\s/.test(l));
    assert.ok(b2Line, 'the lab has b2');
    const confDir = mkdtempSync(path.join(env.workspace, '.nix-conf-'));
    const machines = path.join(confDir, 'machines');
    writeFileSync(machines, `# builders for this test\n${labMachines.filter((l) => /^ssh:\/\/b1\s/.test(l)).join('\n')}\n`);
    writeFileSync(path.join(confDir, 'nix.conf'), `build-users-group =\nsubstituters =\nbuilders = @${machines}\n`);
    writeFileSync(
      settingsFile,
      JSON.stringify({ ...settings, 'nixBuilders.env': { ...settings['nixBuilders.env'], NIX_CONF_DIR: confDir }, 'nixBuilders.machinesFiles': [] }, null, 2),
    );
    writeFileSync(
      path.join(env.workspace, 'arm.nix'),
      '{\n  hello-arm = derivation { name = "e2e-arm"; system = "aarch64-linux"; builder = "/bin/sh"; args = [ "-c" ": > $out" ]; };\n}\n',
    );

    await openFile(page, 'arm.nix');
    await page.keyboard.press('Control+Shift+M');
    const requires = problemRows(page, 'requires aarch64-linux: no builder provides it');
    await requires.first().waitFor({ timeout: 60_000 });
    await screenshot(page, 'problems-requires-aarch64.png');

    // Add the aarch64 builder: the error goes, and the file says where it will build instead.
    writeFileSync(machines, `${readFileSync(machines, 'utf8')}${b2Line}\n`);
    await requires.first().waitFor({ state: 'detached', timeout: 60_000 });
    await problemRows(page, 'builds on b2 (aarch64-linux)').first().waitFor({ timeout: 60_000 });
    await screenshot(page, 'problems-after-adding-b2.png');
  });
});
