// Predictions when the local nix-daemon does not trust this user and so ignores `--builders`: the
// diagnostics, the scheduling preview (hover, Which Builder) and the plan's placement count only
// the daemon's own builders and say why the others are left out. The fact comes from the doctor's
// local check (decideLocal, the pure half of checkLocal).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Connection } from 'vscode-languageserver/node';
import { decideLocal } from '../../language-server/builders/doctor';
import { Builds } from '../../language-server/builds/builds';
import { Nix } from '../../language-server/nix/nix';
import type { ProcessRunner, RunRequest, RunResult } from '../../language-server/nix/runner';
import { collectBuilders } from '../../language-server/builders/collect';
import { buildersIgnoredBy, passedWithBuilders, splitBuilders } from '../../language-server/builders/ignoredBuilders';
import { previewSchedule } from '../../language-server/builders/schedule';
import { diagnoseDerivations, whyNothingBuilds } from '../../language-server/eval/diagnose';
import type { WalkerOutput } from '../../language-server/eval/walker';
import type { BuilderInfo, BuilderSourceKind, CheckResult } from '../../language-server/protocol';

const store = { writable: false, socketExists: true, socket: '/nix/var/nix/daemon-socket/socket', stateDir: '/nix/var/nix', nixos: false };
const checked = (trustedUsers: string): CheckResult<'local-daemon'> => ({
  id: 'local-daemon',
  durationMs: 0,
  ...decideLocal({ host: 'this machine', user: 'alice', uid: 1000, groups: ['alice'], nixRemote: '', store, config: new Map([['trusted-users', trustedUsers]]) }),
});
const untrusted = buildersIgnoredBy(checked('root'));

const builder = (name: string, systems: string[], label: string, kind: BuilderSourceKind, features: string[] = []): BuilderInfo => ({
  id: `${label}#${name}`,
  name,
  uri: `ssh://${name}`,
  systems,
  sshKey: '',
  maxJobs: 1,
  speedFactor: 1,
  supportedFeatures: features,
  mandatoryFeatures: [],
  publicHostKey: '',
  source: { label, provenance: { kind } },
});
// b1 comes from the system's machines file (the daemon reads it), b2 from the extension's settings.
const b1 = builder('b1', ['x86_64-linux'], '/etc/nix/machines', 'system-machines', ['kvm']);
const b2 = builder('b2', ['aarch64-linux'], 'machines file /home/alice/machines', 'setting-machines-files');
const local = { system: 'x86_64-linux', extraPlatforms: [], systemFeatures: ['big-parallel'], maxJobs: 1 };
const arm = { system: 'aarch64-linux', requiredSystemFeatures: [] as string[] };

test('the local check says when the daemon ignores --builders; trusted or daemon-less, nothing is ignored', () => {
  assert.equal(untrusted?.why, 'the local nix-daemon does not trust alice: it silently ignores --builders and uses only its own `builders` setting (the system nix.conf, /etc/nix/machines)');
  assert.equal(untrusted?.fix, 'add `trusted-users = root alice` to /etc/nix/nix.conf and restart nix-daemon');
  assert.equal(buildersIgnoredBy(checked('root alice')), undefined);
  assert.equal(buildersIgnoredBy({ id: 'local-daemon', durationMs: 0, ...decideLocal({ host: 'this machine', user: 'root', uid: 0, groups: [], nixRemote: '', store: { ...store, writable: true } }) }), undefined);
  assert.deepEqual(splitBuilders([b1, b2], untrusted), { used: [b1], ignored: [b2] });
  assert.deepEqual(splitBuilders([b1, b2], undefined), { used: [b1, b2], ignored: [] });
});

test('diagnostics: "builds on b2" becomes "nothing builds it", naming b2, why it is not used, and the fix', () => {
  const text = '{\n  arm = derivation { };\n}\n';
  const output: WalkerOutput = {
    kind: 'attrs',
    items: [{ path: ['arm'], pos: { line: 2, column: 3, inDoc: true, file: null }, name: 'arm', drvPath: '/nix/store/x-arm.drv', ...arm, preferLocalBuild: false, outputs: ['out'] }],
  };
  const trusted = diagnoseDerivations(text, output, local, [b1, b2]);
  assert.equal(trusted[0]?.code, 'remote-only');
  assert.match(trusted[0]?.message ?? '', /^builds on b2 /);

  const { used, ignored } = splitBuilders([b1, b2], untrusted);
  const [d] = diagnoseDerivations(text, output, local, used, untrusted && { machines: ignored, ignored: untrusted });
  assert.equal(d?.code, 'no-builder-system');
  assert.equal(d?.severity, 'error');
  assert.deepEqual([d?.line, d?.column], [1, 2]);
  assert.match(d?.message ?? '', /^requires aarch64-linux: no builder provides it \(local x86_64-linux \{big-parallel\}; builders: b1 x86_64-linux \{kvm\}\)/);
  assert.match(
    d?.message ?? '',
    /\nb2 could build it, but the local nix-daemon does not trust alice: it silently ignores --builders and uses only its own `builders` setting \(the system nix\.conf, \/etc\/nix\/machines\)\.\nFix: add `trusted-users = root alice` to \/etc\/nix\/nix\.conf and restart nix-daemon\.$/,
  );
  // The plan's "why nothing builds it" says the same.
  assert.equal(whyNothingBuilds(arm, local, used, untrusted && { machines: ignored, ignored: untrusted }), d?.message);
});

test('scheduling preview (hover, plan): the ignored builder is never chosen, and the summary says why', () => {
  const { used, ignored } = splitBuilders([b1, b2], untrusted);
  const notUsed = untrusted && { builders: ignored, because: untrusted };
  const trusted = previewSchedule({ ...arm, local, builders: [b1, b2] });
  assert.equal(trusted.chosen?.name, 'b2');

  const p = previewSchedule({ ...arm, local, builders: used, notUsed });
  assert.equal(p.verdict, 'none');
  assert.equal(p.chosen, undefined);
  assert.match(p.summary, /^nothing can build it: b1 lacks system aarch64-linux/);
  assert.match(p.summary, / \(b2 would fit, but the local nix-daemon does not trust alice: it silently ignores --builders and uses only its own `builders` setting \(the system nix\.conf, \/etc\/nix\/machines\)\)$/);
  const b2Candidate = p.candidates.find((c) => c.name === 'b2');
  assert.equal(b2Candidate?.eligible, false);
  assert.match(b2Candidate?.reason ?? '', /^not used: the local nix-daemon does not trust alice/);

  // What the daemon's own builders can take still goes there; the note only where it matters.
  const vm = previewSchedule({ system: 'x86_64-linux', requiredSystemFeatures: ['kvm'], local, builders: used, notUsed });
  assert.equal(vm.chosen?.name, 'b1');
  assert.doesNotMatch(vm.summary, /would fit/);
  assert.match(vm.candidates.find((c) => c.name === 'b2')?.reason ?? '', /^lacks system x86_64-linux.*; not used: /);
  // No builders of the daemon's own at all.
  const none = previewSchedule({ ...arm, local, builders: [], notUsed });
  assert.match(none.summary, /the nix-daemon has no builders of its own/);
});

// The decision by provenance: which configuration named each builder (following `@file`s and
// includes), and the daemon's own list when the user's nix.conf or NIX_CONFIG replaces `builders`.
const FILES: Record<string, string> = {
  '/etc/nix/machines': 'ssh://a1 x86_64-linux - 1 1 kvm\n@more\n',
  '/etc/nix/more': 'ssh://a2 riscv64-linux\n',
  '/home/alice/B': 'ssh://b1 aarch64-linux\n',
};
const readFiles = async (f: string) => {
  const t = FILES[f];
  if (t === undefined) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
  return t;
};
const names = (bs: readonly BuilderInfo[]) => bs.map((b) => b.name);
const noSettings = { machinesFiles: [], builders: [] };

test('provenance: a file included from /etc/nix/machines is the daemon\'s; the extension\'s settings are not', async () => {
  const { builders } = await collectBuilders('@/etc/nix/machines', { machinesFiles: ['/home/alice/B'], builders: ['ssh://s1 aarch64-linux'] }, readFiles);
  assert.deepEqual(
    builders.map((b) => [b.name, b.source.label, b.source.provenance]),
    [
      ['a1', '/etc/nix/machines', { kind: 'system-machines' }],
      ['a2', '/etc/nix/more (included)', { kind: 'system-machines' }],
      ['b1', 'machines file /home/alice/B', { kind: 'setting-machines-files' }],
      ['s1', 'setting nixBuilders.builders', { kind: 'setting-builders' }],
    ],
  );
  const split = splitBuilders(builders, untrusted);
  assert.deepEqual([names(split.used), names(split.ignored)], [['a1', 'a2'], ['b1', 's1']]);
  assert.deepEqual(names(splitBuilders(builders, undefined).used), ['a1', 'a2', 'b1', 's1']);
});

test("provenance: the user's nix.conf replaces `builders`: an untrusted daemon uses its own (and what they include), a trusted one the user's", async () => {
  const { builders } = await collectBuilders({ client: '@/home/alice/B', clientKind: 'nix-conf-user', daemon: '@/etc/nix/machines' }, noSettings, readFiles);
  assert.deepEqual(
    builders.map((b) => [b.name, b.source.label, b.source.provenance]),
    [
      ['a1', '/etc/nix/machines', { kind: 'system-machines', replaced: true }],
      ['a2', '/etc/nix/more (included)', { kind: 'system-machines', replaced: true }],
      ['b1', 'user nix.conf builders @/home/alice/B', { kind: 'nix-conf-user' }],
    ],
  );
  const split = splitBuilders(builders, untrusted);
  assert.deepEqual([names(split.used), names(split.ignored)], [['a1', 'a2'], ['b1']]);
  // Trusted, the user's replace the daemon's: those are not passed with --builders, nor predicted.
  assert.deepEqual(splitBuilders(builders, undefined), { used: builders.filter((b) => b.name === 'b1'), ignored: [] });
  assert.deepEqual(names(builders.filter(passedWithBuilders)), ['b1']);

  // The prediction names the daemon's builder and says the user's is ignored.
  const arm = previewSchedule({ system: 'aarch64-linux', requiredSystemFeatures: [], local, builders: split.used, notUsed: untrusted && { builders: split.ignored, because: untrusted } });
  assert.match(arm.summary, /^nothing can build it: a1 lacks system aarch64-linux.* \(b1 would fit, but the local nix-daemon does not trust alice/);
  const vm = previewSchedule({ system: 'x86_64-linux', requiredSystemFeatures: ['kvm'], local, builders: split.used });
  assert.equal(vm.chosen?.name, 'a1');
});

test('provenance: NIX_CONFIG inline builders are ignored too; a daemon file the client also names is passed', async () => {
  const env = await collectBuilders({ client: 'ssh://e1 aarch64-linux', clientKind: 'nix-config-env', daemon: '@/etc/nix/machines' }, noSettings, readFiles);
  assert.deepEqual(env.builders.map((b) => [b.name, b.source.label, b.source.provenance?.kind]).at(-1), ['e1', 'NIX_CONFIG builders', 'nix-config-env']);
  assert.deepEqual(names(splitBuilders(env.builders, untrusted).ignored), ['e1']);

  // The user's `builders` names /etc/nix/machines too, or the setting does: its entries are the
  // daemon's and passed, with the ids they have without the override.
  for (const [client, machinesFiles] of [['@/etc/nix/machines ; @/home/alice/B', []], ['@/home/alice/B', ['/etc/nix/machines']]] as const) {
    const both = await collectBuilders({ client, clientKind: 'nix-conf-user', daemon: '@/etc/nix/machines' }, { machinesFiles, builders: [] }, readFiles);
    assert.deepEqual(both.builders.map((b) => [b.id, b.source.provenance]), [
      ['/etc/nix/machines ssh://a1', { kind: 'system-machines' }],
      ['/etc/nix/more (included) ssh://a2', { kind: 'system-machines' }],
      ['user nix.conf builders @/home/alice/B ssh://b1', { kind: 'nix-conf-user' }],
    ], client);
    assert.deepEqual(names(both.builders.filter(passedWithBuilders)), ['a1', 'a2', 'b1']);
    assert.deepEqual(names(splitBuilders(both.builders, untrusted).used), ['a1', 'a2']);
  }
});

test("a build passes with --builders the user's builders, not the daemon's own they replace", async () => {
  const { builders } = await collectBuilders({ client: '@/home/alice/B', clientKind: 'nix-conf-user', daemon: '@/etc/nix/machines' }, noSettings, readFiles);
  const asked: string[][] = [];
  const runner: ProcessRunner = {
    run(req: RunRequest): Promise<RunResult> {
      asked.push([...req.args]);
      const out = { command: [req.file, ...req.args], stderr: '', durationMs: 1 };
      return Promise.resolve({ ...out, kind: 'ok', stdout: req.args.includes('--version') ? 'nix (Nix) 2.8.0\n' : '' });
    },
  };
  const builds = new Builds({} as Connection, new Nix(runner, { binDir: '', env: {} }));
  const drvPath = '/nix/store/00000000000000000000000000000000-x.drv';
  await builds.plan({ drvPaths: [drvPath] }, [{ attrPath: [], drvPath, name: 'x', system: 'x86_64-linux', requiredSystemFeatures: [], preferLocalBuild: false, outputs: ['out'] }], builders, { remoteOnly: false }, {
    place: () => ({ verdict: 'local', summary: '' }),
    substituters: [],
  });
  const dryRun = asked.find((a) => a.includes('--dry-run')) ?? [];
  assert.equal(dryRun[dryRun.indexOf('--builders') + 1], 'ssh://b1 aarch64-linux - 1 1');
});
