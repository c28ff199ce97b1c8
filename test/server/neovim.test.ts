// Neovim's own LSP client runs a Build code lens, and the derivation really builds: Debian's neovim
// (0.7.2 on Debian 12), headless, with test/server/neovim/init.lua, runs the README's Neovim
// snippet, which starts the server over stdio (the bundled dist/server.js), opens a Nix file, waits for the code lenses and runs Build through
// vim.lsp.codelens.run(); the answer of workspace/executeCommand and the $/progress Neovim got are
// written to a file this test reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { SERVER_JS } from './lspClient';
import { hostStorePath, NIX_BIN } from './nixUnderTest';
import type { BuildCommandResult } from '../../language-server/protocol';

const INIT = path.join(__dirname, 'neovim', 'init.lua');
const README = path.join(__dirname, '..', '..', 'README.md');

/** The README's Neovim snippet, run with this test's server and settings in place of its own. */
async function readmeSnippet(settings: object): Promise<string> {
  const readme = await readFile(README, 'utf8');
  const snippet = /\*\*Neovim\*\*[^]*?```lua\n([^]*?)```/.exec(readme)?.[1];
  assert.ok(snippet, 'the README has a Neovim snippet');
  const lua = (v: unknown) => JSON.stringify(JSON.stringify(v));
  const replace = (text: string, line: RegExp, by: string) => {
    assert.match(text, line, `the README's snippet has ${line}`);
    return text.replace(line, by);
  };
  let text = replace(snippet, /^( *)cmd = .*$/m, `$1cmd = vim.fn.json_decode(${lua([process.execPath, SERVER_JS, '--stdio'])}),`);
  text = replace(text, /^( *)init_options = .*$/m, `$1init_options = vim.fn.json_decode(${lua({ settings })}),`);
  return text;
}
const nvim = spawnSync('nvim', ['--version'], { encoding: 'utf8' });

test('a Build code lens run from Neovim builds the derivation: its output is in the store', { skip: nvim.error ? `Neovim is not installed (${nvim.error.message}): scripts/setup.sh installs Debian's neovim` : false, timeout: 480_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nb-neovim-'));
  try {
    await writeFile(path.join(dir, 'nix.conf'), ['build-users-group =', 'substituters =', 'sandbox = false', 'builders =', ''].join('\n'));
    const name = `neovim-build-${Date.now()}-${process.pid}`;
    const file = path.join(dir, 'default.nix');
    await writeFile(file, `{\n  hello = derivation {\n    name = "${name}"; system = builtins.currentSystem; builder = "/bin/sh";\n    args = [ "-c" "echo built by neovim > $out" ];\n  };\n}\n`);
    const resultFile = path.join(dir, 'result.json');
    const snippet = path.join(dir, 'snippet.lua');
    await writeFile(snippet, await readmeSnippet({ env: { NIX_CONF_DIR: dir }, ...(NIX_BIN ? { nixBinDir: NIX_BIN } : {}) }));
    const child = spawn('nvim', ['--headless', '-n', '-i', 'NONE', '-u', INIT], {
      cwd: dir,
      env: {
        ...process.env,
        XDG_CONFIG_HOME: path.join(dir, 'config'),
        XDG_DATA_HOME: path.join(dir, 'data'),
        XDG_STATE_HOME: path.join(dir, 'state'),
        XDG_CACHE_HOME: path.join(dir, 'cache'),
        NB_SNIPPET: snippet,
        NB_FILE: file,
        NB_RESULT: resultFile,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.ok(existsSync(resultFile), `Neovim wrote no result (exit ${code}): ${output}`);
    const { result, err, progress } = JSON.parse(await readFile(resultFile, 'utf8')) as { result?: BuildCommandResult; err?: string; progress: Array<{ kind: string; title?: string }> };
    assert.equal(err, undefined, output);
    assert.equal(result?.status, 'built', JSON.stringify(result));
    assert.deepEqual(result.derivations.map((d) => [d.name, d.state, d.machine]), [[name, 'built', '']]);
    const out = result.outputs[0] ?? '';
    assert.ok(existsSync(hostStorePath(out)), `${out} is in the store of the Nix under test`);
    assert.equal((await readFile(hostStorePath(out), 'utf8')).trim(), 'built by neovim');
    // Neovim got the server's work-done progress (it created the token the server asked for).
    assert.deepEqual([progress[0]?.kind, progress[0]?.title, progress[progress.length - 1]?.kind], ['begin', 'Building hello', 'end']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
