// protocol.ts owns the wire types: it imports nothing of the server but the machines-file format,
// so that no internal type (and no field of one) goes over the wire unnoticed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

test('protocol.ts imports no server module but the machines-file format, and re-exports none', () => {
  const text = readFileSync(path.join(__dirname, '..', '..', 'language-server', 'protocol.ts'), 'utf8');
  const sources = [...text.matchAll(/^(?:import|export)\b[^;]*?\bfrom '([^']+)'/gms)].map((m) => m[1]);
  assert.deepEqual(sources.sort(), ['./nix/machines', 'vscode-languageserver-protocol']);
});
