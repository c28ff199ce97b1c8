// What the extension exports from `activate`: a small, stable API for other extensions and for
// the end-to-end tests (which assert on it as well as on the rendered UI).
import type * as vscode from 'vscode';
import type { CheckRow } from './views/checkNodes';
import type { BuildInfo, BuildPlanInfo, BuilderInfo, DoctorReport, StartBuildParams, TestBuildResult } from '../language-server/protocol';

/** The language server as the status bar shows it: starting (also while it restarts after a crash), running, stopped. */
export type ServerState = 'starting' | 'running' | 'stopped';

export interface NixBuildersApi {
  /** Every configured builder as the language server lists it. */
  listBuilders(): Promise<BuilderInfo[]>;
  /** Run the health doctor on some builders (all when `ids` is undefined). */
  checkBuilders(ids?: string[]): Promise<DoctorReport>;
  /** Build a fresh derivation on exactly this builder. */
  testBuild(builderId: string): Promise<TestBuildResult>;
  /** Plan and run a build; resolves with its final state. */
  build(params: StartBuildParams): Promise<BuildInfo>;
  /** What a build would do, and where each asked-for derivation would build. */
  planBuild(params: StartBuildParams): Promise<BuildPlanInfo>;
  /** The inline build status shown on a document: line, state and text. */
  buildStatus(uri: string): Array<{ line: number; state: string; text: string }>;
  /** The Builds view's reproducibility checks and comparisons across machines, row by row as shown (depth first). */
  checkRows(): CheckRow[];
  /** The Nix version the server found, or undefined when Nix is missing. */
  nixVersion(): Promise<string | undefined>;
  /** The server's state and what the status bar says about it. */
  serverState(): { state: ServerState; statusText: string; statusTooltip: string };
  /** Fired on each change of the server's state (after the status bar shows it). */
  onDidChangeServerState: vscode.Event<ServerState>;
}
