// A module that test/e2e/buildSuite.ts generates at bundle time: it requires every
// test/e2e/suite/*.test.ts, in name order.
declare module 'e2e-suite-files' {
  export function loadSuiteFiles(): void;
}
