// UI test: adding, editing and pinning the host key of a builder from the Builders view writes the
// machines file on disk: the other lines, comments and order kept, the previous text in `.bak`.
// The workspace uses a machines file of this test's own (b1 with its host key pinned, b3 without)
// and an ssh config whose known_hosts knows b1 and b2 but not b3. The flows are driven by what they
// ask (each question recognised by its text, in whatever order they come).
import * as assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { Locator, Page } from 'playwright-core';
import { screenshot, type BrowserSession } from '../browser';
import { escapeRegExp, eventually, labNixEnv, nixBuildersViewRows, openTrustedSession, uiEnv, withScreenshot } from './env';

const env = uiEnv();
let session: BrowserSession;
let page: Page;
const settingsFile = path.join(env.workspace, '.vscode', 'settings.json');
const originalSettings = readFileSync(settingsFile, 'utf8');

const dir = mkdtempSync(path.join(os.tmpdir(), 'nb-ui-editing-'));
const machines = path.join(dir, 'machines');
const labSettings = JSON.parse(originalSettings) as { 'nixBuilders.machinesFiles': string[] };
/** The lab's machines lines by builder name: column 8 is its host key. */
const labLines = new Map(
  readFileSync(labSettings['nixBuilders.machinesFiles'][0]!, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('ssh://'))
    .map((l) => [new URL(l.split(/\s+/)[0]!).hostname, l.split(/\s+/)] as const),
);
const lab = (name: string) => {
  const cols = labLines.get(name);
  assert.ok(cols, `the lab has ${name}`);
  return { uri: cols[0]!, key: cols[2]!, hostKey: cols[7]! };
};

const INITIAL = [
  '# Builders of the editing test: this comment stays on top',
  `${lab('b1').uri} x86_64-linux ${lab('b1').key} 2 2 kvm,big-parallel - ${lab('b1').hostKey}`,
  '# b3 has no pinned host key, and known_hosts does not know it',
  `${lab('b3').uri} x86_64-linux ${lab('b3').key} 1 1 big-parallel - -`,
  '',
].join('\n');

before(async () => {
  // An ssh config like the lab's, with a known_hosts that lacks b3.
  const nixEnv = labNixEnv(env);
  const labSshConfig = /-F\s+(\S+)/.exec(nixEnv.NIX_SSHOPTS ?? '')?.[1];
  assert.ok(labSshConfig, `NIX_SSHOPTS names the lab's ssh config: ${nixEnv.NIX_SSHOPTS}`);
  const knownHosts = path.join(dir, 'known_hosts');
  const labKnownHosts = readFileSync(/UserKnownHostsFile\s+(\S+)/.exec(readFileSync(labSshConfig, 'utf8'))![1]!, 'utf8');
  writeFileSync(knownHosts, labKnownHosts.split('\n').filter((l) => !l.startsWith('b3 ')).join('\n'));
  const sshConfig = path.join(dir, 'ssh_config');
  writeFileSync(sshConfig, readFileSync(labSshConfig, 'utf8').replace(/UserKnownHostsFile\s+\S+/g, `UserKnownHostsFile ${knownHosts}`));
  // Nix's own configuration without builders: only this test's machines file lists any.
  const confDir = path.join(dir, 'nix-conf');
  writeFileSync(machines, INITIAL);
  mkdirSync(confDir);
  writeFileSync(path.join(confDir, 'nix.conf'), 'build-users-group =\nsubstituters =\nbuilders =\n');
  writeFileSync(
    settingsFile,
    JSON.stringify(
      { ...JSON.parse(originalSettings), 'nixBuilders.env': { ...nixEnv, NIX_CONF_DIR: confDir, NIX_SSHOPTS: `-F ${sshConfig}` }, 'nixBuilders.machinesFiles': [machines] },
      null,
      2,
    ),
  );
  session = await openTrustedSession(env, 'ui-editing-open-failure');
  page = session.page;
  await page.locator('.part.activitybar').getByRole('tab', { name: /^Nix Builders/ }).click();
});

after(async () => {
  writeFileSync(settingsFile, originalSettings);
  await session?.close();
});

const builderRow = (name: string) =>
  nixBuildersViewRows(page, 'Builders').filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${escapeRegExp(name)}$`) }) }).first();

/** Runs an item of a builder row's context menu. */
async function fromContextMenu(name: string, item: string): Promise<void> {
  await builderRow(name).click({ button: 'right' });
  // The menu ignores a click that comes right after it opened (the right button's release): the
  // item is chosen with the keyboard, as the menu has the focus.
  const entry = page.locator('.context-view .action-item', { has: page.locator('.action-label', { hasText: item }) }).first();
  await entry.hover();
  await eventually(async () => ((await entry.getAttribute('class'))?.includes('focused') ? true : undefined), 10_000);
  await page.keyboard.press('Enter');
  await page.locator('.context-view .monaco-menu').waitFor({ state: 'hidden', timeout: 10_000 });
}

interface Answer {
  /** Matches the question: a quick input's title, placeholder and prompt, or a dialog's message. */
  when: RegExp;
  answer: (q: Question) => Promise<void>;
}
interface Question {
  kind: 'input' | 'dialog';
  text: string;
  /** The quick input's text box, or the dialog. */
  at: Locator;
}

/** What the workbench asks right now: a modal dialog, or a visible quick input. */
async function currentQuestion(): Promise<Question | undefined> {
  const dialog = page.locator('.monaco-dialog-box');
  if (await dialog.isVisible()) return { kind: 'dialog', text: (await dialog.innerText()).replace(/\s+/g, ' '), at: dialog };
  const widget = page.locator('.quick-input-widget');
  if (!(await widget.isVisible())) return undefined;
  const input = widget.locator('.quick-input-box input');
  // An input box asks in its prompt (the message below the box), a quick pick in its placeholder.
  // The message comes first: between two questions the widget shows the next one's prompt under
  // the last one's placeholder for a moment.
  const title = await widget.locator('.quick-input-title').innerText().catch(() => '');
  const message = await widget.locator('.quick-input-message').innerText().catch(() => '');
  const question = message.trim() ? message : ((await input.getAttribute('placeholder')) ?? '');
  return { kind: 'input', text: `${title} | ${question}`.replace(/\s+/g, ' '), at: input };
}

/**
 * Answers the flow's questions until `done` says it is over; each question once, by the first
 * answer whose `when` matches. Returns the questions asked, in order.
 */
async function answerFlow(answers: Answer[], done: () => boolean, timeoutMs = 90_000): Promise<string[]> {
  const asked: string[] = [];
  const deadline = Date.now() + timeoutMs;
  let previous = '';
  for (;;) {
    if (done()) return asked;
    if (Date.now() > deadline) throw new Error(`the flow did not end within ${timeoutMs} ms; asked: ${asked.join(' || ')}`);
    const q = await currentQuestion().catch(() => undefined);
    if (!q || q.text === previous) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    const a = answers.find((x) => x.when.test(q.text));
    if (!a) {
      // Something else is on screen for a moment (the palette, a progress-only widget).
      if (q.kind === 'dialog') throw new Error(`unexpected dialog: ${q.text}`);
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    asked.push(q.text);
    previous = q.text;
    await a.answer(q);
  }
}

const rows = () => page.locator('.quick-input-widget .quick-input-list .monaco-list-row');
const rowLabelled = (label: string) => rows().filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${escapeRegExp(label)}$`) }) }).first();
const accept = (q: Question) => q.at.press('Enter');
const typeIn = (value: string) => async (q: Question) => {
  await q.at.fill(value);
  await q.at.press('Enter');
};
const pick = (label: string) => async () => {
  await rowLabelled(label).click();
};
/** In a multi-select list: these checked (others as they are), then OK. */
const check = (...labels: string[]) => async (q: Question) => {
  for (const label of labels) {
    const row = rowLabelled(label);
    await row.waitFor({ timeout: 10_000 });
    if ((await row.getAttribute('aria-checked')) !== 'true') await row.click();
    await eventually(async () => ((await row.getAttribute('aria-checked')) === 'true' ? true : undefined), 10_000);
  }
  await q.at.press('Enter');
};
const button = (label: string) => async (q: Question) => {
  await q.at.locator('.monaco-button', { hasText: label }).first().click();
};

const machinesText = () => readFileSync(machines, 'utf8');
const columns = (line: string | undefined) => (line ?? '').trim().split(/\s+/);
function changed(before: string): () => boolean {
  return () => machinesText() !== before;
}

test('Add Builder probes the machine, suggests what it found and appends the line', { timeout: 180_000 }, async () => {
  await withScreenshot(page, 'ui-add-builder-failure', async () => {
    await builderRow('b1').waitFor({ timeout: 60_000 });
    const before = machinesText();
    const header = page.locator('[id="workbench.view.extension.nixBuilders"] .pane-header[aria-label^="Builders"]');
    await header.hover();
    await header.locator('.action-label[aria-label="Add Builder…"]').click();
    let probed: string[] = [];
    const asked = await answerFlow(
      [
        { when: /Store URI/i, answer: typeIn('ssh://b2') },
        { when: /SSH key/i, answer: pick('Default') },
        {
          when: /Systems/i,
          answer: async (q) => {
            // The probe ran: what it found is marked so.
            await rows().first().waitFor();
            probed = (await rows().filter({ hasText: 'found by the probe' }).locator('.label-name').allInnerTexts()).map((t) => t.trim());
            await screenshot(page, 'add-builder-systems.png');
            await check('x86_64-linux', 'aarch64-linux')(q);
          },
        },
        { when: /Max jobs/i, answer: typeIn('3') },
        { when: /Speed factor/i, answer: accept },
        { when: /Mandatory features/i, answer: accept },
        { when: /features/i, answer: accept },
        { when: /presented the host key .*Pin/i, answer: button('Pin This Key') },
        { when: /machines file/i, answer: pick(machines) },
      ],
      changed(before),
    );
    console.log(`Add Builder asked: ${asked.join(' || ')}`);
    assert.deepEqual([...probed].sort(), ['aarch64-linux', 'x86_64-linux'], 'the probe found both of b2\'s systems');

    const after = machinesText().split('\n');
    const old = before.split('\n').filter(Boolean);
    assert.deepEqual(after.slice(0, old.length), old, 'the lines before are kept, comments and order included');
    const added = columns(after[old.length]);
    assert.equal(added[0], 'ssh://b2');
    assert.deepEqual(added[1]?.split(',').sort(), ['aarch64-linux', 'x86_64-linux']);
    assert.equal(added[3], '3');
    // known_hosts knows b2's key: nothing to pin (column 8 empty), or the key it presented.
    assert.ok([undefined, '-', lab('b2').hostKey].includes(added[7]), `column 8 of ${after[old.length]}`);
    assert.equal(after.slice(old.length + 1).join('\n'), '', 'nothing else was added');
    assert.equal(readFileSync(`${machines}.bak`, 'utf8'), before, 'the backup holds the file as it was');
    // The new builder is listed.
    await builderRow('b2').waitFor({ timeout: 60_000 });
  });
});

test('Edit Builder changes one column of that line only', { timeout: 180_000 }, async () => {
  await withScreenshot(page, 'ui-edit-builder-failure', async () => {
    const before = machinesText();
    const b1Before = columns(before.split('\n')[1]);
    await fromContextMenu('b1', 'Edit Builder…');
    const asked = await answerFlow(
      [
        { when: /Store URI/i, answer: accept },
        { when: /SSH key/i, answer: async () => rowLabelled(lab('b1').key).click() },
        { when: /Systems/i, answer: accept },
        { when: /Max jobs/i, answer: typeIn('7') },
        { when: /Speed factor/i, answer: accept },
        { when: /Mandatory features/i, answer: accept },
        { when: /features/i, answer: accept },
      ],
      changed(before),
    );
    console.log(`Edit Builder asked: ${asked.join(' || ')}`);
    const after = machinesText().split('\n');
    const old = before.split('\n');
    assert.equal(after.length, old.length, 'no line added or removed');
    for (const i of old.keys()) if (i !== 1) assert.equal(after[i], old[i], `line ${i + 1} is kept`);
    const b1 = columns(after[1]);
    assert.equal(b1[3], '7', 'max-jobs is 7');
    // The other columns are kept (features as a set: the list offers them in the probe's order).
    const FEATURES = 5;
    const MAX_JOBS = 3;
    const sameColumns = (cols: string[]) => cols.map((c, i) => (i === FEATURES ? c.split(',').sort().join(',') : c)).filter((_, i) => i !== MAX_JOBS);
    assert.deepEqual(sameColumns(b1), sameColumns(b1Before), 'the other columns are kept');
    assert.equal(readFileSync(`${machines}.bak`, 'utf8'), before, 'the backup holds the file as it was');
  });
});

test('Pin Host Key of a builder whose key is unknown shows the fingerprint and writes column 8', { timeout: 180_000 }, async () => {
  await withScreenshot(page, 'ui-pin-host-key-failure', async () => {
    // The rows of a tree are rendered only when in view: collapse the builders opened before.
    const header = page.locator('[id="workbench.view.extension.nixBuilders"] .pane-header[aria-label^="Builders"]');
    await header.hover();
    const collapse = header.locator('.action-label[aria-label^="Collapse All"]');
    if ((await collapse.getAttribute('aria-disabled')) !== 'true') await collapse.click();
    const b3 = builderRow('b3');
    await b3.locator('.label-description', { hasText: /host key is not known/ }).waitFor({ timeout: 90_000 });
    await screenshot(page, 'builders-view-unknown-host-key.png');
    const before = machinesText();
    await fromContextMenu('b3', 'Pin Host Key…');
    let dialogText = '';
    await answerFlow(
      [
        {
          when: /Pin b3's host key/,
          answer: async (q) => {
            dialogText = q.text;
            await button('Pin This Key')(q);
          },
        },
      ],
      changed(before),
    );
    assert.match(dialogText, /ssh-ed25519 SHA256:[A-Za-z0-9+/]{43}/, 'the dialog shows the fingerprint');
    const after = machinesText().split('\n');
    const old = before.split('\n');
    const b3Line = old.findIndex((l) => l.startsWith(lab('b3').uri));
    assert.equal(after.length, old.length, 'no line added or removed');
    for (const i of old.keys()) if (i !== b3Line) assert.equal(after[i], old[i], `line ${i + 1} is kept`);
    const pinned = columns(after[b3Line]);
    assert.equal(pinned[7], lab('b3').hostKey, 'column 8 is b3\'s host key');
    assert.deepEqual(pinned.slice(0, 7), columns(old[b3Line]).slice(0, 7), 'the other columns are kept');
    assert.equal(readFileSync(`${machines}.bak`, 'utf8'), before, 'the backup holds the file as it was');
    // Checked again with the pinned key: the host key is no longer the problem (b3's is trust).
    await b3.locator('.label-description', { hasText: /not (in trusted-users|trusted)/ }).waitFor({ timeout: 90_000 });
  });
});
