// Why two derivations differ, from a plain LSP client against real Nix: two attributes of a file
// whose only difference is an environment variable of a dependency two levels down. The answer
// names the chain of dependencies down to it and the variable with both values; a side given as a
// .drv path answers the same. On Nix 2.26 (its store in another root) the .drv files are read
// through Nix.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient } from './lspClient';
import { NIX_BIN, hostStorePath } from './nixUnderTest';
import { ServerCommands, type DerivationDiff } from '../../language-server/protocol';

let dir: string;
let client: StdioLspClient;

// Salted: new .drv files each run, in the store of the Nix under test only.
const salt = randomBytes(4).toString('hex');
const DOCUMENT = `let
  mk = name: attrs: derivation ({ inherit name; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${salt} $name > $out" ]; } // attrs);
  leaf = flavour: mk "leaf" { inherit flavour; };
  mid = flavour: mk "mid" { leaf = leaf flavour; };
  top = flavour: mk "top" { mid = mid flavour; };
in {
  vanilla = top "vanilla";
  chocolate = top "chocolate";
}
`;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-drvdiff-'));
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', ''].join('\n'));
  client = new StdioLspClient();
  await client.initialize({ settings: { env: { NIX_CONF_DIR: dir } } }, dir);
});

after(async () => {
  await client?.shutdown();
  await rm(dir, { recursive: true, force: true });
});

const diff = (a: unknown, b: unknown) => client.request<DerivationDiff>('workspace/executeCommand', { command: ServerCommands.diffDerivations, arguments: [{ a, b }] });

test('two attributes differing in a variable two levels down: the chain top → mid → leaf and the variable with both values; a .drv path as a side answers the same', async () => {
  const file = path.join(dir, 'flavours.nix');
  await writeFile(file, DOCUMENT);
  const uri = pathToFileURL(file).href;
  client.open(uri, DOCUMENT);

  const tree = await diff({ uri, attribute: ['vanilla'] }, { uri, attribute: 'chocolate' });
  assert.equal(tree.name, 'top');
  assert.ok(tree.drvPath.every((p) => /^\/nix\/store\/[0-9a-z]{32}-top\.drv$/.test(p)) && tree.drvPath[0] !== tree.drvPath[1], JSON.stringify(tree.drvPath));
  assert.equal(tree.note, undefined);
  // Above the leaf only paths differ (the outputs and the variables naming the input's output).
  assert.deepEqual(tree.differences.filter((d) => !d.onlyStorePaths), []);
  assert.deepEqual(tree.differences.map((d) => [d.field, d.name]), [['output', 'out'], ['env', 'mid'], ['env', 'out']]);
  assert.deepEqual(tree.inputs.map((i) => i.name), ['mid']);
  const mid = tree.inputs[0]!.diff;
  assert.equal(mid.name, 'mid');
  assert.deepEqual(mid.differences.filter((d) => !d.onlyStorePaths), []);
  assert.deepEqual(mid.inputs.map((i) => i.name), ['leaf']);
  const leaf = mid.inputs[0]!.diff;
  assert.equal(leaf.name, 'leaf');
  assert.match(leaf.drvPath[0], /-leaf\.drv$/);
  // The store of the Nix under test wrote them (on 2.26 not this machine's /nix/store: read through Nix).
  assert.ok(leaf.drvPath.every((p) => existsSync(hostStorePath(p))));
  if (NIX_BIN) assert.ok(!existsSync(leaf.drvPath[0]), 'the Nix under test has a store of its own');
  assert.deepEqual(leaf.differences.filter((d) => !d.onlyStorePaths), [{ field: 'env', name: 'flavour', a: 'vanilla', b: 'chocolate' }]);
  assert.deepEqual(leaf.inputs, []);

  assert.deepEqual(await diff(tree.drvPath[0], { uri, attribute: ['chocolate'] }), tree);
  const same = await diff(tree.drvPath[1], { uri, attribute: ['chocolate'] });
  assert.deepEqual(same.differences, []);
  assert.deepEqual(same.inputs, []);
});

test('a side that is neither a .drv path nor an attribute of a file is refused, saying what the command takes', async () => {
  await assert.rejects(diff('hello', '/nix/store/x.drv'), /takes \[\{ a, b \}\].*a is not a \.drv path/);
  await assert.rejects(diff('/nix/store/x.drv', { uri: 'file:///x.nix' }), /b is neither/);
});
