// The reproducibility checks in the Builds view, beside the builds: a "Check" row per check, its
// outputs under it, and under an output that differs each differing file (a click opens it: the
// diff editor for text, the sizes, hashes and first differing bytes otherwise). A comparison across
// machines is a "Compare" row of the same kind: under each output each machine's NAR hash, then
// the files that differ between the two builds compared.
import * as vscode from 'vscode';
import { CHECK_SIDES, describeFile, fileLabel, type CheckEntry, type CheckStore, type ShownOutput } from '../checkState';
import type { FileDifference, MachineOutputHash } from '../../language-server/protocol';

export type CheckNode =
  | { kind: 'check'; key: string }
  | { kind: 'checkOutput'; key: string; output: string }
  | { kind: 'checkHash'; key: string; output: string; machine: string }
  | { kind: 'checkFile'; key: string; output: string; file: string }
  | { kind: 'checkMore'; key: string; output: string; count: number };

/** The context value of an output that differs: its Open Diffoscope Report menu (package.json) shows on these. */
export const DIFFERING_OUTPUT = 'check-output-differs';
/** The context value of a check's row: Check Reproducibility runs it again. */
export const CHECK_ROW = 'check';

/** Files listed under one output; the rest is counted. */
const FILE_LIMIT = 200;

/** The context value of a comparison's row (no Check Reproducibility on it: it is no check). */
export const COMPARISON_ROW = 'comparison';

const CHECK_KINDS: ReadonlySet<string> = new Set(['check', 'checkOutput', 'checkHash', 'checkFile', 'checkMore']);

export function isCheckNode(node: unknown): node is CheckNode {
  const kind = (node as { kind?: unknown } | undefined)?.kind;
  return typeof kind === 'string' && CHECK_KINDS.has(kind);
}

/** A row as the view shows it (the API's checkRows). */
export interface CheckRow {
  depth: number;
  label: string;
  description?: string;
  /** What a click runs (a differing file's row opens it). */
  command?: { command: string; arguments: unknown[] };
}

export class CheckNodes {
  constructor(private readonly store: CheckStore) {}

  /** Every row, depth first, as the view shows them. */
  rows(): CheckRow[] {
    const out: CheckRow[] = [];
    const walk = (nodes: CheckNode[], depth: number) => {
      for (const n of nodes) {
        const item = this.item(n);
        const label = typeof item.label === 'string' ? item.label : (item.label?.label ?? '');
        out.push({ depth, label, ...(typeof item.description === 'string' ? { description: item.description } : {}), ...(item.command ? { command: { command: item.command.command, arguments: item.command.arguments ?? [] } } : {}) });
        walk(this.children(n), depth + 1);
      }
    };
    walk(this.roots(), 0);
    return out;
  }

  roots(): CheckNode[] {
    return this.store.all().map((e) => ({ kind: 'check', key: e.key }));
  }

  children(node: CheckNode): CheckNode[] {
    const entry = this.store.get(node.key);
    if (!entry) return [];
    if (node.kind === 'check') return entry.result.outputs.map((o) => ({ kind: 'checkOutput', key: node.key, output: o.name }));
    if (node.kind !== 'checkOutput') return [];
    const hashes = hashesOf(entry, node.output).map((h): CheckNode => ({ kind: 'checkHash', key: node.key, output: node.output, machine: h.machine }));
    const files = outputOf(entry, node.output)?.files ?? [];
    const shown = files.slice(0, FILE_LIMIT).map((f): CheckNode => ({ kind: 'checkFile', key: node.key, output: node.output, file: f.path }));
    return [...hashes, ...shown, ...(files.length > FILE_LIMIT ? [{ kind: 'checkMore', key: node.key, output: node.output, count: files.length - FILE_LIMIT } as const] : [])];
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
      case 'checkHash': {
        const h = hashesOf(entry, node.output).find((x) => x.machine === node.machine);
        return h ? hashItem(entry, node.output, h) : new vscode.TreeItem(node.machine);
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

const outputOf = (entry: CheckEntry, name: string): ShownOutput | undefined => entry.result.outputs.find((o) => o.name === name);
const hashesOf = (entry: CheckEntry, name: string): MachineOutputHash[] => entry.compared?.outputs.find((o) => o.name === name)?.hashes ?? [];

function checkItem(entry: CheckEntry): vscode.TreeItem {
  const r = entry.result;
  const item = new vscode.TreeItem(`${entry.compared ? 'Compare' : 'Check'} ${entry.attribute.join('.')}`, vscode.TreeItemCollapsibleState.Expanded);
  item.id = `check:${entry.key}`;
  item.description = `${r.summary}${r.machine === 'this machine' || entry.compared ? '' : ` — on ${r.machine}`}`;
  const how = entry.compared ? `built on ${r.machine}` : `rebuilt ${r.rounds} time${r.rounds === 1 ? '' : 's'} on ${r.machine}${r.builtFirst ? ', built first' : ''}`;
  item.tooltip = [r.drvPath, how, r.summary].join('\n');
  item.iconPath = new vscode.ThemeIcon(r.status === 'reproducible' ? 'pass' : r.status === 'differs' ? 'warning' : 'circle-slash');
  item.contextValue = entry.compared ? COMPARISON_ROW : CHECK_ROW;
  return item;
}

function outputItem(entry: CheckEntry, o: ShownOutput): vscode.TreeItem {
  const files = o.files?.length ?? 0;
  const rows = files + hashesOf(entry, o.name).length;
  const item = new vscode.TreeItem(o.name, rows > 0 ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.None);
  item.id = `check:${entry.key}:${o.name}`;
  const same = entry.compared ? 'the same' : 'reproducible';
  // No `files`: the trees were not compared (Nix said it differs; the store is not readable here).
  const differs = !o.files ? (entry.compared ? 'differs' : 'differs: files not compared') : `differs: ${files} file${files === 1 ? '' : 's'}`;
  item.description = o.status === 'differs' ? `${differs}${o.reason ? ` — ${o.reason}` : ''}` : o.status === 'reproducible' ? same : `not ${entry.compared ? 'compared' : 'checked'}: ${o.reason ?? 'no reason given'}`;
  const kept = o.sides ? [] : o.rebuildCopy ? [`the rebuild's differing files kept at ${o.rebuildCopy}`] : [];
  item.tooltip = [o.path, ...kept, ...(o.reason ? [o.reason] : [])].join('\n');
  item.iconPath = new vscode.ThemeIcon(o.status === 'reproducible' ? 'pass' : o.status === 'differs' ? 'diff' : 'circle-slash');
  // diffoscope's report is of a check's output (the server keeps those answers).
  if (o.status === 'differs' && !entry.compared) item.contextValue = DIFFERING_OUTPUT;
  return item;
}

/** A machine's (or substituter's) NAR hash of a compared output; a mark on those that differ from the first machine's. */
function hashItem(entry: CheckEntry, output: string, h: MachineOutputHash): vscode.TreeItem {
  const first = hashesOf(entry, output).find((x) => x.narHash)?.narHash;
  const item = new vscode.TreeItem(h.machine, vscode.TreeItemCollapsibleState.None);
  item.id = `check:${entry.key}:${output}:hash:${h.machine}`;
  item.description = h.narHash ? `${h.narHash}${h.note ? ` — ${h.note}` : ''}` : (h.reason ?? 'no hash');
  item.tooltip = [`${h.source === 'substituter' ? "the substituter's narinfo NarHash" : 'built on it'}: ${h.narHash ?? h.reason ?? 'no hash'}`, ...(h.note ? [h.note] : [])].join('\n');
  item.iconPath = new vscode.ThemeIcon(!h.narHash ? 'circle-slash' : h.narHash === first ? (h.source === 'substituter' ? 'cloud' : 'vm') : 'diff');
  return item;
}

function fileItem(entry: CheckEntry, o: ShownOutput, f: FileDifference): vscode.TreeItem {
  const item = new vscode.TreeItem(fileLabel(o, f), vscode.TreeItemCollapsibleState.None);
  item.id = `check:${entry.key}:${o.name}:${f.path}`;
  item.description = describeFile(f, o.sides);
  const [a, b] = (o.sides ?? CHECK_SIDES).labels;
  item.tooltip = [f.first?.sha256 && `${a} sha256 ${f.first.sha256}`, f.rebuild?.sha256 && `${b} sha256 ${f.rebuild.sha256}`].filter(Boolean).join('\n') || undefined;
  item.iconPath = new vscode.ThemeIcon(f.kind === 'only-in-first' ? 'diff-removed' : f.kind === 'only-in-rebuild' ? 'diff-added' : f.text === false ? 'file-binary' : 'diff-modified');
  item.command = { command: 'nixBuilders.openCheckDifference', title: 'Open Difference', arguments: [entry.key, o.name, f.path] };
  return item;
}

/** The check and output of a Builds view row (a command's argument when run from the row). */
export function checkOfNode(node: unknown): { key: string; output?: string } | undefined {
  if (!isCheckNode(node)) return undefined;
  return node.kind === 'check' ? { key: node.key } : { key: node.key, output: node.output };
}
