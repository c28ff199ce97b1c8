// The LSP commands from a plain LSP client (no vscode-languageclient) against real Nix: the code
// lenses' commands are the server's own, advertised in executeCommandProvider; executing Build
// builds for real and answers what happened; work-done progress begins, reports and ends; cancelling
// it through window/workDoneProgress/cancel ends the build's processes; Build on… asks through
// window/showMessageRequest; Build Expression takes any expression as data. No builder is needed:
// everything builds on this machine (the Build on… test checks what reaches Nix with a recording
// runner).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient, type Message } from './lspClient';
import { hostStorePath } from './nixUnderTest';
import { isRunning } from '../lab/processes';
import { ServerCommands, type BuildCommandResult, type BuildPlanInfo, type CheckReproducibilityResult } from '../../language-server/protocol';

const RECORDING_SERVER = path.join(__dirname, 'recordingServer.ts');

let dir: string;
let argvLog: string;
let client: StdioLspClient;

const salt = () => `${Date.now()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
/** A derivation that runs `script` with /bin/sh on this machine. */
const drv = (name: string, script: string) => `derivation { name = "${name}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" ${JSON.stringify(script)} ]; }`;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-commands-'));
  argvLog = path.join(dir, 'argv.jsonl');
  await writeFile(argvLog, '');
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', ''].join('\n'));
  client = new StdioLspClient({ ...process.env, NB_ARGV_LOG: argvLog }, ['--import', 'tsx', RECORDING_SERVER]);
  const init = (await client.initialize(
    { settings: { env: { NIX_CONF_DIR: dir }, builders: ['ssh://nb-chosen.invalid x86_64-linux', 'ssh://nb-other.invalid x86_64-linux'] } },
    dir,
    { window: { workDoneProgress: true, showMessage: { messageActionItem: { additionalPropertiesSupport: false } } } },
  )) as { capabilities: { executeCommandProvider?: { commands: string[] } } };
  assert.deepEqual(init.capabilities.executeCommandProvider?.commands, Object.values(ServerCommands));
});

after(async () => {
  await client?.shutdown();
  await rm(dir, { recursive: true, force: true });
});

interface Lens {
  command: { title: string; command: string; arguments: unknown[] };
}

async function openFile(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  client.open(uri, text);
  return uri;
}

async function lenses(uri: string): Promise<Lens[]> {
  return client.request<Lens[]>('textDocument/codeLens', { textDocument: { uri } });
}

const lensOf = (all: Lens[], title: string) => {
  const l = all.find((x) => x.command.title === title);
  assert.ok(l, `a ${title} lens in ${JSON.stringify(all)}`);
  return l.command;
};

/** The $/progress values sent for a token, in order. */
const progressOf = (token: unknown) =>
  client.notifications.filter((m) => m.method === '$/progress' && (m.params as { token: unknown }).token === token).map((m) => (m.params as { value: { kind: string; title?: string; message?: string; cancellable?: boolean } }).value);

test('the Build lens runs a server command: it builds, reports $/progress on a token the server creates, and answers with the derivations, machine and output', async () => {
  const name = `cmd-build-${salt()}`;
  const uri = await openFile('build.nix', `{\n  hello = ${drv(name, 'echo hi > $out')};\n}\n`);
  const all = await lenses(uri);
  assert.deepEqual(
    all.map((l) => [l.command.title, l.command.command]),
    [
      ['Build', ServerCommands.build],
      ['Build remotely only', ServerCommands.buildRemotely],
      ['Build on…', ServerCommands.buildOn],
      ['Plan', ServerCommands.plan],
      ['Check reproducibility', ServerCommands.checkReproducibility],
    ],
  );
  const build = lensOf(all, 'Build');
  const before = client.serverRequests.length;
  const result = await client.request<BuildCommandResult>('workspace/executeCommand', { command: build.command, arguments: build.arguments });
  assert.equal(result.status, 'built', JSON.stringify(result));
  assert.deepEqual(result.targets.map((t) => t.attrPath), [['hello']]);
  assert.deepEqual(result.derivations.map((d) => [d.name, d.state, d.machine]), [[name, 'built', '']]);
  assert.equal(result.outputs.length, 1);
  assert.ok(existsSync(hostStorePath(result.outputs[0]!)), `${result.outputs[0]} is in the store of the Nix under test`);
  assert.equal((await readFile(hostStorePath(result.outputs[0]!), 'utf8')).trim(), 'hi');
  assert.deepEqual(result.problems, []);
  // No workDoneToken given: the server asked for one, then began, reported and ended it.
  const created = client.serverRequests.slice(before).find((m) => m.method === 'window/workDoneProgress/create');
  assert.ok(created, 'window/workDoneProgress/create was sent');
  const values = progressOf((created.params as { token: unknown }).token);
  assert.equal(values[0]?.kind, 'begin');
  assert.equal(values[0]?.title, 'Building hello');
  assert.equal(values[0]?.cancellable, true);
  assert.ok(values.some((v) => v.kind === 'report' && /will be built/.test(v.message ?? '')), JSON.stringify(values));
  assert.equal(values[values.length - 1]?.kind, 'end');
  assert.equal(values.filter((v) => v.kind === 'end').length, 1);
  // The Check reproducibility lens's arguments are the command's own: it rebuilds what was just built.
  const check = lensOf(all, 'Check reproducibility');
  assert.deepEqual(check.arguments, [{ uri, attribute: ['hello'] }]);
  const checked = await client.request<CheckReproducibilityResult>('workspace/executeCommand', { command: check.command, arguments: check.arguments });
  assert.deepEqual([checked.status, checked.builtFirst, checked.outputs.map((o) => o.name)], ['reproducible', false, ['out']], JSON.stringify(checked));
});

/** Opens a file whose derivation's builder writes its pid and its parent's to a file and sleeps; returns its Build lens command and a wait for those pids. */
async function slowBuild(file: string): Promise<{ build: Lens['command']; started: () => Promise<number[]> }> {
  const marker = path.join(dir, `pids-${salt()}`);
  const uri = await openFile(file, `{\n  slow = ${drv(`cmd-slow-${salt()}`, `echo $$ $PPID > ${marker}; exec /bin/sleep 600`)};\n}\n`);
  const build = lensOf(await lenses(uri), 'Build');
  const started = async () => {
    let pids: number[] = [];
    for (let i = 0; pids.length < 2; i++) {
      assert.ok(i < 1200, 'the build started its builder');
      await new Promise((r) => setTimeout(r, 100));
      pids = existsSync(marker) ? (await readFile(marker, 'utf8')).trim().split(/\s+/).filter(Boolean).map(Number) : [];
    }
    assert.ok(pids.every((p) => isRunning(p)));
    return pids;
  };
  return { build, started };
}

async function assertGone(pids: number[]): Promise<void> {
  for (let i = 0; pids.some((p) => isRunning(p)); i++) {
    assert.ok(i < 300, `the builder and its parent are gone: ${pids.filter((p) => isRunning(p)).join(' ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('window/workDoneProgress/cancel on the client\'s own token cancels the build and ends its process tree', { timeout: 180_000 }, async () => {
  const { build, started } = await slowBuild('slow.nix');
  const token = `test-token-${salt()}`;
  const answer = client.request<BuildCommandResult>('workspace/executeCommand', { command: build.command, arguments: build.arguments, workDoneToken: token });
  const pids = await started();
  assert.equal(progressOf(token)[0]?.kind, 'begin');
  client.notify('window/workDoneProgress/cancel', { token });
  const result = await answer;
  assert.equal(result.status, 'cancelled', JSON.stringify(result));
  assert.deepEqual(result.derivations.map((d) => d.state), ['cancelled']);
  await assertGone(pids);
  const values = progressOf(token);
  assert.equal(values[values.length - 1]?.kind, 'end');
});

test('$/cancelRequest of the workspace/executeCommand cancels the build too', { timeout: 180_000 }, async () => {
  const { build, started } = await slowBuild('slow-request.nix');
  const abort = new AbortController();
  const answer = client.request<BuildCommandResult>('workspace/executeCommand', { command: build.command, arguments: build.arguments }, abort.signal);
  const pids = await started();
  abort.abort();
  assert.equal((await answer).status, 'cancelled');
  await assertGone(pids);
});

test('Build on… asks which builder through window/showMessageRequest: the build gets only that builder, with --max-jobs 0; dismissing builds nothing', async () => {
  const uri = await openFile('on.nix', `{\n  there = ${drv(`cmd-on-${salt()}`, ': > $out')};\n}\n`);
  const buildOn = lensOf(await lenses(uri), 'Build on…');
  const asked: Message[] = [];
  client.answers.set('window/showMessageRequest', (params) => {
    asked.push({ params });
    return { title: 'nb-chosen.invalid' };
  });
  try {
    const result = await client.request<BuildCommandResult>('workspace/executeCommand', { command: buildOn.command, arguments: buildOn.arguments });
    const request = asked[0]?.params as { message: string; actions: Array<{ title: string }> };
    assert.match(request.message, /Build on which builder\?/);
    assert.deepEqual(request.actions.map((a) => a.title), ['nb-chosen.invalid', 'nb-other.invalid']);
    // The host does not exist: Nix fails to reach it, and says so.
    assert.equal(result.status, 'failed');
    const drvPath = result.targets[0]!.drvPath;
    const runs = (await readFile(argvLog, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as string[]);
    const realise = runs.filter((a) => a.includes('--realise') && !a.includes('--dry-run') && a.includes(drvPath));
    assert.equal(realise.length, 1, JSON.stringify(runs));
    const argv = realise[0]!;
    assert.equal(argv[argv.indexOf('--builders') + 1], 'ssh://nb-chosen.invalid x86_64-linux - 1 1');
    assert.equal(argv[argv.indexOf('--max-jobs') + 1], '0');

    client.answers.set('window/showMessageRequest', () => null);
    const dismissed = await client.request<BuildCommandResult>('workspace/executeCommand', { command: buildOn.command, arguments: buildOn.arguments });
    assert.equal(dismissed.status, 'not-started');
    assert.match(dismissed.summary, /No builder was chosen/);
  } finally {
    client.answers.delete('window/showMessageRequest');
  }
});

test('Plan runs as a server command and answers the plan (Nix tries the first builder that fits before this machine)', async () => {
  const name = `cmd-plan-${salt()}`;
  const uri = await openFile('plan.nix', `{\n  planned = ${drv(name, ': > $out')};\n}\n`);
  const plan = lensOf(await lenses(uri), 'Plan');
  const result = await client.request<BuildPlanInfo>('workspace/executeCommand', { command: plan.command, arguments: plan.arguments });
  assert.equal(result.summary, '1 derivation will be built');
  assert.deepEqual(result.targets.map((t) => [t.attrPath, t.willBuild]), [[['planned'], true]]);
  assert.deepEqual(result.builds.map((b) => [b.name, b.verdict, b.machine]), [[name, 'remote', 'nb-chosen.invalid']]);
});

test('Build Expression: any expression, given to Nix on stdin with relative paths from its directory, builds like an attribute', async () => {
  const name = `cmd-expr-${salt()}`;
  await writeFile(path.join(dir, 'pkgs.nix'), `{ tool = ${drv(name, 'echo "from pkgs.nix" > $out')}; }\n`);
  // Quotes, `$`, `;` and `''` in the expression reach Nix as they are (no shell, no splicing).
  const expression = `let x = "it's \${"fine"}; really"; in (import ./pkgs.nix).tool // { passthru = x; }`;
  const token = `expr-${salt()}`;
  const result = await client.request<BuildCommandResult>('workspace/executeCommand', { command: ServerCommands.buildExpression, arguments: [{ expression, directory: dir }], workDoneToken: token });
  assert.equal(result.status, 'built', JSON.stringify(result));
  assert.deepEqual(result.derivations.map((d) => [d.name, d.state, d.machine]), [[name, 'built', '']]);
  assert.equal((await readFile(hostStorePath(result.outputs[0]!), 'utf8')).trim(), 'from pkgs.nix');
  const values = progressOf(token);
  assert.deepEqual([values[0]?.kind, values[0]?.title, values[values.length - 1]?.kind], ['begin', 'Building the expression', 'end']);
  assert.ok(values.some((v) => v.message === 'evaluating the expression'));
  // nix-instantiate read it from stdin: the expression is in no argument.
  const runs = (await readFile(argvLog, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as string[]);
  const instantiate = runs.filter((a) => path.basename(a[0] ?? '') === 'nix-instantiate' && a[a.length - 1] === '-' && !a.includes('--eval'));
  assert.ok(instantiate.length >= 1, JSON.stringify(runs));
  assert.ok(runs.every((a) => !a.some((x) => x.includes('really'))));
});

test('Plan Expression with --builders text plans on those builders; a bad entry or expression is refused with the cause', async () => {
  const name = `cmd-expr-plan-${salt()}`;
  const plan = await client.request<BuildPlanInfo>('workspace/executeCommand', {
    command: ServerCommands.planExpression,
    arguments: [{ expression: drv(name, ': > $out'), builders: 'ssh://nb-given.invalid x86_64-linux - 2', remoteOnly: true }],
  });
  assert.deepEqual(plan.builds.map((b) => [b.name, b.verdict, b.machine]), [[name, 'remote', 'nb-given.invalid']]);
  await assert.rejects(
    client.request('workspace/executeCommand', { command: ServerCommands.buildExpression, arguments: [{ expression: drv(name, ': > $out'), builders: 'ssh://b1 x86_64-linux - many' }] }),
    /builders, line 1: 'ssh:\/\/b1 x86_64-linux - many': column 4 \(max jobs\) must be a whole number/,
  );
  await assert.rejects(
    client.request('workspace/executeCommand', { command: ServerCommands.buildExpression, arguments: [{ expression: '{ a = 1; }.b' }] }),
    /Evaluating the expression failed .*attribute 'b' missing/s,
  );
  await assert.rejects(client.request('workspace/executeCommand', { command: ServerCommands.buildExpression, arguments: [{ expression: '42' }] }), /Evaluating the expression failed/);
});

test('the quick fixes carry server commands: Which Builder answers the preview and shows it; Add Builder without an entry says how', async () => {
  const uri = await openFile('arm.nix', `{\n  arm = derivation { name = "cmd-arm-${salt()}"; system = "aarch64-linux"; builder = "/bin/sh"; };\n}\n`);
  const ds = await client.diagnostics(uri, (d) => d.length > 0);
  const actions = await client.request<Array<{ title: string; command: { command: string; arguments: unknown[] } }>>('textDocument/codeAction', { textDocument: { uri }, range: ds[0]?.range, context: { diagnostics: ds } });
  assert.deepEqual(actions.map((a) => a.command.command), [ServerCommands.addBuilder, ServerCommands.whichBuilder]);
  const which = actions[1]!.command;
  assert.deepEqual(which.arguments, [uri, 1]);
  const shown = client.waitForNotification((m) => m.method === 'window/showMessage' && /aarch64-linux/.test((m.params as { message: string }).message), 30_000, false);
  const preview = await client.request<{ preview?: { verdict: string } }>('workspace/executeCommand', which);
  assert.equal(preview.preview?.verdict, 'none');
  assert.match(((await shown).params as { message: string }).message, /^arm: /);
  const add = actions[0]!.command;
  const told = client.waitForNotification((m) => m.method === 'window/showMessage' && /Add a builder for aarch64-linux/.test((m.params as { message: string }).message), 30_000, false);
  assert.equal(await client.request('workspace/executeCommand', add), null);
  assert.match(((await told).params as { message: string }).message, /ssh:\/\/HOST aarch64-linux/);
});

test('Add Builder with an entry adds it to the machines file named; a malformed entry is refused', async () => {
  const file = path.join(dir, 'added-machines');
  await writeFile(file, '# mine\n');
  const result = await client.request<{ ok: boolean }>('workspace/executeCommand', { command: ServerCommands.addBuilder, arguments: [{ entry: 'ssh://nb-added.invalid aarch64-linux', file }] });
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.equal(await readFile(file, 'utf8'), '# mine\nssh://nb-added.invalid aarch64-linux\n');
  const refused = await client.request<{ ok: boolean; reason?: string }>('workspace/executeCommand', { command: ServerCommands.addBuilder, arguments: [{ entry: 'ssh://x aarch64-linux - lots', file }] });
  assert.deepEqual([refused.ok, refused.reason], [false, 'invalid-entry']);
});
