// Bundles the extension and the language server with esbuild (CommonJS, Node).
//   node scripts/build.mjs [--watch] [--production] [--outdir=DIR]   (default dist/)
import * as esbuild from 'esbuild';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');
const outdir = process.argv.find((a) => a.startsWith('--outdir='))?.slice('--outdir='.length) ?? 'dist';

// ssh2's optional native parts (its sshcrypto.node binding and the cpu-features package) are built
// for the Node that ran `npm ci`, whose ABI VS Code's Electron does not share, and ssh2 loads them in
// try/catch and falls back to Node's crypto. So they are left out: each is a module that throws,
// exactly what ssh2 sees where they are not installed (package.json's allowScripts never builds
// them). The VSIX ships no .node file (test/unit/manifest.test.ts).
/** @type {esbuild.Plugin} */
const withoutNativeModules = {
  name: 'without-native-modules',
  setup(build) {
    build.onResolve({ filter: /\.node$|^cpu-features$/ }, (args) => ({ path: args.path, namespace: 'native-left-out' }));
    build.onLoad({ filter: /.*/, namespace: 'native-left-out' }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`${args.path} is not bundled: native modules do not load in VS Code's Electron`)});`,
      loader: 'js',
    }));
  },
};

/** @type {esbuild.BuildOptions} */
const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: production ? false : 'linked',
  minify: production,
  logLevel: 'warning',
  plugins: [withoutNativeModules],
};

const builds = [
  // The extension: `vscode` is provided by the host.
  { ...common, entryPoints: { extension: 'extension/main.ts' }, outdir, external: ['vscode'] },
  // The language server: execa is ESM-only and is bundled into CommonJS here.
  { ...common, entryPoints: { server: 'language-server/main.ts' }, outdir },
  // The standalone push worker (README: "The push queue without an editor").
  { ...common, entryPoints: { pushWorker: 'language-server/cache/pushWorkerMain.ts' }, outdir },
];

if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
  console.log('esbuild: watching extension/ and language-server/');
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
