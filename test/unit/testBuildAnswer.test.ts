// The test build's answer carries what the client shows, never the build's log or command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { interpretTestBuild, testBuildAnswer, type TestBuildRun } from '../../language-server/builders/testBuild';
import { parseMachineLine } from '../../language-server/nix/machines';
import type { BuilderInfo } from '../../language-server/protocol';

test('a failed test build with a huge log: the answer has no stderr, command or raw problem text, and stays small', () => {
  const { machine } = parseMachineLine('ssh://nopath@b4 x86_64-linux');
  assert.ok(machine);
  const builder: BuilderInfo = { ...machine, id: 'b4', name: 'b4', source: { label: '/etc/nix/machines' } };
  // Recorded from Nix 2.8.0, then a megabyte of build log in front of it.
  const recorded = readFileSync(path.join(__dirname, '..', 'fixtures', 'nix-2.8.0', 'remote-command-not-found-build.stderr.txt'), 'utf8');
  const stderr = `${'building: make[1]: a line of a long build log\n'.repeat(25_000)}${recorded}`;
  const decided = interpretTestBuild({ builder, exit: 'failed', stdout: '', stderr });
  assert.ok(decided.problem, 'the failure is classified');
  const run: TestBuildRun = {
    builderId: builder.id,
    name: builder.name,
    uri: builder.uri,
    ...decided,
    system: 'x86_64-linux',
    salt: 'salt',
    durationMs: 1,
    command: ['nix-build', '--builders', 'ssh://nopath@b4 x86_64-linux', '-E', 'derivation { … }'],
    stderr,
  };
  const sent = JSON.parse(JSON.stringify(testBuildAnswer(run))) as Record<string, unknown>;
  for (const field of ['stderr', 'command', 'problem']) assert.equal(field in sent, false, `${field} is not sent`);
  assert.equal(sent.problemKind, decided.problem.kind);
  assert.equal(sent.summary, decided.summary);
  assert.equal(sent.fix, decided.fix);
  assert.ok(JSON.stringify(sent).length < 4096, `the answer is ${JSON.stringify(sent).length} characters`);
});
