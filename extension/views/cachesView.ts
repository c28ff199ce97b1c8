// The Caches view: the substituters in the order Nix asks them (reachable? key trusted?), the push
// targets, the signing keys and the push queue. Data comes from the language server
// (nixBuilders.server.listCaches); this file only shows it.
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { CacheInfo, CachesInfo, PushQueueStatus } from '../../language-server/protocol';

type SigningKey = CachesInfo['keys'][number];

type Node =
  | { kind: 'group'; group: 'substituters' | 'push-targets' | 'keys' | 'queue'; info: CachesInfo }
  | { kind: 'cache'; cache: CacheInfo }
  | { kind: 'key'; key: SigningKey }
  | { kind: 'queue-detail'; label: string; value: string; icon?: string }
  | { kind: 'message'; text: string; icon: string; command?: vscode.Command };

/** The cache (a substituter or a push target) of a row passed to a command from its context menu. */
export function cacheOfNode(arg: unknown): CacheInfo | undefined {
  const node = arg as Node | undefined;
  return node?.kind === 'cache' ? node.cache : undefined;
}

/** The signing key of a row. */
export function keyOfNode(arg: unknown): SigningKey | undefined {
  const node = arg as Node | undefined;
  return node?.kind === 'key' ? node.key : undefined;
}

const GROUP_LABEL = { substituters: 'Substituters', 'push-targets': 'Push targets', keys: 'Signing keys', queue: 'Push queue' } as const;

export class CachesView implements vscode.TreeDataProvider<Node> {
  private readonly changed = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private info: Promise<CachesInfo> | undefined;

  constructor(private readonly fetch: () => Promise<CachesInfo>) {}

  refresh(): void {
    this.info = undefined;
    this.changed.fire(undefined);
  }

  /** What the view shows (listed now if it was not yet). */
  current(): Promise<CachesInfo> {
    this.info ??= this.fetch().catch((e: unknown) => {
      this.info = undefined;
      throw e;
    });
    return this.info;
  }

  async getChildren(node?: Node): Promise<Node[]> {
    if (!node) {
      let info: CachesInfo;
      try {
        info = await this.current();
      } catch (e) {
        return [{ kind: 'message', text: `Cannot list the caches: ${(e as Error).message}`, icon: 'error' }];
      }
      const groups: Node[] = (['substituters', 'push-targets', 'keys'] as const).map((group) => ({ kind: 'group', group, info }));
      if (info.queue) groups.push({ kind: 'group', group: 'queue', info });
      return info.problem ? [{ kind: 'message', text: info.problem, icon: 'error' }, ...groups] : groups;
    }
    if (node.kind !== 'group') return [];
    const { info } = node;
    switch (node.group) {
      case 'substituters': {
        const caches = info.caches.filter((c) => c.origin === 'substituters');
        return caches.length ? caches.map((cache) => ({ kind: 'cache', cache })) : [{ kind: 'message', text: 'none: Nix substitutes from nothing (substituters is empty)', icon: 'info' }];
      }
      case 'push-targets': {
        const targets = info.caches.filter((c) => c.origin === 'push-target');
        const settings: vscode.Command = { command: 'workbench.action.openSettings', title: 'Open Settings', arguments: ['nixBuilders.cache.pushTargets'] };
        return targets.length ? targets.map((cache) => ({ kind: 'cache', cache })) : [{ kind: 'message', text: 'none: add a store URI to nixBuilders.cache.pushTargets', icon: 'info', command: settings }];
      }
      case 'keys':
        return info.keys.length
          ? info.keys.map((key) => ({ kind: 'key', key }))
          : [{ kind: 'message', text: 'none: generate one (Generate Signing Key…)', icon: 'info', command: { command: 'nixBuilders.generateSigningKey', title: 'Generate Signing Key…' } }];
      case 'queue':
        return info.queue ? queueDetails(info.queue) : [];
    }
  }

  getTreeItem(node: Node): vscode.TreeItem {
    switch (node.kind) {
      case 'group': {
        const item = new vscode.TreeItem(GROUP_LABEL[node.group], vscode.TreeItemCollapsibleState.Expanded);
        item.id = `group:${node.group}`;
        if (node.group === 'substituters') item.tooltip = "In the order Nix asks them: by the Priority of their nix-cache-info (or ?priority=), lower first, then as configured.";
        if (node.group === 'queue' && node.info.queue) item.description = `${node.info.queue.depth} waiting · ${node.info.queue.pushed} pushed`;
        return item;
      }
      case 'cache':
        return cacheItem(node.cache);
      case 'key':
        return keyItem(node.key);
      case 'queue-detail': {
        const item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.None);
        item.id = `queue:${node.label}`;
        item.description = node.value;
        item.tooltip = `${node.label}: ${node.value}`;
        if (node.icon) item.iconPath = new vscode.ThemeIcon(node.icon);
        return item;
      }
      case 'message': {
        const item = new vscode.TreeItem(node.text, vscode.TreeItemCollapsibleState.None);
        item.iconPath = new vscode.ThemeIcon(node.icon);
        item.tooltip = node.text;
        if (node.command) item.command = node.command;
        return item;
      }
    }
  }
}

function cacheItem(c: CacheInfo): vscode.TreeItem {
  const item = new vscode.TreeItem(c.uri, vscode.TreeItemCollapsibleState.None);
  item.id = `${c.origin}:${c.uri}`;
  const trust = c.keyTrusted === true ? 'key trusted' : c.keyTrusted === false ? 'key not trusted' : undefined;
  const reach = c.reachable === 'yes' ? 'reachable' : c.reachable === 'no' ? 'unreachable' : 'not probed';
  item.description = [reach, c.priority !== undefined && c.origin === 'substituters' ? `priority ${c.priority}` : undefined, trust].filter(Boolean).join(' · ');
  item.iconPath =
    c.reachable === 'no'
      ? new vscode.ThemeIcon('error', new vscode.ThemeColor('problemsErrorIcon.foreground'))
      : c.keyTrusted === false
        ? new vscode.ThemeIcon('warning', new vscode.ThemeColor('problemsWarningIcon.foreground'))
        : c.reachable === 'yes'
          ? new vscode.ThemeIcon(c.keyTrusted ? 'verified' : 'pass', new vscode.ThemeColor('testing.iconPassed'))
          : new vscode.ThemeIcon('question');
  const md = new vscode.MarkdownString(undefined, true);
  md.appendMarkdown('**').appendText(c.uri).appendMarkdown('**\n\n');
  md.appendText(`${reach}${trust ? ` · ${trust}` : ''}`);
  if (c.message) md.appendMarkdown('\n\n').appendText(c.message);
  const fields = Object.entries(c.cacheInfo ?? {});
  if (fields.length) md.appendMarkdown('\n\nnix-cache-info: ').appendText(fields.map(([k, v]) => `${k}: ${v}`).join(' · '));
  item.tooltip = md;
  item.contextValue = c.origin === 'push-target' ? 'pushTarget' : 'substituter';
  return item;
}

function keyItem(k: SigningKey): vscode.TreeItem {
  const item = new vscode.TreeItem(k.keyName ?? path.basename(k.secretKeyFile), vscode.TreeItemCollapsibleState.None);
  item.id = `key:${k.secretKeyFile}`;
  item.description = `${k.origin === 'nixBuilders' ? 'nixBuilders.cache.signingKeyFile' : 'secret-key-files'}${k.problem ? ' · problem' : ''}`;
  item.iconPath = k.problem ? new vscode.ThemeIcon('warning', new vscode.ThemeColor('problemsWarningIcon.foreground')) : new vscode.ThemeIcon('key');
  const md = new vscode.MarkdownString(undefined, true);
  md.appendText(k.secretKeyFile);
  if (k.publicKey) md.appendMarkdown('\n\nPublic key: `').appendText(k.publicKey).appendMarkdown('`');
  if (k.problem) md.appendMarkdown('\n\n**Problem:** ').appendText(k.problem);
  item.tooltip = md;
  item.contextValue = k.publicKey ? 'signingKey' : 'signingKeyUnreadable';
  return item;
}

function queueDetails(q: PushQueueStatus): Node[] {
  const worker = q.worker === 'none' ? 'none running: nothing is pushed until one runs' : q.worker === 'server' ? 'in the language server' : 'standalone';
  return [
    { kind: 'queue-detail', label: 'Waiting', value: String(q.depth) },
    { kind: 'queue-detail', label: 'Pushed', value: String(q.pushed) },
    { kind: 'queue-detail', label: 'Worker', value: worker },
    ...(q.lastError ? [{ kind: 'queue-detail' as const, label: 'Last error', value: q.lastError, icon: 'error' }] : []),
    { kind: 'queue-detail', label: 'Folder', value: q.dir },
  ];
}
