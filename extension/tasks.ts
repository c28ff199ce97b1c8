// A task type, so that builds also run from tasks.json and keybindings:
//   { "type": "nix-builders", "file": "default.nix", "attribute": "hello-arm", "remoteOnly": true }
// The task's terminal shows the plan and the end state; the build itself is the server's.
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Ctx } from './ctx';

export const TASK_TYPE = 'nix-builders';

interface NixBuildersTaskDefinition extends vscode.TaskDefinition {
  file: string;
  attribute?: string;
  remoteOnly?: boolean;
}

function isDefinition(d: vscode.TaskDefinition): d is NixBuildersTaskDefinition {
  return d.type === TASK_TYPE && typeof d.file === 'string';
}

class BuildTerminal implements vscode.Pseudoterminal {
  private readonly written = new vscode.EventEmitter<string>();
  private readonly closed = new vscode.EventEmitter<number>();
  readonly onDidWrite = this.written.event;
  readonly onDidClose = this.closed.event;
  private readonly cancel = new vscode.CancellationTokenSource();

  constructor(
    private readonly ctx: Ctx,
    private readonly uri: vscode.Uri,
    private readonly def: NixBuildersTaskDefinition,
  ) {}

  open(): void {
    const say = (s: string) => this.written.fire(`${s.replace(/\n/g, '\r\n')}\r\n`);
    const attrPaths = this.def.attribute ? [this.def.attribute.split('.')] : undefined;
    say(`Building ${this.def.attribute ?? 'every derivation of'} ${this.def.file}${this.def.remoteOnly ? ' (remotely only)' : ''}…`);
    this.ctx
      .build({ uri: this.uri.toString(), attrPaths, remoteOnly: this.def.remoteOnly === true }, this.cancel.token, (started) => say(started.plan.summary))
      .then(
        (result) => {
          for (const d of result.snapshot?.derivations ?? []) say(`  ${d.name}: ${d.state}${d.machine ? ` on ${d.machine}` : ''}`);
          for (const p of result.problems ?? []) say(p);
          say(result.status);
          this.closed.fire(result.status === 'built' ? 0 : 1);
        },
        (e: Error) => {
          say(`error: ${e.message}`);
          this.closed.fire(1);
        },
      );
  }

  close(): void {
    this.cancel.cancel();
  }
}

export class BuildTaskProvider implements vscode.TaskProvider {
  constructor(private readonly ctx: Ctx) {}

  provideTasks(): vscode.Task[] {
    return [];
  }

  resolveTask(task: vscode.Task): vscode.Task | undefined {
    const def = task.definition;
    if (!isDefinition(def)) return undefined;
    const folder = typeof task.scope === 'object' ? task.scope : vscode.workspace.workspaceFolders?.[0];
    const uri = path.isAbsolute(def.file) || !folder ? vscode.Uri.file(def.file) : vscode.Uri.joinPath(folder.uri, def.file);
    const execution = new vscode.CustomExecution(async () => new BuildTerminal(this.ctx, uri, def));
    return new vscode.Task(def, task.scope ?? vscode.TaskScope.Workspace, task.name, TASK_TYPE, execution);
  }
}
