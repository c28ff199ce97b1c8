// The Builds view and the inline build status on the source. Both show the builds of a BuildStore
// (the server's notifications merged; the server sends at most 5 per second per build, each with
// only what changed). A build of thousands of derivations stays cheap to show: the derivations
// building and failed are listed, the others in collapsed groups by state, each listing at most
// GROUP_LIMIT; an update refreshes only that build's subtree.
import * as vscode from 'vscode';
import type { BuildInfo, DrvSnapshot, TransferSnapshot } from '../../language-server/protocol';
import { storeHost } from '../../language-server/nix/storeUri';
import { drvStatus, groupDerivations, RUNNING_BUILD, targetStatus, transferKey, type BuildStore, type DrvGroup } from '../buildState';
import type { CheckStore } from '../checkState';
import { CheckNodes, isCheckNode, type CheckNode, type CheckRow } from './checkNodes';

type Node =
  | { kind: 'build'; buildId: string }
  | { kind: 'group'; buildId: string; group: DrvGroup | 'transfers'; count: number }
  | { kind: 'drv'; build: BuildInfo; drv: DrvSnapshot }
  | { kind: 'transfer'; build: BuildInfo; transfer: TransferSnapshot; inGroup?: boolean }
  | { kind: 'more'; buildId: string; group: string; count: number }
  | CheckNode;

/** Up to this many derivations, all are listed directly under their build. */
const LIST_ALL = 30;
/** Transfers listed directly under their build (more: a group). */
const LIST_TRANSFERS = 10;
/** Items listed in one group; the rest is counted. */
const GROUP_LIMIT = 200;
/** Groups that are listed directly even in a large build. */
const ALWAYS_LISTED: ReadonlySet<DrvGroup> = new Set(['building', 'failed']);

const GROUP_LABEL: Record<DrvGroup | 'transfers', string> = {
  building: 'Building',
  failed: 'Failed',
  queued: 'Queued',
  built: 'Built',
  fetched: 'Fetched from cache',
  cancelled: 'Cancelled',
  transfers: 'Copies and downloads',
};

export class BuildsView implements vscode.TreeDataProvider<Node> {
  private readonly changed = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  /** One node object per build, so an update can refresh just that build's subtree. */
  private readonly buildNodes = new Map<string, Extract<Node, { kind: 'build' }>>();
  /**
   * What VS Code was told changed and has not read since: the whole tree, or these builds' rows. A
   * change meanwhile is not told again (that read shows it): each change told is a refresh, during
   * which VS Code does not know the rows it refreshes, and a command run from such a row's context
   * menu gets undefined instead of the row (microsoft/vscode#144250). VS Code's debounce (200 ms, on
   * the leading edge) made a build that starts and ends at once two refreshes, the second after its
   * rows showed.
   */
  private rootUnread = false;
  private readonly buildsUnread = new Set<string>();

  /** The reproducibility checks, listed before the builds. */
  private readonly checks: CheckNodes;

  constructor(
    private readonly store: BuildStore,
    checks: CheckStore,
  ) {
    this.checks = new CheckNodes(checks);
  }

  /** A check was added or replaced. */
  checksChanged(): void {
    this.tell(undefined);
  }

  /** The checks' and comparisons' rows as shown (the API's). */
  checkRows(): CheckRow[] {
    return this.checks.rows();
  }

  /** The build changed (its merged state is in the store). */
  update(buildId: string): void {
    const node = this.buildNodes.get(buildId);
    const known = new Set(this.store.all().map((b) => b.buildId));
    for (const id of this.buildNodes.keys()) {
      if (known.has(id)) continue;
      this.buildNodes.delete(id);
      this.buildsUnread.delete(id);
    }
    if (node) this.tell(node);
    else {
      this.buildNodes.set(buildId, { kind: 'build', buildId });
      this.tell(undefined);
    }
  }

  /** Tell VS Code that `node` (undefined: the whole tree) changed, unless a read of it is still to come. */
  private tell(node: Extract<Node, { kind: 'build' }> | undefined): void {
    if (this.rootUnread || (node && this.buildsUnread.has(node.buildId))) return;
    if (node) this.buildsUnread.add(node.buildId);
    else this.rootUnread = true;
    this.changed.fire(node);
  }

  getChildren(node?: Node): Node[] {
    if (!node) {
      // VS Code reads the roots, then each one's row (getTreeItem), then the children of those expanded.
      this.rootUnread = false;
      const builds = this.store
        .all()
        .reverse()
        .map((b): Node => this.buildNodes.get(b.buildId) ?? { kind: 'build', buildId: b.buildId });
      return [...this.checks.roots(), ...builds];
    }
    if (isCheckNode(node)) return this.checks.children(node);
    if (node.kind !== 'build' && node.kind !== 'group') return [];
    const build = this.store.get(node.buildId);
    if (!build) return [];
    const derivations = build.snapshot?.derivations ?? [];
    const transfers = build.snapshot?.transfers ?? [];
    if (node.kind === 'build') {
      const out: Node[] = [];
      for (const g of groupDerivations(derivations)) {
        if (derivations.length <= LIST_ALL || ALWAYS_LISTED.has(g.group)) out.push(...this.limited(build, g.group, g.derivations));
        else out.push({ kind: 'group', buildId: build.buildId, group: g.group, count: g.derivations.length });
      }
      if (transfers.length <= LIST_TRANSFERS) out.push(...transfers.map((transfer): Node => ({ kind: 'transfer', build, transfer })));
      else {
        out.push(...transfers.filter((t) => t.state === 'running').slice(0, LIST_TRANSFERS).map((transfer): Node => ({ kind: 'transfer', build, transfer })));
        out.push({ kind: 'group', buildId: build.buildId, group: 'transfers', count: transfers.length });
      }
      return out;
    }
    if (node.group === 'transfers') {
      const shown = transfers.slice(-GROUP_LIMIT).reverse();
      const rest: Node[] = transfers.length > GROUP_LIMIT ? [{ kind: 'more', buildId: build.buildId, group: 'transfers', count: transfers.length - GROUP_LIMIT }] : [];
      return [...shown.map((transfer): Node => ({ kind: 'transfer', build, transfer, inGroup: true })), ...rest];
    }
    const group = groupDerivations(derivations).find((g) => g.group === node.group);
    return this.limited(build, node.group, group?.derivations ?? []);
  }

  private limited(build: BuildInfo, group: DrvGroup, list: readonly DrvSnapshot[]): Node[] {
    const shown = list.slice(0, GROUP_LIMIT).map((drv): Node => ({ kind: 'drv', build, drv }));
    return list.length > GROUP_LIMIT ? [...shown, { kind: 'more', buildId: build.buildId, group, count: list.length - GROUP_LIMIT }] : shown;
  }

  getTreeItem(node: Node): vscode.TreeItem {
    if (isCheckNode(node)) return this.checks.item(node);
    switch (node.kind) {
      case 'build':
        this.buildsUnread.delete(node.buildId);
        return this.buildItem(node.buildId);
      case 'group': {
        const item = new vscode.TreeItem(GROUP_LABEL[node.group], vscode.TreeItemCollapsibleState.Collapsed);
        item.id = `${node.buildId}:group:${node.group}`;
        item.description = String(node.count);
        return item;
      }
      case 'more': {
        const item = new vscode.TreeItem(`… ${node.count} more`, vscode.TreeItemCollapsibleState.None);
        item.id = `${node.buildId}:more:${node.group}`;
        item.tooltip = 'Every derivation of the build is in the Nix Builders output when it ends.';
        return item;
      }
      case 'transfer':
        return transferItem(node.build, node.transfer, node.inGroup ?? false);
      case 'drv':
        return drvItem(node.build, node.drv);
    }
  }

  private buildItem(buildId: string): vscode.TreeItem {
    const b = this.store.get(buildId);
    const label = b ? b.targets.map((t) => t.attrPath.join('.') || t.drvPath).join(', ') : buildId;
    const item = new vscode.TreeItem(label, vscode.TreeItemCollapsibleState.Expanded);
    item.id = buildId;
    if (!b) return item;
    const p = b.snapshot?.progress;
    const counts = p && p.expected > 0 ? ` — ${p.done}/${p.expected} built${p.running && b.status === 'running' ? `, ${p.running} building` : ''}${p.failed ? `, ${p.failed} failed` : ''}` : '';
    item.description = `${b.status}${counts} — ${b.plan.summary}`;
    item.iconPath = new vscode.ThemeIcon(
      b.status === 'running' ? 'loading~spin' : b.status === 'built' ? 'pass' : b.status === 'failed' ? 'error' : 'circle-slash',
    );
    item.tooltip = [b.plan.summary, ...(b.problems ?? [])].join('\n');
    item.contextValue = b.status === 'running' ? RUNNING_BUILD : 'build';
    return item;
  }
}

/** The build id of a Builds view row (a command's argument when run from the row). */
export function buildIdOfNode(node: unknown): string | undefined {
  const n = node as Partial<Extract<Node, { kind: 'build' }>> | undefined;
  return n?.kind === 'build' && typeof n.buildId === 'string' ? n.buildId : undefined;
}

/** The context value of a finished derivation that is an attribute of a file: Check Reproducibility (package.json) shows on these. */
export const BUILT_ATTRIBUTE = 'drv-built-attribute';

/** The attribute of a Builds view row of a finished derivation that a build was asked for (a command's argument when run from the row). */
export function attributeOfNode(node: unknown): { uri: string; attribute: string[] } | undefined {
  const n = node as Partial<Extract<Node, { kind: 'drv' }>> | undefined;
  if (n?.kind !== 'drv' || !n.build?.uri || !n.drv) return undefined;
  const target = n.build.targets.find((t) => t.drvPath === n.drv?.drvPath && t.attrPath.length > 0);
  return target && { uri: n.build.uri, attribute: target.attrPath };
}

function transferItem(build: BuildInfo, t: TransferSnapshot, inGroup: boolean): vscode.TreeItem {
  const item = new vscode.TreeItem(t.name, vscode.TreeItemCollapsibleState.None);
  // Ids are unique in the whole tree: a running transfer is listed under its build and in the group.
  item.id = `${build.buildId}:${inGroup ? 'group:' : ''}${transferKey(t)}`;
  const bytes = t.expectedBytes ? ` ${((t.doneBytes ?? 0) / 2 ** 20).toFixed(1)}/${(t.expectedBytes / 2 ** 20).toFixed(1)} MiB` : '';
  const verb = t.kind === 'substitute' ? 'fetching' : 'copying';
  item.description = `${t.state === 'done' ? (t.kind === 'substitute' ? 'fetched' : 'copied') : verb} from ${t.from ? storeHost(t.from) : 'this machine'}${bytes}`;
  item.tooltip = `${t.path}\nfrom ${t.from || 'this machine'} to ${t.to || 'this machine'}`;
  item.iconPath = new vscode.ThemeIcon(t.kind === 'substitute' ? 'cloud-download' : 'arrow-swap');
  return item;
}

function drvItem(build: BuildInfo, d: DrvSnapshot): vscode.TreeItem {
  const item = new vscode.TreeItem(d.name, vscode.TreeItemCollapsibleState.None);
  item.id = `${build.buildId}:${d.drvPath}`;
  item.description = `${drvStatus(d)}${d.state === 'building' && d.lastLogLine ? ` — ${d.lastLogLine.slice(0, 120)}` : ''}`;
  item.tooltip = `${d.drvPath}\n${d.lastLogLine ?? ''}${d.failure ? `\n${d.failure}` : ''}`;
  item.iconPath = new vscode.ThemeIcon(d.state === 'built' ? 'pass' : d.state === 'failed' ? 'error' : d.state === 'building' ? 'loading~spin' : 'circle-outline');
  item.command = { command: 'nixBuilders.showBuildLog', title: 'Show Log', arguments: [build.buildId, d.drvPath] };
  if ((d.state === 'built' || d.state === 'substituted') && attributeOfNode({ kind: 'drv', build, drv: d })) item.contextValue = BUILT_ATTRIBUTE;
  return item;
}

interface LineStatus {
  state: string;
  text: string;
  buildId: string;
  drvPath: string;
}

/** The status in words; a failed or finished build links to the derivation's log. */
function hoverOf(s: LineStatus): vscode.MarkdownString {
  const md = new vscode.MarkdownString();
  md.appendText(s.text);
  if (s.state === 'failed' || s.state === 'built' || s.state === 'building') {
    const args = encodeURIComponent(JSON.stringify([s.buildId, s.drvPath]));
    md.appendMarkdown(` — [Show the log](command:nixBuilders.showBuildLog?${args})`);
    md.isTrusted = { enabledCommands: ['nixBuilders.showBuildLog'] };
  }
  return md;
}

/** Gutter icon and after-line text on each built attribute, live while it runs, kept afterwards. */
export class BuildDecorations implements vscode.Disposable {
  private readonly types: Record<string, vscode.TextEditorDecorationType>;
  /** uri -> line -> status, cleared for a document when it changes. */
  private readonly status = new Map<string, Map<number, LineStatus>>();
  private readonly subscriptions: vscode.Disposable[];

  constructor(
    media: vscode.Uri,
    private readonly store: BuildStore,
  ) {
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
    for (const t of build.targets) {
      if (t.line !== undefined) lines.set(t.line, { ...targetStatus(build, this.store.derivation(build.buildId, t.drvPath)), buildId: build.buildId, drvPath: t.drvPath });
    }
    this.status.set(build.uri, lines);
    this.render();
  }

  /** What is shown on a document (for tests and the API). */
  statusOf(uri: string): Array<{ line: number; state: string; text: string }> {
    return [...(this.status.get(uri)?.entries() ?? [])].map(([line, s]) => ({ line, state: s.state, text: s.text }));
  }

  private render(): void {
    for (const editor of vscode.window.visibleTextEditors) {
      const lines = this.status.get(editor.document.uri.toString());
      for (const [state, type] of Object.entries(this.types)) {
        const options: vscode.DecorationOptions[] = [];
        for (const [line, s] of lines ?? []) {
          if (s.state !== state || line >= editor.document.lineCount) continue;
          // The line's text: hovering it shows the status and the link to the log; the text goes after it.
          const l = editor.document.lineAt(line);
          const range = new vscode.Range(line, l.firstNonWhitespaceCharacterIndex, line, l.range.end.character);
          options.push({ range, renderOptions: { after: { contentText: s.text } }, hoverMessage: hoverOf(s) });
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
