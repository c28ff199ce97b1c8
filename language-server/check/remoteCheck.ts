// Check a derivation's reproducibility on a builder, for real. Through the build hook
// (`--check --builders …`) Nix 2.8–2.33 hands the rebuild to the hook, which builds and compares
// nothing (upstream #12975), and 2.34+ refuses with max-jobs 0. What really rebuilds there is the
// builder's own store as the store of the command (`--store ssh-ng://…`): its daemon rebuilds at
// the fallback paths and compares, as a local check does (measured on 2.8 against 2.8 and 2.26).
//
// The answer never rests on what comes back through that connection alone (its exit code is 1
// for every failure, the bits are not forwarded): the first build and the rebuild are read from
// the builder's store over SSH (`nix-store --dump`, the same SSH layer as the doctor), unpacked
// here and compared file by file, as a local check compares them; of both, only the differing
// files are kept.
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { ErrorCodes, ResponseError } from 'vscode-languageserver/node';
import { adHocBuilder } from '../builders/collect';
import { classifyFirst } from '../nix/classifier';
import { parseMachines } from '../nix/machines';
import type { Nix } from '../nix/nix';
import type { ProcessRunner, RunResult } from '../nix/runner';
import { hashPart } from '../nix/storePath';
import { parseSshStoreUri, storeBase } from '../nix/storeUri';
import { atLeast, type NixCapabilities } from '../nix/version';
import type { BuilderInfo, CheckReproducibilityResult, OutputCheck } from '../protocol';
import { parseMachinesHostKey, type PublicKey } from '../remote/hostKeys';
import { connectOpenSsh } from '../remote/openssh';
import { shScript } from '../remote/shellQuote';
import { resolveSshConfig } from '../remote/sshConfig';
import { connectSsh, type ExecResult, type RemoteSession } from '../remote/sshSession';
import { cancelled, checkAnswer, fallbackPath, outputsOf, why, type CheckOptions } from './check';
import { compareTrees, copyDifferences, type Rewrites } from './treeDiff';

/**
 * Why a build on a builder failed, from Nix's lines: over ssh-ng the exit code is 1 for every
 * failure (the bits a local build's code carries are not forwarded), so the builder's daemon's
 * messages tell a failed builder, a timeout, a hash mismatch and a refusal apart.
 */
export function remoteFailure(stderr: string): string | undefined {
  if (/hash mismatch in fixed-output derivation '/.test(stderr)) return 'a fixed-output hash did not match';
  const p = classifyFirst(stderr);
  if (p?.kind === 'timeout') {
    const { seconds, silence } = p.details;
    return `it timed out${seconds !== undefined ? ` after ${seconds} s${silence ? ' of silence (max-silent-time)' : ' (timeout)'}` : ''}`;
  }
  if (p?.kind === 'build-failed') {
    const { exitCode, signal } = p.details;
    return exitCode !== undefined ? `its builder exited with code ${exitCode}` : signal !== undefined ? `its builder was killed by signal ${signal}` : 'its builder failed';
  }
  if (p?.kind === 'not-privileged') return `it was not allowed: ${p.message}`;
  const refused = /^error: (.*\bnot allowed\b.*)$/m.exec(stderr)?.[1];
  return refused ? `it was not allowed: ${refused}` : undefined;
}

/** A failed build on a builder said briefly: why, as Nix's lines say it, then how it ended. */
const whyRemote = (result: RunResult) => {
  const reason = remoteFailure(result.stderr);
  return `${reason ? `${reason}; ` : ''}${why(result)}`;
};

/** The builder `spec` names: a listed builder's name, id or URI, or else a store URI of its own. */
export function findBuilder(spec: string, builders: readonly BuilderInfo[]): BuilderInfo {
  const named = builders.filter((b) => b.name === spec || b.id === spec || storeBase(b.uri) === storeBase(spec));
  if (named[0]) return named[0];
  if (parseSshStoreUri(spec)) {
    const machine = parseMachines(spec).entries[0]?.machine;
    if (machine) return adHocBuilder(machine, `check ${spec}`, 'the check\'s builder');
  }
  const known = builders.map((b) => b.name).join(', ');
  throw new ResponseError(ErrorCodes.InvalidParams, `No builder '${spec}': give a configured builder's name (${known || 'none is configured'}) or an ssh:// or ssh-ng:// store URI.`);
}

/**
 * The builder's store as the store of a command: ssh-ng (its daemon, which rebuilds and
 * compares), with the machines line's key and host key as the URI's parameters. A remote-program
 * the URI names (`…/nix-store` for ssh://) becomes the nix-daemon beside it.
 */
export function builderStore(b: BuilderInfo): string {
  const store = parseSshStoreUri(b.uri);
  if (!store) throw new ResponseError(ErrorCodes.InvalidParams, `${b.name} (${b.uri}) is not an SSH builder: a check needs an ssh:// or ssh-ng:// builder.`);
  const params = new Map(store.params);
  const program = params.get('remote-program');
  if (program && store.scheme === 'ssh') params.set('remote-program', path.posix.join(path.posix.dirname(program), 'nix-daemon'));
  if (b.sshKey) params.set('ssh-key', b.sshKey);
  if (b.publicHostKey) params.set('base64-ssh-public-host-key', b.publicHostKey);
  const query = [...params].map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  return `ssh-ng://${store.authority}${query ? `?${query}` : ''}`;
}

/** nix-store on the builder: beside the remote-program the URI names, else on its PATH. */
export function remoteNixStore(b: BuilderInfo): string {
  const program = parseSshStoreUri(b.uri)?.params.get('remote-program');
  return program ? path.posix.join(path.posix.dirname(program), 'nix-store') : 'nix-store';
}

/**
 * How this Nix rebuilds on a builder's store, by its version: `nix copy --derivation` (2.4+, the
 * new CLI) puts the derivation there, `nix-store --store … --realise [--check]` builds and
 * rebuilds it (the derived-path syntax of `nix build` changed, `drv!out` before 2.13, `drv^out`
 * after, and Nix 2.8's `nix build --store` does not take a .drv of the eval store). Before 2.4
 * there is neither ssh-ng for --store nor `nix copy --derivation`.
 */
export function remoteMethod(caps: NixCapabilities): { ok: true; copyDerivation: (drv: string, store: string) => string[]; realise: (store: string, check: boolean, drv: string) => string[] } | { ok: false; reason: string } {
  if (!atLeast(caps.version, 2, 4)) return { ok: false, reason: `Nix ${caps.version.text} cannot rebuild on a builder's store (ssh-ng as --store and nix copy --derivation need Nix 2.4 or later): update Nix, or check on this machine` };
  return {
    ok: true,
    copyDerivation: (drv, store) => [...caps.nixCommandPrefix, 'copy', '--derivation', '--to', store, drv],
    // builders = '': built by the builder itself, never handed on by its daemon.
    realise: (store, check, drv) => ['--store', store, '--option', 'builders', '', '--realise', ...(check ? ['--check'] : []), drv],
  };
}

// ---------------------------------------------------------------------------------------------
// SSH to the builder: the same connection as the doctor's (ssh2 first, OpenSSH where only it can).

const TIMEOUTS = { tcpMs: 10_000, handshakeMs: 15_000, authMs: 15_000 };

const runnerOf = (nix: Nix): ProcessRunner => ({ run: (r) => nix.run(r.file, r.args, { timeoutMs: r.timeoutMs, signal: r.signal, cwd: r.cwd, input: r.input, env: r.env, unsetEnv: r.unsetEnv }) });

/** An authenticated session on the builder, checked like Nix's ssh (host key, login); or why not. */
export async function connectBuilder(b: BuilderInfo, nix: Nix, signal: AbortSignal): Promise<{ ok: true; session: RemoteSession } | { ok: false; message: string }> {
  const store = parseSshStoreUri(b.uri);
  if (!store) return { ok: false, message: `${b.uri} is not an SSH builder` };
  const sshKey = b.sshKey ?? store.params.get('ssh-key');
  const dest = { host: store.host, ...(store.user ? { user: store.user } : {}), ...(sshKey ? { identityFile: sshKey } : {}) };
  const resolved = await resolveSshConfig(runnerOf(nix), dest, { env: nix.env, timeoutMs: TIMEOUTS.tcpMs, signal });
  if (!resolved.ok) return { ok: false, message: `ssh cannot tell how to reach ${b.name}: ${resolved.message}` };
  const column = b.publicHostKey ?? store.params.get('base64-ssh-public-host-key');
  const parsed = column ? parseMachinesHostKey(column) : undefined;
  const machinesKeys: PublicKey[] | undefined = parsed?.ok ? parsed.keys : undefined;
  const agentSocket = nix.env.SSH_AUTH_SOCK ?? process.env.SSH_AUTH_SOCK;
  const options = { config: resolved.config, uriHost: store.host, ...(machinesKeys ? { machinesKeys } : {}), ...(agentSocket ? { agentSocket } : {}), timeouts: TIMEOUTS, signal };
  let conn = await connectSsh(options);
  if (!conn.ok && conn.failure.kind === 'needs-openssh') {
    conn = await connectOpenSsh({ ...options, runner: runnerOf(nix), env: nix.env, dest, nixSshOpts: nix.env.NIX_SSHOPTS ?? process.env.NIX_SSHOPTS, reasons: conn.failure.reasons });
  }
  return conn.ok ? { ok: true, session: conn.session } : { ok: false, message: `${conn.failure.message} (run the builder's doctor check)` };
}

/** The NAR bytes read per SSH run (base64: 4/3 of it stays below the session's output limit). */
const NAR_CHUNK = 2 * 1024 * 1024;

/**
 * The tree at `storePath` on the builder as a NAR: `nix-store --dump` there into a temporary file
 * (once), read back in chunks as base64 over SSH, the file removed after.
 */
export async function dumpRemote(session: RemoteSession, nixStore: string, storePath: string, signal: AbortSignal): Promise<Buffer> {
  const fail = (r: ExecResult, what: string): never => {
    const said = r.kind === 'failed' ? r.message : r.kind !== 'exit' ? 'no answer in time' : `exit ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`;
    throw new Error(`${what} ${storePath} on ${session.alias} failed (${said})`);
  };
  const exec = async (script: string, args: string[]) => {
    const r = await session.run(shScript(script, args), { timeoutMs: 300_000, signal });
    if (r.kind === 'cancelled') throw cancelled();
    return r;
  };
  const dumped = await exec('[ -e "$2" ] || { echo "it is not there (any more)" >&2; exit 4; }\nf=$(mktemp) || exit 3\n"$1" --dump "$2" > "$f" || { rm -f "$f"; exit 3; }\nwc -c < "$f"; printf "%s\\n" "$f"', [nixStore, storePath]);
  const [sizeText, file] = dumped.stdout.trim().split('\n').map((l) => l.trim());
  const size = Number(sizeText);
  if (dumped.kind !== 'exit' || dumped.code !== 0 || !file?.startsWith('/') || !Number.isInteger(size)) return fail(dumped, 'dumping');
  try {
    const chunks: Buffer[] = [];
    for (let offset = 0; offset < size; offset += NAR_CHUNK) {
      const r = await exec('tail -c +"$2" "$1" | head -c "$3" | base64', [file, String(offset + 1), String(NAR_CHUNK)]);
      if (r.kind !== 'exit' || r.code !== 0) fail(r, 'reading');
      chunks.push(Buffer.from(r.stdout.replace(/\s+/g, ''), 'base64'));
    }
    const nar = Buffer.concat(chunks);
    if (nar.length !== size) throw new Error(`reading ${storePath} on ${session.alias} gave ${nar.length} of ${size} bytes`);
    return nar;
  } finally {
    await session.run(shScript('rm -f "$1"', [file]), { timeoutMs: 30_000 });
  }
}

/**
 * A NAR unpacked at `dst` (which must not exist): files (0600, 0700 when executable), folders
 * (0700) and symlinks, as copyTree makes its copies. Throws on anything that is not a NAR.
 */
export async function restoreNar(nar: Buffer, dst: string): Promise<void> {
  let pos = 0;
  const bad = (what: string): never => {
    throw new Error(`not a NAR (${what} at byte ${pos})`);
  };
  const bytes = (): Buffer => {
    if (pos + 8 > nar.length) bad('truncated');
    const n = Number(nar.readBigUInt64LE(pos));
    const start = pos + 8;
    if (start + n > nar.length) bad('truncated');
    pos = start + n + ((8 - (n % 8)) % 8);
    return nar.subarray(start, start + n);
  };
  const str = () => bytes().toString('utf8');
  const expect = (s: string) => {
    const got = str();
    if (got !== s) bad(`'${got.slice(0, 20)}' instead of '${s}'`);
  };
  const node = async (at: string): Promise<void> => {
    expect('(');
    expect('type');
    const type = str();
    if (type === 'regular') {
      let tag = str();
      const executable = tag === 'executable';
      if (executable) {
        expect('');
        tag = str();
      }
      if (tag !== 'contents') bad(`'${tag}' instead of 'contents'`);
      await writeFile(at, bytes(), { mode: executable ? 0o700 : 0o600 });
      expect(')');
    } else if (type === 'symlink') {
      expect('target');
      await symlink(str(), at);
      expect(')');
    } else if (type === 'directory') {
      await mkdir(at, { mode: 0o700 });
      for (let tag = str(); tag !== ')'; tag = str()) {
        if (tag !== 'entry') bad(`'${tag}' instead of 'entry'`);
        expect('(');
        expect('name');
        const name = str();
        if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) bad(`the entry name '${name}'`);
        expect('node');
        await node(path.join(at, name));
        expect(')');
      }
    } else bad(`the type '${type}'`);
  };
  expect('nix-archive-1');
  await node(dst);
}

/** Which of `paths` exist on the builder (valid or not: a rebuild's fallback path is not registered). */
async function existingRemote(session: RemoteSession, paths: readonly string[], signal: AbortSignal): Promise<Set<string>> {
  const r = await session.run(shScript('for p in "$@"; do [ -e "$p" ] && printf "%s\\n" "$p"; done; exit 0', paths), { timeoutMs: 60_000, signal });
  if (r.kind === 'cancelled') throw cancelled();
  if (r.kind !== 'exit' || r.code !== 0) throw new Error(`listing the rebuild's paths on ${session.alias} failed (${r.kind === 'failed' ? r.message : r.kind})`);
  return new Set(r.stdout.split('\n').filter((l) => paths.includes(l)));
}

// ---------------------------------------------------------------------------------------------

/** Rebuild `drvPath` (a derivation of this machine's store) on `builder`, and compare every output. */
export async function checkOnBuilder(nix: Nix, builder: BuilderInfo, drvPath: string, o: CheckOptions): Promise<CheckReproducibilityResult> {
  const machine = builder.name;
  const outputs: OutputCheck[] = (await outputsOf(nix, drvPath, o.signal)).map((x) => ({ ...x, status: 'reproducible' }));
  const answer = (builtFirst: boolean, rounds: number) => checkAnswer(drvPath, machine, outputs, builtFirst, rounds);
  const notChecked = (reason: string) => {
    for (const x of outputs) if (x.status !== 'differs') Object.assign(x, { status: 'not-checked', reason });
  };
  const caps = await nix.detect();
  if (!caps.ok) throw new ResponseError(ErrorCodes.InternalError, caps.message);
  const method = remoteMethod(caps.value);
  if (!method.ok) {
    notChecked(method.reason);
    return answer(false, 0);
  }
  const store = builderStore(builder);
  const run = (file: string, args: string[]) => nix.run(file, args, { timeoutMs: 0, signal: o.signal });
  const nixStore = nix.bin('nix-store');

  o.report(`copying the derivation to ${machine}`);
  const copied = await run(nix.bin('nix'), method.copyDerivation(drvPath, store));
  if (copied.kind === 'cancelled') throw cancelled();
  if (copied.kind !== 'ok') {
    notChecked(`the derivation could not be copied to ${machine}: ${why(copied)}`);
    return answer(false, 0);
  }
  const paths = outputs.map((x) => x.path);
  const validity = await run(nixStore, ['--store', store, '--check-validity', '--print-invalid', ...paths]);
  if (validity.kind === 'cancelled') throw cancelled();
  const builtFirst = validity.kind !== 'ok' || validity.stdout.trim() !== '';
  if (builtFirst) {
    o.report(`building it on ${machine} first (its outputs are not there)`);
    const first = await run(nixStore, method.realise(store, false, drvPath));
    if (first.kind === 'cancelled') throw cancelled();
    if (first.kind !== 'ok') {
      notChecked(`the first build on ${machine} failed: ${whyRemote(first)}`);
      return answer(true, 0);
    }
  }
  const rewrites: Rewrites = paths.map((p) => [hashPart(fallbackPath(drvPath, p)), hashPart(p)] as const);
  let session: RemoteSession | undefined;
  let copies: string | undefined;
  // The builder's whole trees, unpacked to be compared (the first build's once for every round);
  // removed at the end: the answer keeps only what differs.
  let trees: string | undefined;
  const firstTrees = new Map<string, string>();
  let round = 0;
  try {
    while (round < o.rounds && outputs.some((x) => x.status === 'reproducible')) {
      round++;
      o.report(`rebuilding on ${machine} to compare${o.rounds > 1 ? ` (round ${round}/${o.rounds})` : ''}`);
      const check = await run(nixStore, method.realise(store, true, drvPath));
      if (check.kind === 'cancelled') throw cancelled();
      // The builder's daemon says what it does: without this line it did not rebuild (the build-hook trap).
      if (!check.stderr.includes(`checking outputs of '${drvPath}'`)) {
        notChecked(`${machine} did not rebuild it${round > 1 ? ` in round ${round}` : ''}: ${check.kind === 'ok' ? 'Nix succeeded without checking the outputs' : why(check)}`);
        break;
      }
      if (check.kind === 'ok') continue;
      if (!/may not be deterministic: output '[^']+' differs/.test(check.stderr)) {
        notChecked(`the rebuild on ${machine} failed${o.rounds > 1 ? ` in round ${round}` : ''}: ${whyRemote(check)}`);
        break;
      }
      const [, named, moved] = /output '([^']+)' differs(?: from '([^']+)')?/.exec(check.stderr) ?? [];
      if (!session) {
        o.report(`reading the builds from ${machine}`);
        const conn = await connectBuilder(builder, nix, o.signal);
        if (o.signal.aborted) throw cancelled();
        if (!conn.ok) {
          for (const x of outputs) {
            if (x.status === 'reproducible') Object.assign(x, x.path === named ? { status: 'differs', reason: `Nix on ${machine} says it differs; its trees could not be read over SSH: ${conn.message}` } : { status: 'not-checked', reason: `its trees on ${machine} could not be read over SSH: ${conn.message}` });
          }
          break;
        }
        session = conn.session;
      }
      // Every rebuild is at its fallback path, but the named one where Nix says it moved it (run-diff-hook on the builder).
      const rebuildOf = (x: OutputCheck) => (x.path === named && moved === `${x.path}.check` ? moved : fallbackPath(drvPath, x.path));
      const there = await existingRemote(session, outputs.filter((x) => x.status === 'reproducible').map(rebuildOf), o.signal);
      copies ??= await o.copies.create();
      trees ??= await mkdtemp(path.join(copies, 'trees-'));
      for (const x of outputs) {
        if (x.status !== 'reproducible') continue;
        const rebuild = there.has(rebuildOf(x)) ? rebuildOf(x) : undefined;
        if (!rebuild) {
          if (x.path === named) Object.assign(x, { status: 'differs', reason: `Nix on ${machine} says it differs, but left no rebuild to compare` });
          else Object.assign(x, { status: 'not-checked', reason: `Nix on ${machine} stopped comparing at the first differing output (${named ?? 'not named'}) and left no rebuild of this one` });
          continue;
        }
        try {
          let first = firstTrees.get(x.name);
          if (!first) {
            first = path.join(trees, `${x.name}-first`);
            await restoreNar(await dumpRemote(session, remoteNixStore(builder), x.path, o.signal), first);
            firstTrees.set(x.name, first);
          }
          const tree = path.join(trees, `${x.name}-round${round}`);
          await restoreNar(await dumpRemote(session, remoteNixStore(builder), rebuild, o.signal), tree);
          const files = await compareTrees(first, tree, rewrites);
          if (files.length > 0) {
            // Kept: the differing files of each side only (the rebuild's rewritten, as compared).
            const firstCopy = path.join(copies, `${x.name}-first`);
            const rebuildCopy = path.join(copies, `${x.name}-round${round}`);
            await copyDifferences(first, firstCopy, files, 'first');
            await copyDifferences(tree, rebuildCopy, files, 'rebuild', rewrites);
            Object.assign(x, { status: 'differs', files, firstCopy, rebuildCopy });
          } else if (x.path === named) Object.assign(x, { status: 'differs', files: [], reason: `Nix on ${machine} says it differs, but its trees read the same here` });
          await rm(tree, { recursive: true, force: true });
        } catch (e) {
          if (o.signal.aborted) throw cancelled();
          const reason = `its trees on ${machine} could not be brought here: ${(e as Error).message}`;
          Object.assign(x, x.path === named ? { status: 'differs', reason: `Nix on ${machine} says it differs; ${reason}` } : { status: 'not-checked', reason });
        }
      }
    }
  } finally {
    session?.close();
    if (trees) await rm(trees, { recursive: true, force: true });
  }
  return answer(builtFirst, round);
}
