// Builds: a build whose run fails unexpectedly (the runner itself rejects) still ends, as failed
// with the cause, instead of leaving an unhandled rejection that would end the whole server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Connection } from 'vscode-languageserver/node';
import { Builds } from '../../language-server/builds/builds';
import { Nix } from '../../language-server/nix/nix';
import type { ProcessRunner, RunRequest, RunResult } from '../../language-server/nix/runner';
import type { BuildInfo } from '../../language-server/protocol';

const DRV = '/nix/store/00000000000000000000000000000000-x.drv';

test('a build whose process cannot be run ends as failed, with the cause, and nothing is left unhandled', async () => {
  const runner: ProcessRunner = {
    run(req: RunRequest): Promise<RunResult> {
      const out = { command: [req.file, ...req.args], stderr: '', durationMs: 1 };
      if (req.args.includes('--version')) return Promise.resolve({ ...out, kind: 'ok', stdout: 'nix (Nix) 2.8.0\n' });
      // The dry run: nothing to say.
      if (req.args.includes('--dry-run')) return Promise.resolve({ ...out, kind: 'ok', stdout: '' });
      return Promise.reject(new Error('the runner broke'));
    },
  };
  const sent: BuildInfo[] = [];
  const errors: string[] = [];
  let finished: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finished = resolve));
  const connection = {
    sendNotification: (_type: unknown, params: BuildInfo) => {
      sent.push(params);
      if (params.status !== 'running') finished();
      return Promise.resolve();
    },
    console: { info: () => undefined, error: (m: string) => errors.push(m) },
  } as unknown as Connection;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    const builds = new Builds(connection, new Nix(runner, { binDir: '', env: {} }));
    const { info } = await builds.start({ drvPaths: [DRV] }, [{ attrPath: [], drvPath: DRV, name: 'x', system: 'x86_64-linux', requiredSystemFeatures: [], preferLocalBuild: false, outputs: ['out'] }], [], {
      remoteOnly: false,
      maxJobs: undefined,
      cores: undefined,
    });
    assert.equal(info.status, 'running');
    await done;
    const last = sent[sent.length - 1];
    assert.equal(last?.status, 'failed');
    assert.match(last?.problems?.join('\n') ?? '', /the runner broke/);
    assert.match(errors.join('\n'), /the runner broke/);
    assert.equal(builds.cancel(info.buildId), false, 'no longer running');
    // Give a rejection the turn it needs to be reported.
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});
