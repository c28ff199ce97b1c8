// Arguments of files that are functions, as `nix-build --arg name expr` takes them: the setting
// `nixBuilders.evaluation.arguments` (name → Nix expression), checked before it reaches a process,
// the walker's `--arg`s for them, and the "needs arguments" diagnostic's words and quick fix.
import { CodeActionKind, type CodeAction, type Diagnostic } from 'vscode-languageserver/node';
import { SET_EVALUATION_ARGUMENTS } from '../protocol';

export const ARGUMENTS_SETTING = 'nixBuilders.evaluation.arguments';

/** A function's formal argument: a Nix identifier. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_'-]*$/;

/** Why an entry of the setting cannot be passed as `--arg`; undefined when it can. */
export function argumentProblem(name: string, expr: unknown): string | undefined {
  if (!IDENTIFIER.test(name)) return `"${name}" is not a Nix argument name (an identifier such as pkgs or system).`;
  if (typeof expr !== 'string' || expr.trim() === '') return `"${name}": the value must be a Nix expression in a string, e.g. "import <nixpkgs> { }" or "\\"1.0\\"".`;
  return undefined;
}

/**
 * The walker receives the user's arguments under this prefix (its own `depth`, `isFlake`… cannot
 * collide with them) and passes on those the document's function takes.
 */
export const WALKER_ARGUMENT_PREFIX = '__nbArg_';

/** `--arg __nbArg_name expr` for each argument: the expression is argv data that Nix parses, never spliced into the walker. */
export function argumentArgs(args: Readonly<Record<string, string>>): string[] {
  return Object.entries(args).flatMap(([name, expr]) => ['--arg', WALKER_ARGUMENT_PREFIX + name, expr]);
}

/** A starting value for an argument, from its usual meaning. */
export function argumentTemplate(name: string): string {
  switch (name) {
    case 'pkgs':
    case 'nixpkgs':
      return 'import <nixpkgs> { }';
    case 'lib':
      return '(import <nixpkgs> { }).lib';
    case 'system':
    case 'localSystem':
      return 'builtins.currentSystem';
    default:
      return 'null';
  }
}

export function argumentTemplates(names: readonly string[]): Record<string, string> {
  return Object.fromEntries(names.map((n) => [n, argumentTemplate(n)]));
}

/** The "needs arguments" diagnostic's message: which ones, and the setting's JSON to add. */
export function requiredArgumentsMessage(required: readonly string[]): string {
  return (
    `This file is a function with required arguments (${required.join(', ')}): nix-build would need --arg for them, and so does Nix Builders. ` +
    `Give them in the setting "${ARGUMENTS_SETTING}" of this folder (each value a Nix expression, as --arg takes it), e.g.\n` +
    `"${ARGUMENTS_SETTING}": ${JSON.stringify(argumentTemplates(required))}`
  );
}

/** The quick fix of "needs arguments" diagnostics: the client's command that sets the setting (only for a client that runs it). */
export function argumentsActionsFor(uri: string, diagnostics: readonly Diagnostic[], clientRunsIt: boolean): CodeAction[] {
  if (!clientRunsIt) return [];
  return diagnostics.flatMap((d) => {
    const required = (d.data as { required?: unknown } | undefined)?.required;
    if (d.code !== 'required-arguments' || !Array.isArray(required) || required.length === 0) return [];
    const names = required.filter((n): n is string => typeof n === 'string');
    return [
      {
        title: `Set the arguments ${names.join(', ')} for this folder…`,
        kind: CodeActionKind.QuickFix,
        diagnostics: [d],
        isPreferred: true,
        command: { title: 'Set Evaluation Arguments', command: SET_EVALUATION_ARGUMENTS, arguments: [uri, argumentTemplates(names)] },
      },
    ];
  });
}
