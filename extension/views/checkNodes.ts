// The reproducibility checks in the Builds view, beside the builds: a "Check" row per check, its
// outputs under it, and under an output that differs each differing file (a click opens it: the
// diff editor for text, the sizes, hashes and first differing bytes otherwise).
import * as vscode from 'vscode';
import { describeFile, fileLabel, type CheckEntry, type CheckStore } from '../checkState';
import type { FileDifference, OutputCheck } from '../../language-server/protocol';

export type CheckNode =
  | { kind: 'check'; key: string }
  | { kind: 'checkOutput'; key: string; output: string }
  | { kind: 'checkFile'; key: string; output: string; file: string }
  | { kind: 'checkMore'; key: string; output: string; count: number };

/** The context value of an output that differs: its Open Diffoscope Report menu (package.json) shows on these. */
export const DIFFERING_OUTPUT = 'check-output-differs';
/** The context value of a check's row: Check Reproducibility runs it again. */
export const CHECK_ROW = 'check';

/** Files listed under one output; the rest is counted. */
const FILE_LIMIT = 200;

const CHECK_KINDS: ReadonlySet<string> = new Set(['check', 'checkOutput', 'checkFile', 'checkMore']);

export function isCheckNode(node: unknown): node is CheckNode {
  const kind = (node as { kind?: unknown } | undefined)?.kind;
  return typeof kind === 'string' && CHECK_KINDS.has(kind);
}

export class CheckNodes {
  constructor(private readonly store: CheckStore) {}

  roots(): CheckNode[] {
    return this.store.all().map((e) => ({ kind: 'check', key: e.key }));
  }

  children(node: CheckNode): CheckNode[] {
    const entry = this.store.get(node.key);
    if (!entry) return [];
    if (node.kind === 'check') return entry.result.outputs.map((o) => ({ kind: 'checkOutput', key: node.key, output: o.name }));
    if (node.kind !== 'checkOutput') return [];
    const files = outputOf(entry, node.output)?.files ?? [];
    const shown = files.slice(0, FILE_LIMIT).map((f): CheckNode => ({ kind: 'checkFile', key: node.key, output: node.output, file: f.path }));
    return files.length > FILE_LIMIT ? [...shown, { kind: 'checkMore', key: node.key, output: node.output, count: files.length - FILE_LIMIT }] : shown;
  }

  item(node: CheckNode): vscode.TreeItem {
    const entry = this.store.get(node.key);
    if (!entry) return new vscode.TreeItem('(no longer kept)');
    switch (node.kind) {
      case 'check':
        return checkItem(entry);
      case 'checkOutput': {
        const o = outputOf(entry, node.output);
        return o ? outputItem(entry, o) : new vscode.TreeItem(node.output);
      }
      case 'checkFile': {
        const o = outputOf(entry, node.output);
        const f = o?.files?.find((x) => x.path === node.file);
        return o && f ? fileItem(entry, o, f) : new vscode.TreeItem(node.file);
      }
      case 'checkMore': {
        const item = new vscode.TreeItem(`… ${node.count} more`, vscode.TreeItemCollapsibleState.None);
        item.id = `check:${entry.key}:${node.output}:more`;
        item.tooltip = 'Every differing file is in the Nix Builders output.';
        return item;
      }
    }
  }
}

const outputOf = (entry: CheckEntry, name: string) => entry.result.outputs.find((o) => o.name === name);

function checkItem(entry: CheckEntry): vscode.TreeItem {
  const r = entry.result;
  const item = new vscode.TreeItem(`Check ${entry.attribute.join('.')}`, vscode.TreeItemCollapsibleState.Expanded);
  item.id = `check:${entry.key}`;
  item.description = `${r.summary}${r.machine === 'this machine' ? '' : ` — on ${r.machine}`}`;
  item.tooltip = [r.drvPath, `rebuilt ${r.rounds} time${r.rounds === 1 ? '' : 's'} on ${r.machine}${r.builtFirst ? ', built first' : ''}`, r.summary].join('\n');
  item.iconPath = new vscode.ThemeIcon(r.status === 'reproducible' ? 'pass' : r.status === 'differs' ? 'warning' : 'circle-slash');
  item.contextValue = CHECK_ROW;
  return item;
}

function outputItem(entry: CheckEntry, o: OutputCheck): vscode.TreeItem {
  const files = o.files?.length ?? 0;
  const item = new vscode.TreeItem(o.name, files > 0 ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.None);
  item.id = `check:${entry.key}:${o.name}`;
  item.description = o.status === 'differs' ? `differs: ${files} file${files === 1 ? '' : 's'}${o.reason ? ` — ${o.reason}` : ''}` : o.status === 'reproducible' ? 'reproducible' : `not checked: ${o.reason ?? 'no reason given'}`;
  item.tooltip = [o.path, ...(o.rebuildCopy ? [`rebuild kept at ${o.rebuildCopy}`] : []), ...(o.reason ? [o.reason] : [])].join('\n');
  item.iconPath = new vscode.ThemeIcon(o.status === 'reproducible' ? 'pass' : o.status === 'differs' ? 'diff' : 'circle-slash');
  if (o.status === 'differs') item.contextValue = DIFFERING_OUTPUT;
  return item;
}

function fileItem(entry: CheckEntry, o: OutputCheck, f: FileDifference): vscode.TreeItem {
  const item = new vscode.TreeItem(fileLabel(o, f), vscode.TreeItemCollapsibleState.None);
  item.id = `check:${entry.key}:${o.name}:${f.path}`;
  item.description = describeFile(f);
  item.tooltip = [f.first?.sha256 && `first build sha256 ${f.first.sha256}`, f.rebuild?.sha256 && `rebuild sha256 ${f.rebuild.sha256}`].filter(Boolean).join('\n') || undefined;
  item.iconPath = new vscode.ThemeIcon(f.kind === 'only-in-first' ? 'diff-removed' : f.kind === 'only-in-rebuild' ? 'diff-added' : f.text === false ? 'file-binary' : 'diff-modified');
  item.command = { command: 'nixBuilders.openCheckDifference', title: 'Open Difference', arguments: [entry.key, o.name, f.path] };
  return item;
}

/** The check and output of a Builds view row (a command's argument when run from the row). */
export function checkOfNode(node: unknown): { key: string; output?: string } | undefined {
  if (!isCheckNode(node)) return undefined;
  return node.kind === 'check' ? { key: node.key } : { key: node.key, output: node.output };
}
