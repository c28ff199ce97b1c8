// The language client's trace never shows the values of nixBuilders.env (they may be tokens).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LogOutputChannel } from 'vscode';
import { RedactingChannel, redact } from '../../extension/redact';

/** A channel that keeps what reaches it. */
function recordingChannel(): { channel: LogOutputChannel; written: string[] } {
  const written: string[] = [];
  const keep = (...parts: unknown[]) => void written.push(parts.map(String).join(' '));
  const channel = {
    name: 'Nix Builders',
    logLevel: 1,
    onDidChangeLogLevel: () => ({ dispose() {} }),
    trace: keep,
    debug: keep,
    info: keep,
    warn: keep,
    error: keep,
    append: keep,
    appendLine: keep,
    replace: keep,
    clear() {},
    show() {},
    hide() {},
    dispose() {},
  } as unknown as LogOutputChannel;
  return { channel, written };
}

const token = 'ghp_0123456789abcdef"quoted\\';

test('the trace of initialize (settings in its params, JSON-escaped) shows no env value, only its name', () => {
  const { channel, written } = recordingChannel();
  const trace = new RedactingChannel(channel);
  trace.addSecrets({ NIX_CONFIG: `access-tokens = github.com=${token}`, NIX_REMOTE: 'daemon', X: 'a' });
  // What vscode-languageclient writes at trace.server = verbose: the message and its params as JSON.
  const params = { initializationOptions: { settings: { env: { NIX_CONFIG: `access-tokens = github.com=${token}`, NIX_REMOTE: 'daemon', X: 'a' } } } };
  trace.trace(`Sending request 'initialize - (0)'.\nParams: ${JSON.stringify(params, null, 4)}`);
  trace.info('plain', { env: params.initializationOptions.settings.env });
  const all = written.join('\n');
  assert.ok(!all.includes('ghp_0123456789abcdef'), all);
  assert.match(all, /«nixBuilders\.env\.NIX_CONFIG»/);
  assert.match(all, /«nixBuilders\.env\.NIX_REMOTE»/);
  // Values too short to be secrets are left as they are (they would blank ordinary words).
  assert.match(all, /"X": "a"/);
});

test('a value replaced by a newer one stays hidden (a message with it may still be on its way)', () => {
  const { channel, written } = recordingChannel();
  const trace = new RedactingChannel(channel);
  trace.addSecrets({ AWS_SECRET_ACCESS_KEY: 'old-secret-value' });
  trace.addSecrets({ AWS_SECRET_ACCESS_KEY: 'new-secret-value' });
  trace.appendLine('{"env":{"AWS_SECRET_ACCESS_KEY":"old-secret-value"}} {"AWS_SECRET_ACCESS_KEY":"new-secret-value"}');
  assert.equal(written.join(''), '{"env":{"AWS_SECRET_ACCESS_KEY":"«nixBuilders.env.AWS_SECRET_ACCESS_KEY»"}} {"AWS_SECRET_ACCESS_KEY":"«nixBuilders.env.AWS_SECRET_ACCESS_KEY»"}');
});

test('a value that contains another is replaced whole', () => {
  const secrets = new Map([
    ['secret-token-long', 'nixBuilders.env.A'],
    ['token', 'nixBuilders.env.B'],
  ]);
  assert.equal(redact('x secret-token-long y token', secrets), 'x «nixBuilders.env.A» y «nixBuilders.env.B»');
});
