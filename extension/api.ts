// What the extension exports from `activate`: a small, stable API for other extensions and for
// the end-to-end tests (which assert on it as well as on the rendered UI).
import type { BuilderInfo, DoctorReport, TestBuildResult } from '../language-server/protocol';

export interface NixBuildersApi {
  /** Every configured builder as the language server lists it. */
  listBuilders(): Promise<BuilderInfo[]>;
  /** Run the health doctor on some builders (all when `ids` is undefined). */
  checkBuilders(ids?: string[]): Promise<DoctorReport>;
  /** Build a fresh derivation on exactly this builder. */
  testBuild(builderId: string): Promise<TestBuildResult>;
  /** The Nix version the server found, or undefined when Nix is missing. */
  nixVersion(): Promise<string | undefined>;
}
