// Composition root of the language server. Transport (--stdio, --node-ipc, --socket=N) is chosen
// by vscode-languageserver from the command line.
import { createConnection, ProposedFeatures } from 'vscode-languageserver/node';
import { ExecaRunner, killAllChildren } from './nix/runner';
import { NixBuildersServer } from './server';

// Nix runs in process groups of its own, which nothing ends when the server goes: every way out
// ends them first. The `exit` notification, stdin closing and the editor's process going away all
// end in process.exit; signals are re-raised once the groups are ended.
process.on('exit', () => killAllChildren());
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killAllChildren();
    process.kill(process.pid, signal);
  });
}
// --node-ipc: the editor is gone when the channel closes.
process.once('disconnect', () => process.exit(1));

new NixBuildersServer(createConnection(ProposedFeatures.all), new ExecaRunner()).listen();
