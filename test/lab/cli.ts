// The builder lab by hand:  node --import tsx test/lab/cli.ts up [--detach] [--nix226] | status | down  [--dir D]
//   up        start the lab in D (default <repo>/.lab) and keep it until Ctrl-C; with --detach,
//             leave it running and return (then `down` stops it by the PIDs in D/lab.json);
//             with --nix226 also b5, which runs Nix 2.26 (made by scripts/ensure-nix.sh if needed).
//             When the lab is already up, just report it.
//   status    each builder and whether its sshd is alive
//   down      stop the lab and remove its files
import * as path from 'node:path';
import { canConnect } from './host';
import { readLabState, startLab, stopLabAt, type LabState } from './lab';
import { nix226 } from './nix226';
import { isRunning } from './processes';

const USAGE = 'usage: node --import tsx test/lab/cli.ts up [--detach] [--nix226] | status | down  [--dir D]';
const DEFAULT_DIR = path.resolve(__dirname, '..', '..', '.lab');

function parseArgs(argv: string[]): { command: string; dir: string; detach: boolean; withNix226: boolean } {
  const [command = '', ...rest] = argv;
  let dir = DEFAULT_DIR;
  let detach = false;
  let withNix226 = false;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (arg === '--dir' && rest[i + 1] !== undefined) dir = path.resolve(rest[++i]!);
    else if (arg === '--detach' && command === 'up') detach = true;
    else if (arg === '--nix226' && command === 'up') withNix226 = true;
    else throw new UsageError(`unexpected argument: ${arg}`);
  }
  if (!['up', 'status', 'down'].includes(command)) throw new UsageError(command === '' ? 'missing command' : `unknown command: ${command}`);
  return { command, dir, detach, withNix226 };
}

class UsageError extends Error {}

const shellQuote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;

function builderAlive(state: LabState, name: string): boolean {
  const proc = state.processes.find((p) => p.name === name && isRunning(p.pid, p.startTime));
  return proc !== undefined;
}

function printLab(state: LabState): void {
  for (const b of state.builders) console.log(`  ${b.name}  ${b.uri.padEnd(22)} 127.0.0.1:${b.port}  ${b.systems.join(',')}`);
  console.log('Use it from a shell (client nix commands; builders come from the machines file):');
  // Not TMPDIR: a shell would keep it after `down`, when the folder is gone.
  for (const name of ['NIX_CONF_DIR', 'NIX_SSHOPTS']) console.log(`  export ${name}=${shellQuote(state.env[name] ?? '')}`);
}

async function up(dir: string, detach: boolean, withNix226: boolean): Promise<number> {
  const existing = readLabState(dir);
  if (existing !== undefined && existing.builders.length > 0 && existing.builders.every((b) => builderAlive(existing, b.name))) {
    console.log(`The lab is already up in ${dir}${existing.detached ? '' : ` (held by process ${existing.ownerPid})`}:`);
    printLab(existing);
    return 0;
  }
  if (existing !== undefined) {
    console.log(`Cleaning up a stale lab in ${dir}`);
    await stopLabAt(dir);
  }
  let nix226Dir: string | undefined;
  if (withNix226) {
    const found = nix226();
    if (found.skip !== undefined) {
      console.error(found.skip);
      return 1;
    }
    nix226Dir = found.dir;
  }
  const started = Date.now();
  const lab = await startLab({ dir, detached: detach, ...(nix226Dir !== undefined ? { nix226: nix226Dir } : {}) });
  console.log(`Lab up in ${dir} (${Date.now() - started} ms):`);
  printLab(readLabState(dir)!);
  if (detach) {
    console.log('Stop it with: node --import tsx test/lab/cli.ts down' + (dir === DEFAULT_DIR ? '' : ` --dir ${shellQuote(dir)}`));
    return 0;
  }
  console.log('Ctrl-C stops it.');
  return new Promise((resolve) => {
    const finish = async (message: string) => {
      clearInterval(watch);
      await lab.stop();
      console.log(message);
      resolve(0);
    };
    // The lab's own handler has already killed it when this runs; stop() then only confirms.
    process.once('SIGINT', () => void finish('\nLab stopped.'));
    process.once('SIGTERM', () => void finish('Lab stopped.'));
    // Also keeps this process alive: a `down` from another shell ends it.
    const watch = setInterval(() => {
      if (lab.processIds().length === 0) void finish('The lab was stopped from elsewhere.');
    }, 1000);
  });
}

async function status(dir: string): Promise<number> {
  const state = readLabState(dir);
  if (state === undefined) {
    console.log(`No lab in ${dir}`);
    return 1;
  }
  const owner = state.detached ? 'detached' : `held by process ${state.ownerPid}${isRunning(state.ownerPid) ? '' : ' (gone)'}`;
  console.log(`Lab in ${dir}, started ${state.startedAt}, ${owner}:`);
  let allUp = state.builders.length > 0;
  for (const b of state.builders) {
    const up = builderAlive(state, b.name) && (await canConnect({ host: '127.0.0.1', port: b.port }));
    allUp &&= up;
    console.log(`  ${b.name}  ${b.uri.padEnd(22)} 127.0.0.1:${b.port}  sshd ${up ? 'up' : 'DOWN'}`);
  }
  return allUp ? 0 : 1;
}

async function down(dir: string): Promise<number> {
  const state = readLabState(dir);
  await stopLabAt(dir);
  console.log(state === undefined ? `No lab in ${dir}` : `Lab in ${dir} stopped.`);
  return 0;
}

async function main(): Promise<number> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${error.message}\n${USAGE}`);
    return 2;
  }
  switch (args.command) {
    case 'up':
      return up(args.dir, args.detach, args.withNix226);
    case 'status':
      return status(args.dir);
    default:
      return down(args.dir);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  },
);
