// A large real build through the language server over stdio: 300 derivations and one that prints a
// million log lines (≈ 100 MB of internal-json from real Nix). The client must get a bounded stream
// of small updates (what changed, throttled), see the live log line, stay answered meanwhile, and
// get the whole state at the end. Performance ratios are in `npm run bench`; here only bounds that
// follow from the design (the throttle's interval, changes instead of snapshots) are asserted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StdioLspClient, type Message } from './lspClient';
import { chattyBuildFile } from './chattyBuild';

const DERIVATIONS = 300;
const LOG_LINES = 1_000_000;

let dir: string;
let client: StdioLspClient;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nb-big-'));
  await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', ''].join('\n'));
  client = new StdioLspClient();
  await client.initialize({ settings: { env: { NIX_CONF_DIR: dir } } });
});

after(async () => {
  await client?.shutdown();
  await rm(dir, { recursive: true, force: true });
});

interface Drv {
  drvPath: string;
  name: string;
  state: string;
  lastLogLine?: string;
  logLineCount: number;
  log: string[];
}
interface Info {
  buildId: string;
  targets: Array<{ drvPath: string }>;
  status: string;
  snapshot?: { partial?: boolean; derivations: Drv[]; progress: { done: number; expected: number } };
}

test(`a build of ${DERIVATIONS + 1} derivations and ${LOG_LINES} log lines: small throttled updates, a responsive server, the whole state at the end`, async () => {
  const salt = `${Date.now()}-${process.pid}`;
  const text = chattyBuildFile({ attribute: 'big', derivations: DERIVATIONS, lines: LOG_LINES, salt });
  const file = path.join(dir, 'big.nix');
  await writeFile(file, text);
  const uri = pathToFileURL(file).href;
  client.open(uri, text);
  await client.diagnostics(uri);

  const started = Date.now();
  const info = await client.request<Info>('nixBuilders/startBuild', { uri, attrPaths: [['big']] });
  const isMine = (m: Message) => m.method === 'nixBuilders/buildProgress' && (m.params as Info).buildId === info.buildId;
  // While it runs the server still answers (the log is parsed as it streams, not in one block).
  await client.waitForNotification((m) => isMine(m) && ((m.params as Info).snapshot?.derivations ?? []).some((d) => d.name === `chatty-${salt}` && d.state === 'building'), 300_000);
  const status = await client.request<{ version?: string }>('nixBuilders/status');
  assert.match(status.version ?? '', /^\d+\.\d+/);
  // Its log on demand while it runs: the kept tail, and a first line saying what was not kept.
  const chattyPath = info.targets[0]?.drvPath;
  // Asked again after each update until more than the kept tail was printed.
  let live = await client.request<string[]>('nixBuilders/buildLog', { buildId: info.buildId, drvPath: chattyPath });
  while (!(live[0] ?? '').startsWith('[')) {
    await client.waitForNotification(isMine, 60_000, false);
    live = await client.request<string[]>('nixBuilders/buildLog', { buildId: info.buildId, drvPath: chattyPath });
  }
  assert.match(live[0] ?? '', /^\[\d+ earlier lines of \d+ not kept: the last \d+ follow\]$/);
  assert.match(live[live.length - 1] ?? '', /^log line \d+ of a chatty build$/);
  const done = await client.waitForNotification((m) => isMine(m) && (m.params as Info).status !== 'running', 600_000);
  const elapsed = Date.now() - started;
  const end = done.params as Info;
  assert.equal(end.status, 'built');
  assert.notEqual(end.snapshot?.partial, true, 'the last notification is whole');
  assert.equal(end.snapshot?.derivations.length, DERIVATIONS + 1);
  assert.ok(end.snapshot?.derivations.every((d) => d.state === 'built' && d.log.length === 0), 'all built; logs stay on the server');
  const chatty = end.snapshot?.derivations.find((d) => d.name === `chatty-${salt}`);
  assert.equal(chatty?.logLineCount, LOG_LINES);

  const running = client.notifications.filter((m) => isMine(m) && (m.params as Info).status === 'running' && (m.params as Info).snapshot);
  // Throttled: at most one update per 200 ms (plus the first).
  assert.ok(running.length <= elapsed / 200 + 2, `${running.length} updates in ${elapsed} ms`);
  assert.ok(running.every((m) => (m.params as Info).snapshot?.partial === true));
  // Live: some update showed a log line of the chatty build while it ran.
  assert.ok(running.some((m) => (m.params as Info).snapshot?.derivations.some((d) => d.name === `chatty-${salt}` && /^log line \d+ of a chatty build$/.test(d.lastLogLine ?? ''))));
  // Small: apart from the first (the queue of every derivation), an update carries what changed.
  // While the chatty build runs alone, that is one derivation: well under 4 KB each.
  const sizes = running.map((m) => JSON.stringify(m.params).length);
  const whole = JSON.stringify(end).length;
  const chattyOnly = running.filter((m) => (m.params as Info).snapshot?.derivations.length === 1);
  assert.ok(chattyOnly.length > 0);
  assert.ok(chattyOnly.every((m) => JSON.stringify(m.params).length < 4096), `sizes ${sizes.join(',')}`);
  const total = sizes.reduce((a, b) => a + b, 0);
  // Everything the client received while ~100 MB of log streamed: a small multiple of one whole state.
  assert.ok(total < 20 * whole, `received ${total} bytes in updates; the whole state is ${whole}`);
});
