// From evaluated derivations and the machines that exist to diagnostics on the attribute names:
// an error where nothing can build a derivation (with the cause and the fix), an information
// where only builders can. Pure: no Nix, no LSP objects.
import { ignoredNote, type BuildersIgnored } from '../builders/ignoredBuilders';
import { builderRefusal, featureSet, localRefusal, type BuildRequirements, type LocalCapabilities, type MachineCapabilities } from '../builders/match';
import { flakeDiagnostics, type FlakeDiagnosticCode, type FlakeFix } from './flake';
import type { WalkerOutput, WalkerPosition } from './walker';
import { requiredArgumentsMessage } from './arguments';

export interface NamedMachine extends MachineCapabilities {
  name: string;
}

/** Configured builders that Nix will not use (the local daemon ignores `--builders`), and why. */
export interface IgnoredMachines {
  machines: readonly NamedMachine[];
  ignored: BuildersIgnored;
}

export type DiagnosticCode =
  | 'no-builder-system'
  | 'no-builder-features'
  | 'mandatory-features'
  | 'max-jobs-zero'
  | 'remote-only'
  | 'dependency-no-builder'
  | 'attribute-error'
  | 'required-arguments'
  | FlakeDiagnosticCode;

export interface DerivationDiagnostic {
  severity: 'error' | 'warning' | 'information';
  code: DiagnosticCode;
  /** 0-based, in the document. */
  line: number;
  column: number;
  endColumn: number;
  message: string;
  /** The attribute path the diagnostic is about. */
  attrPath: string[];
  /** For quick fixes: what a builder would need, the arguments a function file needs, or a flake input's fix. */
  data?: { system: string; features: string[]; drvPath?: string } | { required: string[] } | { fix?: FlakeFix };
  /** Other places that explain it, e.g. a dependency's .drv file. */
  related?: Array<{ file: string; message: string }>;
}

/**
 * Nix counts columns in bytes of UTF-8; LSP (and JavaScript strings) in UTF-16 code units: `é` is
 * 2 bytes and 1 unit, `中` 3 and 1, `😀` 4 and 2. A 0-based byte offset in `lineText` as a UTF-16 offset.
 */
export function utf16Column(lineText: string, byteColumn: number): number {
  return Buffer.from(lineText, 'utf8').subarray(0, Math.max(0, byteColumn)).toString('utf8').length;
}

/** Map a walker position to the document: the attribute name's range, or line 0 when unknown. */
export function documentRange(lines: readonly string[], pos: WalkerPosition | null): { line: number; column: number; endColumn: number } {
  if (!pos || !pos.inDoc) return { line: 0, column: 0, endColumn: 0 };
  const line = pos.line - 1;
  const lineText = lines[line];
  if (line < 0 || lineText === undefined) return { line: 0, column: 0, endColumn: 0 };
  const column = utf16Column(lineText, pos.column - 1);
  const rest = lineText.slice(column);
  // An identifier or a quoted name with escapes, or a dotted path of them (`packages.x.hello`).
  const part = String.raw`(?:[A-Za-z_][A-Za-z0-9_'-]*|"(?:[^"\\]|\\.)*")`;
  const m = new RegExp(String.raw`^${part}(?:\.${part})*`).exec(rest);
  return { line, column, endColumn: column + (m ? m[0].length : 1) };
}

const describeMachine = (m: NamedMachine) =>
  `${m.name} ${m.systems.join(',') || '(local system)'} ${featureSet([...new Set([...m.supportedFeatures, ...m.mandatoryFeatures])])}`;

export function diagnoseDerivations(
  text: string,
  output: WalkerOutput,
  local: LocalCapabilities,
  /** The builders Nix uses. */
  machines: readonly NamedMachine[],
  ignored?: IgnoredMachines,
): DerivationDiagnostic[] {
  const out: DerivationDiagnostic[] = [];
  // Nothing to walk: say why, once, at the top of the file.
  const notEvaluated =
    output.kind === 'function-with-required-arguments'
      ? requiredArgumentsMessage(output.required ?? [])
      : undefined;
  if (notEvaluated) {
    const data = output.kind === 'function-with-required-arguments' ? { data: { required: output.required ?? [] } } : {};
    out.push({ severity: 'information', code: 'required-arguments', line: 0, column: 0, endColumn: 0, attrPath: [], message: notEvaluated, ...data });
    return out;
  }
  const lines = text.split('\n');
  // A flake's inputs: on their lines; when they stop the evaluation, that is all there is to say.
  if (output.flake) out.push(...flakeDiagnostics(lines, output.kind, output.flake.inputs, output.flake.facts));
  if (output.kind === 'flake-inputs' || output.kind === 'flake-untracked') return out;
  const everyone = describeEveryone(local, machines);
  for (const item of output.items) {
    const range = documentRange(lines, item.pos);
    if ('error' in item) {
      out.push({ severity: 'warning', code: 'attribute-error', ...range, attrPath: item.path, message: `${item.path.join('.')}: ${item.error}` });
      continue;
    }
    const d = withIgnored(diagnoseOne(item, local, machines, everyone), item, local, ignored);
    if (d) out.push({ ...d, ...range, attrPath: item.path, data: { system: item.system, features: item.requiredSystemFeatures, drvPath: item.drvPath } });
  }
  return out;
}

/** "(local x86_64-linux {kvm}; builders: b1 x86_64-linux {…}, …)": the machines a diagnostic weighed. */
function describeEveryone(local: LocalCapabilities, machines: readonly NamedMachine[]): string {
  return `(local ${local.system} ${featureSet(local.systemFeatures)}${local.maxJobs === 0 ? ', max-jobs 0' : ''}; builders: ${
    machines.length > 0 ? machines.map(describeMachine).join(', ') : 'none'
  })`;
}

/** Why no machine can build a derivation, with the fix, as the diagnostics say it; undefined when one can. */
export function whyNothingBuilds(drv: BuildRequirements, local: LocalCapabilities, machines: readonly NamedMachine[], ignored?: IgnoredMachines): string | undefined {
  const d = withIgnored(diagnoseOne(drv, local, machines, describeEveryone(local, machines)), drv, local, ignored);
  return d?.severity === 'error' ? d.message : undefined;
}

/** A diagnosis that an ignored builder would change says so: it could build it, but Nix will not use it. */
function withIgnored<D extends { message: string }>(d: D | undefined, drv: BuildRequirements, local: LocalCapabilities, ignored: IgnoredMachines | undefined): D | undefined {
  if (!d || !ignored) return d;
  const could = ignored.machines.filter((m) => !builderRefusal(m, drv, local.system));
  return could.length > 0 ? { ...d, message: `${d.message}
${ignoredNote(could.map((m) => m.name), ignored.ignored)}` } : d;
}

function diagnoseOne(
  drv: BuildRequirements,
  local: LocalCapabilities,
  machines: readonly NamedMachine[],
  everyone: string,
): Pick<DerivationDiagnostic, 'severity' | 'code' | 'message'> | undefined {
  const localNo = localRefusal(local, drv);
  const refusals = machines.map((m) => ({ m, r: builderRefusal(m, drv, local.system) }));
  const accepting = refusals.filter((x) => !x.r).map((x) => x.m);
  if (!localNo) return undefined;
  const wanted = `${drv.system}${drv.requiredSystemFeatures.length ? ` ${featureSet(drv.requiredSystemFeatures)}` : ''}`;
  if (accepting.length > 0) {
    return {
      severity: 'information',
      code: 'remote-only',
      message: `builds on ${accepting.map((m) => m.name).join(' or ')} (${wanted})${
        localNo.reason === 'max-jobs-0' ? '' : ': this machine cannot build it'
      }`,
    };
  }
  // Nothing accepts it: say the most basic missing thing. First, which machines have the system.
  const localFits = localNo.reason !== 'system';
  const fitting = refusals.filter((x) => x.r?.reason !== 'system');
  if (!localFits && fitting.length === 0) {
    return {
      severity: 'error',
      code: 'no-builder-system',
      message: `requires ${drv.system}: no builder provides it ${everyone}\nFix: add a builder for ${drv.system} to a machines file (or add ${drv.system} to extra-platforms of a machine that can emulate it).`,
    };
  }
  // Then features: those that no machine with the system provides.
  const provides = (f: string) =>
    (localFits && local.systemFeatures.includes(f)) || fitting.some((x) => x.m.supportedFeatures.includes(f) || x.m.mandatoryFeatures.includes(f));
  const missing = drv.requiredSystemFeatures.filter((f) => !provides(f));
  if (missing.length > 0) {
    return {
      severity: 'error',
      code: 'no-builder-features',
      message: `requires ${drv.system} with ${featureSet(missing)}: no builder provides it ${everyone}\nFix: add a ${drv.system} builder that has ${featureSet(missing)}, or add the feature to column 6 of a builder's machines line if it has it.`,
    };
  }
  const mandatory = fitting.filter((x) => x.r?.reason === 'mandatory');
  if (mandatory.length > 0) {
    const which = mandatory.map((x) => `${x.m.name} only takes derivations that require ${featureSet(x.r?.reason === 'mandatory' ? x.r.unmet : [])}`);
    return {
      severity: 'error',
      code: 'mandatory-features',
      message: `requires ${wanted}: ${which.join('; ')} ${everyone}\nFix: require those features in the derivation (requiredSystemFeatures), or add a builder without mandatory features.`,
    };
  }
  if (localNo.reason === 'max-jobs-0') {
    return {
      severity: 'error',
      code: 'max-jobs-zero',
      message: `max-jobs is 0, so this machine builds nothing, and no builder takes ${wanted} ${everyone}\nFix: add a builder for it, or set max-jobs above 0.`,
    };
  }
  // Every feature exists somewhere, but no one machine has them all.
  return {
    severity: 'error',
    code: 'no-builder-features',
    message: `requires ${drv.system} with ${featureSet(drv.requiredSystemFeatures)}: no single machine has all of them ${everyone}\nFix: add the missing features to one ${drv.system} builder (column 6 of its machines line) if it has them.`,
  };
}
