// A store derivation (.drv file) as Nix writes it, in ATerm:
//
//   Derive([("out","/nix/store/…-top","","")],[("/nix/store/…-d1.drv",["out"])],["/nix/store/…-src"],
//          "x86_64-linux","/bin/sh",["-c","…"],[("builder","/bin/sh"),("name","top"),…])
//
// (recorded from Nix 2.8.0: test/fixtures/nix-2.8.0/derivation-*.drv). Newer Nix may write
// `DrvWithVersion("xp-dyn-drv", …)` with the same fields after the version, and richer input-drv
// entries; the reader only needs the platform and the environment, read by position. With
// `__structuredAttrs` the attributes are in the JSON of the `__json` variable.
//
// Reading the file is what `nix show-derivation` / `nix derivation show` do, without a process per
// derivation and without depending on which of the two this Nix spells.
import { readFile } from 'node:fs';
import { forEachLimited } from '../util/pool';
import { isDrvPath, storeName } from './storePath';

/** What scheduling needs to know about a derivation. */
export interface DerivationFacts {
  drvPath: string;
  name: string;
  system: string;
  requiredSystemFeatures: string[];
  preferLocalBuild: boolean;
  /** Derivations it depends on. */
  inputDrvs: string[];
}

type ATerm = string | ATerm[];

/** Parse ATerm text into nested arrays of strings (constructors dropped). Undefined if it is not ATerm. */
export function parseATerm(text: string): ATerm | undefined {
  let i = 0;
  const fail = Symbol('fail');
  const value = (): ATerm => {
    const c = text[i];
    if (c === '"') {
      i++;
      let out = '';
      for (;;) {
        const ch = text[i++];
        if (ch === undefined) throw fail;
        if (ch === '"') return out;
        if (ch !== '\\') {
          out += ch;
          continue;
        }
        const esc = text[i++];
        if (esc === undefined) throw fail;
        out += esc === 'n' ? '\n' : esc === 'r' ? '\r' : esc === 't' ? '\t' : esc;
      }
    }
    if (c === '[' || c === '(') {
      const close = c === '[' ? ']' : ')';
      i++;
      const items: ATerm[] = [];
      if (text[i] === close) {
        i++;
        return items;
      }
      for (;;) {
        items.push(value());
        const sep = text[i++];
        if (sep === close) return items;
        if (sep !== ',') throw fail;
      }
    }
    // A constructor: `Derive(…)`, `DrvWithVersion(…)`.
    const m = /^[A-Za-z][A-Za-z0-9]*/.exec(text.slice(i, i + 64));
    if (!m || text[i + m[0].length] !== '(') throw fail;
    i += m[0].length;
    return value();
  };
  try {
    const v = value();
    return text.slice(i).trim() === '' ? v : undefined;
  } catch {
    return undefined;
  }
}

const strings = (t: ATerm | undefined): string[] => (Array.isArray(t) ? t.filter((x): x is string => typeof x === 'string') : []);
const words = (s: string | undefined) => (s ?? '').split(/\s+/).filter((w) => w.length > 0);


/** One output of a derivation: its store path (empty for a floating content-addressed one) and, for a fixed or content-addressed output, its hash. */
export interface DerivationOutput {
  path: string;
  /** "sha256", "r:sha256" (recursive), "" (input-addressed). */
  hashAlgo: string;
  /** The expected hash of a fixed-output derivation, else "". */
  hash: string;
}

/** Everything a .drv file says (what `nix show-derivation` shows). */
export interface Derivation {
  drvPath: string;
  name: string;
  outputs: Map<string, DerivationOutput>;
  /** Input derivation → the names of the outputs used from it. */
  inputDrvs: Map<string, string[]>;
  inputSrcs: string[];
  system: string;
  builder: string;
  args: string[];
  env: Map<string, string>;
}

/** The whole derivation from its .drv text. Undefined when the text is not a derivation. */
export function parseFullDerivation(drvPath: string, text: string): Derivation | undefined {
  const term = parseATerm(text);
  if (!Array.isArray(term)) return undefined;
  // DrvWithVersion("version", outputs, inputDrvs, inputSrcs, platform, builder, args, env)
  const fields = typeof term[0] === 'string' ? term.slice(1) : term;
  if (fields.length < 7) return undefined;
  const [outputsTerm, inputDrvsTerm, inputSrcs, platform, builder, args, envTerm] = fields;
  if (typeof platform !== 'string' || !Array.isArray(envTerm)) return undefined;
  const env = new Map<string, string>();
  for (const pair of envTerm) {
    const [k, v] = strings(pair);
    if (k !== undefined && v !== undefined) env.set(k, v);
  }
  const outputs = new Map<string, DerivationOutput>();
  for (const o of Array.isArray(outputsTerm) ? outputsTerm : []) {
    const [name, path = '', hashAlgo = '', hash = ''] = strings(o);
    if (name !== undefined) outputs.set(name, { path, hashAlgo, hash });
  }
  const inputDrvs = new Map<string, string[]>();
  for (const e of Array.isArray(inputDrvsTerm) ? inputDrvsTerm : []) {
    if (!Array.isArray(e) || typeof e[0] !== 'string') continue;
    // ("…drv",["out"]); with dynamic derivations the outputs may come as (["out"], [children]).
    const used = Array.isArray(e[1]) && Array.isArray(e[1][0]) ? e[1][0] : e[1];
    inputDrvs.set(e[0], strings(used));
  }
  return {
    drvPath,
    name: env.get('name') ?? storeName(drvPath),
    outputs,
    inputDrvs,
    inputSrcs: strings(inputSrcs),
    system: platform,
    builder: typeof builder === 'string' ? builder : '',
    args: strings(args),
    env,
  };
}

/** The facts of a derivation from its .drv text. Undefined when the text is not a derivation. */
export function parseDerivation(drvPath: string, text: string): DerivationFacts | undefined {
  const d = parseFullDerivation(drvPath, text);
  if (!d) return undefined;
  const env = d.env;
  let features = words(env.get('requiredSystemFeatures'));
  let preferLocal = env.get('preferLocalBuild') === '1';
  const json = env.get('__json');
  if (json !== undefined) {
    try {
      const attrs = JSON.parse(json) as { requiredSystemFeatures?: unknown; preferLocalBuild?: unknown };
      if (Array.isArray(attrs.requiredSystemFeatures)) features = attrs.requiredSystemFeatures.filter((f): f is string => typeof f === 'string');
      if (typeof attrs.preferLocalBuild === 'boolean') preferLocal = attrs.preferLocalBuild;
    } catch {
      // Not JSON: keep what the environment says.
    }
  }
  return {
    drvPath,
    name: d.name,
    system: d.system,
    requiredSystemFeatures: features,
    preferLocalBuild: preferLocal,
    inputDrvs: [...d.inputDrvs.keys()],
  };
}

/** A .drv file's text from this machine's store (undefined when it cannot be read here). */
function readDrvText(drvPath: string): Promise<string | undefined> {
  // The callback readFile: fs.promises.readFile takes more thread-pool round trips per file.
  return new Promise<string | undefined>((resolve) => readFile(drvPath, 'utf8', (err, data) => resolve(err ? undefined : data)));
}

/**
 * The whole derivation, read here or, when this process cannot read the file, through Nix
 * (`readThroughNix`). Undefined when neither gives a derivation.
 */
export async function readFullDerivation(drvPath: string, readThroughNix?: (drvPath: string) => Promise<string | undefined>): Promise<Derivation | undefined> {
  if (!isDrvPath(drvPath)) return undefined;
  const local = await readDrvText(drvPath);
  const parsed = local === undefined ? undefined : parseFullDerivation(drvPath, local);
  if (parsed || !readThroughNix) return parsed;
  const text = await readThroughNix(drvPath);
  return text === undefined ? undefined : parseFullDerivation(drvPath, text);
}

/** Read and parse a .drv file of the local store. Undefined when it cannot be read or parsed. */
export async function readDerivation(drvPath: string): Promise<DerivationFacts | undefined> {
  if (!isDrvPath(drvPath)) return undefined;
  const text = await readDrvText(drvPath);
  return text === undefined ? undefined : parseDerivation(drvPath, text);
}

/**
 * Read many, a few at a time. `readThroughNix`: for the files that cannot be read here (a store
 * that is not this machine's /nix/store: another root, a chroot store, a Nix in a container), the
 * .drv's text as Nix gives it.
 */
export async function readDerivations(
  drvPaths: readonly string[],
  opts: { concurrency?: number; readThroughNix?: (drvPath: string) => Promise<string | undefined> } = {},
): Promise<Map<string, DerivationFacts>> {
  const out = new Map<string, DerivationFacts>();
  const unread: string[] = [];
  await forEachLimited(drvPaths, opts.concurrency ?? 64, async (p) => {
    const facts = await readDerivation(p);
    if (facts) out.set(p, facts);
    else if (isDrvPath(p)) unread.push(p);
  });
  const read = opts.readThroughNix;
  if (read) {
    // One process each: a few at a time.
    await forEachLimited(unread, 4, async (p) => {
      const text = await read(p);
      const facts = text === undefined ? undefined : parseDerivation(p, text);
      if (facts) out.set(p, facts);
    });
  }
  return out;
}
