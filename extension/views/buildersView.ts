// The Builders view: the local machine, every configured builder with where it came from, and
// configuration problems. Data comes from the language server; this file only shows it.
import * as vscode from 'vscode';
import type { BuilderHealth, BuilderInfo, BuildersListing, CheckResult, CheckStatus, ConfigProblem, LocalMachineInfo } from '../../language-server/protocol';

type Node =
  | { kind: 'local'; local: LocalMachineInfo }
  | { kind: 'builder'; builder: BuilderInfo }
  | { kind: 'detail'; label: string; value: string; explanation?: string; id: string }
  | { kind: 'check'; check: CheckResult; id: string }
  | { kind: 'problem'; problem: ConfigProblem; id: string }
  | { kind: 'message'; text: string; icon: string };

/** The builder a tree node (passed to a command from a context menu) stands for. */
export function builderOfNode(arg: unknown): BuilderInfo | undefined {
  const node = arg as Node | undefined;
  return node?.kind === 'builder' ? node.builder : undefined;
}

const list = (xs: readonly string[], none = 'none') => (xs.length > 0 ? xs.join(', ') : none);

export class BuildersView implements vscode.TreeDataProvider<Node> {
  private readonly changed = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private listing: Promise<BuildersListing> | undefined;
  /** Health by builder id; a builder being checked has no entry but is in `checking`. */
  private readonly health = new Map<string, BuilderHealth>();
  private readonly checking = new Set<string>();
  private localCheck: CheckResult<string> | undefined;

  constructor(private readonly fetch: () => Promise<BuildersListing>) {}

  refresh(): void {
    this.listing = undefined;
    this.changed.fire(undefined);
  }

  /** Builders whose check has started: shown as "checking" until their health arrives. */
  checkStarted(builderIds: readonly string[]): void {
    for (const id of builderIds) {
      this.checking.add(id);
      this.health.delete(id);
    }
    this.changed.fire(undefined);
  }

  checkEnded(builderIds: readonly string[]): void {
    for (const id of builderIds) this.checking.delete(id);
    this.changed.fire(undefined);
  }

  setHealth(health: BuilderHealth): void {
    this.checking.delete(health.builderId);
    this.health.set(health.builderId, health);
    this.changed.fire(undefined);
  }

  /** The doctor's check of this machine (is this user trusted by the local daemon?). */
  setLocalCheck(check: CheckResult<string>): void {
    this.localCheck = check;
    this.changed.fire(undefined);
  }

  healthOf(builderId: string): BuilderHealth | undefined {
    return this.health.get(builderId);
  }

  async getChildren(node?: Node): Promise<Node[]> {
    if (!node) return this.roots();
    if (node.kind === 'local') {
      const check: Node[] = this.localCheck ? [{ kind: 'check', check: this.localCheck as CheckResult, id: 'local:check' }] : [];
      return [...check, ...localDetails(node.local)];
    }
    if (node.kind === 'builder') {
      const h = this.health.get(node.builder.id);
      // Problems first, then what the builder is, then the checks that passed.
      const checks = (h?.checks ?? []).map((check): Node => ({ kind: 'check', check, id: `builder:${node.builder.id}:check:${check.id}` }));
      const rank = (c: Node) => (c.kind === 'check' ? ORDER[c.check.status] : 2);
      return [...checks.filter((c) => rank(c) < 2), ...builderDetails(node.builder), ...checks.filter((c) => rank(c) > 2)];
    }
    return [];
  }

  private async roots(): Promise<Node[]> {
    this.listing ??= this.fetch();
    let listing: BuildersListing;
    try {
      listing = await this.listing;
    } catch (e) {
      this.listing = undefined;
      return [{ kind: 'message', text: `Cannot list builders: ${(e as Error).message}`, icon: 'error' }];
    }
    const nodes: Node[] = [];
    if (listing.nix.problem) nodes.push({ kind: 'message', text: listing.nix.problem, icon: 'error' });
    if (listing.local) nodes.push({ kind: 'local', local: listing.local });
    for (const builder of listing.builders) nodes.push({ kind: 'builder', builder });
    listing.problems.forEach((problem, i) => nodes.push({ kind: 'problem', problem, id: `problem:${i}` }));
    // With no builder at all, return nothing so that the welcome content (with its button) shows.
    return listing.builders.length === 0 && listing.problems.length === 0 && !listing.nix.problem ? [] : nodes;
  }

  getTreeItem(node: Node): vscode.TreeItem {
    switch (node.kind) {
      case 'local': {
        const item = new vscode.TreeItem('This machine', vscode.TreeItemCollapsibleState.Collapsed);
        item.id = 'local';
        item.description = [node.local.system, ...node.local.extraPlatforms].join(', ');
        const local = this.localCheck;
        item.iconPath = local && (local.status === 'error' || local.status === 'warning') ? statusIcon(local.status) : new vscode.ThemeIcon('vm');
        item.tooltip = `Builds run here unless max-jobs is 0. System ${node.local.system}.`;
        item.contextValue = 'localMachine';
        return item;
      }
      case 'builder': {
        const b = node.builder;
        const item = new vscode.TreeItem(b.name, vscode.TreeItemCollapsibleState.Collapsed);
        item.id = `builder:${b.id}`;
        item.description = list(b.systems, 'local system');
        const h = this.health.get(b.id);
        const checking = this.checking.has(b.id);
        item.iconPath = checking ? new vscode.ThemeIcon('loading~spin') : h ? statusIcon(h.status) : new vscode.ThemeIcon('server');
        item.tooltip = builderTooltip(b, h, checking);
        if (h) item.description = `${item.description} — ${healthSummary(h)}`;
        item.contextValue = 'builder';
        if (b.source.path !== undefined) {
          item.resourceUri = vscode.Uri.file(b.source.path);
        }
        return item;
      }
      case 'detail': {
        const item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.description = node.value;
        item.tooltip = node.explanation ? `${node.value}\n\n${node.explanation}` : node.value;
        return item;
      }
      case 'check': {
        const c = node.check;
        const item = new vscode.TreeItem(c.summary, vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.description = c.id;
        item.iconPath = statusIcon(c.status);
        const md = new vscode.MarkdownString(undefined, true);
        md.appendText(c.summary);
        if (c.cause) md.appendMarkdown('\n\n**Cause:** ').appendText(c.cause);
        if (c.fix) md.appendMarkdown('\n\n**Fix:** ').appendText(c.fix);
        // The facts behind the verdict (for the local check: the store, build users, sandbox).
        if (c.detail) md.appendMarkdown('\n\n').appendText(c.detail);
        item.tooltip = md;
        item.contextValue = `check-${c.status}`;
        return item;
      }
      case 'problem': {
        const item = new vscode.TreeItem(node.problem.message, vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.iconPath = new vscode.ThemeIcon('warning', new vscode.ThemeColor('problemsWarningIcon.foreground'));
        item.tooltip = node.problem.message;
        if (node.problem.path) {
          const line = node.problem.line ?? 0;
          item.command = {
            command: 'vscode.open',
            title: 'Open',
            arguments: [vscode.Uri.file(node.problem.path), { selection: new vscode.Range(line, 0, line, 0) }],
          };
        }
        return item;
      }
      case 'message': {
        const item = new vscode.TreeItem(node.text, vscode.TreeItemCollapsibleState.None);
        item.iconPath = new vscode.ThemeIcon(node.icon);
        item.tooltip = node.text;
        return item;
      }
    }
  }
}

const ORDER: Record<CheckStatus, number> = { error: 0, warning: 1, ok: 3, skipped: 4 };

function statusIcon(status: CheckStatus): vscode.ThemeIcon {
  switch (status) {
    case 'ok':
      return new vscode.ThemeIcon('pass', new vscode.ThemeColor('testing.iconPassed'));
    case 'warning':
      return new vscode.ThemeIcon('warning', new vscode.ThemeColor('problemsWarningIcon.foreground'));
    case 'error':
      return new vscode.ThemeIcon('error', new vscode.ThemeColor('problemsErrorIcon.foreground'));
    case 'skipped':
      return new vscode.ThemeIcon('circle-slash');
  }
}

/** "healthy", or the first problem's summary. */
export function healthSummary(h: BuilderHealth): string {
  if (h.status === 'ok') return 'healthy';
  const worst = h.checks.find((c) => c.status === h.status);
  return worst?.summary ?? h.status;
}

function builderTooltip(b: BuilderInfo, h: BuilderHealth | undefined, checking: boolean): vscode.MarkdownString {
  const md = new vscode.MarkdownString(undefined, true);
  md.appendMarkdown(`**${b.name}** — \`${b.uri}\`\n\n`);
  if (checking) md.appendMarkdown('Checking…\n\n');
  else if (h) {
    md.appendMarkdown(`Health: **${healthSummary(h)}**`);
    const worst = h.checks.find((c) => c.status === h.status && h.status !== 'ok');
    if (worst?.fix) md.appendMarkdown('  \nFix: ').appendText(worst.fix);
    md.appendMarkdown('\n\n');
  }
  md.appendMarkdown(`Systems: ${list(b.systems, 'the local system')}  \n`);
  md.appendMarkdown(`Max jobs: ${b.maxJobs} · speed factor: ${b.speedFactor}  \n`);
  md.appendMarkdown(`Features: ${list(b.supportedFeatures)} · mandatory: ${list(b.mandatoryFeatures)}  \n`);
  md.appendMarkdown(`From: ${b.source.label}${b.source.line !== undefined ? `, line ${b.source.line + 1}` : ''}`);
  return md;
}

function builderDetails(b: BuilderInfo): Node[] {
  const d = (label: string, value: string, explanation?: string): Node => ({
    kind: 'detail',
    label,
    value,
    explanation,
    id: `builder:${b.id}:${label}`,
  });
  return [
    d('URI', b.uri, 'How Nix reaches this builder (ssh:// runs nix-store --serve, ssh-ng:// the Nix daemon protocol).'),
    d('Source', b.source.line !== undefined ? `${b.source.label}:${b.source.line + 1}` : b.source.label, 'Where this builder is configured.'),
    d('Systems', list(b.systems, 'the local system'), 'Derivations for these systems may build here.'),
    d('Max jobs', String(b.maxJobs), 'Builds this machine runs at once for this client.'),
    d('Speed factor', String(b.speedFactor), 'Nix prefers the builder with the lowest load ÷ speed factor.'),
    d('Features', list(b.supportedFeatures), "A derivation's requiredSystemFeatures must all be here."),
    d('Mandatory features', list(b.mandatoryFeatures), 'Only derivations that require all of these are sent here.'),
    d('SSH key', b.sshKey ?? 'default (ssh agent or ~/.ssh)', 'The private key Nix gives ssh for this builder.'),
    d('Host key', b.publicHostKey ? 'pinned in the machines file' : 'from known_hosts', 'Column 8 pins the SSH host key.'),
  ];
}

function localDetails(l: LocalMachineInfo): Node[] {
  const d = (label: string, value: string, explanation: string): Node => ({ kind: 'detail', label, value, explanation, id: `local:${label}` });
  return [
    d('System', l.system, 'Derivations for this system can build on this machine.'),
    d('Extra platforms', list(l.extraPlatforms), 'Other systems this machine builds too (emulation or compatible CPUs).'),
    d('Features', list(l.systemFeatures), "A derivation's requiredSystemFeatures must all be here to build locally."),
    d('Max jobs', String(l.maxJobs), 'Local builds at once; 0 sends every build to a builder.'),
    d(
      'Build cores',
      String(l.buildCores),
      `NIX_BUILD_CORES that a local build sees (cores = ${l.cores}${l.cores === 0 ? ': all cores' : ''}).`,
    ),
  ];
}
