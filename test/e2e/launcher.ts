// A stand-in for the VS Code executable that @vscode/test-electron's runTests() (or
// @vscode/test-cli's useInstallation.fromPath) launches: it runs the extension tests in the real
// extension host of code-server, driven by headless Chromium, and exits with their result.
//
//   test/e2e/launcher.sh [WORKSPACE] --extensionDevelopmentPath=DIR --extensionTestsPath=FILE [...]
//
// Every other flag test-electron passes (--no-sandbox, --user-data-dir=, --disable-workspace-trust,
// ...) is ignored: workspace trust keeps its default. Before the tests run, the folder is trusted
// as a user would do it (open it, Manage -> Trust), so the extension under test starts in a
// trusted workspace; E2E_TRUST=0 skips that and runs the tests in Restricted Mode.
// The environment (extensionTestsEnv included) reaches the extension host: code-server inherits it.
//
// Environment: E2E_TIMEOUT_MS (default 300000), E2E_VERBOSE=1 (code-server's log and the browser
// console on stderr), E2E_KEEP=1 (keep code-server's data dir), E2E_SETTINGS (JSON: user
// settings over the defaults), E2E_TRUST=0.
import * as path from 'node:path';
import { openBrowser, screenshot, trustWorkspace, waitForWorkbench } from './browser';
import { startCodeServer } from './codeServer';

interface LaunchArgs {
  extensionDevelopmentPaths: string[];
  extensionTestsPath?: string;
  folder?: string;
}

export function parseArgs(argv: string[]): LaunchArgs {
  const out: LaunchArgs = { extensionDevelopmentPaths: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--(extensionDevelopmentPath|extensionTestsPath|folder-uri)(?:=(.*))?$/.exec(a);
    if (m) {
      const value = m[2] ?? argv[++i];
      if (value === undefined) throw new Error(`${a} needs a value`);
      if (m[1] === 'extensionDevelopmentPath') out.extensionDevelopmentPaths.push(path.resolve(value));
      else if (m[1] === 'extensionTestsPath') out.extensionTestsPath = path.resolve(value);
      else out.folder = value.startsWith('file://') ? new URL(value).pathname : path.resolve(value);
    } else if (!a.startsWith('-') && out.folder === undefined) {
      out.folder = path.resolve(a);
    }
    // anything else: a flag for desktop VS Code, ignored
  }
  return out;
}

/** Errors every offline code-server run logs (no marketplace, no GitHub, no chat files). */
const KNOWN_NOISE = /open-vsx\.org|ENOTFOUND|mcp\.json|is already registered|Failed to load resource|\(Canceled: Canceled\)/;

/** The mocha suite (suite/index.ts) prefixes its report lines with this. */
const REPORT_PREFIX = '[e2e] ';

/**
 * The report lines in a browser console message. The workbench logs the extension host's console
 * as "%c INFO color: #33f <text>" (or " ERR", "[Extension Host] ", ...), among its own log lines.
 */
export function reportLines(text: string): string[] | undefined {
  const body = text.replace(/^%c\s*(?:TRACE|DEBUG|INFO|WARN|ERR)\s+color: #[0-9a-fA-F]+ /, '').replace(/^\[Extension Host\] /, '');
  if (!body.startsWith(REPORT_PREFIX)) return undefined;
  return body.split('\n').map((l) => (l.startsWith(REPORT_PREFIX) ? l.slice(REPORT_PREFIX.length) : l));
}

export async function launch(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const devPaths = args.extensionDevelopmentPaths;
  if (devPaths.length === 0 || !args.extensionTestsPath) {
    console.error('launcher: needs --extensionDevelopmentPath=DIR and --extensionTestsPath=FILE');
    return 2;
  }
  const folder = args.folder ?? devPaths[0]!;
  const timeout = Number(process.env.E2E_TIMEOUT_MS ?? 300_000);
  const settings = process.env.E2E_SETTINGS ? (JSON.parse(process.env.E2E_SETTINGS) as Record<string, unknown>) : {};
  const started = Date.now();

  const cs = await startCodeServer({ folder, settings, logName: 'code-server-extension-tests.log' });
  const session = await openBrowser().catch(async (e) => {
    await cs.stop();
    throw e;
  });
  const { page } = session;
  try {
    let resolveExit!: (code: number) => void;
    const exited = new Promise<number>((r) => (resolveExit = r));
    await page.exposeFunction('codeAutomationExit', (code: unknown) => resolveExit(typeof code === 'number' ? code : 1));
    // Errors the workbench logged (the extension host's among them), shown when the run fails.
    const hostErrors: string[] = [];
    page.on('console', (msg) => {
      const text = msg.text();
      const lines = reportLines(text);
      if (lines) process.stdout.write(`${lines.join('\n')}\n`);
      else if (process.env.E2E_VERBOSE) process.stderr.write(`[browser ${msg.type()}] ${text}\n`);
      const err = /^%c\s*ERR\s+color: #[0-9a-fA-F]+ ([\s\S]*)$/.exec(text);
      const brief = err?.[1]!.split('\n').slice(0, 4).join('\n    ');
      if (brief && !KNOWN_NOISE.test(brief) && hostErrors.at(-1) !== brief && hostErrors.push(brief) > 15) hostErrors.shift();
    });
    page.on('pageerror', (e) => process.env.E2E_VERBOSE && process.stderr.write(`[page error] ${e.message}\n`));
    const crashed = new Promise<string>((r) => page.once('crash', () => r('the page crashed')));

    const payload: Array<[string, string]> = [
      ...devPaths.map((p): [string, string] => ['extensionDevelopmentPath', cs.remoteUri(p)]),
      ['extensionTestsPath', cs.remoteUri(args.extensionTestsPath)],
    ];
    const open = async (): Promise<void> => {
      if (process.env.E2E_TRUST !== '0') {
        await page.goto(cs.workbenchUrl({ folder }), { waitUntil: 'domcontentloaded' });
        await waitForWorkbench(page);
        await trustWorkspace(page);
      }
      hostErrors.length = 0; // only the test window's
      await page.goto(cs.workbenchUrl({ folder, payload }), { waitUntil: 'domcontentloaded' });
      // Trust given just before the navigation is not always stored yet: should the test window
      // still be restricted, trust it there too (the suite waits for the grant). When the window is
      // trusted this watch simply ends with the page.
      if (process.env.E2E_TRUST !== '0') void trustWorkspace(page, timeout).catch(() => undefined);
    };

    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      open().then(
        () => exited,
        (e: unknown) => `could not open the workbench: ${e instanceof Error ? e.message : e}`,
      ),
      crashed,
      new Promise<string>((r) => (timer = setTimeout(() => r(`no result after ${timeout} ms`), timeout))),
    ]);
    clearTimeout(timer);
    const code = typeof outcome === 'number' ? outcome : 1;
    if (typeof outcome === 'string') console.error(`launcher: ${outcome}`);
    if (code !== 0) {
      if (hostErrors.length > 0) console.error(`launcher: errors the workbench logged:\n${hostErrors.map((e) => `  ${e}`).join('\n')}`);
      const shot = await screenshot(page, 'extension-tests-failure.png');
      console.error(`launcher: extension tests failed (exit ${code}); screenshot: ${shot ?? 'none'}; code-server log: ${cs.logFile}`);
    }
    console.error(`launcher: ${((Date.now() - started) / 1000).toFixed(1)} s in code-server ${cs.url}`);
    return code;
  } finally {
    await session.close();
    await cs.stop();
  }
}

if (require.main === module) {
  launch(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error('launcher:', e instanceof Error ? e.stack : e);
      process.exit(1);
    },
  );
}
