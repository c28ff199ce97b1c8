// DocumentDiagnostics' sharing of evaluations, with runners whose answers the tests control: a
// runner that rejects, runs ended one by one (cancellation, files changing during a run, fresh).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Connection } from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { DocumentDiagnostics } from '../../language-server/eval/documentDiagnostics';
import { evaluatedFiles } from '../../language-server/eval/evaluator';
import { Nix } from '../../language-server/nix/nix';
import type { ProcessRunner } from '../../language-server/nix/runner';

test('a runner that rejects gives every waiting requester a diagnostic, and no unhandled rejection', async () => {
  const runner: ProcessRunner = { run: () => Promise.reject(new Error('the runner broke')) };
  const connection = { sendDiagnostics: () => Promise.resolve(), console: { error: () => undefined } } as unknown as Connection;
  const listing = { nix: { version: '2.8.0', workspaceTrusted: true }, builders: [], problems: [] };
  const diagnostics = new DocumentDiagnostics(
    connection,
    new Nix(runner, { binDir: '', env: {} }),
    () => Promise.resolve({ trusted: true, options: { depth: 1, timeoutMs: 1000, allowImportFromDerivation: false }, listing }),
    () => undefined,
  );
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    const doc = TextDocument.create('file:///tmp/x.nix', 'nix', 1, '{ }');
    // Two requesters of the same text: one that may cancel, one that may not.
    const [a, b] = await Promise.all([diagnostics.evaluate(doc, new AbortController().signal), diagnostics.evaluate(doc)]);
    for (const e of [a, b]) {
      assert.equal(e?.result.kind, 'failed');
      assert.match(String(e?.diagnostics[0]?.message), /^Could not evaluate this file: the evaluation could not be run: the runner broke/);
    }
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    diagnostics.dispose();
  }
});

/** A runner whose runs the test ends one by one; each run is recorded with its signal. */
function scriptedRunner() {
  const runs: Array<{ signal: AbortSignal | undefined; answer: (stdout: string, stderr?: string) => void; cancelled: () => void }> = [];
  const waiters: Array<() => void> = [];
  const runner: ProcessRunner = {
    run: (req) =>
      new Promise((resolve) => {
        const command = [req.file, ...req.args];
        runs.push({
          signal: req.signal,
          answer: (stdout, stderr = '') => resolve({ kind: 'ok', command, stdout, stderr, durationMs: 1 }),
          cancelled: () => resolve({ kind: 'cancelled', command, stdout: '', stderr: '', durationMs: 1 }),
        });
        for (const w of waiters.splice(0)) w();
      }),
  };
  const nextRun = async (n: number) => {
    while (runs.length < n) await new Promise<void>((r) => waiters.push(r));
    return runs[n - 1]!;
  };
  return { runner, runs, nextRun };
}

function diagnosticsWith(runner: ProcessRunner) {
  const connection = { sendDiagnostics: () => Promise.resolve(), console: { error: () => undefined, warn: () => undefined } } as unknown as Connection;
  const listing = { nix: { version: '2.8.0', workspaceTrusted: true }, builders: [], problems: [] };
  return new DocumentDiagnostics(
    connection,
    new Nix(runner, { binDir: '', env: {} }),
    () => Promise.resolve({ trusted: true, options: { depth: 1, timeoutMs: 1000, allowImportFromDerivation: false }, listing }),
    () => undefined,
  );
}

const EMPTY = JSON.stringify({ kind: 'attrs', items: [] });
const OTHER = JSON.stringify({ kind: 'other', items: [] });

test('a requester arriving while the last one\'s cancelled run is still dying gets a new run, not "cancelled"', async () => {
  const { runner, runs, nextRun } = scriptedRunner();
  const diagnostics = diagnosticsWith(runner);
  try {
    const doc = TextDocument.create('file:///nonexistent/x.nix', 'nix', 1, '{ }');
    const first = new AbortController();
    const a = diagnostics.evaluate(doc, first.signal);
    const dying = await nextRun(1);
    first.abort();
    assert.equal(await a, undefined);
    assert.equal(dying.signal?.aborted, true, 'the last requester gone, the run is killed');
    // Its process has not ended yet (a kill grace): the same text is asked for again.
    const b = diagnostics.evaluate(doc);
    (await nextRun(2)).answer(EMPTY);
    dying.cancelled();
    assert.equal((await b)?.result.kind, 'ok');
    assert.equal(runs.length, 2);
  } finally {
    diagnostics.dispose();
  }
});

test('a file the running evaluation read changes meanwhile: it runs again before it answers; an unrelated change does not', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nb-inflight-'));
  const lib = path.join(dir, 'lib.nix');
  const other = path.join(dir, 'other.nix');
  writeFileSync(lib, '1');
  writeFileSync(other, '1');
  const { runner, runs, nextRun } = scriptedRunner();
  const diagnostics = diagnosticsWith(runner);
  try {
    const doc = TextDocument.create(pathToFileURL(path.join(dir, 'default.nix')).href, 'nix', 1, 'import ./lib.nix');
    const result = diagnostics.evaluate(doc);
    const run1 = await nextRun(1);
    // An unrelated file changes while it runs: one run is enough.
    writeFileSync(other, '2');
    await diagnostics.filesChanged([{ file: other, kind: 'changed' }]);
    // lib.nix changes after Nix read it: that answer is of the old content.
    writeFileSync(lib, '22');
    await diagnostics.filesChanged([{ file: lib, kind: 'changed' }]);
    run1.answer(EMPTY, `evaluating file '${lib}'\n`);
    (await nextRun(2)).answer(OTHER, `evaluating file '${lib}'\n`);
    const e = await result;
    assert.equal(e?.result.kind, 'ok');
    assert.equal(e?.result.kind === 'ok' && e.result.output.kind, 'other', 'the answer of the second run');
    assert.equal(runs.length, 2);
    // And the second run's answer is what the cache keeps.
    assert.equal((await diagnostics.evaluate(doc))?.result.kind === 'ok', true);
    assert.equal(runs.length, 2);
    // A change of the unrelated file now drops nothing: no new run.
    writeFileSync(other, '3');
    await diagnostics.filesChanged([{ file: other, kind: 'changed' }]);
    await diagnostics.evaluate(doc);
    assert.equal(runs.length, 2);
  } finally {
    diagnostics.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fresh (for a build): neither the cache nor a run started before; the answer is then cached', async () => {
  const { runner, runs, nextRun } = scriptedRunner();
  const diagnostics = diagnosticsWith(runner);
  try {
    const doc = TextDocument.create('file:///nonexistent/y.nix', 'nix', 1, '{ }');
    const cached = diagnostics.evaluate(doc);
    (await nextRun(1)).answer(EMPTY);
    await cached;
    await diagnostics.evaluate(doc);
    assert.equal(runs.length, 1, 'served from the cache');
    const fresh = diagnostics.evaluate(doc, undefined, { fresh: true });
    (await nextRun(2)).answer(OTHER);
    assert.equal((await fresh)?.result.kind === 'ok' && (await fresh)?.result.kind, 'ok');
    const again = await diagnostics.evaluate(doc);
    assert.equal(again?.result.kind === 'ok' && again.result.output.kind, 'other', 'the fresh answer replaced the cached one');
    assert.equal(runs.length, 2);
  } finally {
    diagnostics.dispose();
  }
});

test("Nix's -v lines name the files read and are in no message", () => {
  const stderr = "evaluating file '/w/lib.nix'\nevaluating file '/nix/store/abc-x/default.nix'\nerror: boom\nevaluating file '/w/default.nix'\n";
  assert.deepEqual(evaluatedFiles(stderr, '/w/default.nix'), { files: ['/w/lib.nix'], rest: 'error: boom\n' });
});
