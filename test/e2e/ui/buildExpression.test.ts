// UI test: "Build Expression…" from the palette builds a typed expression (a file of the workspace
// imported by a relative path) on the builders typed in its second box, through the server's
// nixBuilders.server.buildExpression command: only b1 is given, so the output is in b1's store.
import * as assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { notificationTexts, screenshot, type BrowserSession } from '../browser';
import { builderMarker, saltedDerivation } from '../../lab/lab';
import { eventually, inBuilderStore, openTrustedSession, quickInputAsking, runCommandThatAsks, uiEnv, withScreenshot } from './env';

const env = uiEnv();
let session: BrowserSession;
let page: Page;

before(async () => {
  session = await openTrustedSession(env, 'ui-build-expression-open-failure');
  page = session.page;
});

after(async () => {
  await session?.close();
});

/** b1's entry of the lab's machines file (the workspace's nixBuilders.machinesFiles). */
function machinesEntry(builder: string): string {
  const settings = JSON.parse(readFileSync(path.join(env.workspace, '.vscode', 'settings.json'), 'utf8')) as { 'nixBuilders.machinesFiles': string[] };
  const lines = readFileSync(settings['nixBuilders.machinesFiles'][0]!, 'utf8').split('\n');
  const line = lines.find((l) => l.split(/\s+/)[0] === `ssh://${builder}`);
  assert.ok(line, `the lab's machines file has ${builder}: ${lines.join(' | ')}`);
  return line;
}

test('Build Expression builds the typed expression on the typed builders only', { timeout: 180_000 }, async () => {
  await withScreenshot(page, 'ui-build-expression-failure', async () => {
    const salt = `${Date.now()}`;
    writeFileSync(path.join(env.workspace, 'expr-pkgs.nix'), `{ tool = ${saltedDerivation({ system: 'x86_64-linux', name: `ui-expr-${salt}`, salt })}; }\n`);
    await runCommandThatAsks(page, 'Nix Builders: Build Expression…', /derivation, or a list or attribute set/);
    const expression = quickInputAsking(page, /derivation, or a list or attribute set/);
    await expression.fill('(import ./expr-pkgs.nix).tool');
    await expression.press('Enter');
    const builders = quickInputAsking(page, /Builders for this build/);
    await builders.waitFor({ state: 'visible', timeout: 10_000 });
    await builders.fill(machinesEntry('b1'));
    await builders.press('Enter');
    const built = await eventually(async () => (await notificationTexts(page)).find((t) => /^Built: \/nix\/store\//.test(t) || /failed/.test(t)), 150_000);
    assert.match(built, /^Built: \/nix\/store\/\S+-ui-expr-/);
    const out = /\/nix\/store\/\S+/.exec(built)![0];
    assert.ok(inBuilderStore(env, 'b1', out), `${out} is in b1's store`);
    assert.ok(!inBuilderStore(env, 'b2', out), `${out} is not in b2's store`);
    assert.equal(readFileSync(out, 'utf8').trim(), builderMarker('b1'));
    await screenshot(page, 'build-expression-built-on-b1.png');
  });
});
