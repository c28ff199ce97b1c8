// Guided add / edit / remove of a builder, and pinning a host key. The server probes the builder
// (systems, features, host key) and writes the machines file atomically with a backup; this file
// only asks the questions. Machines entries are made by the server's formatter, which refuses what
// Nix would misread (a key path with a blank); edits name the entry's text as it was listed, so the
// server refuses to overwrite an entry that changed or moved since.
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { BuilderHealth, BuilderInfo, EditResult, MachinesEdit } from '../language-server/protocol';
import type { Machine } from '../language-server/nix/machines';
import type { Ctx } from './ctx';

const COMMON_SYSTEMS = ['x86_64-linux', 'aarch64-linux', 'x86_64-darwin', 'aarch64-darwin', 'i686-linux', 'armv7l-linux'];
const COMMON_FEATURES = ['kvm', 'big-parallel', 'benchmark', 'nixos-test'];
const unique = (xs: Iterable<string>) => [...new Set(xs)];

/** Asks for every column, suggesting what the probe found; undefined when the user cancels. */
async function askMachine(ctx: Ctx, existing: BuilderInfo | undefined): Promise<Machine | undefined> {
  const title = existing ? `Edit builder ${existing.name}` : 'Add a builder';
  const uri = await vscode.window.showInputBox({
    title,
    prompt: 'Store URI of the builder (a Host alias of your ssh config works too)',
    value: existing?.uri ?? 'ssh://',
    validateInput: (v) => (/^(ssh|ssh-ng):\/\/[^\s;#]+$/.test(v.trim()) ? undefined : 'ssh://[user@]host or ssh-ng://[user@]host'),
  });
  if (!uri) return undefined;
  const keyChoice = await vscode.window.showQuickPick(
    [
      ...(existing?.sshKey ? [{ label: existing.sshKey, description: 'current key', key: existing.sshKey }] : []),
      { label: 'Default', description: 'the ssh agent or ~/.ssh, as ssh chooses', key: undefined as string | undefined },
      { label: 'Choose a private key file…', key: '?' },
    ],
    { title, placeHolder: 'SSH key' },
  );
  if (!keyChoice) return undefined;
  let sshKey = keyChoice.key;
  if (sshKey === '?') {
    // The extension runs where the server and Nix's ssh run (a workspace extension): this user's ~/.ssh.
    const picked = await vscode.window.showOpenDialog({ title: 'Private SSH key', canSelectMany: false, defaultUri: vscode.Uri.file(path.join(os.homedir(), '.ssh')) });
    if (!picked?.[0]) return undefined;
    sshKey = picked[0].fsPath;
  }
  // The probe gets the URI and key as a machines entry: one the formatter accepts.
  const probeEntry = await machineLine(ctx, { uri: uri.trim(), systems: [], sshKey, maxJobs: 1, speedFactor: 1, supportedFeatures: [], mandatoryFeatures: [], publicHostKey: undefined });
  if (probeEntry === undefined) return undefined;
  const probe = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Probing ${uri.trim()}…`, cancellable: true },
    (_p, token) => ctx.probeBuilder(probeEntry, token).catch((e: Error) => e),
  );
  const facts = probe instanceof Error ? {} : probe.facts;
  if (probe instanceof Error || probe.status === 'error') {
    const why = probe instanceof Error ? probe.message : (probe.checks.find((c) => c.status === 'error')?.summary ?? 'failed');
    void vscode.window.showWarningMessage(`Probing ${uri.trim()}: ${why}. You can still enter its details.`);
  }
  const probedSystems = facts.system ? [facts.system, ...(facts.extraPlatforms ?? [])] : [];
  const systems = await pickMany(title, 'Systems it builds', unique([...probedSystems, ...(existing?.systems ?? []), ...COMMON_SYSTEMS]), existing?.systems ?? (facts.system ? [facts.system] : []), probedSystems);
  if (!systems) return undefined;
  const maxJobs = await askNumber(title, 'Max jobs: builds it runs at once for this machine', existing?.maxJobs ?? facts.cores ?? 1, true);
  if (maxJobs === undefined) return undefined;
  const speedFactor = await askNumber(title, 'Speed factor: Nix prefers the lowest load ÷ speed factor', existing?.speedFactor ?? 1, false);
  if (speedFactor === undefined) return undefined;
  const probedFeatures = facts.systemFeatures ?? [];
  const features = await pickMany(title, 'Supported features', unique([...probedFeatures, ...(existing?.supportedFeatures ?? []), ...COMMON_FEATURES]), existing?.supportedFeatures ?? probedFeatures, probedFeatures);
  if (!features) return undefined;
  const mandatory = features.length ? await pickMany(title, 'Mandatory features: only derivations requiring all of these go there', features, existing?.mandatoryFeatures ?? [], []) : [];
  if (!mandatory) return undefined;
  let publicHostKey = existing?.publicHostKey;
  const presented = probe instanceof Error ? undefined : probe.presentedHostKey;
  if (presented && presented.machinesColumn !== publicHostKey) {
    const pin = await vscode.window.showInformationMessage(
      `${uri.trim()} presented the host key ${presented.type} ${presented.fingerprint}. Pin it in the machines line (column 8)? Compare the fingerprint with \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\` on the builder.`,
      { modal: true },
      'Pin This Key',
    );
    if (pin === 'Pin This Key') publicHostKey = presented.machinesColumn;
  }
  return {
    uri: uri.trim(),
    systems,
    sshKey,
    maxJobs,
    speedFactor,
    supportedFeatures: features.filter((f) => !mandatory.includes(f)),
    mandatoryFeatures: mandatory,
    publicHostKey,
  };
}

async function pickMany(title: string, placeHolder: string, options: string[], selected: readonly string[], probed: readonly string[]): Promise<string[] | undefined> {
  const picked = await vscode.window.showQuickPick(
    options.map((o) => ({ label: o, picked: selected.includes(o), description: probed.includes(o) ? 'found by the probe' : undefined })),
    { title, placeHolder, canPickMany: true },
  );
  return picked?.map((p) => p.label);
}

async function askNumber(title: string, prompt: string, value: number, integer: boolean): Promise<number | undefined> {
  const v = await vscode.window.showInputBox({
    title,
    prompt,
    value: String(value),
    validateInput: (s) => ((integer ? /^\d+$/ : /^\d+(\.\d+)?$/).test(s.trim()) && (integer || Number(s) > 0) ? undefined : integer ? 'a whole number' : 'a number above 0'),
  });
  return v === undefined ? undefined : Number(v.trim());
}

/** The machine as a machines entry, by the server's formatter; undefined (and the reason shown) when it cannot be one. */
async function machineLine(ctx: Ctx, machine: Machine): Promise<string | undefined> {
  const formatted = await ctx.formatMachineLine(machine);
  if (formatted.ok) return formatted.line;
  void vscode.window.showErrorMessage(`Nix Builders: ${formatted.message}`);
  return undefined;
}

async function applyEdit(ctx: Ctx, file: string, edit: MachinesEdit, what: string): Promise<boolean> {
  const result: EditResult = await ctx.editMachines(file, edit);
  if (result.ok) {
    void vscode.window.showInformationMessage(`${what} in ${file}${result.backup ? ` (backup: ${result.backup})` : ''}.`);
    await ctx.refreshBuilders();
    return true;
  }
  const buttons = result.lineToPaste ? ['Copy Line'] : [];
  const choice = await vscode.window.showErrorMessage(`Nix Builders: ${result.message}${result.lineToPaste ? `\n${result.lineToPaste}` : ''}`, ...buttons);
  if (choice === 'Copy Line' && result.lineToPaste) await vscode.env.clipboard.writeText(result.lineToPaste);
  return false;
}

/** Machines files the user may add to: those builders come from, the setting's, /etc/nix/machines. */
async function pickMachinesFile(ctx: Ctx): Promise<string | undefined> {
  const listing = await ctx.listBuilders();
  const configured = vscode.workspace.getConfiguration('nixBuilders').get<string[]>('machinesFiles', []);
  const files = unique([...listing.builders.flatMap((b) => (b.source.path ? [b.source.path] : [])), ...configured, '/etc/nix/machines']);
  const picked = await vscode.window.showQuickPick(
    [...files.map((f) => ({ label: f })), { label: 'Another file…' }],
    { title: 'Add a builder', placeHolder: 'Which machines file?' },
  );
  if (!picked) return undefined;
  if (picked.label !== 'Another file…') return picked.label;
  const uri = await vscode.window.showSaveDialog({ title: 'Machines file' });
  return uri?.fsPath;
}

const fromFile = (b: BuilderInfo): b is BuilderInfo & { source: { path: string; line: number; column: number; text: string } } =>
  b.source.path !== undefined && b.source.line !== undefined && b.source.column !== undefined && b.source.text !== undefined;

function notInAFile(b: BuilderInfo): void {
  void vscode.window.showWarningMessage(`${b.name} comes from ${b.source.label}, not from a machines file: change it there.`);
}

export async function addBuilder(ctx: Ctx): Promise<void> {
  const machine = await askMachine(ctx, undefined);
  if (!machine) return;
  const entry = await machineLine(ctx, machine);
  if (entry === undefined) return;
  const file = await pickMachinesFile(ctx);
  if (!file) return;
  await applyEdit(ctx, file, { kind: 'add', entry }, `Added ${machine.uri}`);
}

export async function editBuilder(ctx: Ctx, builder: BuilderInfo): Promise<void> {
  if (!fromFile(builder)) return notInAFile(builder);
  const machine = await askMachine(ctx, builder);
  if (!machine) return;
  const entry = await machineLine(ctx, machine);
  if (entry === undefined) return;
  const { path: file, line, column, text: expected } = builder.source;
  await applyEdit(ctx, file, { kind: 'replace', line, column, expected, entry }, `Updated ${machine.uri}`);
}

export async function removeBuilder(ctx: Ctx, builder: BuilderInfo): Promise<void> {
  if (!fromFile(builder)) return notInAFile(builder);
  const { path: file, line, column, text: expected } = builder.source;
  const sure = await vscode.window.showWarningMessage(`Remove ${builder.uri} from ${file}? A backup is kept as ${file}.bak.`, { modal: true }, 'Remove');
  if (sure !== 'Remove') return;
  await applyEdit(ctx, file, { kind: 'remove', line, column, expected }, `Removed ${builder.uri}`);
}

/** Pin the key the builder presented (after showing its fingerprint) as column 8. Never silent. */
export async function pinHostKey(ctx: Ctx, builder: BuilderInfo, health: BuilderHealth | undefined): Promise<void> {
  if (!fromFile(builder)) return notInAFile(builder);
  const key = health?.presentedHostKey;
  if (!key) {
    void vscode.window.showInformationMessage(`Check ${builder.name} first: its host key is known once the doctor has connected.`);
    return;
  }
  const changed = builder.publicHostKey !== undefined && builder.publicHostKey !== key.machinesColumn;
  const answer = await vscode.window.showWarningMessage(
    changed
      ? `${builder.name} presents a DIFFERENT host key than the one pinned: ${key.type} ${key.fingerprint}. This happens when the builder was reinstalled — or when someone intercepts the connection. Pin the new key only if you verified it on the builder.`
      : `Pin ${builder.name}'s host key ${key.type} ${key.fingerprint}? Verify it on the builder with ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub.`,
    { modal: true },
    'Pin This Key',
  );
  if (answer !== 'Pin This Key') return;
  const { uri, systems, sshKey, maxJobs, speedFactor, supportedFeatures, mandatoryFeatures } = builder;
  const entry = await machineLine(ctx, { uri, systems, sshKey, maxJobs, speedFactor, supportedFeatures, mandatoryFeatures, publicHostKey: key.machinesColumn });
  if (entry === undefined) return;
  const { path: file, line, column, text: expected } = builder.source;
  await applyEdit(ctx, file, { kind: 'replace', line, column, expected, entry }, `Pinned the host key of ${builder.name}`);
}
