// DocumentDiagnostics when the process runner itself fails (rejects instead of returning a
// result): every requester gets a "could not evaluate" diagnostic, nothing is left unhandled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Connection } from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { DocumentDiagnostics } from '../../language-server/eval/documentDiagnostics';
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
