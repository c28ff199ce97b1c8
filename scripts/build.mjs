// Bundles the extension and the language server with esbuild (CommonJS, Node).
//   node scripts/build.mjs [--watch] [--production]
import * as esbuild from 'esbuild';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

/** @type {esbuild.BuildOptions} */
const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: production ? false : 'linked',
  minify: production,
  logLevel: 'warning',
  // ssh2's optional native parts (sshcrypto.node, cpu-features) are loaded in try/catch:
  // copy the binaries next to the bundle so that they keep working where the ABI matches.
  loader: { '.node': 'copy' },
};

const builds = [
  // The extension: `vscode` is provided by the host.
  { ...common, entryPoints: { extension: 'extension/main.ts' }, outdir: 'dist', external: ['vscode'] },
  // The language server: execa is ESM-only and is bundled into CommonJS here.
  { ...common, entryPoints: { server: 'language-server/main.ts' }, outdir: 'dist' },
];

if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
  console.log('esbuild: watching extension/ and language-server/');
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
