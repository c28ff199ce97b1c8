// The one table of commands. `package.json`'s contributes.commands is checked against it by a test.
import * as vscode from 'vscode';
import type { Ctx } from './ctx';
import type { CommandId } from './commandIds';

type Handler = (ctx: Ctx, ...args: unknown[]) => unknown;

export const COMMANDS: Readonly<Record<CommandId, Handler>> = {
  'nixBuilders.refreshBuilders': (ctx) => ctx.refreshBuilders(),
  'nixBuilders.restartServer': (ctx) => ctx.restart(),
  'nixBuilders.showOutput': (ctx) => ctx.log.show(true),
  'nixBuilders.openSettings': () => vscode.commands.executeCommand('workbench.action.openSettings', '@ext:nix-builders.nix-builders'),
};

export function registerCommands(ctx: Ctx): vscode.Disposable[] {
  return Object.entries(COMMANDS).map(([id, handler]) =>
    vscode.commands.registerCommand(id, async (...args: unknown[]) => {
      try {
        return await handler(ctx, ...args);
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        ctx.log.error(`${id}: ${message}`);
        void vscode.window.showErrorMessage(`Nix Builders: ${message}`);
        return undefined;
      }
    }),
  );
}
