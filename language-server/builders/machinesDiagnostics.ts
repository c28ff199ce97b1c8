// Squiggles in a machines file open in the editor: every malformed entry, at its position, with
// the column that is wrong. Uses the same total parser as everything else.
import { DiagnosticSeverity, type Diagnostic } from 'vscode-languageserver/node';
import { parseMachines } from '../nix/machines';

export const MACHINES_SOURCE = 'Nix Builders (machines)';

export function machinesDiagnostics(text: string): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  for (const entry of parseMachines(text).entries) {
    if (!entry.error) continue;
    diagnostics.push({
      range: {
        start: { line: entry.line, character: entry.column },
        end: { line: entry.line, character: entry.column + entry.text.length },
      },
      severity: DiagnosticSeverity.Error,
      source: MACHINES_SOURCE,
      code: 'malformed-machine',
      message: `${entry.error}. Format: URI systems ssh-key max-jobs speed-factor features mandatory-features host-key ('-' for a default).`,
    });
  }
  return diagnostics;
}
