// The commands of caches and keys (part of the one command table, commands.ts): generate a signing
// key, push an attribute's closure to a cache, verify a cache, copy a consumer's configuration or
// a public key. Each runs the server's command; this file asks and shows.
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Ctx } from './ctx';
import type { CommandId } from './commandIds';
import { pushTargets, setSigningKeyFile } from './config';
import { cacheOfNode, keyOfNode } from './views/cachesView';
import { attributeOfNode } from './views/buildsView';
import { parseStoreUri } from '../language-server/nix/storeUri';
import {
  ServerCommands,
  SIGNING_KEY_NAME,
  type CacheVerification,
  type GeneratedKey,
  type PushToCacheArgs,
  type PushToCacheResult,
  type VerifyCacheArgs,
} from '../language-server/protocol';

type Handler = (ctx: Ctx, ...args: unknown[]) => unknown;

type CacheCommandId = Extract<CommandId, 'nixBuilders.refreshCaches' | 'nixBuilders.generateSigningKey' | 'nixBuilders.pushToCache' | 'nixBuilders.verifyCache' | 'nixBuilders.copyConsumerConfiguration' | 'nixBuilders.copyPublicKey'>;

const isCancellation = (e: unknown) => e instanceof vscode.CancellationError || /cancel/i.test(e instanceof Error ? e.message : String(e));

/** The derivation attribute at (or above) the cursor of a Nix editor, or one picked from its file. */
async function derivationHere(ctx: Ctx, placeHolder: string): Promise<{ uri: string; attribute: string[] } | undefined> {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.document.languageId !== 'nix') {
    void vscode.window.showInformationMessage('Open a .nix file (or flake.nix) and put the cursor on the derivation attribute.');
    return undefined;
  }
  const uri = editor.document.uri.toString();
  const { derivations, state } = await ctx.derivations(uri);
  if (state !== 'ok' || derivations.length === 0) {
    void vscode.window.showWarningMessage(state === 'ok' ? 'This file has no derivations.' : `This file is not evaluated (${state}).`);
    return undefined;
  }
  const line = editor.selection.active.line;
  const above = derivations.filter((d) => d.line !== undefined && d.line <= line).sort((a, b) => (b.line ?? 0) - (a.line ?? 0))[0];
  if (above) return { uri, attribute: above.attrPath };
  const picked = await vscode.window.showQuickPick(derivations.map((d) => ({ label: d.attrPath.join('.'), description: d.system, detail: d.drvPath, attrPath: d.attrPath })), { placeHolder });
  return picked ? { uri, attribute: picked.attrPath } : undefined;
}

/** A store URI typed by the user. */
async function askStore(title: string): Promise<string | undefined> {
  const typed = await vscode.window.showInputBox({
    title,
    prompt: 'A store URI: file:///var/cache/nix, ssh://host, ssh-ng://host, s3://bucket?region=…&endpoint=…',
    ignoreFocusOut: true,
    validateInput: (v) => (v.trim() !== '' && parseStoreUri(v.trim()) ? undefined : 'Give a store URI such as file:///var/cache/nix or ssh-ng://host'),
  });
  return typed?.trim() || undefined;
}

/** The store: `given` when it is the only choice, else picked among `stores` (given first) or typed. */
async function pickStore(stores: readonly string[], given: string | undefined, title: string): Promise<string | undefined> {
  const choices = [...new Set([...(given ? [given] : []), ...stores])];
  if (given && choices.length === 1) return given;
  if (choices.length === 0) return askStore(title);
  const other = 'Another store…';
  const picked = await vscode.window.showQuickPick([...choices.map((label) => ({ label })), { label: other, description: 'type a store URI' }], { title, placeHolder: title });
  if (!picked) return undefined;
  return picked.label === other ? askStore(title) : picked.label;
}

/** A push's answer, said: the summary (with the signature and verification), problems as an error with their fix. */
async function showPushResult(ctx: Ctx, r: PushToCacheResult): Promise<void> {
  const lines = [`Push to ${r.to}: ${r.status} — ${r.summary}`, ...r.pushed.map((p) => `  pushed ${p}`), ...r.skipped.map((s) => `  skipped ${s.path}: ${s.why}`), ...r.problems.map((p) => `  problem: ${p}`)];
  if (r.verification) lines.push(`  verification: ${r.verification.summary}`, ...r.verification.problems.map((p) => `    ${p.path ?? ''} ${p.message}${p.fix ? ` Fix: ${p.fix}` : ''}`));
  if (r.status === 'failed' || r.status === 'not-started') ctx.log.error(lines.join('\n'));
  else ctx.log.info(lines.join('\n'));
  const showLog = async (choice: string | undefined) => {
    if (choice === 'Show Log') ctx.log.show(true);
  };
  if (r.status === 'cancelled') return void vscode.window.showInformationMessage(`Push to ${r.to} was cancelled: ${r.summary}`);
  if (r.status !== 'pushed') return showLog(await vscode.window.showErrorMessage(`Push to ${r.to} failed: ${r.problems.join(' ') || r.summary}`, 'Show Log'));
  const v = r.verification;
  if (v?.status === 'problems') {
    const first = v.problems[0];
    return showLog(await vscode.window.showErrorMessage(`${r.summary} — but ${v.summary}${first ? `: ${first.message}${first.fix ? ` Fix: ${first.fix}` : ''}` : ''}`, 'Show Log'));
  }
  if (r.signed.status === 'unsigned') return showLog(await vscode.window.showWarningMessage(`${r.summary} — ${r.signed.message ?? 'the paths are not signed: Nix substitutes them only where require-sigs is false.'}`, 'Show Log'));
  // Pushed, but nothing proved it substitutes (a private bucket, a check that could not run): not a success.
  if (!r.verified) return showLog(await vscode.window.showWarningMessage(`${r.summary} — NOT VERIFIED${v ? `: ${v.summary}` : ''}`, 'Show Log'));
  await showLog(await vscode.window.showInformationMessage(v && !r.summary.includes(v.summary) ? `${r.summary} — ${v.summary}` : r.summary, 'Show Log'));
}

function showVerification(ctx: Ctx, store: string, v: CacheVerification): void {
  ctx.log.info([`Verify ${store}: ${v.status} — ${v.summary}`, ...v.problems.map((p) => `  ${p.path ?? ''} ${p.problem}: ${p.message}${p.fix ? ` Fix: ${p.fix}` : ''}`)].join('\n'));
  const first = v.problems[0];
  if (v.status === 'verified') void vscode.window.showInformationMessage(`${store}: ${v.summary}`);
  else if (v.status === 'problems') void vscode.window.showErrorMessage(`${store}: ${v.summary}${first ? ` — ${first.message}${first.fix ? ` Fix: ${first.fix}` : ''}` : ''}`);
  else void vscode.window.showWarningMessage(`${store}: ${v.summary}`);
}

async function copy(text: string, what: string): Promise<void> {
  await vscode.env.clipboard.writeText(text);
  void vscode.window.showInformationMessage(`Copied ${what}.`);
}

export const CACHE_COMMANDS: Readonly<Record<CacheCommandId, Handler>> = {
  'nixBuilders.refreshCaches': (ctx) =>
    vscode.window.withProgress({ location: { viewId: 'nixBuilders.caches' } }, async () => {
      ctx.cachesView.refresh();
      await ctx.cachesView.current();
    }),
  'nixBuilders.generateSigningKey': async (ctx) => {
    const keyName = await vscode.window.showInputBox({
      title: 'Generate Signing Key (1/2)',
      prompt: "The key's name: the cache's host name and a number to count replacements (consumers see it in trusted-public-keys)",
      value: `${os.hostname()}-cache-1`,
      ignoreFocusOut: true,
      validateInput: (v) => (SIGNING_KEY_NAME.test(v) ? undefined : 'Letters, digits, ".", "-", "_" or "+", starting with a letter or digit (no ":" or blank)'),
    });
    if (!keyName) return;
    const file = await vscode.window.showSaveDialog({
      title: 'Generate Signing Key (2/2): where to keep the secret key (created 0600; the public key goes beside it as .pub)',
      defaultUri: vscode.Uri.file(path.join(os.homedir(), '.config', 'nix', `${keyName}.sec`)),
      saveLabel: 'Create Secret Key',
    });
    if (!file) return;
    const key = await ctx.serverCommand<GeneratedKey>(ServerCommands.generateKey, [{ keyName, secretKeyFile: file.fsPath }]);
    ctx.log.info(`Generated the signing key ${key.keyName}: secret ${key.secretKeyFile}, public key ${key.publicKey} (also in ${key.publicKeyFile}).`);
    ctx.cachesView.refresh();
    const use = 'Sign Pushes with It';
    const choice = await vscode.window.showInformationMessage(`Generated the signing key ${key.keyName} in ${key.secretKeyFile}. Public key: ${key.publicKey}`, use, 'Copy Public Key');
    if (choice === use) {
      await setSigningKeyFile(key.secretKeyFile);
      const again = await vscode.window.showInformationMessage(`Pushes sign with ${key.keyName} (nixBuilders.cache.signingKeyFile). Consumers add its public key to trusted-public-keys.`, 'Copy Public Key');
      if (again) await copy(key.publicKey, `the public key of ${key.keyName}`);
    } else if (choice) await copy(key.publicKey, `the public key of ${key.keyName}`);
  },
  'nixBuilders.pushToCache': async (ctx, arg) => {
    // A built attribute's row in the Builds view, the code lens's arguments, or the attribute at the cursor.
    const given: (Pick<PushToCacheArgs, 'uri' | 'attribute'> & Partial<PushToCacheArgs>) | undefined = attributeOfNode(arg) ?? (arg && typeof arg === 'object' && typeof (arg as PushToCacheArgs).uri === 'string' ? (arg as PushToCacheArgs) : undefined);
    const what = given ? { uri: given.uri, attribute: given.attribute } : await derivationHere(ctx, 'Push which derivation?');
    if (!what) return;
    const to = await pickStore(pushTargets(), given?.to, 'Push to which store?');
    if (!to) return;
    const attribute = Array.isArray(what.attribute) ? what.attribute.join('.') : what.attribute;
    const args: PushToCacheArgs = { uri: what.uri, attribute: what.attribute, to, ...(given?.keyFile ? { keyFile: given.keyFile } : {}) };
    let result: PushToCacheResult;
    try {
      result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Pushing ${attribute} to ${to}`, cancellable: true }, (progress, token) =>
        ctx.serverCommand<PushToCacheResult>(ServerCommands.pushToCache, [args], token, (message) => progress.report({ message })),
      );
    } catch (e) {
      if (isCancellation(e)) return void vscode.window.showInformationMessage(`Push of ${attribute} to ${to} was cancelled.`);
      throw e;
    } finally {
      ctx.cachesView.refresh();
    }
    await showPushResult(ctx, result);
  },
  'nixBuilders.verifyCache': async (ctx, node) => {
    const row = cacheOfNode(node);
    const listed = row ? [] : await ctx.cachesView.current().then((i) => i.caches.map((c) => c.uri), () => pushTargets());
    const store = row?.uri ?? (await pickStore(listed, undefined, 'Verify which cache?'));
    if (!store) return;
    const what = await derivationHere(ctx, 'Verify the closure of which derivation?');
    if (!what) return;
    const args: VerifyCacheArgs = { store, uri: what.uri, attribute: what.attribute };
    try {
      const v = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Verifying ${what.attribute.join('.')} in ${store}`, cancellable: true }, (progress, token) =>
        ctx.serverCommand<CacheVerification>(ServerCommands.verifyCache, [args], token, (message) => progress.report({ message })),
      );
      showVerification(ctx, store, v);
    } catch (e) {
      if (!isCancellation(e)) throw e;
    }
  },
  'nixBuilders.copyConsumerConfiguration': async (ctx) => {
    const info = await ctx.cachesView.current();
    const s = info.consumerSnippets;
    const target = info.caches.find((c) => c.origin === 'push-target')?.uri;
    if (!s || !target) {
      void vscode.window.showInformationMessage('Add a push target first (nixBuilders.cache.pushTargets): the configuration is for the consumers of the first one.');
      return;
    }
    const picked = await vscode.window.showQuickPick(
      [
        { label: 'nix.conf', description: 'extra-substituters, extra-trusted-public-keys', text: s.nixConf },
        { label: "A flake's nixConfig", description: 'asked to be accepted (accept-flake-config) by its users', text: s.flakeNixConfig },
        { label: 'NixOS', description: 'nix.settings in configuration.nix', text: s.nixos },
      ],
      { placeHolder: `Configuration for the consumers of ${target}` },
    );
    if (picked) await copy(picked.text, `the ${picked.label} configuration for ${target}`);
  },
  'nixBuilders.copyPublicKey': async (ctx, node) => {
    let key = keyOfNode(node);
    if (!key) {
      const keys = (await ctx.cachesView.current()).keys.filter((k) => k.publicKey);
      if (keys.length === 0) {
        void vscode.window.showInformationMessage('No signing key with a readable secret: generate one (Nix Builders: Generate Signing Key…).');
        return;
      }
      key = keys.length === 1 ? keys[0] : (await vscode.window.showQuickPick(keys.map((k) => ({ label: k.keyName ?? k.secretKeyFile, description: k.secretKeyFile, key: k })), { placeHolder: 'Copy the public key of which key?' }))?.key;
    }
    if (key?.publicKey) await copy(key.publicKey, `the public key of ${key.keyName ?? key.secretKeyFile}`);
  },
};
