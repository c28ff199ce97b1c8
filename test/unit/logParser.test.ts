// The internal-json log parser against logs recorded from real Nix 2.8.0 (test/fixtures/nix-2.8.0,
// see its README.md for the command behind each file), plus hand-made lines for what 2.8 cannot
// produce (unknown codes and actions, ids above 2^53, broken JSON). Each test names its fixture.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  InternalJsonLogParser,
  parseLog,
  parseLogLine,
  stripAnsi,
  type LogEvent,
  type MsgEvent,
  type ResultEvent,
  type StartEvent,
} from '../../language-server/nix/logParser';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'nix-2.8.0');
const fixture = (name: string) => readFileSync(path.join(FIXTURES, name), 'utf8');

const starts = (events: LogEvent[]) => events.filter((e): e is StartEvent => e.kind === 'start');
const results = (events: LogEvent[]) => events.filter((e): e is ResultEvent => e.kind === 'result');
const msgs = (events: LogEvent[]) => events.filter((e): e is MsgEvent => e.kind === 'msg');

test('build-success.jsonl: activities, the typed build fields, phases, log lines, progress and expectations', () => {
  const text = fixture('build-success.jsonl');
  const events = parseLog(text);
  assert.equal(events.length, text.trimEnd().split('\n').length, 'one event per line');
  assert.ok(events.every((e) => e.kind !== 'malformed' && e.kind !== 'plain' && e.kind !== 'unknown'));

  const names = starts(events).map((s) => s.activityTypeName);
  assert.deepEqual(names, ['unknown', 'realise', 'builds', 'copyPaths', 'unknown', 'build']);
  const build = starts(events).find((s) => s.activityTypeName === 'build');
  assert.ok(build?.build);
  assert.equal(build.activityType, 105);
  assert.match(build.build.drvPath, /^\/nix\/store\/[a-z0-9]{32}-hello-phases\.drv$/);
  assert.equal(build.build.machine, '', 'a local build has no machine');
  assert.equal(build.build.round, 1);
  assert.equal(build.build.nrRounds, 1);
  assert.equal(build.text, `building '${build.build.drvPath}'`);
  assert.equal(build.level, 3);
  assert.equal(build.parent, undefined, '2.8 sends no parent');
  assert.match(build.id, /^\d+$/);

  const mine = results(events).filter((r) => r.id === build.id);
  assert.deepEqual(
    mine.filter((r) => r.resultTypeName === 'setPhase').map((r) => r.phase),
    ['unpackPhase', 'buildPhase', 'installPhase'],
  );
  const lines = mine.filter((r) => r.resultTypeName === 'buildLogLine').map((r) => r.logLine);
  assert.equal(lines[0], 'unpacking sources');
  assert.match(lines[1] ?? '', /^building \d+$/);
  assert.equal(lines[2], 'some stderr', 'stderr of the builder is a log line too');

  const builds = starts(events).find((s) => s.activityTypeName === 'builds');
  const progress = results(events).filter((r) => r.id === builds?.id && r.resultTypeName === 'progress');
  assert.deepEqual(progress[0]?.progress, { done: 0, expected: 1, running: 0, failed: 0 });
  assert.deepEqual(progress.at(-1)?.progress, { done: 1, expected: 1, running: 0, failed: 0 });

  const expected = results(events).find((r) => r.resultTypeName === 'setExpected');
  assert.deepEqual(expected?.setExpected, { activityType: 101, activityTypeName: 'fileTransfer', expected: 0 });

  const stops = events.filter((e) => e.kind === 'stop').map((e) => (e.kind === 'stop' ? e.id : ''));
  for (const s of starts(events)) assert.ok(stops.includes(s.id), `activity ${s.id} stops`);

  assert.deepEqual(
    msgs(events).map((m) => m.text),
    ['this derivation will be built:', `  ${build.build.drvPath}`],
  );
});

test('build-failure.jsonl: the error message without ANSI, raw_msg preferred, null positions absent', () => {
  const events = parseLog(fixture('build-failure.jsonl'));
  const error = msgs(events).find((m) => m.level === 0);
  assert.ok(error);
  assert.match(error.text, /^builder for '\/nix\/store\/\S+-will-fail\.drv' failed with exit code 3$/);
  assert.match(error.fullText, /^error: builder for '/);
  assert.match(error.rawMsg, /\u001b\[31;1merror:/, 'the raw message keeps its colours');
  assert.equal(error.file, undefined);
  assert.equal(error.line, undefined);
  assert.equal(error.column, undefined);
  const log = results(events).filter((r) => r.resultTypeName === 'buildLogLine').map((r) => r.logLine);
  assert.deepEqual(log.slice(1), ['error: missing semicolon']);
  const builds = starts(events).find((s) => s.activityTypeName === 'builds');
  const progress = results(events).filter((r) => r.id === builds?.id && r.progress).at(-1);
  assert.deepEqual(progress?.progress, { done: 0, expected: 0, running: 0, failed: 1 });
});

test('eval-error.jsonl and parse-error.jsonl: file, line and column of evaluation errors', () => {
  const evalError = msgs(parseLog(fixture('eval-error.jsonl'))).find((m) => m.level === 0 && m.file);
  assert.ok(evalError);
  assert.equal(evalError.text, "attribute 'bash' missing");
  assert.match(evalError.file ?? '', /\/evalerr\.nix$/);
  assert.equal(evalError.line, 6);
  assert.equal(evalError.column, 13);
  assert.match(evalError.fullText, /^error: attribute 'bash' missing\n\n {7}at \S+evalerr\.nix:6:13:\n/);
  assert.ok(!evalError.fullText.includes('\u001b'));

  const parseError = msgs(parseLog(fixture('parse-error.jsonl'))).find((m) => m.file);
  assert.equal(parseError?.text, "syntax error, unexpected '=', expecting ';'");
  assert.equal(parseError?.line, 3);
  assert.equal(parseError?.column, 5);
});

test('dependency-chain.jsonl: three builds in order, each with its own id and log line', () => {
  const events = parseLog(fixture('dependency-chain.jsonl'));
  const builds = starts(events).filter((s) => s.build);
  assert.deepEqual(
    builds.map((b) => b.build?.drvPath.replace(/^.*-chain-/, '')),
    ['leaf.drv', 'middle.drv', 'top.drv'],
  );
  assert.equal(new Set(builds.map((b) => b.id)).size, 3);
  const firstLine = (id: string) => results(events).find((r) => r.id === id && r.logLine !== undefined)?.logLine;
  assert.match(firstLine(builds[0]!.id) ?? '', /^leaf \d+$/);
  assert.equal(firstLine(builds[1]!.id), 'middle');
  assert.equal(firstLine(builds[2]!.id), 'top');
  const buildsActivity = starts(events).find((s) => s.activityTypeName === 'builds');
  const total = results(events).filter((r) => r.id === buildsActivity?.id && r.progress).at(-1)?.progress;
  assert.deepEqual(total, { done: 3, expected: 3, running: 0, failed: 0 });
});

test('remote-build-ssh.jsonl: the machine of a remote build, copyPath [path, from, to], the hook\'s activities', () => {
  const events = parseLog(fixture('remote-build-ssh.jsonl'));
  const build = starts(events).find((s) => s.build);
  assert.equal(build?.build?.machine, 'ssh://b1');
  assert.match(build?.text ?? '', / on 'ssh:\/\/b1'$/);
  const copy = starts(events).find((s) => s.copyPath);
  assert.ok(copy?.copyPath);
  assert.match(copy.copyPath.path, /^\/nix\/store\/[a-z0-9]{32}-remote-logs$/);
  assert.equal(copy.copyPath.from, 'ssh://b1');
  assert.equal(copy.copyPath.to, 'local');
  const talk = starts(events)
    .filter((s) => s.activityTypeName === 'unknown')
    .map((s) => s.text);
  assert.ok(talk.includes("connecting to 'ssh://b1'"));
  assert.ok(talk.includes("copying outputs from 'ssh://b1'"));
  const lines = results(events).filter((r) => r.id === build?.id && r.logLine !== undefined).map((r) => r.logLine);
  assert.match(lines[0] ?? '', /^remote build of [0-9a-f-]{36}$/);
});

test('remote-build-ssh-ng.jsonl: the remote daemon\'s nested build (machine "") carries the log; correlate by drvPath', () => {
  const events = parseLog(fixture('remote-build-ssh-ng.jsonl'));
  const builds = starts(events).filter((s) => s.build);
  assert.equal(builds.length, 2);
  assert.equal(builds[0]?.build?.machine, 'ssh-ng://b1');
  assert.equal(builds[1]?.build?.machine, '');
  assert.equal(builds[0]?.build?.drvPath, builds[1]?.build?.drvPath);
  const outer = results(events).filter((r) => r.id === builds[0]?.id && r.logLine !== undefined);
  const inner = results(events).filter((r) => r.id === builds[1]?.id);
  assert.equal(outer.length, 0);
  assert.deepEqual(
    inner.filter((r) => r.phase).map((r) => r.phase),
    ['buildPhase'],
  );
  assert.match(inner.find((r) => r.logLine)?.logLine ?? '', /^remote build of /);
});

test('remote-build-aarch64.jsonl: an aarch64-linux derivation built on ssh://b2', () => {
  const build = starts(parseLog(fixture('remote-build-aarch64.jsonl'))).find((s) => s.build);
  assert.equal(build?.build?.machine, 'ssh://b2');
});

test('substitute-from-file-cache.jsonl: substitute [path, host], queryPathInfo, copyPath from a binary cache', () => {
  const events = parseLog(fixture('substitute-from-file-cache.jsonl'));
  const sub = starts(events).find((s) => s.activityTypeName === 'substitute');
  assert.equal(sub?.activityType, 108);
  assert.ok(sub?.substitute);
  assert.match(sub.substitute.path, /-cached$/);
  assert.match(sub.substitute.host, /^file:\/\/\/.*\/cache$/);
  assert.equal(sub.text, '', '2.8 gives substitute activities no text');
  const query = starts(events).find((s) => s.activityTypeName === 'queryPathInfo');
  assert.equal(query?.activityType, 109);
  const copy = starts(events).find((s) => s.copyPath);
  assert.equal(copy?.copyPath?.from, sub.substitute.host);
  assert.equal(copy?.copyPath?.to, 'local');
  const expected = results(events).filter((r) => r.setExpected);
  assert.ok(expected.some((r) => r.setExpected?.activityTypeName === 'copyPath' && r.setExpected.expected > 0));
});

test('every recorded log parses without a malformed line, and streaming in chunks gives the same events', () => {
  for (const name of [
    'build-success.jsonl',
    'build-failure.jsonl',
    'dependency-chain.jsonl',
    'dependency-failure.jsonl',
    'eval-error.jsonl',
    'parse-error.jsonl',
    'no-machine.jsonl',
    'nix-build-success.jsonl',
    'connection-refused-build-json.jsonl',
    'remote-build-ssh.jsonl',
    'remote-build-ssh-ng.jsonl',
    'remote-build-aarch64.jsonl',
    'remote-build-failure.jsonl',
    'not-privileged-ssh.jsonl',
    'substitute-from-file-cache.jsonl',
  ]) {
    const text = fixture(name);
    const whole = parseLog(text);
    assert.ok(
      whole.every((e) => e.kind !== 'malformed'),
      name,
    );
    for (const size of [1, 7, 64, 1000]) {
      const parser = new InternalJsonLogParser();
      const streamed: LogEvent[] = [];
      for (let i = 0; i < text.length; i += size) streamed.push(...parser.push(text.slice(i, i + size)));
      streamed.push(...parser.end());
      assert.deepEqual(streamed, whole, `${name} in chunks of ${size}`);
    }
  }
});

test('streaming: a line split across chunks, CRLF, empty chunks, and a last line without a line break', () => {
  const parser = new InternalJsonLogParser();
  assert.deepEqual(parser.push('@nix {"action":"st'), []);
  assert.deepEqual(parser.push(''), []);
  assert.deepEqual(parser.push('op","id":42}\r\nplain '), [{ kind: 'stop', id: '42' }]);
  assert.deepEqual(parser.push('text\n\n'), [
    { kind: 'plain', text: 'plain text' },
    { kind: 'plain', text: '' },
  ]);
  assert.deepEqual(parser.push('@nix {"action":"stop","id":43}'), []);
  assert.deepEqual(parser.end(), [{ kind: 'stop', id: '43' }]);
  assert.deepEqual(parser.end(), [], 'end() twice gives nothing more');
});

test('unknown activity and result codes and unknown actions are kept, never dropped (a newer Nix)', () => {
  const fetch = parseLogLine('@nix {"action":"start","id":7,"level":4,"type":112,"text":"fetching","fields":[],"parent":5}');
  assert.equal(fetch.kind, 'start');
  assert.equal(fetch.kind === 'start' && fetch.activityTypeName, 'fetchTree');
  assert.equal(fetch.kind === 'start' && fetch.parent, '5');

  const future = parseLogLine('@nix {"action":"start","id":8,"level":3,"type":999,"text":"something new","fields":["a",1],"parent":0}');
  assert.deepEqual(future, {
    kind: 'start',
    id: '8',
    level: 3,
    activityType: 999,
    activityTypeName: 'unknownCode',
    text: 'something new',
    fields: ['a', 1],
  });

  const result = parseLogLine('@nix {"action":"result","id":8,"type":250,"fields":[{"x":1}]}');
  assert.deepEqual(result, { kind: 'result', id: '8', resultType: 250, resultTypeName: 'unknownCode', fields: [{ x: 1 }] });

  const status = parseLogLine('@nix {"action":"result","id":8,"type":108,"fields":["status"]}');
  assert.equal(status.kind === 'result' && status.resultTypeName, 'fetchStatus');

  const action = parseLogLine('@nix {"action":"setProgress","id":8,"value":3}');
  assert.equal(action.kind, 'unknown');
  assert.equal(action.kind === 'unknown' && action.action, 'setProgress');
  assert.deepEqual(action.kind === 'unknown' && action.value, { action: 'setProgress', id: 8, value: 3 });
});

test('fields of the wrong shape give no typed helper, but are kept', () => {
  const build = parseLogLine('@nix {"action":"start","id":1,"level":3,"type":105,"text":"","fields":[5]}');
  assert.equal(build.kind === 'start' && build.build, undefined);
  assert.deepEqual(build.kind === 'start' && build.fields, [5]);
  const progress = parseLogLine('@nix {"action":"result","id":1,"type":105,"fields":["a",1,2,3]}');
  assert.equal(progress.kind === 'result' && progress.progress, undefined);
  const noFields = parseLogLine('@nix {"action":"result","id":1,"type":101}');
  assert.deepEqual(noFields.kind === 'result' && noFields.fields, []);
  assert.equal(noFields.kind === 'result' && noFields.logLine, undefined);
});

test('activity ids above 2^53 keep their identity (ids are the digits Nix printed)', () => {
  // (pid << 32) + n for a pid above 2^21: JSON.parse alone would round both to the same number.
  const a = parseLogLine('@nix {"action":"start","id":18014398509481985,"level":3,"type":105,"text":"","fields":["/nix/store/x.drv","",1,1],"parent":18014398509481984}');
  const b = parseLogLine('@nix {"action":"stop","id":18014398509481986}');
  assert.equal(a.kind === 'start' && a.id, '18014398509481985');
  assert.equal(a.kind === 'start' && a.parent, '18014398509481984');
  assert.equal(b.kind === 'stop' && b.id, '18014398509481986');
  assert.equal(JSON.parse('18014398509481985'), JSON.parse('18014398509481984'), 'the rounding this guards against');
});

test('bad @nix lines become "malformed" with a reason; other lines are "plain" without ANSI', () => {
  for (const line of ['@nix {"action":"start",', '@nix ', '@nix [1,2]', '@nix "text"', '@nix {"id":1}', '@nix {"action":"stop"}']) {
    const ev = parseLogLine(line);
    assert.equal(ev.kind, 'malformed', line);
    assert.equal(ev.kind === 'malformed' && ev.text, line);
    assert.ok(ev.kind === 'malformed' && ev.reason.length > 0);
  }
  // Strings as ids are accepted as they are (they are opaque).
  assert.deepEqual(parseLogLine('@nix {"action":"stop","id":"abc"}'), { kind: 'stop', id: 'abc' });
  assert.deepEqual(parseLogLine('\u001b[31;1merror:\u001b[0m plain'), { kind: 'plain', text: 'error: plain' });
  assert.deepEqual(parseLogLine('@nixx {"action":"stop","id":1}'), { kind: 'plain', text: '@nixx {"action":"stop","id":1}' });
  assert.deepEqual(parseLogLine('ssh: connect to host 127.0.0.1 port 2299: Connection refused'), {
    kind: 'plain',
    text: 'ssh: connect to host 127.0.0.1 port 2299: Connection refused',
  });
});

test('a msg without raw_msg uses msg; a message can span lines', () => {
  const events = parseLog(fixture('no-machine.jsonl'));
  const table = msgs(events).find((m) => m.text.startsWith('Failed to find a machine'));
  assert.ok(table);
  assert.equal(table.level, 1);
  assert.equal(table.text, table.fullText);
  assert.match(table.text, /\nrequired \(system, features\): \(x86_64-linux, big-parallel, gpu\)\n/);
  assert.match(table.rawMsg, /\u001b\[35;1maarch64-linux, armv7l-linux\u001b\[0m/, 'the colours that delimit lists are kept in rawMsg');
});

test('stripAnsi removes colours and hyperlinks and leaves other text alone', () => {
  assert.equal(stripAnsi('\u001b[31;1merror:\u001b[0m x'), 'error: x');
  assert.equal(stripAnsi('\u001b]8;;https://nixos.org\u0007link\u001b]8;;\u0007'), 'link');
  assert.equal(stripAnsi('\u001b[2K\u001b[1Gprogress'), 'progress');
  const plain = 'no escapes here «string»';
  assert.equal(stripAnsi(plain), plain);
});

test('200 000 lines fed in 64 KiB chunks: every line is one event, none split at a chunk border (the speed: npm run bench)', () => {
  const line = (i: number) =>
    i % 3 === 0
      ? `@nix {"action":"result","fields":["compiling file ${i}.c -O2"],"id":38272453574661,"type":101}`
      : i % 3 === 1
        ? `@nix {"action":"result","fields":[${i},200000,1,0],"id":38272453574658,"type":105}`
        : `@nix {"action":"msg","level":0,"msg":"\\u001b[31;1merror:\\u001b[0m x ${i}","raw_msg":"x ${i}"}`;
  const text = Array.from({ length: 200_000 }, (_, i) => line(i)).join('\n') + '\n';
  const parser = new InternalJsonLogParser();
  const events: LogEvent[] = [];
  for (let i = 0; i < text.length; i += 65536) events.push(...parser.push(text.slice(i, i + 65536)));
  events.push(...parser.end());
  assert.equal(events.length, 200_000);
  const kinds = new Map<string, number>();
  for (const e of events) kinds.set(e.kind, (kinds.get(e.kind) ?? 0) + 1);
  assert.deepEqual(Object.fromEntries(kinds), { result: 133_334, msg: 66_666 });
  const logLine = events[199_998];
  assert.equal(logLine?.kind === 'result' ? logLine.logLine : logLine, 'compiling file 199998.c -O2');
  const msg = events[199_997];
  assert.deepEqual(msg?.kind === 'msg' ? [msg.text, msg.fullText] : msg, ['x 199997', 'error: x 199997']);
});
