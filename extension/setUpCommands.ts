// The guided nix.conf set-ups (part of the one command table, commands.ts): Set Up post-build-hook…
// and Set Up diff-hook…. Each runs the server's command (setUpPostBuildHook, setUpDiffHook) twice:
// a dry run for each nix.conf (yours, the system's) shows what would be written, then the one
// picked is written (atomically, with a backup) or its lines are shown to paste. The notes (daemon
// restart, trusted user, root under the daemon, asynchronous hooks) are said after; for the
// post-build-hook also the push queue's setting and the standalone worker's systemd unit.
import * as vscode from 'vscode';
import type { Ctx } from './ctx';
import type { CommandId } from './commandIds';
import { ServerCommands, type NixConfSetUpResult, type SetUpNixConfArgs } from '../language-server/protocol';

type Handler = (ctx: Ctx, ...args: unknown[]) => unknown;

type SetUpCommandId = Extract<CommandId, 'nixBuilders.setUpPostBuildHook' | 'nixBuilders.setUpDiffHook'>;

interface SetUp {
  hook: 'post-build-hook' | 'diff-hook';
  server: typeof ServerCommands.setUpPostBuildHook | typeof ServerCommands.setUpDiffHook;
}

/** The command's argument: `{ nixConf?, scope?, queueDir? }` (a test's, another extension's), or nothing. */
function givenArgs(arg: unknown): SetUpNixConfArgs {
  const a = arg && typeof arg === 'object' ? (arg as SetUpNixConfArgs) : {};
  return { ...(a.nixConf ? { nixConf: a.nixConf } : {}), ...(a.scope ? { scope: a.scope } : {}), ...(a.queueDir ? { queueDir: a.queueDir } : {}) };
}

/** The lines and what they are for, as a text document to read or paste. */
async function showText(text: string, language = 'properties'): Promise<void> {
  await vscode.window.showTextDocument(await vscode.workspace.openTextDocument({ content: text, language }), { preview: false });
}

const commentBlock = (lines: readonly string[]) => lines.map((l) => `# ${l}`).join('\n');

async function runSetUp(ctx: Ctx, s: SetUp, arg: unknown): Promise<NixConfSetUpResult | undefined> {
  const given = givenArgs(arg);
  // What would be written, in each nix.conf offered (the one given, or yours and the system's).
  const scopes: SetUpNixConfArgs[] = given.nixConf || given.scope ? [given] : [{ ...given, scope: 'user' }, { ...given, scope: 'system' }];
  const dryRuns = await Promise.all(scopes.map((a) => ctx.serverCommand<NixConfSetUpResult>(s.server, [{ ...a, dryRun: true }])));
  const choices = dryRuns.flatMap((r, i) => {
    const a = scopes[i] as SetUpNixConfArgs;
    const where = a.scope === 'system' ? 'the system nix.conf (what the daemon reads)' : a.scope === 'user' ? 'your nix.conf' : r.nixConf;
    if (r.status === 'failed') return [{ label: `Cannot set up ${where}`, description: r.nixConf, detail: r.message ?? '', args: a, write: false }];
    const detail = r.lines.join(' · ');
    return [
      { label: `Write to ${where}`, description: r.nixConf, detail: `${detail} (a backup is kept; where it cannot be written, the lines are shown to paste)`, args: a, write: true },
      { label: `Show the lines to paste into ${where}`, description: r.nixConf, detail, args: a, write: false },
    ];
  });
  const picked = await vscode.window.showQuickPick(choices, { title: `Set Up ${s.hook}`, placeHolder: `Where should the ${s.hook} lines go?`, matchOnDetail: true, ignoreFocusOut: true });
  if (!picked) return undefined;
  const r = await ctx.serverCommand<NixConfSetUpResult>(s.server, [{ ...picked.args, dryRun: !picked.write }]);
  const notes = r.notes.join(' ');
  ctx.log.info([`Set Up ${s.hook}: ${r.status} ${r.nixConf}${r.backup ? ` (backup ${r.backup})` : ''}`, ...r.lines.map((l) => `  ${l}`), ...(r.script ? [`  hook script ${r.script}`] : []), ...(r.message ? [`  ${r.message}`] : []), ...r.notes.map((n) => `  note: ${n}`)].join('\n'));
  if (r.status === 'failed') {
    void vscode.window.showErrorMessage(`Set Up ${s.hook} failed: ${r.message ?? 'see the log'}`);
    return r;
  }
  const extra: string[] = [];
  const queueOff = s.hook === 'post-build-hook' && !vscode.workspace.getConfiguration('nixBuilders').get<boolean>('cache.queue.enabled', false);
  if (queueOff) extra.push('Enable the Push Queue');
  if (r.systemdUnit) extra.push('Show systemd Unit');
  if (r.status === 'written') {
    const open = 'Open nix.conf';
    void vscode.window.showInformationMessage(`Wrote ${r.lines.join(', ')} to ${r.nixConf} (backup: ${r.backup ?? 'none, the file was new'}). ${notes}`, open, ...extra).then((c) => after(ctx, r, c, open));
  } else {
    // Not written: the lines (with the notes as comments) to paste, in a document and on the clipboard.
    await vscode.env.clipboard.writeText(`${r.lines.join('\n')}\n`);
    await showText(`# ${s.hook}: add these lines to ${r.nixConf}${r.message ? ` (${r.message})` : ''}\n${r.lines.join('\n')}\n\n${commentBlock(r.notes)}\n`);
    void vscode.window.showInformationMessage(`Copied the ${s.hook} lines for ${r.nixConf}: paste them there. ${notes}`, ...extra).then((c) => after(ctx, r, c));
  }
  return r;
}

/** A button of the result's message. */
async function after(ctx: Ctx, r: NixConfSetUpResult, choice: string | undefined, open?: string): Promise<void> {
  if (choice && choice === open) await vscode.window.showTextDocument(vscode.Uri.file(r.nixConf));
  else if (choice === 'Enable the Push Queue') {
    await vscode.workspace.getConfiguration('nixBuilders').update('cache.queue.enabled', true, vscode.ConfigurationTarget.Global);
    ctx.cachesView.refresh();
    void vscode.window.showInformationMessage('nixBuilders.cache.queue.enabled is on: while the editor runs, the server pushes what the hook queues to the first of nixBuilders.cache.pushTargets.');
  } else if (choice === 'Show systemd Unit' && r.systemdUnit) {
    await showText(`# Save as ${r.systemdUnit.file}, then: systemctl --user daemon-reload && systemctl --user enable --now nix-builders-push\n${r.systemdUnit.text}`, 'ini');
  }
}

export const SET_UP_COMMANDS: Readonly<Record<SetUpCommandId, Handler>> = {
  'nixBuilders.setUpPostBuildHook': (ctx, arg) => runSetUp(ctx, { hook: 'post-build-hook', server: ServerCommands.setUpPostBuildHook }, arg),
  'nixBuilders.setUpDiffHook': (ctx, arg) => runSetUp(ctx, { hook: 'diff-hook', server: ServerCommands.setUpDiffHook }, arg),
};
