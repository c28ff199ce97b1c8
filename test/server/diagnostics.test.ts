// Derivation diagnostics from the language server over stdio, evaluating real files with the real
// Nix of this machine. Builders are machines-file entries (no SSH is needed to decide who can build).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient, type Diagnostic } from './lspClient';
import { evaluationsIn, hostStorePath } from './nixUnderTest';

const ERROR = 1;
const INFORMATION = 3;

let dir: string;
let machines: string;
let client: StdioLspClient;

const drv = (name: string, system: string, features: string[] = []) =>
  `derivation { name = "${name}"; system = "${system}"; builder = "/bin/sh"; args = [ "-c" ": > $out" ]; requiredSystemFeatures = [ ${features.map((f) => `"${f}"`).join(' ')} ]; }`;

/** Open a document; `saved: false` opens it with edits not on disk (the server then evaluates the text, not the file). */
async function openFile(name: string, text: string, { saved = true } = {}): Promise<string> {
  const file = path.join(dir, 'src', name);
  await writeFile(file, saved ? text : '# the editor has changes not saved yet\n');
  const uri = pathToFileURL(file).href;
  client.open(uri, text);
  return uri;
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-diag-'));
  await mkdir(path.join(dir, 'src'));
  machines = path.join(dir, 'machines');
  await writeFile(machines, '# test builders\nssh://b1 x86_64-linux - 1 1 kvm\nssh://b3 x86_64-linux - 1 1 benchmark benchmark\n');
  // This machine: x86_64-linux without kvm, and nothing else; builders from the machines file.
  await writeFile(
    path.join(dir, 'nix.conf'),
    ['build-users-group =', 'substituters =', 'extra-platforms =', 'system-features = big-parallel nixos-test', `builders = @${machines}`, ''].join('\n'),
  );
  client = new StdioLspClient();
  await client.initialize({ settings: { env: { NIX_CONF_DIR: dir }, evaluation: { timeoutSeconds: 3 } } });
});

after(async () => {
  await client.shutdown();
  await rm(dir, { recursive: true, force: true });
});

const only = (ds: Diagnostic[], code: string) => {
  const found = ds.filter((d) => d.code === code);
  assert.equal(found.length, 1, `one ${code} diagnostic in ${JSON.stringify(ds, null, 1)}`);
  return found[0] as Diagnostic;
};

test('a missing system is an error on the attribute name, naming every machine', async () => {
  const text = `{\n  fine = ${drv('fine', 'x86_64-linux')};\n  arm = ${drv('arm', 'aarch64-linux')};\n}\n`;
  const uri = await openFile('system.nix', text);
  const d = only(await client.diagnostics(uri), 'no-builder-system');
  assert.equal(d.severity, ERROR);
  assert.deepEqual(d.range, { start: { line: 2, character: 2 }, end: { line: 2, character: 5 } });
  assert.match(d.message, /^requires aarch64-linux: no builder provides it \(local x86_64-linux \{big-parallel, nixos-test\}; builders: b1 x86_64-linux \{kvm\}, b3 x86_64-linux \{benchmark\}\)/);
  assert.match(d.message, /Fix: add a builder for aarch64-linux/);
});

test('a missing feature, and remote-only builds', async () => {
  const text = `{\n  gpu = ${drv('gpu', 'x86_64-linux', ['cuda'])};\n  vm = ${drv('vm', 'x86_64-linux', ['kvm'])};\n}\n`;
  const uri = await openFile('features.nix', text);
  const ds = await client.diagnostics(uri);
  const gpu = only(ds, 'no-builder-features');
  assert.equal(gpu.range.start.line, 1);
  assert.match(gpu.message, /^requires x86_64-linux with \{cuda\}: no builder provides it/);
  const vm = only(ds, 'remote-only');
  assert.equal(vm.severity, INFORMATION);
  assert.equal(vm.range.start.line, 2);
  assert.match(vm.message, /^builds on b1 \(x86_64-linux \{kvm\}\)/);
});

test('mandatory features keep a derivation away from a builder', async () => {
  // b3 takes only derivations that require `benchmark`: this one does, and only b3 has it.
  const uri = await openFile('mandatory.nix', `{ bench = ${drv('bench', 'x86_64-linux', ['benchmark'])}; }`);
  assert.match(only(await client.diagnostics(uri), 'remote-only').message, /^builds on b3 /);
  // A derivation that b3 could build but for its mandatory feature:
  const text2 = `{ needs-b3 = ${drv('n', 'x86_64-linux', ['nixos-test', 'kvm'])}; }`;
  await writeFile(machines, 'ssh://b3 x86_64-linux - 1 1 kvm,nixos-test benchmark\n');
  const uri2 = await openFile('mandatory2.nix', text2);
  // The first evaluation may still see the old machines file; the change re-diagnoses.
  const d = only(await client.diagnostics(uri2, (x) => x.some((y) => y.code === 'mandatory-features')), 'mandatory-features');
  assert.match(d.message, /b3 only takes derivations that require \{benchmark\}/);
  await writeFile(machines, '# test builders\nssh://b1 x86_64-linux - 1 1 kvm\nssh://b3 x86_64-linux - 1 1 benchmark benchmark\n');
  // b1 has kvm, this machine nixos-test, but no single machine has both.
  const split = only(await client.diagnostics(uri2, (x) => x.every((d) => d.code !== 'mandatory-features')), 'no-builder-features');
  assert.match(split.message, /^requires x86_64-linux with \{nixos-test, kvm\}: no single machine has all of them/);
});

test('parse and evaluation errors at their exact position with Nix’s message', async () => {
  const parse = await openFile('parse.nix', '{\n  a = 1;\n  b = ;\n}\n');
  const p = only(await client.diagnostics(parse), 'parse-error');
  assert.deepEqual(p.range.start, { line: 2, character: 6 });
  assert.match(p.message, /syntax error, unexpected ';'/);

  const evalErr = await openFile('eval.nix', '{\n  a = 1;\n  b = 1 + "two";\n}\n');
  const e = only(await client.diagnostics(evalErr), 'eval-error');
  assert.equal(e.range.start.line, 2);
  assert.match(e.message, /cannot add a string to an integer/);

  const loop = await openFile('recursion.nix', 'let x = x + 1; in { inherit x; }\n');
  const r = only(await client.diagnostics(loop), 'infinite-recursion');
  assert.match(r.message, /infinite recursion encountered/);
});

test('an evaluation that never finishes ends with a timeout diagnostic, and the server still answers', async () => {
  const fifo = path.join(dir, 'never');
  execFileSync('mkfifo', [fifo]);
  // Reading a FIFO that nobody writes blocks forever.
  await mkdir(path.join(dir, 'src', 'hang'));
  const uri = await openFile('hang/hang.nix', `{ hang = builtins.readFile ${JSON.stringify(fifo)}; }\n`);
  const d = only(await client.diagnostics(uri), 'eval-timeout');
  assert.match(d.message, /did not finish within 3 s/);
  assert.match(d.message, /nixBuilders\.evaluation\.timeoutSeconds/);
  const status = await client.request<{ version?: string }>('nixBuilders/status');
  assert.ok(status.version);
  // The whole process tree is gone: no nix-instantiate is still reading the FIFO.
  assert.deepEqual(evaluationsIn(path.join(dir, 'src', 'hang')), []);
});

test('file and attribute names with spaces, quotes, $ and newlines cannot inject anything', async () => {
  const weird = 'we ird "q" $HOME `x` \n.nix';
  const attr = 'a "b" ${c}\nd';
  const text = `{\n  ${JSON.stringify(attr).replace(/\$/g, '\\$')} = ${drv('w', 'aarch64-linux')};\n}\n`;
  const uri = await openFile(weird, text);
  const d = only(await client.diagnostics(uri), 'no-builder-system');
  assert.equal(d.range.start.line, 1);
  assert.deepEqual((d.data as { attrPath: string[] }).attrPath, [attr]);
  const listing = await client.request<{ state: string; derivations: Array<{ attrPath: string[] }> }>('nixBuilders/derivations', { uri });
  assert.equal(listing.state, 'ok');
  assert.deepEqual(listing.derivations.map((x) => x.attrPath), [[attr]]);
  // Instantiated, not only evaluated: the .drv exists, so the derivation can be built.
  const drvPath = (listing.derivations[0] as { drvPath?: string } | undefined)?.drvPath ?? '';
  assert.ok(existsSync(hostStorePath(drvPath)), `${drvPath} exists`);
});

test('diagnostics follow the machines file: adding an aarch64-linux builder clears the error', async () => {
  const uri = await openFile('follow.nix', `{ arm = ${drv('arm2', 'aarch64-linux')}; }\n`);
  only(await client.diagnostics(uri), 'no-builder-system');
  await writeFile(machines, '# test builders\nssh://b1 x86_64-linux - 1 1 kvm\nssh://b2 aarch64-linux\n');
  const ds = await client.diagnostics(uri, (x) => x.some((d) => d.code === 'remote-only'));
  assert.match(only(ds, 'remote-only').message, /^builds on b2 \(aarch64-linux\)/);
  await writeFile(machines, '# test builders\nssh://b1 x86_64-linux - 1 1 kvm\nssh://b3 x86_64-linux - 1 1 benchmark benchmark\n');
  // And removing it brings the error back.
  await client.diagnostics(uri, (x) => x.some((d) => d.code === 'no-builder-system'));
});

test('a function whose arguments all have defaults is called; nested sets are searched', async () => {
  const text = `{ system ? "aarch64-linux" }: {\n  nested = {\n    deep = ${drv('deep', 'aarch64-linux')};\n  };\n}\n`;
  const uri = await openFile('function.nix', text);
  const d = only(await client.diagnostics(uri), 'no-builder-system');
  assert.deepEqual((d.data as { attrPath: string[] }).attrPath, ['nested', 'deep']);
  assert.equal(d.range.start.line, 2);
});

test('no evaluation at all in an untrusted workspace, until trust is granted', async () => {
  const untrusted = new StdioLspClient();
  try {
    await untrusted.initialize({ workspaceTrusted: false, settings: { env: { NIX_CONF_DIR: dir } } });
    const file = path.join(dir, 'src', 'untrusted.nix');
    const text = `{ arm = ${drv('arm3', 'aarch64-linux')}; }\n`;
    await writeFile(file, text);
    const uri = pathToFileURL(file).href;
    untrusted.open(uri, text);
    const answer = await untrusted.request<{ state: string }>('nixBuilders/derivations', { uri });
    assert.equal(answer.state, 'untrusted');
    assert.equal(untrusted.notifications.filter((m) => m.method === 'textDocument/publishDiagnostics').length, 0);
    const trustedAt = untrusted.notifications.length;
    untrusted.notify('nixBuilders/workspaceTrust', { trusted: true });
    const ds = await untrusted.diagnostics(uri);
    assert.ok(untrusted.notifications.findIndex((m) => m.method === 'textDocument/publishDiagnostics') >= trustedAt);
    only(ds, 'no-builder-system');
  } finally {
    await untrusted.shutdown();
  }
});

test('flake.nix without inputs: packages, checks and devShells are checked offline', async () => {
  const flakeDir = path.join(dir, 'src', 'flake');
  await mkdir(flakeDir);
  const text = [
    '{',
    '  outputs = { self }: {',
    `    packages.x86_64-linux.hello = ${drv('fh', 'x86_64-linux')};`,
    `    packages.aarch64-linux.hello = ${drv('fh', 'aarch64-linux')};`,
    '    checks.x86_64-linux.same = self.packages.x86_64-linux.hello;',
    `    devShells.riscv64-linux.default = ${drv('shell', 'riscv64-linux')};`,
    '    lib.notADerivation = 1;',
    '  };',
    '}',
    '',
  ].join('\n');
  const uri = await openFile('flake/flake.nix', text);
  const ds = (await client.diagnostics(uri)).filter((d) => d.code === 'no-builder-system');
  assert.deepEqual(
    ds.map((d) => [(d.data as { attrPath: string[] }).attrPath.join('.'), d.range.start.line, d.range.end.character - d.range.start.character]),
    [
      ['devShells.riscv64-linux.default', 5, 'devShells.riscv64-linux.default'.length],
      ['packages.aarch64-linux.hello', 3, 'packages.aarch64-linux.hello'.length],
    ],
  );
  const listing = await client.request<{ derivations: Array<{ attrPath: string[] }> }>('nixBuilders/derivations', { uri });
  assert.deepEqual(listing.derivations.map((d) => d.attrPath.join('.')).sort(), [
    'checks.x86_64-linux.same',
    'devShells.riscv64-linux.default',
    'packages.aarch64-linux.hello',
    'packages.x86_64-linux.hello',
  ]);
});

test('scheduling preview: the derivation under the cursor goes to the builder Nix would pick, with reasons', async () => {
  const text = `{\n  plain = ${drv('plain-s', 'x86_64-linux')};\n  vm = ${drv('vm-s', 'x86_64-linux', ['kvm'])};\n}\n`;
  const uri = await openFile('schedule.nix', text);
  await client.diagnostics(uri);
  type Preview = {
    derivation?: { attrPath: string[] };
    preview?: { verdict: string; chosen?: { name: string }; summary: string; candidates: Array<{ name: string; eligible: boolean; reason: string }> };
  };
  const vm = await client.request<Preview>('nixBuilders/schedulePreview', { uri, line: 2 });
  assert.deepEqual(vm.derivation?.attrPath, ['vm']);
  assert.equal(vm.preview?.verdict, 'remote');
  assert.equal(vm.preview?.chosen?.name, 'b1');
  const b3 = vm.preview?.candidates.find((c) => c.name === 'b3');
  assert.equal(b3?.eligible, false);
  assert.match(b3?.reason ?? '', /kvm|mandatory/);
  const local = vm.preview?.candidates.find((c) => c.name === 'this machine');
  assert.match(local?.reason ?? '', /kvm/);

  const riscv = await client.request<Preview>('nixBuilders/schedulePreview', { system: 'riscv64-linux', requiredSystemFeatures: [] });
  assert.equal(riscv.preview?.verdict, 'none');
  assert.ok(riscv.preview?.candidates.every((c) => !c.eligible && /riscv64-linux/.test(c.reason)), JSON.stringify(riscv.preview?.candidates));
});

test('hover on a derivation attribute shows it and where it would build; quick fixes offer a builder', async () => {
  const text = `{\n  arm = ${drv('arm-hover', 'aarch64-linux')};\n}\n`;
  const uri = await openFile('hover.nix', text);
  const ds = await client.diagnostics(uri);
  const hover = await client.request<{ contents: { value: string } } | null>('textDocument/hover', { textDocument: { uri }, position: { line: 1, character: 3 } });
  assert.match(hover?.contents.value ?? '', /\*\*arm\*\*/);
  assert.match(hover?.contents.value ?? '', /system `aarch64-linux`/);
  assert.match(hover?.contents.value ?? '', /Nix would now: .*aarch64-linux/);
  const none = await client.request<unknown>('textDocument/hover', { textDocument: { uri }, position: { line: 2, character: 0 } });
  assert.equal(none, null);
  const actions = await client.request<Array<{ title: string; command?: { command: string } }>>('textDocument/codeAction', {
    textDocument: { uri },
    range: ds[0]?.range,
    context: { diagnostics: ds },
  });
  assert.deepEqual(
    actions.map((a) => [a.title, a.command?.command]),
    [
      ['Add a builder for aarch64-linux…', 'nixBuilders.server.addBuilder'],
      ['Show why each machine cannot build it', 'nixBuilders.server.whichBuilder'],
    ],
  );
});

test('a newer version of the document cancels the running evaluation and its process', async () => {
  const fifo = path.join(dir, 'never2');
  execFileSync('mkfifo', [fifo]);
  await mkdir(path.join(dir, 'src', 'edited'));
  const file = path.join(dir, 'src', 'edited', 'edited.nix');
  const hanging = `{ hang = builtins.readFile ${JSON.stringify(fifo)}; }\n`;
  await writeFile(file, hanging);
  const uri = pathToFileURL(file).href;
  client.open(uri, hanging);
  const readers = () => evaluationsIn(path.dirname(file));
  // Wait (on the process table, not on time) until the evaluation is blocked on the FIFO.
  for (let i = 0; readers().length === 0; i++) {
    assert.ok(i < 400, 'the evaluation started');
    await new Promise((r) => setTimeout(r, 25));
  }
  client.change(uri, `{ arm = ${drv('edited', 'aarch64-linux')}; }\n`, 2);
  const ds = await client.diagnostics(uri);
  only(ds, 'no-builder-system');
  // The old evaluation would still be blocked on the FIFO had it not been killed with its group.
  assert.deepEqual(readers(), []);
});

test('a 350 KB document with 2,000 derivations is evaluated (its text does not go into one argument)', async () => {
  const lines = Array.from({ length: 2000 }, (_, i) => `  d${i} = ${drv(`big-${i}`, i === 1999 ? 'aarch64-linux' : 'x86_64-linux')}; # ${'padding '.repeat(3)}`);
  const text = `{\n${lines.join('\n')}\n}\n`;
  assert.ok(Buffer.byteLength(text) > 350_000, `${Buffer.byteLength(text)} bytes`);
  // Not saved: Nix gets the editor's text.
  const uri = await openFile('big.nix', text, { saved: false });
  const d = only(await client.diagnostics(uri), 'no-builder-system');
  assert.deepEqual(d.range, { start: { line: 2000, character: 2 }, end: { line: 2000, character: 7 } });
  const listing = await client.request<{ state: string; derivations: unknown[] }>('nixBuilders/derivations', { uri });
  assert.equal(listing.state, 'ok');
  assert.equal(listing.derivations.length, 2000);
});

for (const saved of [true, false]) {
  test(`columns: Nix counts UTF-8 bytes, LSP UTF-16 units; non-ASCII text before an attribute moves nothing (${saved ? 'saved file' : 'unsaved text'})`, async () => {
    // é is 2 bytes (1 unit), 中 3 bytes (1 unit), 😀 4 bytes (2 units).
    const prefix = '{ "é中😀" = "é中😀"; ';
    const text = `${prefix}arm = ${drv('utf8', 'aarch64-linux')}; }\n`;
    const name = saved ? 'utf8-saved' : 'utf8-unsaved';
    const uri = await openFile(`${name}.nix`, text, { saved });
    const at = text.indexOf('arm =');
    const d = only(await client.diagnostics(uri), 'no-builder-system');
    assert.deepEqual(d.range, { start: { line: 0, character: at }, end: { line: 0, character: at + 3 } });
    const lenses = await client.request<Array<{ range: { start: { line: number; character: number } } }>>('textDocument/codeLens', { textDocument: { uri } });
    assert.ok(lenses.length > 0);
    for (const lens of lenses) assert.deepEqual(lens.range.start, { line: 0, character: at });
    const hover = await client.request<{ contents: { value: string } } | null>('textDocument/hover', { textDocument: { uri }, position: { line: 0, character: at + 1 } });
    assert.match(hover?.contents.value ?? '', /\*\*arm\*\*/);

    const evalText = `\n${prefix}b = 1 + "two"; }\n`;
    const e = only(await client.diagnostics(await openFile(`${name}-eval.nix`, evalText, { saved })), 'eval-error');
    assert.deepEqual(e.range.start, { line: 1, character: evalText.split('\n')[1]?.indexOf('"two"') });
    const parseText = `\n${prefix}b = ; }\n`;
    const p = only(await client.diagnostics(await openFile(`${name}-parse.nix`, parseText, { saved })), 'parse-error');
    assert.deepEqual(p.range.start, { line: 1, character: parseText.split('\n')[1]?.indexOf('; }') });
  });
}
