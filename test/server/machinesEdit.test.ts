// A writer of the machines file killed (SIGKILL) at any moment leaves the file either exactly as it
// was or exactly as edited: never truncated, never mixed. A child Node process edits a large
// machines file in a loop and prints "writing <i>" before and "wrote <i>" after each edit; the
// test kills it at a different moment after one of those events each time, then checks the file,
// its backup and the temp files left behind.
//
// A killed writer may leave its temp file: `.<name>.nix-builders-<16 hex>.tmp` (or
// `.<name>.bak.nix-builders-….tmp` for the backup) next to the file. The next edit removes those
// older than a minute and keeps younger ones (they may belong to a writer that is still running).
//
// Over LSP, an edit names the entry's text as it was listed: the server refuses to overwrite an
// entry that moved or changed since.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { watch } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { editMachinesFile, tempFilePattern } from '../../language-server/builders/machinesEdit';
import { parseMachines } from '../../language-server/nix/machines';
import { StdioLspClient } from './lspClient';

const MODULE = path.join(__dirname, '..', '..', 'language-server', 'builders', 'machinesEdit.ts');
const LINES = 20_000;
const TOGGLE_LINE = 10_000;
const A = 'ssh://toggle x86_64-linux - 1';
const B = 'ssh://toggle x86_64-linux,aarch64-linux /root/.ssh/id_toggle 8 2 kvm,big-parallel - c3NoLWVkMjU1MTkgQUFBQQ==';
const KILLS = 20;

function machinesText(toggle: string): string {
  const lines: string[] = ['# A large machines file: every write takes measurable time'];
  for (let i = 1; i < LINES; i++) {
    if (i === TOGGLE_LINE) lines.push(toggle);
    else if (i % 100 === 0) lines.push(`# group ${i / 100}`);
    else if (i % 7 === 0) lines.push(`ssh://b${i}a x86_64-linux ; ssh-ng://b${i}b aarch64-linux - 2`);
    else lines.push(`ssh://builder-${i}.example.org x86_64-linux,i686-linux /root/.ssh/id_builder ${(i % 16) + 1} 1 kvm,big-parallel - c3NoLWVkMjU1MTkgQUFBQQ==`);
  }
  return `${lines.join('\n')}\n`;
}

const TEXT = { A: machinesText(A), B: machinesText(B) };
type State = keyof typeof TEXT;
const other = (s: State): State => (s === 'A' ? 'B' : 'A');

function stateOf(text: string): State | undefined {
  return text === TEXT.A ? 'A' : text === TEXT.B ? 'B' : undefined;
}

// The child keeps the text it last wrote and passes it as expectedText, toggling one entry.
const CHILD = `
const { readFileSync } = require('node:fs');
const { editMachinesFile } = require(${JSON.stringify(MODULE)});
const [file, line, a, b] = process.argv.slice(1);
let text = readFileSync(file, 'utf8');
(async () => {
  for (let i = 0; ; i++) {
    const entry = text.split('\\n')[Number(line)] === a ? b : a;
    process.stdout.write('writing ' + i + '\\n');
    const expected = text.split('\\n')[Number(line)];
    const r = await editMachinesFile(file, { kind: 'replace', line: Number(line), column: 0, expected, entry }, { expectedText: text });
    if (!r.ok) {
      process.stdout.write('failed ' + JSON.stringify(r) + '\\n');
      process.exit(2);
    }
    text = r.newText;
    process.stdout.write('wrote ' + i + '\\n');
  }
})();
`;

interface Run {
  /** Edits completed ("wrote i" printed). */
  completed: number;
  /** Killed between "writing i" and "wrote i". */
  midEdit: boolean;
  /** Milliseconds from "writing 0" to "wrote 0", and from the first temp file to the file's rename. */
  firstEditMs: number | undefined;
  writeWindowMs: number | undefined;
}

/**
 * What the kill waits for: the child printing `writing <index>`, or the `index`-th (0-based) temp
 * file of the machines file appearing in the folder (inotify, through fs.watch). Then it busy-waits
 * `delayMs` (setTimeout cannot wait less than a millisecond) and sends SIGKILL. With delayMs
 * Infinity the child is killed once it printed `wrote <index>` (calibration).
 */
interface Trigger {
  on: 'writing' | 'temp';
  index: number;
  delayMs: number;
}

function runAndKill(file: string, trigger: Trigger): Promise<Run> {
  return new Promise((resolve, reject) => {
    const tempPattern = tempFilePattern(file);
    const started = new Set<string>();
    let firstTemp: bigint | undefined;
    let writeWindowMs: number | undefined;
    let killed = false;
    const fire = () => {
      if (Number.isFinite(trigger.delayMs)) {
        const until = process.hrtime.bigint() + BigInt(Math.round(trigger.delayMs * 1e6));
        while (process.hrtime.bigint() < until) {
          // busy-wait
        }
      }
      killed = true;
      child.kill('SIGKILL');
    };
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', CHILD, file, String(TOGGLE_LINE), A, B], {
      cwd: path.join(__dirname, '..', '..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Watching starts in the same tick as the child, long before it can create a file.
    const watcher = watch(path.dirname(file), (_event, name) => {
      const now = process.hrtime.bigint();
      if (name === null) return;
      if (tempPattern.test(name) && !started.has(name)) {
        started.add(name);
        firstTemp ??= now;
        if (!killed && trigger.on === 'temp' && started.size === trigger.index + 1) fire();
      } else if (name === path.basename(file) && firstTemp !== undefined && writeWindowMs === undefined) {
        writeWindowMs = Number(now - firstTemp) / 1e6;
      }
    });
    let out = '';
    let err = '';
    let firstWriting: bigint | undefined;
    let firstEditMs: number | undefined;
    const guard = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child never reached its kill point: ${out} ${err}`));
    }, 15_000);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (err += d));
    child.stdout.on('data', (d: string) => {
      const seen = out.length;
      out += d;
      const now = process.hrtime.bigint();
      for (const line of out.slice(seen).split('\n')) {
        if (line === 'writing 0') firstWriting = now;
        if (line === 'wrote 0' && firstWriting !== undefined) firstEditMs = Number(now - firstWriting) / 1e6;
        if (killed) continue;
        if (trigger.on === 'writing' && Number.isFinite(trigger.delayMs) && line === `writing ${trigger.index}`) fire();
        if (trigger.on === 'writing' && !Number.isFinite(trigger.delayMs) && line === `wrote ${trigger.index}`) fire();
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      watcher.close();
      const lines = out.split('\n').filter((l) => l.length > 0);
      const failed = lines.find((l) => l.startsWith('failed'));
      if (failed || !killed || signal !== 'SIGKILL') {
        reject(new Error(`child ended by itself (code ${code}, signal ${signal}): ${failed ?? ''} ${err}`));
        return;
      }
      const completed = lines.filter((l) => l.startsWith('wrote ')).length;
      const writing = lines.filter((l) => l.startsWith('writing ')).length;
      resolve({ completed, midEdit: writing > completed, firstEditMs, writeWindowMs });
    });
  });
}

async function leftovers(dir: string, file: string): Promise<string[]> {
  const names = await readdir(dir);
  const temp = [tempFilePattern(file), tempFilePattern(`${file}.bak`)];
  const unexpected = names.filter((n) => n !== 'machines' && n !== 'machines.bak' && !temp.some((p) => p.test(n)));
  assert.deepEqual(unexpected, [], 'only the file, its backup and our own temp files are in the folder');
  return names.filter((n) => temp.some((p) => p.test(n)));
}

test('a writer killed at any moment leaves the old or the new file, never a broken one; stale temp files are cleaned up later', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nix-builders-kill-'));
  try {
    const file = path.join(dir, 'machines');
    await writeFile(file, TEXT.A);
    assert.equal(parseMachines(TEXT.A).entries.filter((e) => e.error).length, 0);
    let state: State = 'A';

    // Calibrate: how long do one edit, and the part of it that writes (temp file to rename), take here?
    const calibration = await runAndKill(file, { on: 'writing', index: 1, delayMs: Infinity });
    state = calibration.completed % 2 === 0 ? state : other(state);
    assert.equal(stateOf(await readFile(file, 'utf8')), state);
    const editMs = calibration.firstEditMs ?? 100;
    const writeMs = calibration.writeWindowMs ?? 10;
    t.diagnostic(`one edit of a ${LINES}-line file takes ~${editMs.toFixed(1)} ms, ~${writeMs.toFixed(1)} ms of it from temp file to rename`);

    let midEdit = 0;
    let leftTemp = 0;
    const seenTemps = new Set<string>();
    for (let i = 0; i < KILLS; i++) {
      // Even runs: after "writing", from at once to past the end of the edit (reading, parsing, writing).
      // Odd runs: after the temp file appears, from at once to past the rename (write, fsync, backup, rename).
      // Alternately during the child's first edit (cold) and its second one (warm).
      const step = Math.floor(i / 2) / (KILLS / 2 - 1);
      const trigger: Trigger =
        i % 2 === 0
          ? { on: 'writing', index: Math.floor(i / 2) % 2, delayMs: editMs * 1.1 * step }
          : { on: 'temp', index: Math.floor(i / 2) % 2, delayMs: writeMs * 1.2 * step };
      const what = `kill ${i} (${trigger.delayMs.toFixed(2)} ms after ${trigger.on} ${trigger.index})`;
      const run = await runAndKill(file, trigger);
      const text = await readFile(file, 'utf8');
      const now = stateOf(text);
      assert.ok(now !== undefined, `${what}: the file is neither the old nor the new text (${text.length} chars)`);
      const done: State = run.completed % 2 === 0 ? state : other(state);
      const allowed = run.midEdit ? [done, other(done)] : [done];
      assert.ok(allowed.includes(now), `${what}: after ${run.completed} edits${run.midEdit ? ' and one cut short' : ''} the file must be ${allowed.join(' or ')}, is ${now}`);
      assert.equal(parseMachines(text).entries.filter((e) => e.error).length, 0);
      const backup = await readFile(`${file}.bak`, 'utf8').catch(() => undefined);
      if (backup !== undefined) assert.ok(stateOf(backup) !== undefined, `${what}: the backup is a whole file too`);
      if (run.midEdit) midEdit++;
      const temps = await leftovers(dir, file);
      if (temps.some((n) => !seenTemps.has(n))) leftTemp++;
      for (const n of temps) seenTemps.add(n);
      state = now;
    }
    const stale = await leftovers(dir, file);
    t.diagnostic(`${midEdit} of ${KILLS} kills landed inside an edit; ${leftTemp} left temp files behind (${stale.length} in all)`);
    assert.ok(midEdit > KILLS / 2, 'most kills landed inside an edit');
    assert.ok(stale.length > 0, 'some kills landed between creating the temp file and renaming it');

    // Cleanup: our temp files younger than a minute stay (another writer may be running) ...
    const planted = `.machines.nix-builders-${'0'.repeat(16)}.tmp`;
    await writeFile(path.join(dir, planted), TEXT.A.slice(0, 1000));
    stale.push(planted);
    const first = await editMachinesFile(file, { kind: 'add', entry: 'ssh://b-new x86_64-linux' });
    assert.ok(first.ok, JSON.stringify(first));
    assert.deepEqual((await leftovers(dir, file)).sort(), stale.sort(), 'temp files younger than a minute are kept');
    // ... and once they are older, the next edit removes them.
    const longAgo = new Date(Date.now() - 2 * 60_000);
    for (const name of stale) await utimes(path.join(dir, name), longAgo, longAgo);
    const second = await editMachinesFile(file, { kind: 'remove', line: LINES, column: 0, expected: 'ssh://b-new x86_64-linux' });
    assert.ok(second.ok, JSON.stringify(second));
    assert.deepEqual(await leftovers(dir, file), [], 'stale temp files are removed');
    assert.equal(await readFile(file, 'utf8'), TEXT[state]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('over LSP: an edit of an entry that moved since it was listed is refused, and the file is left as it is', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nb-edit-lsp-'));
  // Not `machines`: Nix's default `builders` is @$NIX_CONF_DIR/machines.
  const file = path.join(dir, 'my-machines');
  await writeFile(file, 'ssh://b1 x86_64-linux\nssh://b2 aarch64-linux - 2\n');
  const client = new StdioLspClient();
  type Listing = { builders: Array<{ id: string; name: string; source: { path?: string; line?: number; column?: number; text?: string } }> };
  try {
    await client.initialize({ settings: { env: { NIX_CONF_DIR: dir }, machinesFiles: [file] } });
    const listed = await client.request<Listing>('nixBuilders/listBuilders');
    const b2 = listed.builders.find((b) => b.name === 'b2');
    assert.deepEqual(b2?.source, { label: `machines file ${file}`, provenance: { kind: 'setting-machines-files' }, path: file, line: 1, column: 0, text: 'ssh://b2 aarch64-linux - 2' });
    // Someone else removes b1: b2 moves to line 1, and a new b3 takes line 2.
    const moved = 'ssh://b2 aarch64-linux - 2\nssh://b3 x86_64-linux\n';
    await writeFile(file, moved);
    const { line, column, text } = b2!.source;
    const refused = await client.request<{ ok: boolean; reason?: string; message?: string }>('nixBuilders/editMachines', {
      file,
      edit: { kind: 'remove', line, column, expected: text },
    });
    assert.deepEqual(refused, {
      ok: false,
      reason: 'entry-changed',
      message: `${file} changed since its builders were listed: the entry at line 2, column 1 is now 'ssh://b3 x86_64-linux', and 'ssh://b2 aarch64-linux - 2' is on line 1. Nothing was written: refresh the Builders view and try again.`,
    });
    assert.equal(await readFile(file, 'utf8'), moved);
    // Listed again (once the server noticed the change), b2 keeps its id at its new place, and the
    // same edit from there succeeds.
    let again: Listing['builders'][number] | undefined;
    for (const deadline = Date.now() + 30_000; again?.source.line !== 0; ) {
      assert.ok(Date.now() < deadline, `the server did not notice the change of ${file}`);
      await client.waitForNotification((m) => m.method === 'nixBuilders/buildersChanged', 1_000, false).catch(() => undefined);
      again = (await client.request<Listing>('nixBuilders/listBuilders')).builders.find((b) => b.name === 'b2');
    }
    assert.equal(again.id, b2?.id);
    const done = await client.request<{ ok: boolean }>('nixBuilders/editMachines', {
      file,
      edit: { kind: 'remove', line: again.source.line, column: again.source.column, expected: again.source.text },
    });
    assert.equal(done.ok, true, JSON.stringify(done));
    assert.equal(await readFile(file, 'utf8'), 'ssh://b3 x86_64-linux\n');
  } finally {
    assert.equal(await client.shutdown(), 0);
    await rm(dir, { recursive: true, force: true });
  }
});
