// The Builds view and the inline build status on the source. Both show the server's build
// snapshots; updates are throttled by the server (at most every 200 ms per build).
import * as vscode from 'vscode';
import type { BuildInfo, DrvSnapshot, TransferSnapshot } from '../../language-server/protocol';

type Node =
  | { kind: 'build'; build: BuildInfo }
  | { kind: 'drv'; build: BuildInfo; drv: DrvSnapshot }
  | { kind: 'transfer'; build: BuildInfo; transfer: TransferSnapshot };

const HISTORY = 20;
const seconds = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
const hostOfUri = (uri: string) => /^[a-z0-9+.-]+:\/\/(?:[^@/?]*@)?([^/?#]+)/i.exec(uri)?.[1] ?? uri;

/** One line for a derivation: "building on b2 (3.1 s)", "built on b2 (1.2 s)", "fetched from cache". */
export function drvStatus(d: DrvSnapshot, now = Date.now()): string {
  const where = d.machine ? ` on ${hostOfUri(d.machine)}` : ' here';
  const took = d.startedAt ? seconds((d.finishedAt ?? now) - d.startedAt) : '';
  switch (d.state) {
    case 'queued':
      return 'queued';
    case 'building':
      return `building${where}${took ? ` (${took})` : ''}${d.phase ? ` — ${d.phase}` : ''}`;
    case 'built':
      return `built${where}${took ? ` (${took})` : ''}`;
    case 'failed':
      return `failed${where}`;
    case 'substituted':
      return 'fetched from cache';
    case 'cancelled':
      return 'cancelled';
  }
}

/** The state shown on a target attribute. */
export function targetStatus(build: BuildInfo, drvPath: string): { state: 'queued' | 'building' | 'built' | 'failed' | 'fetched' | 'cancelled'; text: string } {
  const d = build.snapshot?.derivations.find((x) => x.drvPath === drvPath);
  // Asked for but not built: fetched when the plan fetched something, else it was there already.
  if (d?.state === 'substituted' && build.plan.toFetch.length === 0) return { state: 'built', text: 'already built' };
  if (d) {
    const state = d.state === 'substituted' ? 'fetched' : d.state;
    return { state, text: drvStatus(d) };
  }
  // Not built by this run: it came from a cache, or was there already.
  if (build.status === 'running') return { state: 'queued', text: build.plan.summary };
  if (build.status === 'built') return { state: 'fetched', text: build.plan.toFetch.length ? 'fetched from cache' : 'already built' };
  return { state: build.status === 'cancelled' ? 'cancelled' : 'failed', text: build.status };
}

export class BuildsView implements vscode.TreeDataProvider<Node> {
  private readonly changed = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly builds = new Map<string, BuildInfo>();

  update(build: BuildInfo): void {
    this.builds.set(build.buildId, build);
    for (const id of [...this.builds.keys()].slice(0, Math.max(0, this.builds.size - HISTORY))) this.builds.delete(id);
    this.changed.fire(undefined);
  }

  all(): BuildInfo[] {
    return [...this.builds.values()];
  }

  getChildren(node?: Node): Node[] {
    if (!node) return [...this.builds.values()].reverse().map((build) => ({ kind: 'build', build }));
    if (node.kind === 'build') {
      const snapshot = node.build.snapshot;
      return [
        ...(snapshot?.derivations ?? []).map((drv): Node => ({ kind: 'drv', build: node.build, drv })),
        ...(snapshot?.transfers ?? []).map((transfer): Node => ({ kind: 'transfer', build: node.build, transfer })),
      ];
    }
    return [];
  }

  getTreeItem(node: Node): vscode.TreeItem {
    if (node.kind === 'build') {
      const b = node.build;
      const label = b.targets.map((t) => t.attrPath.join('.') || t.drvPath).join(', ');
      const item = new vscode.TreeItem(label, vscode.TreeItemCollapsibleState.Expanded);
      item.id = b.buildId;
      item.description = `${b.status} — ${b.plan.summary}`;
      item.iconPath = new vscode.ThemeIcon(
        b.status === 'running' ? 'loading~spin' : b.status === 'built' ? 'pass' : b.status === 'failed' ? 'error' : 'circle-slash',
      );
      item.tooltip = [b.plan.summary, ...(b.problems ?? [])].join('\n');
      item.contextValue = b.status === 'running' ? 'build-running' : 'build';
      return item;
    }
    if (node.kind === 'transfer') {
      const t = node.transfer;
      const item = new vscode.TreeItem(t.name, vscode.TreeItemCollapsibleState.None);
      item.id = `${node.build.buildId}:${t.kind}:${t.path}`;
      const bytes = t.expectedBytes ? ` ${((t.doneBytes ?? 0) / 2 ** 20).toFixed(1)}/${(t.expectedBytes / 2 ** 20).toFixed(1)} MiB` : '';
      const verb = t.kind === 'substitute' ? 'fetching' : 'copying';
      item.description = `${t.state === 'done' ? (t.kind === 'substitute' ? 'fetched' : 'copied') : verb} from ${t.from ? hostOfUri(t.from) : 'this machine'}${bytes}`;
      item.tooltip = `${t.path}\nfrom ${t.from || 'this machine'} to ${t.to || 'this machine'}`;
      item.iconPath = new vscode.ThemeIcon(t.kind === 'substitute' ? 'cloud-download' : 'arrow-swap');
      return item;
    }
    const d = node.drv;
    const item = new vscode.TreeItem(d.name, vscode.TreeItemCollapsibleState.None);
    item.id = `${node.build.buildId}:${d.drvPath}`;
    item.description = drvStatus(d);
    item.tooltip = `${d.drvPath}\n${d.lastLogLine ?? ''}${d.failure ? `\n${d.failure}` : ''}`;
    item.iconPath = new vscode.ThemeIcon(d.state === 'built' ? 'pass' : d.state === 'failed' ? 'error' : d.state === 'building' ? 'loading~spin' : 'circle-outline');
    item.command = { command: 'nixBuilders.showBuildLog', title: 'Show Log', arguments: [node.build.buildId, d.drvPath] };
    return item;
  }
}

/** Gutter icon and after-line text on each built attribute, live while it runs, kept afterwards. */
export class BuildDecorations implements vscode.Disposable {
  private readonly types: Record<string, vscode.TextEditorDecorationType>;
  /** uri -> line -> status, cleared for a document when it changes. */
  private readonly status = new Map<string, Map<number, { state: string; text: string }>>();
  private readonly subscriptions: vscode.Disposable[];

  constructor(media: vscode.Uri) {
    const type = (state: string, color: string) =>
      vscode.window.createTextEditorDecorationType({
        gutterIconPath: vscode.Uri.joinPath(media, `build-${state}.svg`),
        gutterIconSize: 'contain',
        after: { margin: '0 0 0 2em', color: new vscode.ThemeColor(color), fontStyle: 'italic' },
      });
    this.types = {
      queued: type('queued', 'descriptionForeground'),
      building: type('building', 'charts.blue'),
      built: type('built', 'charts.green'),
      fetched: type('fetched', 'charts.purple'),
      failed: type('failed', 'errorForeground'),
      cancelled: type('queued', 'descriptionForeground'),
    };
    this.subscriptions = [
      vscode.window.onDidChangeVisibleTextEditors(() => this.render()),
      vscode.workspace.onDidChangeTextDocument((e) => {
        // That code changed: its build status no longer says anything about it.
        if (e.contentChanges.length > 0 && this.status.delete(e.document.uri.toString())) this.render();
      }),
    ];
  }

  update(build: BuildInfo): void {
    if (!build.uri) return;
    const lines = this.status.get(build.uri) ?? new Map();
    for (const t of build.targets) if (t.line !== undefined) lines.set(t.line, targetStatus(build, t.drvPath));
    this.status.set(build.uri, lines);
    this.render();
  }

  /** What is shown on a document (for tests and the API). */
  statusOf(uri: string): Array<{ line: number; state: string; text: string }> {
    return [...(this.status.get(uri)?.entries() ?? [])].map(([line, s]) => ({ line, ...s }));
  }

  private render(): void {
    for (const editor of vscode.window.visibleTextEditors) {
      const lines = this.status.get(editor.document.uri.toString());
      for (const [state, type] of Object.entries(this.types)) {
        const options: vscode.DecorationOptions[] = [];
        for (const [line, s] of lines ?? []) {
          if (s.state !== state || line >= editor.document.lineCount) continue;
          const end = editor.document.lineAt(line).range.end;
          options.push({ range: new vscode.Range(end, end), renderOptions: { after: { contentText: s.text } }, hoverMessage: s.text });
        }
        editor.setDecorations(type, options);
      }
    }
  }

  dispose(): void {
    for (const s of this.subscriptions) s.dispose();
    for (const t of Object.values(this.types)) t.dispose();
  }
}
