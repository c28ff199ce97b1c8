// Bundles the mocha suite that runs inside the extension host (test/e2e/suite/) into
// dist/e2e-suite/index.js: the extension host loads JavaScript. `vscode` comes from the host and
// `mocha` from the repo's node_modules (the bundle lives inside the repo).
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import { repoRoot } from './paths';

export const suiteDir = path.join(repoRoot, 'test', 'e2e', 'suite');
export const suiteOutDir = path.join(repoRoot, 'dist', 'e2e-suite');

export async function buildSuite(): Promise<string> {
  const files = readdirSync(suiteDir).filter((f) => f.endsWith('.test.ts')).sort();
  if (files.length === 0) throw new Error(`no *.test.ts in ${suiteDir}`);
  const suiteFiles: esbuild.Plugin = {
    name: 'e2e-suite-files',
    setup(build) {
      build.onResolve({ filter: /^e2e-suite-files$/ }, () => ({ path: 'e2e-suite-files', namespace: 'e2e-suite-files' }));
      build.onLoad({ filter: /.*/, namespace: 'e2e-suite-files' }, () => ({
        contents: `export function loadSuiteFiles() {\n${files.map((f) => `  require(${JSON.stringify('./' + f)});`).join('\n')}\n}\n`,
        resolveDir: suiteDir,
        loader: 'js',
      }));
    },
  };
  await esbuild.build({
    entryPoints: { index: path.join(suiteDir, 'index.ts') },
    outdir: suiteOutDir,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    sourcemap: 'inline',
    external: ['vscode', 'mocha'],
    plugins: [suiteFiles],
    logLevel: 'warning',
  });
  return path.join(suiteOutDir, 'index.js');
}

if (require.main === module) {
  buildSuite().then((f) => console.log(f), (e) => { console.error(e); process.exit(1); });
}
