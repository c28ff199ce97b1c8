// The Nix these tests run: this machine's (on PATH, its store at /nix/store), or the one whose
// folder of executables NIX_BUILDERS_TEST_NIX_BIN names — scripts/test.sh's server-nix-2.26 tier sets
// it to the wrappers of scripts/ensure-nix.sh, which run Nix 2.26 in a Debian 13 root with its own
// /nix. The server gets that folder as nixBuilders.nixBinDir (lspClient.ts), the tests' own Nix
// commands run from it, and store paths are looked at where that Nix keeps them.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';

/** The folder of the Nix under test, or undefined for this machine's Nix on PATH. */
export const NIX_BIN: string | undefined = process.env.NIX_BUILDERS_TEST_NIX_BIN || undefined;

/** How to run one of Nix's executables (`nix`, `nix-store`, …). */
export const nixCommand = (name: string): string => (NIX_BIN ? path.join(NIX_BIN, name) : name);

/** Where a store path of the Nix under test is on this machine (the root's /nix is <folder>/../root/nix). */
export const hostStorePath = (storePath: string): string => (NIX_BIN ? path.join(path.dirname(NIX_BIN), 'root', storePath) : storePath);

/** The same file or folder (the same inode: a folder seen through a bind mount too). */
function sameFile(a: string, b: string): boolean {
  try {
    const x = statSync(a);
    const y = statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false; // gone meanwhile, or a zombie
  }
}

/**
 * The nix-instantiate processes working in `folder` (the document is on their stdin, not in their
 * arguments). Compared by inode, not by the link's text: the cwd of a process in another root
 * (the 2.26 wrappers) does not read back as this machine's path.
 */
export function evaluationsIn(folder: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'nix-instantiate' && sameFile(`/proc/${p}/cwd`, folder);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}
