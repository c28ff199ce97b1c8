// Reproducibility checks as the extension shows them: the answers kept for the Builds view (a
// comparison across machines is kept and shown as a check whose two sides are two machines), where
// each side of a differing file is on disk, and the words and documents made of an answer (a
// file's difference, the hex view of its first differing bytes, why two derivations differ).
// Pure: no `vscode` import, so it is unit-tested.
import * as path from 'node:path';
import type { CheckReproducibilityResult, CompareMachinesResult, DerivationDiff, DerivationDifference, FileDifference, FileSide, OutputCheck } from '../language-server/protocol';

/** Checks kept: the server keeps the rebuilds' copies of its newest 10 answers (KEPT_ANSWERS of language-server/check/check.ts), so older ones could not be opened. */
export const CHECK_HISTORY = 10;

export interface CheckEntry {
  /** One per derivation and machine: a newer check of the same replaces it. */
  key: string;
  uri: string;
  attribute: string[];
  result: CheckReproducibilityResult;
  /** A comparison across machines (compareMachines), shown as `result` (comparisonAsCheck): its hashes per machine. */
  compared?: CompareMachinesResult;
}

export const checkKey = (r: CheckReproducibilityResult) => `${r.machine}:${r.drvPath}`;

export class CheckStore {
  /** Newest first. */
  private entries: CheckEntry[] = [];

  /** A check answered (the command's answer, or the server's checkFinished for the same answer): it goes first. */
  add(uri: string, attribute: readonly string[], result: CheckReproducibilityResult, compared?: CompareMachinesResult): CheckEntry {
    const entry: CheckEntry = { key: compared ? `compare:${result.drvPath}` : checkKey(result), uri, attribute: [...attribute], result, ...(compared ? { compared } : {}) };
    this.entries = [entry, ...this.entries.filter((e) => e.key !== entry.key)].slice(0, CHECK_HISTORY);
    return entry;
  }

  get(key: string): CheckEntry | undefined {
    return this.entries.find((e) => e.key === key);
  }

  /** Newest first. */
  all(): readonly CheckEntry[] {
    return this.entries;
  }
}

/** What the two sides of an output are called: a check's first build and rebuild, or a comparison's two machines. */
export interface Sides {
  /** As a label ("first build", "b1"). */
  labels: readonly [first: string, other: string];
  /** As a build in a sentence ("the first build", "b1's build"). */
  builds: readonly [first: string, other: string];
}

export const CHECK_SIDES: Sides = { labels: ['first build', 'rebuild'], builds: ['the first build', 'the rebuild'] };

/** An output as the check UI shows it: a comparison's outputs name their sides. */
export type ShownOutput = OutputCheck & { sides?: Sides };

const sidesOf = (o: ShownOutput): Sides => o.sides ?? CHECK_SIDES;

/**
 * A comparison across machines as a check, so that the check's rows, diff editor and documents
 * show it: the first of the two machines compared is the "first build" (its files at `firstCopy`
 * or, this machine's, at `path`), the other the "rebuild" (at `otherCopy` or `path`).
 */
export function comparisonAsCheck(r: CompareMachinesResult, machines: readonly string[]): CheckReproducibilityResult {
  const status = (s: CompareMachinesResult['status']) => (s === 'same' ? 'reproducible' : s);
  const outputs = r.outputs.map((x): ShownOutput => {
    const reasons = x.hashes.filter((h) => h.reason).map((h) => `${h.machine}: ${h.reason}`);
    return {
      name: x.name,
      path: x.path,
      status: status(x.status),
      ...(x.files ? { files: x.files } : {}),
      ...(x.status !== 'same' && reasons.length > 0 ? { reason: reasons.join('; ') } : {}),
      ...(x.compared
        ? { ...(x.firstCopy ? { firstCopy: x.firstCopy } : {}), rebuildCopy: x.otherCopy ?? x.path, sides: { labels: x.compared, builds: [`${x.compared[0]}'s build`, `${x.compared[1]}'s build`] } }
        : {}),
    };
  });
  return { drvPath: r.drvPath, machine: machines.join(', '), rounds: 0, builtFirst: false, status: status(r.status), summary: r.summary, outputs };
}

/** The attribute as a list ("a.b" or ["a", "b"]). */
export const attributePath = (attribute: string | readonly string[]): string[] => (typeof attribute === 'string' ? attribute.split('.') : [...attribute]);

/** Where each side of a differing file is on this machine; a side is absent when the file is not in it, or the rebuild was not kept. */
export function fileSides(o: OutputCheck, f: FileDifference): { first?: string; rebuild?: string } {
  const inTree = (root: string) => (f.path === '.' ? root : path.posix.join(root, f.path));
  return {
    ...(f.kind !== 'only-in-rebuild' ? { first: inTree(o.firstCopy ?? o.path) } : {}),
    ...(f.kind !== 'only-in-first' && o.rebuildCopy ? { rebuild: inTree(o.rebuildCopy) } : {}),
  };
}

/** The file's name as shown: its path in the output, or the output's name when the output is the file. */
export const fileLabel = (o: OutputCheck, f: FileDifference) => (f.path === '.' ? o.name : f.path);

/** The diff editor's title. */
export const diffTitle = (o: ShownOutput, f: FileDifference) => `${fileLabel(o, f)} (${sidesOf(o).labels.join(' ↔ ')})`;

export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let n = bytes / 1024;
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit++;
  }
  return `${n.toFixed(n < 10 ? 1 : 0)} ${units[unit]}`;
}

function sideText(s: FileSide | undefined): string {
  if (!s) return 'absent';
  if (s.type === 'symlink') return `symlink → ${s.target ?? '?'}`;
  if (s.type === 'directory') return 'directory';
  return `${s.size !== undefined ? formatSize(s.size) : 'file'}${s.executable ? ', executable' : ''}`;
}

/** One line for a differing file, as the Builds view shows it beside the file's name. */
export function describeFile(f: FileDifference, sides: Sides = CHECK_SIDES): string {
  switch (f.kind) {
    case 'changed':
      return `changed${f.text === false ? ' (binary)' : ''}: ${sideText(f.first)} → ${sideText(f.rebuild)}`;
    case 'only-in-first':
      return `only in ${sides.builds[0]}: ${sideText(f.first)}`;
    case 'only-in-rebuild':
      return `only in ${sides.builds[1]}: ${sideText(f.rebuild)}`;
    case 'mode':
      return `mode: ${f.first?.executable ? 'executable' : 'not executable'} → ${f.rebuild?.executable ? 'executable' : 'not executable'}`;
    case 'symlink-target':
      return `symlink target: ${f.first?.target ?? '?'} → ${f.rebuild?.target ?? '?'}`;
    case 'type':
      return `type: ${f.first?.type ?? 'absent'} → ${f.rebuild?.type ?? 'absent'}`;
  }
}

/** Whether these bytes (a file's beginning) read as text: no NUL, valid UTF-8 (a sequence cut at the end is fine). */
export function looksLikeText(bytes: Uint8Array): boolean {
  if (bytes.includes(0)) return false;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes, { stream: true });
    return true;
  } catch {
    return false;
  }
}

const printable = (b: number) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.');

/** Two hex dumps of the same 16-aligned row, one above the other, and a marker under the first differing byte. */
export function hexRows(d: NonNullable<FileDifference['firstDifference']>, labels: readonly [string, string] = ['first', 'rebuild']): string[] {
  const width = Math.max(8, ...labels.map((l) => l.length));
  const start = d.offset - (d.offset % 16);
  const bytesOf = (hex: string) => (hex.match(/[0-9a-fA-F]{2}/g) ?? []).map((h) => parseInt(h, 16));
  const row = (label: string, bytes: number[]) => {
    const cells = Array.from({ length: 16 }, (_, i) => (bytes[i] === undefined ? '  ' : (bytes[i] as number).toString(16).padStart(2, '0')));
    return `${label.padEnd(width)} ${start.toString(16).padStart(8, '0')}  ${cells.join(' ')}  |${bytes.map(printable).join('')}|`;
  };
  const column = width + 1 + 8 + 2 + (d.offset - start) * 3;
  return [row(labels[0], bytesOf(d.first)), row(labels[1], bytesOf(d.rebuild)), `${' '.repeat(column)}^^ byte ${d.offset} (0x${d.offset.toString(16)})`];
}

/** The read-only document of a differing file that the diff editor does not show: both sides' sizes and hashes, and the first differing bytes. */
export function differenceDocument(o: ShownOutput, f: FileDifference): string {
  const sides = fileSides(o, f);
  const { labels } = sidesOf(o);
  const side = (label: string, s: FileSide | undefined, at: string | undefined) =>
    [`${label}: ${sideText(s)}${s?.type === 'file' && s.size !== undefined ? ` (${s.size} bytes)` : ''}`, ...(s?.sha256 ? [`  sha256 ${s.sha256}`] : []), ...(at ? [`  at ${at}`] : [])];
  const lines = [
    `${fileLabel(o, f)} in output ${o.name} (${o.path})`,
    describeFile(f, sidesOf(o)),
    '',
    ...side(labels[0], f.first, sides.first),
    ...side(labels[1], f.rebuild, sides.rebuild),
  ];
  if (f.firstDifference) lines.push('', `The bytes first differ at byte ${f.firstDifference.offset}:`, '', ...hexRows(f.firstDifference, o.sides ? labels : undefined));
  if (f.kind === 'changed' && !o.rebuildCopy) lines.push('', `The rebuild was not kept${o.reason ? ` (${o.reason})` : ''}: its files are listed, not kept.`);
  return `${lines.join('\n')}\n`;
}

/** The notification after a check: its summary, on which machine, and whether it was built first. */
export function checkMessage(attribute: readonly string[], r: CheckReproducibilityResult): string {
  const where = r.machine === 'this machine' ? '' : ` (on ${r.machine})`;
  const first = r.builtFirst ? ' It had not been built: it was built first, then rebuilt to compare.' : '';
  return `${attribute.join('.')}${where}: ${r.summary}.${first}`;
}

/** The first differing file that the diff editor can show (both sides kept), of the first output that differs. */
export function firstOpenable(r: CheckReproducibilityResult): { output: OutputCheck; file: FileDifference } | undefined {
  for (const output of r.outputs) {
    if (output.status !== 'differs' || !output.rebuildCopy) continue;
    const file = output.files?.find((f) => f.kind === 'changed' && f.text !== false) ?? output.files?.[0];
    if (file) return { output, file };
  }
  return undefined;
}

/** The code of the server's diagnostic on an attribute whose check differed ("not reproducible: 1 of 2 outputs differs (dev: 1 file)"). */
export const NOT_REPRODUCIBLE = 'not-reproducible';

/** What that diagnostic carries (its `data`): the check it shows. */
export interface CheckDiagnosticData {
  attrPath: string[];
  drvPath: string;
  machine: string;
}

export function checkDiagnosticData(data: unknown): CheckDiagnosticData | undefined {
  const d = data as Partial<CheckDiagnosticData> | undefined;
  const ok = Array.isArray(d?.attrPath) && d.attrPath.every((x) => typeof x === 'string') && typeof d.drvPath === 'string' && typeof d.machine === 'string';
  return ok ? (d as CheckDiagnosticData) : undefined;
}

/**
 * The link from a "not reproducible" diagnostic to what differs (the diff editor on its first
 * differing file) while this window keeps the check; the server's own quick fixes check again and
 * open diffoscope's report.
 */
export function differenceAction(store: CheckStore, data: CheckDiagnosticData): { title: string; arguments: [key: string, output: string, file: string] } | undefined {
  const entry = store.get(`${data.machine}:${data.drvPath}`);
  const open = entry && firstOpenable(entry.result);
  return entry && open && { title: `Show what differs: ${diffTitle(open.output, open.file)}`, arguments: [entry.key, open.output.name, open.file.path] };
}

const FIELD_LABEL: Record<DerivationDifference['field'], string> = {
  output: 'output',
  outputHashAlgo: 'output hash algorithm',
  outputHash: 'output hash',
  system: 'system',
  builder: 'builder',
  arg: 'argument',
  env: 'environment variable',
  inputSource: 'source',
  inputDerivation: 'input derivation',
  inputOutputs: 'outputs used of',
};

function differenceLine(d: DerivationDifference): string {
  const what = `${FIELD_LABEL[d.field]}${d.name !== undefined ? ` ${d.name}` : ''}`;
  const value = (v: string) => JSON.stringify(v);
  const change = d.a !== undefined && d.b !== undefined ? `${value(d.a)} → ${value(d.b)}` : d.a !== undefined ? `only in a: ${value(d.a)}` : `only in b: ${value(d.b ?? '')}`;
  return `${what}: ${change}${d.onlyStorePaths ? ' (only store path hashes differ)' : ''}${d.note ? ` — ${d.note}` : ''}`;
}

/**
 * Why two derivations differ, as an indented text (each input's own differences under it, so the
 * editor folds them); the .drv files as file:// links the editor opens.
 */
export function derivationDiffText(diff: DerivationDiff, labels: [a: string, b: string]): string {
  const lines = [`Why ${labels[0]} and ${labels[1]} differ`, ''];
  const walk = (d: DerivationDiff, depth: number) => {
    const pad = '  '.repeat(depth);
    lines.push(`${pad}${d.name}`, `${pad}  a: file://${d.drvPath[0]}`, `${pad}  b: file://${d.drvPath[1]}`);
    if (d.differences.length === 0 && d.inputs.length === 0) lines.push(`${pad}  ${d.drvPath[0] === d.drvPath[1] ? 'the same derivation' : 'no difference found'}`);
    for (const x of d.differences) lines.push(`${pad}  ${differenceLine(x)}`);
    if (d.note) lines.push(`${pad}  (${d.note})`);
    for (const input of d.inputs) {
      lines.push(`${pad}  input ${input.name} differs:`);
      walk(input.diff, depth + 2);
    }
  };
  walk(diff, 0);
  return `${lines.join('\n')}\n`;
}
