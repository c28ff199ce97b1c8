// Predictions when the local nix-daemon does not trust this user and so ignores `--builders`: the
// diagnostics, the scheduling preview (hover, Which Builder) and the plan's placement count only
// the daemon's own builders and say why the others are left out. The fact comes from the doctor's
// local check (decideLocal, the pure half of checkLocal).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideLocal } from '../../language-server/builders/doctor';
import { buildersIgnoredBy, splitBuilders } from '../../language-server/builders/ignoredBuilders';
import { previewSchedule } from '../../language-server/builders/schedule';
import { diagnoseDerivations, whyNothingBuilds } from '../../language-server/eval/diagnose';
import type { WalkerOutput } from '../../language-server/eval/walker';
import type { BuilderInfo, CheckResult } from '../../language-server/protocol';

const store = { writable: false, socketExists: true, socket: '/nix/var/nix/daemon-socket/socket', stateDir: '/nix/var/nix', nixos: false };
const checked = (trustedUsers: string): CheckResult<'local-daemon'> => ({
  id: 'local-daemon',
  durationMs: 0,
  ...decideLocal({ host: 'this machine', user: 'alice', uid: 1000, groups: ['alice'], nixRemote: '', store, config: new Map([['trusted-users', trustedUsers]]) }),
});
const untrusted = buildersIgnoredBy(checked('root'));

const builder = (name: string, systems: string[], label: string, features: string[] = []): BuilderInfo => ({
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
  source: { label },
});
// b1 comes from the system's machines file (the daemon reads it), b2 from the extension's settings.
const b1 = builder('b1', ['x86_64-linux'], '/etc/nix/machines', ['kvm']);
const b2 = builder('b2', ['aarch64-linux'], 'machines file /home/alice/machines');
const local = { system: 'x86_64-linux', extraPlatforms: [], systemFeatures: ['big-parallel'], maxJobs: 1 };
const arm = { system: 'aarch64-linux', requiredSystemFeatures: [] as string[] };

test('the local check says when the daemon ignores --builders; trusted or daemon-less, nothing is ignored', () => {
  assert.equal(untrusted?.why, 'the local nix-daemon does not trust alice: it silently ignores --builders and uses only its own `builders` setting (nix.conf, /etc/nix/machines)');
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
    /\nb2 could build it, but the local nix-daemon does not trust alice: it silently ignores --builders and uses only its own `builders` setting \(nix\.conf, \/etc\/nix\/machines\)\.\nFix: add `trusted-users = root alice` to \/etc\/nix\/nix\.conf and restart nix-daemon\.$/,
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
  assert.match(p.summary, / \(b2 would fit, but the local nix-daemon does not trust alice: it silently ignores --builders and uses only its own `builders` setting \(nix\.conf, \/etc\/nix\/machines\)\)$/);
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
