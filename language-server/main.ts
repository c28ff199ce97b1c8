// Composition root of the language server. Transport (--stdio, --node-ipc, --socket=N) is chosen
// by vscode-languageserver from the command line.
import { createConnection, ProposedFeatures } from 'vscode-languageserver/node';
import { endChildrenOnExit, endOrphanedGroups, ExecaRunner, recordGroupsIn } from './nix/runner';
import { processStart, ProcessRegistry, registryDir } from './nix/processRegistry';
import { NixBuildersServer } from './server';

const connection = createConnection(ProposedFeatures.all);

// Nix runs in process groups of its own, which nothing ends when the server goes: every way out
// ends them first. The `exit` notification, stdin closing and the editor's process going away all
// end in process.exit; signals are re-raised once the groups are ended.
endChildrenOnExit();
// --node-ipc: the editor is gone when the channel closes.
process.once('disconnect', () => process.exit(1));

/** An error for the editor's log; on stderr once the connection is closed (or not listening yet). */
function logError(text: string): void {
  try {
    connection.console.error(text);
  } catch {
    process.stderr.write(`${text}\n`);
  }
}

// --- unhandled rejections ---------------------------------------------------------------------
// Node ends the process on a promise rejection nobody handles: one forgotten catch must not take
// the server (and every running build) down. Log the cause and keep serving.
process.on('unhandledRejection', (reason) => {
  logError(`Internal error, the server goes on (please report it): an unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`);
});
// ------------------------------------------------------------------------------------------------

// --- a server killed hard ---------------------------------------------------------------------
// SIGKILL, the out-of-memory killer or a native crash run none of the above: the groups stay, and
// a build's nix-store keeps its output locks. Each server records its groups in a registry file;
// the next one (the editor restarts a crashed server) ends those of servers that are gone, before
// it starts anything. stderr: the connection is not listening yet (the editor shows it in the log).
const self = processStart(process.pid);
if (self !== undefined) {
  const dir = registryDir();
  const { ended, problems } = endOrphanedGroups(dir);
  if (ended.length > 0) process.stderr.write(`Ended ${ended.length} Nix process group(s) left running by a server that was killed (${ended.join(', ')}).\n`);
  for (const p of problems) process.stderr.write(`${p}\n`);
  try {
    recordGroupsIn(new ProcessRegistry(dir, { pid: process.pid, start: self }), logError);
  } catch (e) {
    process.stderr.write(`Nix processes are not recorded, so a crash of the server would leave them running: ${(e as Error).message}\n`);
  }
}
// ------------------------------------------------------------------------------------------------

new NixBuildersServer(connection, new ExecaRunner()).listen();
