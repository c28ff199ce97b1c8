// Composition root of the language server. Transport (--stdio, --node-ipc, --socket=N) is chosen
// by vscode-languageserver from the command line.
import { createConnection, ProposedFeatures } from 'vscode-languageserver/node';
import { ExecaRunner, killAllChildren } from './nix/runner';
import { NixBuildersServer } from './server';

const connection = createConnection(ProposedFeatures.all);

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

// --- unhandled rejections ---------------------------------------------------------------------
// Node ends the process on a promise rejection nobody handles: one forgotten catch must not take
// the server (and every running build) down. Log the cause and keep serving.
process.on('unhandledRejection', (reason) => {
  const text = `Internal error, the server goes on (please report it): an unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`;
  try {
    connection.console.error(text);
  } catch {
    // The connection is closed already.
    process.stderr.write(`${text}\n`);
  }
});
// ------------------------------------------------------------------------------------------------

new NixBuildersServer(connection, new ExecaRunner()).listen();
