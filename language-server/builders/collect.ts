// Every builder of the effective configuration, each labelled with where it came from and with its
// provenance (which configuration names it, following `@file`s and includes): nix.conf's `builders`
// (inline, or `@file` such as the default `@/etc/nix/machines`), the user's machines files (setting
// `nixBuilders.machinesFiles`) and the extension's own setting (`nixBuilders.builders`). When the
// user's nix.conf or NIX_CONFIG replaces `builders`, the local nix-daemon's own list (from the
// system nix.conf) is listed too, marked as replaced: a daemon that ignores this user's builders
// uses it. Reading is total: unreadable files and malformed lines become problems.
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { parseMachines, type Machine } from '../nix/machines';
import { parseStoreUri, storeHost } from '../nix/storeUri';
import type { BuilderInfo, BuilderSource, BuilderSourceKind, ConfigProblem } from '../protocol';

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

/** Which nix.conf layer gave the client its `builders`. */
export type NixConfKind = Extract<BuilderSourceKind, 'nix-conf-system' | 'nix-conf-user' | 'nix-config-env'>;

/** nix.conf's `builders` as the client sees it (what set it), and as the local nix-daemon reads it. */
export interface NixConfBuilders {
  client: string;
  clientKind: NixConfKind;
  /** From the system nix.conf only (no user nix.conf, no NIX_CONFIG). */
  daemon: string;
}

const INLINE_LABEL: Record<NixConfKind, string> = {
  'nix-conf-system': 'nix.conf builders',
  'nix-conf-user': 'user nix.conf builders',
  'nix-config-env': 'NIX_CONFIG builders',
};

/** The kind of a machines file that an entry of `kind` names (`@file`) or includes. */
const fileKind = (kind: BuilderSourceKind): BuilderSourceKind => (kind === 'nix-conf-system' ? 'system-machines' : kind);

const readUtf8: ReadText = (file) => readFile(file, 'utf8');

/** A builder's name: "ssh://user@host?opt=1" -> "host"; other stores keep their URI. */

export function userOf(uri: string): string | undefined {
  return parseStoreUri(uri)?.user;
}

/** A builder given as a machines entry, not read from a configured source (a probe, a command's --builders). */
export function adHocBuilder(machine: Machine, id: string, label: string): BuilderInfo {
  const user = userOf(machine.uri);
  return { ...machine, id, name: storeHost(machine.uri), ...(user ? { user } : {}), source: { label } };
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

/**
 * `nixConf`: nix.conf's `builders`; a string is the system nix.conf's, which the client and the
 * daemon share.
 */
export async function collectBuilders(
  nixConf: string | NixConfBuilders,
  settings: BuilderSettings,
  read: ReadText = readUtf8,
): Promise<CollectedBuilders> {
  const conf: NixConfBuilders = typeof nixConf === 'string' ? { client: nixConf, clientKind: 'nix-conf-system', daemon: nixConf } : nixConf;
  const out: CollectedBuilders = { builders: [], problems: [], files: [] };
  /** How often each URI was seen in each source, for the ids of repeated entries. */
  const seen = new Map<string, number>();
  /** The builders read from each file (its includes too): out.builders[start, end). */
  const readFrom = new Map<string, { start: number; end: number }>();
  /** Set while the daemon's own list, which the client's `builders` replaces, is read. */
  let replacing = false;

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
  const walk = async (text: string, origin: { label: string; kind: BuilderSourceKind; path?: string }, depth: number, seen: Set<string>) => {
    const doc = parseMachines(text);
    for (const entry of doc.entries) {
      if (entry.include !== undefined) {
        const file = origin.path ? path.resolve(path.dirname(origin.path), entry.include) : entry.include;
        await readFileSource(file, labelForFile(file, origin), fileKind(origin.kind), depth + 1, seen, /* missingIsNormal */ true);
      } else if (entry.machine) {
        const source: BuilderSource = { label: origin.label, provenance: replacing ? { kind: origin.kind, replaced: true } : { kind: origin.kind } };
        addMachine(entry.machine, origin.path ? { ...source, path: origin.path, line: entry.line, column: entry.column, text: entry.text } : source);
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

  const readFileSource = async (file: string, label: string, kind: BuilderSourceKind, depth: number, seen: Set<string>, missingIsNormal: boolean) => {
    if (seen.has(file) || depth > MAX_INCLUDE_DEPTH) {
      out.problems.push({ message: `Machines file ${file} includes itself (via '@'): remove the loop.`, path: file, sourceLabel: label });
      return;
    }
    // The same file reached twice (e.g. nix.conf's `@file` also listed in the setting): once is
    // enough. Reached by this client too, the daemon's own entries of it are passed after all.
    if (out.files.includes(file)) {
      const range = readFrom.get(file);
      if (range && !replacing) for (const b of out.builders.slice(range.start, range.end)) delete b.source.provenance?.replaced;
      return;
    }
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
    const start = out.builders.length;
    await walk(text, { label, kind, path: file }, depth, new Set([...seen, file]));
    readFrom.set(file, { start, end: out.builders.length });
  };

  // 0. The daemon's own `builders`, when the client's configuration replaces them: first, so that
  //    a file both name is known as the daemon's.
  if (conf.clientKind !== 'nix-conf-system' && conf.daemon !== conf.client && conf.daemon.trim()) {
    replacing = true;
    await walk(conf.daemon, { label: INLINE_LABEL['nix-conf-system'], kind: 'nix-conf-system' }, 0, new Set());
    replacing = false;
  }
  // 1. nix.conf `builders` (default `@/etc/nix/machines`).
  if (conf.client.trim()) await walk(conf.client, { label: INLINE_LABEL[conf.clientKind], kind: conf.clientKind }, 0, new Set());
  // 2. The user's machines files.
  for (const file of settings.machinesFiles) {
    await readFileSource(path.resolve(file), `machines file ${file}`, 'setting-machines-files', 0, new Set(), false);
  }
  // 3. The extension's own setting.
  for (const item of settings.builders) {
    await walk(item, { label: 'setting nixBuilders.builders', kind: 'setting-builders' }, 0, new Set());
  }
  return out;
}

function labelForFile(file: string, parent: { label: string; kind: BuilderSourceKind; path?: string }): string {
  if (file === '/etc/nix/machines') return '/etc/nix/machines';
  // An `@file` of nix.conf's `builders` itself; any other is an include.
  return parent.path === undefined && parent.kind in INLINE_LABEL ? `${parent.label} @${file}` : `${file} (included)`;
}
