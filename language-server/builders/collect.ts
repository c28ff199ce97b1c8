// Every builder of the effective configuration, each labelled with where it came from:
// nix.conf's `builders` (inline, or `@file` such as the default `@/etc/nix/machines`), the user's
// machines files (setting `nixBuilders.machinesFiles`) and the extension's own setting
// (`nixBuilders.builders`). Reading is total: unreadable files and malformed lines become problems.
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { parseMachines, type Machine } from '../nix/machines';
import { parseStoreUri, storeHost } from '../nix/storeUri';
import type { BuilderInfo, BuilderSource, ConfigProblem } from '../protocol';

export interface BuilderSettings {
  machinesFiles: readonly string[];
  builders: readonly string[];
}

export interface CollectedBuilders {
  builders: BuilderInfo[];
  problems: ConfigProblem[];
  /** Every file that was read (or looked for): watch these for changes. */
  files: string[];
}

export type ReadText = (file: string) => Promise<string>;

const readUtf8: ReadText = (file) => readFile(file, 'utf8');

/** A builder's name: "ssh://user@host?opt=1" -> "host"; other stores keep their URI. */

export function userOf(uri: string): string | undefined {
  return parseStoreUri(uri)?.user;
}

const MAX_INCLUDE_DEPTH = 8;

/**
 * A builder's id: its source and URI, so that it stays the same when other entries are added,
 * removed or moved. The second entry with the same URI in the same source gets ` #2`, and so on:
 * only removing an earlier entry with that same URI renumbers it.
 */
export function builderId(sourceLabel: string, uri: string, occurrence: number): string {
  return occurrence > 1 ? `${sourceLabel} ${uri} #${occurrence}` : `${sourceLabel} ${uri}`;
}

export async function collectBuilders(
  nixConfBuilders: string,
  settings: BuilderSettings,
  read: ReadText = readUtf8,
): Promise<CollectedBuilders> {
  const out: CollectedBuilders = { builders: [], problems: [], files: [] };
  /** How often each URI was seen in each source, for the ids of repeated entries. */
  const seen = new Map<string, number>();

  const addMachine = (machine: Machine, source: BuilderSource) => {
    const key = `${source.label} ${machine.uri}`;
    const occurrence = (seen.get(key) ?? 0) + 1;
    seen.set(key, occurrence);
    out.builders.push({
      id: builderId(source.label, machine.uri, occurrence),
      name: storeHost(machine.uri),
      user: userOf(machine.uri),
      ...machine,
      source,
    });
  };

  // Parse a machines text; `@file` entries are read recursively.
  const walk = async (text: string, origin: { label: string; path?: string }, depth: number, seen: Set<string>) => {
    const doc = parseMachines(text);
    for (const entry of doc.entries) {
      if (entry.include !== undefined) {
        const file = origin.path ? path.resolve(path.dirname(origin.path), entry.include) : entry.include;
        await readFileSource(file, labelForFile(file, origin.label), depth + 1, seen, /* missingIsNormal */ true);
      } else if (entry.machine) {
        addMachine(entry.machine, origin.path ? { ...origin, line: entry.line, column: entry.column, text: entry.text } : origin);
      } else {
        out.problems.push({
          message: `Malformed builder entry '${entry.text}': ${entry.error}.`,
          path: origin.path,
          line: entry.line,
          column: entry.column,
          sourceLabel: origin.label,
        });
      }
    }
  };

  const readFileSource = async (file: string, label: string, depth: number, seen: Set<string>, missingIsNormal: boolean) => {
    if (seen.has(file) || depth > MAX_INCLUDE_DEPTH) {
      out.problems.push({ message: `Machines file ${file} includes itself (via '@'): remove the loop.`, path: file, sourceLabel: label });
      return;
    }
    // The same file reached twice (e.g. nix.conf's `@file` also listed in the setting): once is enough.
    if (out.files.includes(file)) return;
    out.files.push(file);
    let text: string;
    try {
      text = await read(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Nix ignores a missing machines file (the default /etc/nix/machines usually is).
      if (code === 'ENOENT' && missingIsNormal) return;
      out.problems.push({
        message:
          code === 'ENOENT'
            ? `Machines file ${file} does not exist: create it or remove it from "nixBuilders.machinesFiles".`
            : code === 'EACCES'
              ? `Machines file ${file} cannot be read (permission denied): make it readable by this user.`
              : `Machines file ${file} cannot be read: ${(e as Error).message}`,
        path: file,
        sourceLabel: label,
      });
      return;
    }
    await walk(text, { label, path: file }, depth, new Set([...seen, file]));
  };

  // 1. nix.conf `builders` (default `@/etc/nix/machines`).
  if (nixConfBuilders.trim()) await walk(nixConfBuilders, { label: 'nix.conf builders' }, 0, new Set());
  // 2. The user's machines files.
  for (const file of settings.machinesFiles) {
    await readFileSource(path.resolve(file), `machines file ${file}`, 0, new Set(), false);
  }
  // 3. The extension's own setting.
  for (const item of settings.builders) {
    await walk(item, { label: 'setting nixBuilders.builders' }, 0, new Set());
  }
  return out;
}

function labelForFile(file: string, parentLabel: string): string {
  if (file === '/etc/nix/machines') return '/etc/nix/machines';
  return parentLabel === 'nix.conf builders' ? `nix.conf builders @${file}` : `${file} (included)`;
}
