// `npm start`: the extension in a real VS Code in the browser, against the builder lab.
// Builds and packages the extension, starts the lab (in .lab/) as the embedded default, opens
// code-server on 127.0.0.1 with the extension installed and the demo workspace, and prints the
// URL. Ctrl-C stops everything it started.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { startLab } from '../test/lab/lab';
import { startCodeServer } from '../test/e2e/codeServer';

const root = path.join(__dirname, '..');

async function main(): Promise<void> {
  console.log('Packaging the extension…');
  execFileSync('npm', ['run', '-s', 'package'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  const vsix = path.join(root, 'dist', 'nix-builders.vsix');

  console.log('Starting the builder lab…');
  const lab = await startLab({ dir: path.join(root, '.lab') });
  for (const b of lab.builders) console.log(`  ${b.name}: ${b.uri} (${b.systems.join(', ')})`);

  console.log('Starting VS Code (code-server)…');
  const codeServer = await startCodeServer({
    folder: path.join(root, 'demo'),
    installExtensions: [vsix],
    smokeTestDriver: false,
    logName: 'code-server-demo.log',
    // The demo's Nix configuration is the lab's: builders b1..b4 over SSH on loopback. The window
    // is a remote one (code-server), so these machine settings go to the Remote settings.
    machineSettings: { 'nixBuilders.env': lab.env },
  });

  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${why}: stopping VS Code and the lab…`);
    await codeServer.stop();
    await lab.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('Ctrl-C'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  console.log(`\nNix Builders is running in VS Code at ${codeServer.workbenchUrl({ folder: path.join(root, 'demo') })}`);
  console.log('Open it in a browser, trust the demo folder, and open the Nix Builders view in the activity bar.');
  console.log('Press Ctrl-C to stop.');
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
