// The testBuild request over stdio against the real Nix: a builder that cannot be reached fails,
// and the answer carries the summary, cause and fix, not the build's log or command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StdioLspClient } from './lspClient';

test('testBuild on an unreachable builder: the answer has the cause and fix, no stderr or command', async () => {
  const client = new StdioLspClient();
  try {
    // .invalid never resolves (RFC 2606): ssh fails at once.
    await client.initialize({ settings: { builders: ['ssh://nb-test.invalid x86_64-linux'] } });
    const listing = await client.request<{ builders: Array<{ id: string; name: string }> }>('nixBuilders/listBuilders');
    const builder = listing.builders.find((b) => b.name === 'nb-test.invalid');
    assert.ok(builder);
    const answer = await client.request<Record<string, unknown>>('nixBuilders/testBuild', { builderId: builder.id });
    assert.equal(answer.status, 'error');
    assert.match(String(answer.summary), /nb-test\.invalid/);
    assert.equal(answer.problemKind, 'cannot-connect', JSON.stringify(answer));
    for (const field of ['stderr', 'command', 'problem']) assert.equal(field in answer, false, `${field} is not sent`);
  } finally {
    assert.equal(await client.shutdown(), 0);
  }
});
