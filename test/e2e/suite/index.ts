// Mocha runner inside the VS Code extension host (bundled by test/e2e/buildSuite.ts into
// dist/e2e-suite/index.js; the launcher passes that file as extensionTestsPath).
// Every line of the report is prefixed with REPORT_PREFIX: the workbench forwards the extension
// host's console to the browser console mixed with its own log lines, and the launcher prints
// only the prefixed ones (all of them with E2E_VERBOSE=1).
import Mocha from 'mocha';
import { format } from 'node:util';
import { loadSuiteFiles } from 'e2e-suite-files';

export const REPORT_PREFIX = '[e2e] ';

function prefixConsole(): () => void {
  const log = console.log;
  const error = console.error;
  const base = Mocha.reporters.Base as unknown as { consoleLog: (...args: unknown[]) => void };
  const reporterLog = base.consoleLog;
  // Everything goes through console.log: console.error output reaches the browser twice.
  const prefixed = (...args: unknown[]) =>
    log(format(...args).split('\n').map((l) => REPORT_PREFIX + l).join('\n'));
  console.log = prefixed;
  console.error = prefixed;
  base.consoleLog = prefixed; // mocha's reporters print through this
  return () => {
    console.log = log;
    console.error = error;
    base.consoleLog = reporterLog;
  };
}

export function run(): Promise<void> {
  const mocha = new Mocha({
    ui: 'tdd',
    color: false,
    reporter: 'spec',
    timeout: Number(process.env.E2E_MOCHA_TIMEOUT_MS ?? 60_000),
    ...(process.env.E2E_GREP ? { grep: process.env.E2E_GREP } : {}),
  });
  // Put suite()/test() on globalThis, then evaluate the bundled test files.
  mocha.suite.emit('pre-require', globalThis, 'e2e-suite', mocha);
  const restore = prefixConsole();
  return new Promise<void>((resolve, reject) => {
    try {
      loadSuiteFiles();
      mocha.run((failures) => {
        restore();
        if (failures > 0) reject(new Error(`${failures} extension test(s) failed`));
        else resolve();
      });
    } catch (e) {
      console.log(`could not load the suite: ${e instanceof Error ? e.stack : e}`);
      restore();
      reject(e instanceof Error ? e : new Error(String(e)));
    }
  });
}
