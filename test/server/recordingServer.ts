// The language server (unbundled, under tsx) with a ProcessRunner that records every process it
// starts before the real runner runs it: one JSON line `[file, ...args]` per run, appended to the
// file named by NB_ARGV_LOG. Run with `node --import tsx test/server/recordingServer.ts --stdio`.
import { appendFile } from 'node:fs/promises';
import { createConnection, ProposedFeatures } from 'vscode-languageserver/node';
import { ExecaRunner, type ProcessRunner, type RunRequest, type RunResult } from '../../language-server/nix/runner';
import { NixBuildersServer } from '../../language-server/server';

const argvLog = process.env.NB_ARGV_LOG;
if (!argvLog) throw new Error('NB_ARGV_LOG is not set: it names the file that receives the argv of every run');

class RecordingRunner implements ProcessRunner {
  private readonly real = new ExecaRunner();

  async run(request: RunRequest): Promise<RunResult> {
    await appendFile(argvLog!, `${JSON.stringify([request.file, ...request.args])}\n`);
    return this.real.run(request);
  }
}

new NixBuildersServer(createConnection(ProposedFeatures.all), new RecordingRunner()).listen();
