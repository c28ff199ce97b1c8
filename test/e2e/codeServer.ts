// Starts and stops code-server (VS Code 1.139 with a real Node extension host, served over HTTP
// to a browser) for the e2e tests. See shared/VSCODE-FACTS.md for why code-server.
//
//   const cs = await startCodeServer({ folder, settings: {...}, env: {...} });
//   ... open cs.workbenchUrl({ folder }) in Chromium ...
//   await cs.stop();   // kills the whole process tree and removes its data folder
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { killQuietly, onTeardown, pidsWithEnv } from './cleanup';
import { codeServerExecutable, ensureResultsDir } from './paths';

export interface CodeServerOptions {
  /** Folder that code-server opens when a URL names none. */
  folder: string;
  /** VS Code's user data (User/settings.json, logs, global storage). Default: in the data dir. */
  userDataDir?: string;
  /** Extra environment for code-server and so for the extension host and its children. */
  env?: Record<string, string | undefined>;
  /** User settings, over the defaults below. */
  settings?: Record<string, unknown>;
  /**
   * Remote ("machine") settings of the code-server host. The window is a remote one, so settings
   * of scope `machine` or `machine-overridable` (nixBuilders.env, …) are read from here, not from
   * the user settings.
   */
  machineSettings?: Record<string, unknown>;
  /** Name of the log file under test-results/ (default code-server-<port>.log). */
  logName?: string;
  /** .vsix files (or extension ids) to install into this instance's extensions dir first. */
  installExtensions?: string[];
  /** Keep the data dir after stop() (also with E2E_KEEP=1). */
  keepDataDir?: boolean;
  /** Tests need the smoke-test driver (payload URLs, codeAutomationExit); the demo does not (default true). */
  smokeTestDriver?: boolean;
}

export interface CodeServer {
  /** http://127.0.0.1:PORT (no trailing slash). */
  url: string;
  port: number;
  /** The remote authority that URIs of this server's files use: 127.0.0.1:PORT. */
  authority: string;
  /** Holds user data, extensions, XDG dirs and TMPDIR of this instance. */
  dataDir: string;
  userDataDir: string;
  extensionsDir: string;
  logFile: string;
  /** A file of this server's machine as the workbench names it (vscode-remote://…). */
  remoteUri(absPath: string): string;
  /** Workbench URL for a folder, optionally with a smoke-test-driver payload. */
  workbenchUrl(opts?: { folder?: string; payload?: Array<[string, string]> }): string;
  /** The last lines code-server printed. */
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

/** Settings that make a quiet, deterministic workbench. Workspace trust keeps its default. */
export const defaultSettings: Record<string, unknown> = {
  'chat.disableAIFeatures': true,
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'workbench.welcomePage.walkthroughs.openOnInstall': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'git.enabled': false,
  'git.autoRepositoryDetection': false,
  'git.openRepositoryInParentFolders': 'never',
  'github.gitAuthentication': false,
  'npm.autoDetect': 'off',
  'typescript.disableAutomaticTypeAcquisition': true,
  'editor.aiStats.enabled': false,
};

/** Inherited variables that would change what code-server does (port, auth, Node flags, IPC). */
function inheritedEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(PORT|PASSWORD|HASHED_PASSWORD|GITHUB_TOKEN|CODE_SERVER_.*|VSCODE_.*|ELECTRON_.*|NODE_OPTIONS)$/.test(k)) continue;
    env[k] = v;
  }
  return env;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function httpOk(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000), redirect: 'manual' });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

export async function startCodeServer(opts: CodeServerOptions): Promise<CodeServer> {
  // A port can be taken between freePort() and code-server's listen(): try a few.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts, await freePort());
    } catch (e) {
      if (!(e instanceof PortInUse) || attempt >= 3) throw e;
    }
  }
}

class PortInUse extends Error {}

async function startOnce(opts: CodeServerOptions, port: number): Promise<CodeServer> {
  const exe = codeServerExecutable();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'nb-code-server-'));
  const userDataDir = opts.userDataDir ?? path.join(dataDir, 'user-data');
  const extensionsDir = path.join(dataDir, 'extensions');
  const xdg = (n: string) => path.join(dataDir, n);
  for (const d of [userDataDir, path.join(userDataDir, 'User'), extensionsDir, xdg('config'), xdg('data'), xdg('cache'), xdg('state'), xdg('tmp')])
    mkdirSync(d, { recursive: true });
  writeFileSync(
    path.join(userDataDir, 'User', 'settings.json'),
    JSON.stringify({ ...defaultSettings, ...opts.settings }, null, 2),
  );
  if (opts.machineSettings) {
    mkdirSync(path.join(userDataDir, 'Machine'), { recursive: true });
    writeFileSync(path.join(userDataDir, 'Machine', 'settings.json'), JSON.stringify(opts.machineSettings, null, 2));
  }

  const instance = randomUUID();
  const env: NodeJS.ProcessEnv = {
    ...inheritedEnv(),
    ...opts.env,
    XDG_CONFIG_HOME: xdg('config'),
    XDG_DATA_HOME: xdg('data'),
    XDG_CACHE_HOME: xdg('cache'),
    XDG_STATE_HOME: xdg('state'),
    TMPDIR: xdg('tmp'),
    // Marks every process of this instance, to find the ones that leave the process group.
    NIX_BUILDERS_E2E_INSTANCE: instance,
  };
  const profileArgs = ['--user-data-dir', userDataDir, '--extensions-dir', extensionsDir];
  for (const ext of opts.installExtensions ?? []) {
    // A few seconds per .vsix; the server started afterwards sees the extension.
    await new Promise<void>((resolve, reject) =>
      execFile(exe, [...profileArgs, '--force', '--install-extension', ext], { env, cwd: dataDir, timeout: 120_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`code-server --install-extension ${ext} failed: ${err.message}\n${stdout}${stderr}`)) : resolve(),
      ),
    ).catch((e: unknown) => {
      if (!opts.keepDataDir && !process.env.E2E_KEEP) rmSync(dataDir, { recursive: true, force: true });
      throw e;
    });
  }
  const args = [
    '--bind-addr', `127.0.0.1:${port}`,
    '--auth', 'none',
    ...profileArgs,
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-getting-started-override',
    '--disable-proxy',
    '--ignore-last-opened',
    // Safety net for tests: an instance whose test process died without stopping it exits once idle.
    ...(opts.smokeTestDriver === false ? [] : ['--idle-timeout-seconds', '300']),
    // Honours the extensionDevelopmentPath/extensionTestsPath payload; exposes codeAutomationExit.
    ...(opts.smokeTestDriver === false ? [] : ['--vscode-option', 'enable-smoke-test-driver']),
    opts.folder,
  ];

  const logFile = path.join(ensureResultsDir(), opts.logName ?? `code-server-${port}.log`);
  const log = createWriteStream(logFile);
  const tail: string[] = [];
  const verbose = !!process.env.E2E_VERBOSE;
  const child: ChildProcess = spawn(exe, args, {
    cwd: dataDir,
    env,
    detached: true, // own process group (setsid): stop() signals the whole group
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const onData = (chunk: Buffer) => {
    log.write(chunk);
    if (verbose) process.stderr.write(chunk);
    for (const line of chunk.toString('utf8').split('\n')) if (line) tail.push(line);
    if (tail.length > 400) tail.splice(0, tail.length - 400);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitPromise = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    }),
  );
  child.once('error', (e) => tail.push(`spawn error: ${e.message}`));

  const keep = opts.keepDataDir || !!process.env.E2E_KEEP;
  const pgid = child.pid!;
  const killAllNow = () => {
    killQuietly(-pgid, 'SIGKILL');
    for (let i = 0; i < 5; i++) {
      const strays = pidsWithEnv('NIX_BUILDERS_E2E_INSTANCE', instance);
      if (strays.length === 0) break;
      for (const pid of strays) killQuietly(pid, 'SIGKILL');
    }
  };
  const removeData = () => {
    if (!keep) rmSync(dataDir, { recursive: true, force: true, maxRetries: 3 });
  };
  let stopped = false;
  const unregister = onTeardown(
    () => {
      killAllNow();
      removeData();
    },
    () => stop(),
  );

  async function stop(): Promise<void> {
    if (stopped) return;
    stopped = true;
    unregister();
    killQuietly(-pgid, 'SIGTERM');
    await Promise.race([exitPromise, new Promise((r) => setTimeout(r, 5_000).unref())]);
    killAllNow();
    // Wait until the marked processes are really gone (they hold files in dataDir).
    for (let i = 0; i < 50 && pidsWithEnv('NIX_BUILDERS_E2E_INSTANCE', instance).length > 0; i++) {
      await sleep(100);
      killAllNow();
    }
    await new Promise<void>((r) => log.end(r));
    removeData();
  }

  const url = `http://127.0.0.1:${port}`;
  const authority = `127.0.0.1:${port}`;
  const logTail = (n = 60) => tail.slice(-n).join('\n');
  const remoteUri = (p: string) => `vscode-remote://${authority}${path.resolve(p)}`;
  const workbenchUrl: CodeServer['workbenchUrl'] = (o = {}) => {
    const q = new URLSearchParams({ folder: path.resolve(o.folder ?? opts.folder) });
    if (o.payload) q.set('payload', JSON.stringify(o.payload));
    return `${url}/?${q.toString()}`;
  };

  // Ready = /healthz answers and the workbench page is served (the first request loads VS Code's
  // server module, which takes a few seconds; do it here rather than in the browser's timeout).
  const deadline = Date.now() + 90_000;
  let phase: 'healthz' | 'workbench' = 'healthz';
  for (;;) {
    if (exited) {
      await stop();
      const text = logTail();
      if (/EADDRINUSE/.test(text)) throw new PortInUse(`port ${port} in use`);
      throw new Error(`code-server exited (${exited.code ?? exited.signal}) before it was ready:\n${text}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`code-server not ready on ${url} after 90 s (waiting for ${phase}):\n${logTail()}`);
    }
    if (phase === 'healthz' && (await httpOk(`${url}/healthz`))) phase = 'workbench';
    if (phase === 'workbench' && (await httpOk(workbenchUrl()))) break;
    await sleep(100);
  }

  return { url, port, authority, dataDir, userDataDir, extensionsDir, logFile, remoteUri, workbenchUrl, logTail, stop };
}
