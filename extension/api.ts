// What the extension exports from `activate`: a small, stable API for other extensions and for
// the end-to-end tests (which assert on it as well as on the rendered UI).
import type { BuilderInfo } from '../language-server/protocol';

export interface NixBuildersApi {
  /** Every configured builder as the language server lists it. */
  listBuilders(): Promise<BuilderInfo[]>;
  /** The Nix version the server found, or undefined when Nix is missing. */
  nixVersion(): Promise<string | undefined>;
}
