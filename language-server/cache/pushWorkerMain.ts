// Composition root of the standalone push worker (`dist/pushWorker.js`): empties the push queue
// when no editor runs, with the same worker and push function as the server's.
//
//   node dist/pushWorker.js --to STORE [--queue DIR] [--key-file FILE] [--nix-bin-dir DIR]
//   node dist/pushWorker.js --to STORE [--queue DIR] [--key-file FILE] [--nix-bin-dir DIR] --systemd-unit   (prints the unit)
//
// Each push is Push to Cache's: signed with --key-file (else nix.conf's secret-key-files) and
// verified; one that is not (unsigned, a key the consumers do not trust) stays queued, said.
//
// It logs to stderr (the journal under systemd) and stops on SIGTERM/SIGINT; an entry whose push
// was under way stays queued.
import { Nix } from '../nix/nix';
import { endChildrenOnExit, ExecaRunner } from '../nix/runner';
import { defaultQueueDir } from './hookScript';
import { defaultStagingRoot } from './push';
import { standaloneArgs, systemdUnit } from './standalone';
import { queuePusher, runQueueWorker } from './worker';

function main(argv: string[]): number | Promise<number> {
  const parsed = standaloneArgs(argv);
  if ('error' in parsed) {
    process.stderr.write(`${parsed.error}\nUsage: node pushWorker.js --to STORE [--queue DIR] [--key-file FILE] [--nix-bin-dir DIR] [--systemd-unit]\n`);
    return 2;
  }
  const queue = parsed.queue ?? defaultQueueDir();
  if (parsed.systemdUnit) {
    process.stdout.write(systemdUnit({ node: process.execPath, script: __filename, queue, to: parsed.to, ...(parsed.keyFile ? { keyFile: parsed.keyFile } : {}), ...(parsed.nixBinDir ? { nixBinDir: parsed.nixBinDir } : {}) }).text);
    return 0;
  }
  endChildrenOnExit();
  const nix = new Nix(new ExecaRunner(), { binDir: parsed.nixBinDir ?? '', env: {} });
  const say = (m: string) => process.stderr.write(`${m}\n`);
  say(`Pushing what is queued in ${queue} to ${parsed.to}.`);
  return runQueueWorker(
    {
      dir: queue,
      kind: 'standalone',
      to: parsed.to,
      pusher: queuePusher(nix, { to: parsed.to, ...(parsed.keyFile ? { keyFile: parsed.keyFile } : {}), stagingRoot: defaultStagingRoot(process.env) }),
      onEvent: (e) => {
        if (e.kind === 'waiting-for-lock') say(`Another worker (${e.holder.kind}, pid ${e.holder.pid}) works the queue: waiting until it stops.`);
        else if (e.kind === 'pushed') say(`Pushed ${e.entry}: ${e.paths.join(' ') || 'nothing new'}${e.skipped.length > 0 ? ` (${e.skipped.length} pushed before)` : ''}.`);
        else if (e.kind === 'failed') say(`${e.error}; next try in ${Math.round(e.retryInMs / 1000)} s${e.movedToBack ? ' (moved behind the other entries)' : ''}.`);
        else if (e.kind === 'dropped') say(`Removed ${e.entry}: ${e.why}.`);
      },
    },
    // Runs until a signal ends the process (endChildrenOnExit ends the push under way first).
    new AbortController().signal,
  ).then(
    () => 0,
    (e: unknown) => {
      say(`The push worker stopped: ${e instanceof Error ? e.message : String(e)}`);
      return 1;
    },
  );
}

void Promise.resolve(main(process.argv.slice(2))).then((code) => process.exit(code));
