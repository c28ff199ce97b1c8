// Builder ids: source and URI, so that the health of a builder stays on that builder when other
// entries are added, removed or moved (the doctor's results and the view are keyed by id).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collectBuilders } from '../../language-server/builders/collect';

const FILE = '/etc/nix/machines';

async function listed(text: string, builders: string[] = []) {
  const got = await collectBuilders(`@${FILE}`, { machinesFiles: [], builders }, async (f) => {
    if (f !== FILE) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
    return text;
  });
  return got.builders;
}

test('ids are source and URI: removing an earlier entry leaves every other id on its builder', async () => {
  const before = await listed('ssh://b1 x86_64-linux\nssh://b2 aarch64-linux\n# b3:\nssh://b3 x86_64-linux - 4\n', ['ssh://s1 riscv64-linux']);
  assert.deepEqual(
    before.map((b) => b.id),
    ['/etc/nix/machines ssh://b1', '/etc/nix/machines ssh://b2', '/etc/nix/machines ssh://b3', 'setting nixBuilders.builders ssh://s1'],
  );
  // Health kept by id from the first listing, looked up in the next one.
  const health = new Map(before.map((b) => [b.id, b.uri]));
  const after = await listed('ssh://b2 aarch64-linux\n# b3:\nssh://b3 x86_64-linux - 4\n', ['ssh://s1 riscv64-linux']);
  for (const b of after) assert.equal(health.get(b.id), b.uri, `the health of ${b.id} is ${b.uri}'s`);
  assert.equal(after.length, 3);
});

test('the same URI twice in one source: numbered by occurrence, which an unrelated removal does not shift', async () => {
  const text = 'ssh://b1 x86_64-linux\nssh://dup x86_64-linux - 1\nssh://b2 x86_64-linux\nssh://dup aarch64-linux - 2\n';
  const before = await listed(text, ['ssh://dup riscv64-linux']);
  const ids = new Map(before.map((b) => [b.id, b.systems[0]]));
  assert.deepEqual([...ids], [
    ['/etc/nix/machines ssh://b1', 'x86_64-linux'],
    ['/etc/nix/machines ssh://dup', 'x86_64-linux'],
    ['/etc/nix/machines ssh://b2', 'x86_64-linux'],
    ['/etc/nix/machines ssh://dup #2', 'aarch64-linux'],
    // Another source: not a repetition.
    ['setting nixBuilders.builders ssh://dup', 'riscv64-linux'],
  ]);
  const after = await listed(text.replace('ssh://b1 x86_64-linux\n', '').replace('ssh://b2 x86_64-linux\n', ''), ['ssh://dup riscv64-linux']);
  for (const b of after) assert.equal(ids.get(b.id), b.systems[0], b.id);
});

test("an entry of a file carries its text as read, for edits to name what they replace", async () => {
  const [b] = await listed('  ssh://b1   x86_64-linux  # spaced\n');
  assert.deepEqual(b?.source, { label: FILE, provenance: { kind: 'system-machines' }, path: FILE, line: 0, column: 2, text: 'ssh://b1   x86_64-linux' });
});
