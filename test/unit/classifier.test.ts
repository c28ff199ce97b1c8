// The error classifier against stderr recorded from real Nix 2.8.0 (test/fixtures/nix-2.8.0: see
// its README.md for the command behind each file; SSH failures were recorded against the builder
// lab), against messages of Nix 2.19/2.20 copied from Nix's own release notes
// (test/fixtures/nix-2.19, nix-2.20), and — only where no verbatim text of another version could be
// found — against text assembled from the format strings in Nix's source, each labelled with the
// file it follows. Every test names what it reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  classify,
  classifyFirst,
  classifyLogEvents,
  mostImportant,
  type NixProblem,
  type ProblemKind,
  type ProblemOfKind,
} from '../../language-server/nix/classifier';
import { parseLog, stripAnsi } from '../../language-server/nix/logParser';

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const read = (version: string, name: string) => readFileSync(path.join(FIXTURES, version, name), 'utf8');
const v28 = (name: string) => read('nix-2.8.0', name);

/** The only problem of that kind (asserts there is exactly one). */
function only<K extends ProblemKind>(problems: NixProblem[], kind: K): ProblemOfKind<K> {
  const found = problems.filter((p): p is ProblemOfKind<K> => p.kind === kind);
  assert.equal(found.length, 1, `one ${kind} in [${problems.map((p) => p.kind).join(', ')}]`);
  return found[0] as ProblemOfKind<K>;
}

const kinds = (problems: NixProblem[]) => problems.map((p) => p.kind);

/** Common checks: one-line message in Nix's words, a cause and a fix. */
function wellFormed(p: NixProblem): void {
  assert.ok(p.message.length > 0, 'message');
  assert.ok(!p.message.includes('\n'), `one line: ${p.message}`);
  assert.ok(!p.message.startsWith('error:'), 'without the error: prefix');
  assert.ok(!/\u001b/.test(p.message + p.text), 'no ANSI');
  assert.ok(p.cause.length > 20, `cause: ${p.cause}`);
  assert.ok(p.fix.length > 20, `fix: ${p.fix}`);
  assert.ok(p.text.length > 0);
}

// ---------------------------------------------------------------------------------------------
// build-users

test('build-users (2.8): build-users-group-missing.stderr.txt, .jsonl, …-nix-build.stderr.txt — no nixbld group here', () => {
  for (const name of ['build-users-group-missing.stderr.txt', 'build-users-group-missing.jsonl', 'build-users-group-missing-nix-build.stderr.txt']) {
    const problems = classify(v28(name));
    assert.deepEqual(kinds(problems), ['build-users'], name);
    const p = only(problems, 'build-users');
    wellFormed(p);
    assert.equal(p.message, "the group 'nixbld' specified in 'build-users-group' does not exist", name);
    assert.deepEqual(p.details, { group: 'nixbld', reason: 'group-missing' }, name);
    assert.match(p.cause, /this machine/);
    assert.match(p.cause, /Debian's nix-bin alone creates neither the group/);
    assert.match(p.fix, /`nix-setup-systemd`/);
    assert.match(p.fix, /`build-users-group =` in \/etc\/nix\/nix\.conf/);
  }
});

test('build-users (2.8): build-users-group-no-members.stderr.txt — the group exists without members', () => {
  const p = only(classify(v28('build-users-group-no-members.stderr.txt')), 'build-users');
  wellFormed(p);
  assert.equal(p.message, "the build users group 'nogroup' has no members");
  assert.deepEqual(p.details, { group: 'nogroup', reason: 'no-members' });
  assert.match(p.cause, /exists but has no members/);
  assert.match(p.fix, /add build users to 'nogroup'/);
  assert.match(p.fix, /`build-users-group =`/);
});

test('build-users (2.8) on a builder: build-users-group-missing-remote.stderr.txt, …-ssh-ng.stderr.txt, …-remote.jsonl', () => {
  for (const [name, uri] of [
    ['build-users-group-missing-remote.stderr.txt', 'ssh://b1'],
    ['build-users-group-missing-remote-ssh-ng.stderr.txt', 'ssh-ng://b1'],
    ['build-users-group-missing-remote.jsonl', 'ssh://b1'],
  ] as const) {
    const problems = classify(v28(name));
    // The hook's "builder for … failed with exit code 1" after it is the same failure.
    assert.deepEqual(kinds(problems), ['build-users'], name);
    const p = only(problems, 'build-users');
    wellFormed(p);
    assert.match(p.message, new RegExp(`^build of '/nix/store/\\S+-no-build-users(-ng)?\\.drv' on '${uri}' failed: error: the group 'nixbld'`), name);
    assert.equal(p.details.storeUri, uri, name);
    assert.equal(p.details.group, 'nixbld');
    assert.match(p.details.drvPath ?? '', /^\/nix\/store\/[a-z0-9]{32}-no-build-users(-ng)?\.drv$/, name);
    assert.match(p.cause, new RegExp(`on the builder ${uri}`));
    assert.match(p.fix, /on the builder/);
    assert.match(p.text, /builder for '.*' failed with exit code 1/, `${name}: the follow-on line is kept`);
  }
});

test('build-users: only the warning (an evaluation, build-users-group-missing-eval.stderr.txt) is no problem', () => {
  assert.deepEqual(classify(v28('build-users-group-missing-eval.stderr.txt')), []);
});

test('build-users (newer Nix): the message inside a builder failure\'s log tail, assembled from the format strings', () => {
  // src/libstore/unix/user-lock.cc: "the group '%1%' specified in 'build-users-group' does not exist";
  // the hook's failure as fixupBuilderFailureErrorMessage prints it (derivation-building-goal.cc).
  const text = [
    "error: Cannot build '/nix/store/1qjb35rc609b23cqwvcv758ndsklbapg-hello.drv'.",
    '       Reason: builder failed with exit code 1.',
    '       Last 1 log lines:',
    "       > error: the group 'nixbld' specified in 'build-users-group' does not exist",
  ].join('\n');
  const p = only(classify(text), 'build-users');
  assert.equal(p.details.drvPath, '/nix/store/1qjb35rc609b23cqwvcv758ndsklbapg-hello.drv');
  assert.equal(p.details.reason, 'group-missing');
  assert.equal(mostImportant(classify(`${text}\nerror: build of '/nix/store/x-top.drv' failed\n`))?.kind, 'build-users');
});

// ---------------------------------------------------------------------------------------------
// system-mismatch

test('system-mismatch (2.8): system-mismatch.stderr.txt — an aarch64-linux derivation on x86_64-linux', () => {
  const p = only(classify(v28('system-mismatch.stderr.txt')), 'system-mismatch');
  wellFormed(p);
  assert.match(p.message, /^a 'aarch64-linux' with features \{\} is required to build '\/nix\/store\/\S+-hello-arm\.drv', but I am a 'x86_64-linux' with features \{benchmark, big-parallel, kvm, nixos-test\}$/);
  assert.match(p.details.drvPath, /^\/nix\/store\/[a-z0-9]{32}-hello-arm\.drv$/);
  assert.equal(p.details.requiredSystem, 'aarch64-linux');
  assert.deepEqual(p.details.requiredFeatures, []);
  assert.equal(p.details.localSystem, 'x86_64-linux');
  assert.deepEqual(p.details.localFeatures, ['benchmark', 'big-parallel', 'kvm', 'nixos-test']);
  assert.deepEqual(p.details.missingFeatures, []);
  assert.equal(p.details.systemDiffers, true);
  assert.match(p.cause, /an aarch64-linux machine \(this one is x86_64-linux\)/);
  assert.match(p.fix, /builder for aarch64-linux/);
  assert.match(p.fix, /extra-platforms = aarch64-linux/);
});

test('system-mismatch (2.8): system-mismatch-features.stderr.txt — a feature this machine lacks', () => {
  const p = only(classify(v28('system-mismatch-features.stderr.txt')), 'system-mismatch');
  assert.deepEqual(p.details.requiredFeatures, ['big-parallel', 'gpu']);
  assert.deepEqual(p.details.missingFeatures, ['gpu']);
  assert.equal(p.details.systemDiffers, false);
  assert.match(p.cause, /feature gpu/);
  assert.match(p.fix, /extra-system-features = gpu/);
  assert.match(p.fix, /column 6/);
});

test('system-mismatch after a machine table: no-machine-then-local.stderr.txt — the builders are attached', () => {
  const problems = classify(v28('no-machine-then-local.stderr.txt'));
  assert.deepEqual(kinds(problems), ['no-machine', 'system-mismatch']);
  const p = only(problems, 'system-mismatch');
  assert.equal(p.details.machines?.length, 2);
  assert.match(p.cause, /none of the 2 configured builders fits \(it lacks gpu; /);
  assert.equal(classifyFirst(v28('no-machine-then-local.stderr.txt'))?.kind, 'system-mismatch');
});

test('system-mismatch (newer Nix): text assembled from the format string, both the full and the short form', () => {
  // Assembled from NixOS/nix src/libstore/build/derivation-building-goal.cc
  // (commit 00598358d8e730b4eaa913b53ee0de318535007e): fmt("Cannot build '%s'.\nReason: required
  // system or feature not available\nRequired system: '%s' with features {%s}\nCurrent system: '%s'
  // with features {%s}"), printed by Nix's error logger with continuation lines indented 7 spaces.
  const drv = '/nix/store/4cb3672fgcr73qpwc8ig47mad3jkqhgd-hello-phases.drv';
  const newer = [
    `error: Cannot build '${drv}'.`,
    '       Reason: required system or feature not available',
    "       Required system: 'aarch64-linux' with features {kvm}",
    "       Current system: 'x86_64-linux' with features {benchmark, big-parallel, nixos-test}",
    '',
  ].join('\n');
  const p = only(classify(newer), 'system-mismatch');
  wellFormed(p);
  assert.equal(p.message, `Cannot build '${drv}'. Reason: required system or feature not available`);
  assert.deepEqual(
    { ...p.details },
    {
      drvPath: drv,
      requiredSystem: 'aarch64-linux',
      requiredFeatures: ['kvm'],
      localSystem: 'x86_64-linux',
      localFeatures: ['benchmark', 'big-parallel', 'nixos-test'],
      missingFeatures: ['kvm'],
      systemDiffers: true,
    },
  );
  // The one-line form quoted in the product brief, and the colours a terminal shows.
  const oneLine = `error: Cannot build '${drv}'. Reason: required system or feature not available`;
  assert.equal(only(classify(oneLine), 'system-mismatch').details.drvPath, drv);
  const coloured = `\u001b[31;1merror:\u001b[0m Cannot build '\u001b[35;1m${drv}\u001b[0m'.\n       Reason: \u001b[31;1mrequired system or feature not available\u001b[0m\n       Required system: '\u001b[35;1mx86_64-linux\u001b[0m' with features {gpu}\n       Current system: '\u001b[35;1mx86_64-linux\u001b[0m' with features {kvm}`;
  const c = only(classify(coloured), 'system-mismatch');
  assert.deepEqual(c.details.missingFeatures, ['gpu']);
  assert.equal(c.details.systemDiffers, false);
});

// ---------------------------------------------------------------------------------------------
// no-machine

test('no-machine (2.8): no-machine.stderr.txt — the table, the trailing error, why each builder does not fit', () => {
  const problems = classify(v28('no-machine.stderr.txt'));
  const p = only(problems, 'no-machine');
  assert.equal(problems.length, 1, 'the block and the trailing error are one problem');
  wellFormed(p);
  assert.equal(p.message, 'unable to start any build; remote machines may not have all required system features.');
  assert.match(p.text, /^Failed to find a machine for remote build!\n/);
  assert.match(p.details.drvPath ?? '', /^\/nix\/store\/[a-z0-9]{32}-needs-gpu\.drv$/, 'the full path, from "this derivation will be built:"');
  assert.equal(p.details.requiredSystem, 'x86_64-linux');
  assert.deepEqual(p.details.requiredFeatures, ['big-parallel', 'gpu']);
  assert.equal(p.details.reason, 'no-fitting-machine');
  assert.deepEqual(
    p.details.machines.map(({ systems, maxJobs, supportedFeatures, mandatoryFeatures, fits }) => ({ systems, maxJobs, supportedFeatures, mandatoryFeatures, fits })),
    [
      { systems: ['x86_64-linux'], maxJobs: 2, supportedFeatures: ['big-parallel'], mandatoryFeatures: [], fits: false },
      { systems: ['aarch64-linux', 'armv7l-linux'], maxJobs: 1, supportedFeatures: [], mandatoryFeatures: [], fits: false },
    ],
  );
  assert.equal(p.details.machines[0]?.mismatch, 'it lacks gpu');
  assert.match(p.details.machines[1]?.mismatch ?? '', /^it builds aarch64-linux, armv7l-linux, not x86_64-linux/);
  assert.match(p.cause, /None of the 2 configured builders accepts a 'x86_64-linux' derivation with features \{big-parallel, gpu\}/);
});

test('no-machine (2.8, internal-json): no-machine.jsonl — the same, the colours separating the lists', () => {
  const p = only(classify(v28('no-machine.jsonl')), 'no-machine');
  assert.deepEqual(p.details.requiredFeatures, ['big-parallel', 'gpu']);
  assert.deepEqual(
    p.details.machines.map((m) => [m.systems, m.supportedFeatures, m.mandatoryFeatures, m.featuresAmbiguous]),
    [
      [['x86_64-linux'], ['big-parallel'], [], undefined],
      [['aarch64-linux', 'armv7l-linux'], [], [], undefined],
    ],
  );
});

test('no-machine (2.8): 2.8 runs both feature lists together; colours split them, plain text can only guess', () => {
  // Recorded lines of the lab builders have a trailing empty list (remote-command-not-found-build.stderr.txt):
  //   (x86_64-linux, 1, benchmark, big-parallel, nixos-test, )
  const recorded = classify(v28('remote-command-not-found-build.stderr.txt'));
  const m = only(recorded, 'no-machine').details.machines[0];
  assert.deepEqual([m?.supportedFeatures, m?.mandatoryFeatures, m?.featuresAmbiguous], [['benchmark', 'big-parallel', 'nixos-test'], [], undefined]);
  // Assembled from 2.8's format (src/build-remote/build-remote.cc in 2.8: "(%s, %s, %s, %s)" with
  // comma-joined lists) for a builder with both lists non-empty: colours as 2.8 prints them to JSON.
  const table = (line: string) =>
    ['Failed to find a machine for remote build!', 'derivation: abc-x.drv', 'required (system, features): (x86_64-linux, kvm)', '1 available machines:', '(systems, maxjobs, supportedFeatures, mandatoryFeatures)', line].join('\n');
  const coloured = classify(table('(\u001b[35;1mx86_64-linux\u001b[0m, \u001b[35;1m4\u001b[0m, \u001b[35;1mbig-parallel, kvm\u001b[0m, \u001b[35;1mkvm\u001b[0m)'));
  const c = only(coloured, 'no-machine').details.machines[0];
  assert.deepEqual([c?.supportedFeatures, c?.mandatoryFeatures, c?.featuresAmbiguous, c?.fits], [['big-parallel', 'kvm'], ['kvm'], undefined, true]);
  const plain = only(classify(table('(x86_64-linux, 4, big-parallel, kvm, kvm)')), 'no-machine').details.machines[0];
  assert.equal(plain?.featuresAmbiguous, true);
});

test('no-machine (newer Nix): the bracketed table, text assembled from the format string', () => {
  // Assembled from NixOS/nix src/build-remote/build-remote.cc (commit
  // 01232358ffd78600d170ca5c1526a7031f6f2762): "required (system, features): (%s, [%s])" and one
  // "([%s], %s, [%s], [%s])" per machine — the form quoted in the product brief.
  const text = [
    'Failed to find a machine for remote build!',
    'derivation: 0b7a23h455cfsrqnid1xwc6786hvfzpw-vm-test.drv',
    'required (system, features): (x86_64-linux, [kvm])',
    '2 available machines:',
    '(systems, maxjobs, supportedFeatures, mandatoryFeatures)',
    '([x86_64-linux], 1, [], [])',
    '([aarch64-linux, x86_64-linux], 4, [big-parallel, kvm], [benchmark])',
    "error: unable to start any build; remote machines may not have all required system features.",
    '       https://nixos.org/manual/nix/stable/advanced-topics/distributed-builds.html',
  ].join('\n');
  const p = only(classify(text), 'no-machine');
  assert.equal(p.details.drvPath, '0b7a23h455cfsrqnid1xwc6786hvfzpw-vm-test.drv', 'only the base name when no full path was printed');
  assert.deepEqual(p.details.requiredFeatures, ['kvm']);
  assert.deepEqual(
    p.details.machines.map((m) => [m.systems, m.maxJobs, m.supportedFeatures, m.mandatoryFeatures, m.fits]),
    [
      [['x86_64-linux'], 1, [], [], false],
      [['aarch64-linux', 'x86_64-linux'], 4, ['big-parallel', 'kvm'], ['benchmark'], false],
    ],
  );
  assert.equal(p.details.machines[0]?.mismatch, 'it lacks kvm');
  assert.equal(p.details.machines[1]?.mismatch, 'it only takes derivations that require benchmark');
});

test('no-machine because the fitting builder is unreachable: connection-refused-build.stderr.txt', () => {
  const problems = classify(v28('connection-refused-build.stderr.txt'));
  assert.deepEqual(kinds(problems), ['cannot-connect', 'no-machine']);
  const p = only(problems, 'no-machine');
  assert.equal(p.details.reason, 'builders-unreachable');
  assert.deepEqual(p.details.unreachable, ['ssh://b1']);
  assert.equal(p.details.machines[0]?.fits, true);
  assert.match(p.cause, /could not connect to it \(ssh:\/\/b1\)/);
  assert.equal(classifyFirst(v28('connection-refused-build.stderr.txt'))?.kind, 'cannot-connect', 'the root cause comes first');
});

test('no-machine with local builds off and no builder: max-jobs-zero.stderr.txt', () => {
  const p = only(classify(v28('max-jobs-zero.stderr.txt')), 'no-machine');
  wellFormed(p);
  assert.equal(p.details.reason, 'max-jobs-zero');
  assert.match(p.message, /either increase '--max-jobs' or enable remote builds/);
});

test('the trailing "unable to start any build" alone is still a no-machine problem (2.8 wording)', () => {
  // The last two lines of no-machine.stderr.txt, as when the table went to a log level not shown.
  const tail = v28('no-machine.stderr.txt').split('\n').slice(-3).join('\n');
  assert.match(tail, /^error: unable to start any build/);
  const p = only(classify(tail), 'no-machine');
  assert.deepEqual(p.details.machines, []);
  wellFormed(p);
});

// ---------------------------------------------------------------------------------------------
// not-privileged, lacks-signature

test('not-privileged (2.8, ssh://): not-privileged-ssh.stderr.txt — untrusted lab user on b3', () => {
  const problems = classify(v28('not-privileged-ssh.stderr.txt'));
  assert.deepEqual(kinds(problems), ['not-privileged'], 'the hook\'s follow-on errors are the same problem');
  const p = only(problems, 'not-privileged');
  wellFormed(p);
  assert.equal(p.message, 'you are not privileged to build input-addressed derivations');
  assert.equal(p.details.wording, 'input-addressed derivations');
  assert.equal(p.details.storeUri, 'ssh://nixremote@b3');
  assert.match(p.details.drvPath ?? '', /-untrusted\.drv$/);
  assert.match(p.fix, /trusted-users = root nixremote/);
  assert.match(p.fix, /restart nix-daemon/);
  assert.match(p.text, /error: unexpected end-of-file/);
  assert.match(p.text, /failed with exit code 1/);
});

test('not-privileged (2.8): not-privileged-ssh-ng.stderr.txt and not-privileged-ssh.jsonl', () => {
  const ng = only(classify(v28('not-privileged-ssh-ng.stderr.txt')), 'not-privileged');
  assert.equal(ng.details.storeUri, 'ssh-ng://nixremote@b3');
  const json = classify(v28('not-privileged-ssh.jsonl'));
  assert.deepEqual(kinds(json), ['not-privileged'], 'in JSON the refusal arrives as a log line of the remote build');
  assert.equal(only(json, 'not-privileged').details.storeUri, 'ssh://nixremote@b3');
});

test('not-privileged: the older wording and the newer report inside a log tail', () => {
  // Older Nix (2.3 and before): the constant Error("you are not privileged to build derivations")
  // of src/nix-daemon/nix-daemon.cc, printed with Nix's "error: " prefix.
  const old = only(classify('error: you are not privileged to build derivations\n'), 'not-privileged');
  assert.equal(old.details.wording, 'derivations');
  wellFormed(old);
  // Newer Nix reports the hook's failure with the remote refusal in the log tail; this block is
  // quoted verbatim in NixOS/nix issue #2789 (comment of 2024-07-01).
  const quoted = [
    "error: builder for '/nix/store/1qjb35rc609b23cqwvcv758ndsklbapg-linux-6.1.78-modules-shrunk.drv' failed with exit code 1;",
    '       last 1 log lines:',
    '       > error: you are not privileged to build input-addressed derivations',
    "       For full logs, run 'nix log /nix/store/1qjb35rc609b23cqwvcv758ndsklbapg-linux-6.1.78-modules-shrunk.drv'.",
  ].join('\n');
  const p = only(classify(quoted), 'not-privileged');
  assert.equal(p.details.drvPath, '/nix/store/1qjb35rc609b23cqwvcv758ndsklbapg-linux-6.1.78-modules-shrunk.drv');
  assert.equal(p.message, 'you are not privileged to build input-addressed derivations');
});

test('lacks-signature (2.8): lacks-signature-ssh.stderr.txt and lacks-signature-ssh-ng.stderr.txt — nix copy to an untrusted user', () => {
  for (const [name, uri] of [
    ['lacks-signature-ssh.stderr.txt', 'ssh://nixremote@b3'],
    ['lacks-signature-ssh-ng.stderr.txt', 'ssh-ng://nixremote@b3'],
  ] as const) {
    const problems = classify(v28(name));
    assert.deepEqual(kinds(problems), ['lacks-signature'], name);
    const p = only(problems, 'lacks-signature');
    wellFormed(p);
    assert.match(p.details.path, /^\/nix\/store\/[a-z0-9]{32}-unsigned-copy$/);
    assert.equal(p.details.storeUri, uri);
    assert.match(p.fix, /trusted-users/);
    assert.match(p.fix, /trusted-public-keys/);
    assert.match(p.fix, /nix store sign/);
  }
});

// ---------------------------------------------------------------------------------------------
// cannot-connect

/** Every recorded connection failure: fixture, expected reason, store URI, host. */
const CONNECT: Array<[string, string, string, string]> = [
  ['connection-refused-ssh.stderr.txt', 'connection-refused', 'ssh://b1', 'b1'],
  ['connection-refused-ssh-ng.stderr.txt', 'connection-refused', 'ssh-ng://b1', 'b1'],
  ['connection-refused-build.stderr.txt', 'connection-refused', 'ssh://b1', 'b1'],
  ['connection-refused-build-ng.stderr.txt', 'connection-refused', 'ssh-ng://b1', 'b1'],
  ['connection-refused-build-json.jsonl', 'connection-refused', 'ssh://b1', 'b1'],
  ['could-not-resolve-ssh.stderr.txt', 'could-not-resolve', 'ssh://nohost', 'nohost'],
  ['could-not-resolve-ssh-ng.stderr.txt', 'could-not-resolve', 'ssh-ng://nohost', 'nohost'],
  ['permission-denied-ssh.stderr.txt', 'permission-denied', 'ssh://b1', 'b1'],
  ['permission-denied-ssh-ng.stderr.txt', 'permission-denied', 'ssh-ng://b1', 'b1'],
  ['permission-denied-build.stderr.txt', 'permission-denied', 'ssh://b1', 'b1'],
  ['host-key-verification-failed-ssh.stderr.txt', 'host-key-verification-failed', 'ssh://b1', 'b1'],
  ['host-key-verification-failed-ssh-ng.stderr.txt', 'host-key-verification-failed', 'ssh-ng://b1', 'b1'],
  ['host-key-verification-failed-build.stderr.txt', 'host-key-verification-failed', 'ssh://b1', 'b1'],
  ['host-key-changed-build.stderr.txt', 'host-key-changed', 'ssh://b1', 'b1'],
  // The URI carried ?base64-ssh-public-host-key=…; Nix names the store without it.
  ['host-key-changed-ssh-ng.stderr.txt', 'host-key-changed', 'ssh-ng://b1', 'b1'],
  ['remote-command-not-found-ssh.stderr.txt', 'remote-command-not-found', 'ssh://nopath@b4', 'nopath@b4'],
  ['remote-command-not-found-ssh-ng.stderr.txt', 'remote-command-not-found', 'ssh-ng://nopath@b4', 'nopath@b4'],
  ['remote-command-not-found-build.stderr.txt', 'remote-command-not-found', 'ssh://nopath@b4', 'nopath@b4'],
  ['remote-command-not-found-build-ssh-ng.stderr.txt', 'remote-command-not-found', 'ssh-ng://nopath@b4', 'nopath@b4'],
];

test('cannot-connect (2.8): every recorded SSH failure gets its sub-cause, store and host', () => {
  for (const [name, reason, uri, host] of CONNECT) {
    const problems = classify(v28(name));
    const p = only(problems, 'cannot-connect');
    wellFormed(p);
    assert.equal(p.details.reason, reason, name);
    assert.equal(p.details.storeUri, uri, name);
    assert.equal(p.details.host, host, name);
    assert.equal(classifyFirst(v28(name))?.kind, 'cannot-connect', name);
    if (/-build/.test(name)) assert.deepEqual(kinds(problems), ['cannot-connect', 'no-machine'], name);
    else assert.deepEqual(kinds(problems), ['cannot-connect'], name);
  }
});

test('cannot-connect messages: Nix\'s line, what ssh said, and the fix for each sub-cause', () => {
  const get = (name: string) => only(classify(v28(name)), 'cannot-connect');

  const refused = get('connection-refused-ssh.stderr.txt');
  assert.equal(refused.message, "cannot connect to 'b1'");
  assert.equal(refused.details.sshMessage, 'ssh: connect to host 127.0.0.1 port 2299: Connection refused');
  assert.match(refused.fix, /sshd/);

  const refusedNg = get('connection-refused-ssh-ng.stderr.txt');
  assert.equal(refusedNg.message, "cannot open connection to remote store 'ssh-ng://b1': error: unexpected end-of-file");

  const build = get('connection-refused-build.stderr.txt');
  assert.equal(build.message, "cannot build on 'ssh://b1': error: cannot connect to 'b1': ssh: connect to host 127.0.0.1 port 2299: Connection refused");
  assert.equal(build.details.sshMessage, 'ssh: connect to host 127.0.0.1 port 2299: Connection refused');

  const denied = get('permission-denied-build.stderr.txt');
  assert.equal(denied.details.sshMessage, 'root@127.0.0.1: Permission denied (publickey).');
  assert.match(denied.fix, /authorized_keys/);

  const unknownKey = get('host-key-verification-failed-ssh.stderr.txt');
  assert.match(unknownKey.details.sshMessage ?? '', /Host key verification failed|No ED25519 host key is known for b1/);
  assert.match(unknownKey.fix, /column 8/);

  const changed = get('host-key-changed-build.stderr.txt');
  assert.equal(changed.message, "cannot build on 'ssh://b1': error: cannot connect to 'b1'", 'the banner is not part of the message');
  assert.match(changed.text, /REMOTE HOST IDENTIFICATION HAS CHANGED/);
  assert.match(changed.text, /Host key verification failed\./);
  assert.match(changed.cause, /different host key/);
  assert.equal(changed.details.sshMessage, 'Host key for b1 has changed and you have requested strict checking.');

  const store = get('remote-command-not-found-ssh.stderr.txt');
  assert.equal(store.details.remoteProgram, 'nix-store');
  assert.equal(store.details.sshMessage, 'bash: line 1: nix-store: command not found');
  assert.match(store.fix, /ssh:\/\/nopath@b4\?remote-program=\/\S+\/nix-store/);

  const daemon = get('remote-command-not-found-build-ssh-ng.stderr.txt');
  assert.equal(daemon.details.remoteProgram, 'nix-daemon');
  assert.match(daemon.fix, /ssh-ng:\/\/nopath@b4\?remote-program=\/\S+\/nix-daemon/);

  const resolve = get('could-not-resolve-ssh.stderr.txt');
  assert.match(resolve.details.sshMessage ?? '', /Could not resolve hostname no-such-host\.invalid/);
});

test('cannot-connect: unexpected end-of-file with nothing from ssh is its own sub-cause', () => {
  // connection-refused-ssh-ng.stderr.txt without ssh's own line (as when ssh's stderr goes elsewhere).
  const text = v28('connection-refused-ssh-ng.stderr.txt')
    .split('\n')
    .filter((l) => !l.startsWith('ssh: '))
    .join('\n');
  const p = only(classify(text), 'cannot-connect');
  assert.equal(p.details.reason, 'unexpected-eof');
  assert.equal(p.details.storeUri, 'ssh-ng://b1');
  assert.match(p.fix, /nix store ping --store ssh-ng:\/\/b1/);
});

test('cannot-connect: ssh\'s words with no Nix error after them are still reported', () => {
  const p = only(classify('ssh: connect to host 10.0.0.9 port 22: Connection timed out\n'), 'cannot-connect');
  assert.equal(p.details.reason, 'timed-out');
});

// ---------------------------------------------------------------------------------------------
// reproducibility, S3

test('not-deterministic (2.8): not-deterministic.stderr.txt, …-keep-failed (with .check) and …-rebuild', () => {
  const plain = only(classify(v28('not-deterministic.stderr.txt')), 'not-deterministic');
  wellFormed(plain);
  assert.match(plain.details.drvPath, /-nondet\.drv$/);
  assert.match(plain.details.outputPath, /^\/nix\/store\/[a-z0-9]{32}-nondet$/);
  assert.equal(plain.details.checkPath, undefined);
  assert.match(plain.fix, /--keep-failed/);
  const kept = only(classify(v28('not-deterministic-keep-failed.stderr.txt')), 'not-deterministic');
  assert.equal(kept.details.checkPath, `${kept.details.outputPath}.check`);
  assert.match(kept.fix, /diff -r \S+-nondet \S+-nondet\.check/);
  assert.deepEqual(kinds(classify(v28('not-deterministic-rebuild.stderr.txt'))), ['not-deterministic']);
});

test('check-impossible (2.8): check-impossible.stderr.txt — --check before the first build', () => {
  const p = only(classify(v28('check-impossible.stderr.txt')), 'check-impossible');
  wellFormed(p);
  assert.match(p.details.drvPath, /-nondet\.drv$/);
  assert.match(p.fix, /without `--check`/);
});

test('s3-unsupported (2.8): s3-ping.stderr.txt and s3-copy.stderr.txt — Debian\'s Nix has no S3', () => {
  const ping = only(classify(v28('s3-ping.stderr.txt')), 's3-unsupported');
  wellFormed(ping);
  assert.equal(ping.details.storeUri, 's3://my-bucket');
  assert.match(ping.cause, /without S3 support/);
  assert.equal(only(classify(v28('s3-copy.stderr.txt')), 's3-unsupported').details.storeUri, 's3://my-bucket?region=eu-west-1');
  // Another unknown scheme is not S3: kept as unknown.
  assert.deepEqual(kinds(classify("error: don't know how to open Nix store 'gs://bucket'")), ['unknown']);
});

// ---------------------------------------------------------------------------------------------
// evaluation

test('eval-error (2.8): eval-error.stderr.txt and eval-error.jsonl — message, position, excerpt', () => {
  for (const name of ['eval-error.stderr.txt', 'eval-error.jsonl']) {
    const p = only(classify(v28(name)), 'eval-error');
    wellFormed(p);
    assert.equal(p.message, "attribute 'bash' missing", name);
    assert.match(p.details.position?.file ?? '', /\/evalerr\.nix$/, name);
    assert.equal(p.details.position?.line, 6, name);
    assert.equal(p.details.position?.column, 13, name);
    assert.deepEqual(
      p.details.excerpt.map((l) => l.trim()),
      ['5|   system = builtins.currentSystem;', '6|   builder = pkgs.bash;', '|             ^', '7| }'],
      name,
    );
    assert.deepEqual(p.details.trace, []);
  }
});

test('eval-error (2.8): eval-error-show-trace.stderr.txt, eval-undefined-variable.stderr.txt, eval-throw-show-trace.stderr.txt', () => {
  const traced = only(classify(v28('eval-error-show-trace.stderr.txt')), 'eval-error');
  assert.equal(traced.details.position?.line, 6);
  assert.deepEqual(
    traced.details.trace.map((f) => [f.text, f.position?.line, f.position?.column]),
    [["while evaluating the attribute 'builder' of the derivation 'eval-error'", 4, 3]],
  );
  const undef = only(classify(v28('eval-undefined-variable.stderr.txt')), 'eval-error');
  assert.equal(undef.message, "undefined variable 'undefinedThing'");
  assert.deepEqual([undef.details.position?.line, undef.details.position?.column], [2, 7]);
  // A throw has no position of its own in 2.8; the innermost frame stands in for it.
  const thrown = only(classify(v28('eval-throw-show-trace.stderr.txt')), 'eval-error');
  assert.equal(thrown.message, 'custom failure at 3');
  assert.equal(thrown.details.trace.length, 8);
  assert.deepEqual([thrown.details.position?.line, thrown.details.position?.column], [1, 9]);
});

test('eval-error (2.20 layout): nix-2.20/eval-error-attribute-name.stderr.txt and nix-2.20/eval-error-with.stderr.txt', () => {
  const attr = only(classify(read('nix-2.20', 'eval-error-attribute-name.stderr.txt')), 'eval-error');
  wellFormed(attr);
  assert.equal(attr.message, 'expected a string but found a set');
  assert.deepEqual(attr.details.position, { file: 'bad.nix', line: 4, column: 11 });
  assert.deepEqual(attr.details.trace.map((f) => f.text), ['while evaluating an attribute name']);
  assert.deepEqual(
    attr.details.excerpt.map((l) => l.trim()),
    ['3|   key = {};', '4| in attr.${key}', '|           ^', '5|'],
  );
  const withExpr = only(classify(read('nix-2.20', 'eval-error-with.stderr.txt')), 'eval-error');
  assert.equal(withExpr.message, 'expected a set but found an integer');
  assert.deepEqual(withExpr.details.position, { file: '«string»', line: 1, column: 1 });
});

test('eval-error (2.19): nix-2.19/eval-error-with.stderr.txt — a position of «none»', () => {
  const p = only(classify(read('nix-2.19', 'eval-error-with.stderr.txt')), 'eval-error');
  assert.equal(p.message, 'value is an integer while a set was expected');
  assert.equal(p.details.position, undefined, '«none» is no position to jump to');
  assert.deepEqual(p.details.trace, [{ text: '<borked>', position: { file: '«none»' } }]);
  assert.match(p.fix, /--show-trace/);
});

test('eval-error (older Nix): the position inline at the end of the message', () => {
  // Assembled in the layout of Nix 2.3, which printed "error: <msg>, at <file>:<line>:<col>".
  const p = only(classify("error: undefined variable 'foo' at /home/u/default.nix:2:7\n"), 'eval-error');
  assert.deepEqual(p.details.position, { file: '/home/u/default.nix', line: 2, column: 7 });
  const parse = only(classify("error: syntax error, unexpected ID, expecting ';', at /home/u/default.nix:3:3\n"), 'parse-error');
  assert.deepEqual(parse.details.position, { file: '/home/u/default.nix', line: 3, column: 3 });
  assert.equal(parse.details.unexpected, 'ID');
  assert.deepEqual(parse.details.expecting, ["';'"]);
});

test('infinite-recursion (2.8): infinite-recursion.stderr.txt and infinite-recursion-string.stderr.txt', () => {
  const file = only(classify(v28('infinite-recursion.stderr.txt')), 'infinite-recursion');
  wellFormed(file);
  assert.equal(file.message, 'infinite recursion encountered');
  assert.match(file.details.position?.file ?? '', /\/infrec\.nix$/);
  assert.deepEqual([file.details.position?.line, file.details.position?.column], [2, 7]);
  const str = only(classify(v28('infinite-recursion-string.stderr.txt')), 'infinite-recursion');
  assert.deepEqual(str.details.position, { file: '«string»', line: 1, column: 9 });
});

test('parse-error (2.8): parse-error.stderr.txt, parse-error.jsonl, parse-error-string.stderr.txt, parse-error-eof.stderr.txt', () => {
  for (const name of ['parse-error.stderr.txt', 'parse-error.jsonl']) {
    const p = only(classify(v28(name)), 'parse-error');
    wellFormed(p);
    assert.equal(p.message, "syntax error, unexpected '=', expecting ';'");
    assert.equal(p.details.unexpected, "'='");
    assert.deepEqual(p.details.expecting, ["';'"]);
    assert.deepEqual([p.details.position?.line, p.details.position?.column], [3, 5], name);
    assert.match(p.cause, /found '=' where it expected ';'/);
  }
  const str = only(classify(v28('parse-error-string.stderr.txt')), 'parse-error');
  assert.deepEqual(str.details.position, { file: '«string»', line: 1, column: 11 });
  const eof = only(classify(v28('parse-error-eof.stderr.txt')), 'parse-error');
  assert.equal(eof.details.unexpected, 'end of file');
  assert.deepEqual(eof.details.expecting, []);
  assert.equal(eof.details.position?.line, 1);
});

// ---------------------------------------------------------------------------------------------
// builds: timeout, failures, dependencies

test('timeout (2.8): timeout.stderr.txt (--timeout) and max-silent-time.stderr.txt', () => {
  const t = only(classify(v28('timeout.stderr.txt')), 'timeout');
  wellFormed(t);
  assert.match(t.details.drvPath ?? '', /^\/nix\/store\/\S+-slow\.drv$/, 'without the !out suffix');
  assert.equal(t.details.seconds, 1);
  assert.equal(t.details.silence, false);
  assert.match(t.fix, /--timeout/);
  const s = only(classify(v28('max-silent-time.stderr.txt')), 'timeout');
  assert.equal(s.details.silence, true);
  assert.match(s.fix, /--max-silent-time/);
  // Other wordings: a newer "… silent for N seconds", a bare "timed out".
  const silent = only(classify("error: build of '/nix/store/x-slow.drv' has been silent for 600 seconds\n"), 'timeout');
  assert.deepEqual([silent.details.seconds, silent.details.silence, silent.details.drvPath], [600, true, '/nix/store/x-slow.drv']);
  assert.equal(only(classify('error: operation timed out\n'), 'timeout').details.seconds, undefined);
});

test('build-failed (2.8): build-failure.stderr.txt — the builder\'s own "error:" line is log, not a second problem', () => {
  const problems = classify(v28('build-failure.stderr.txt'));
  assert.deepEqual(kinds(problems), ['build-failed']);
  const p = only(problems, 'build-failed');
  wellFormed(p);
  assert.match(p.details.drvPath, /-will-fail\.drv$/);
  assert.equal(p.details.exitCode, 3);
  assert.equal(p.details.storeUri, undefined);
  assert.match(p.details.logTail[0] ?? '', /^compiling \d+$/);
  assert.equal(p.details.logTail[1], 'error: missing semicolon');
});

test('build-failed (2.8): build-failure-nix-build.stderr.txt (log tail inside the error) and build-failure.jsonl', () => {
  const nix = only(classify(v28('build-failure-nix-build.stderr.txt')), 'build-failed');
  assert.equal(nix.details.exitCode, 3);
  assert.deepEqual(nix.details.logTail.slice(1), ['error: missing semicolon']);
  const json = only(classify(v28('build-failure.jsonl')), 'build-failed');
  assert.equal(json.details.exitCode, 3);
  assert.equal(json.details.logTail.length, 2, 'from the build activity\'s log lines');
});

test('build-failed on a builder (2.8): remote-build-failure.stderr.txt, …-ssh-ng.stderr.txt, remote-build-failure.jsonl', () => {
  for (const [name, uri] of [
    ['remote-build-failure.stderr.txt', 'ssh://b1'],
    ['remote-build-failure-ssh-ng.stderr.txt', 'ssh-ng://b1'],
    ['remote-build-failure.jsonl', 'ssh://b1'],
  ] as const) {
    const problems = classify(v28(name));
    assert.deepEqual(kinds(problems), ['build-failed'], `${name}: the hook's "exit code 1" is the same failure`);
    const p = only(problems, 'build-failed');
    assert.equal(p.details.storeUri, uri, name);
    assert.equal(p.details.exitCode, 7, name);
    assert.equal(p.details.logTail.at(-1), 'about to fail', name);
    assert.match(p.cause, new RegExp(`on ${uri.replace(/[/.]/g, '\\$&')}`));
  }
});

test('build-failed (newer Nix): "Cannot build … Reason: builder failed", assembled from the format string', () => {
  // Assembled from fixupBuilderFailureErrorMessage in NixOS/nix
  // src/libstore/build/derivation-building-goal.cc: "Cannot build '%s'.\nReason: builder %s." then
  // "Last %d log lines:" and "> " lines.
  const text = [
    "error: Cannot build '/nix/store/clayr7rln65a458a96smi053cii3v4cw-will-fail.drv'.",
    '       Reason: builder failed with exit code 3.',
    '       Last 2 log lines:',
    '       > compiling',
    '       > error: missing semicolon',
    '       For full logs, run:',
    '         nix log /nix/store/clayr7rln65a458a96smi053cii3v4cw-will-fail.drv',
  ].join('\n');
  const p = only(classify(text), 'build-failed');
  assert.equal(p.details.exitCode, 3);
  assert.deepEqual(p.details.logTail, ['compiling', 'error: missing semicolon']);
  const deps = only(classify("error: Cannot build '/nix/store/x-top.drv'.\n       Reason: 1 dependency failed.\n"), 'dependency-failed');
  assert.equal(deps.details.count, 1);
});

test('dependency-failed (2.8): dependency-failure.stderr.txt and dependency-failure.jsonl — the failing dependency comes first', () => {
  for (const name of ['dependency-failure.stderr.txt', 'dependency-failure.jsonl']) {
    const problems = classify(v28(name));
    assert.deepEqual(kinds(problems), ['build-failed', 'dependency-failed'], name);
    const dep = only(problems, 'dependency-failed');
    wellFormed(dep);
    assert.match(dep.details.drvPath, /-top\.drv$/);
    assert.equal(dep.details.count, 1);
    assert.match(only(problems, 'build-failed').details.drvPath, /-dep-fails\.drv$/);
    assert.equal(classifyFirst(v28(name))?.kind, 'build-failed');
  }
  // Nix 2.3's wording (src/libstore/build.cc: "cannot build derivation '%s': %d dependencies couldn't be built").
  const old = only(classify("cannot build derivation '/nix/store/x-top.drv': 2 dependencies couldn't be built\n".replace(/^/, 'error: ')), 'dependency-failed');
  assert.equal(old.details.count, 2);
});

// ---------------------------------------------------------------------------------------------
// unknown, totality

test('unknown (2.8): eval-throw.stderr.txt — a throw without position is kept as it is', () => {
  const p = only(classify(v28('eval-throw.stderr.txt')), 'unknown');
  wellFormed(p);
  assert.equal(p.message, 'custom failure at 3');
  assert.equal(p.text, 'error: custom failure at 3');
  assert.deepEqual(p.details, {});
});

test('successful runs have no problems: build-success.jsonl, nix-build-success.jsonl, dependency-chain.jsonl, remote-build-*.jsonl', () => {
  for (const name of ['build-success.jsonl', 'nix-build-success.jsonl', 'dependency-chain.jsonl', 'remote-build-ssh.jsonl', 'remote-build-ssh-ng.jsonl', 'remote-build-aarch64.jsonl', 'substitute-from-file-cache.jsonl']) {
    assert.deepEqual(classify(v28(name)), [], name);
  }
  assert.deepEqual(classify(''), []);
  assert.equal(classifyFirst(''), undefined);
});

test('classifyLogEvents gives the same problems as classify for every recorded log', () => {
  for (const name of readdirSync(path.join(FIXTURES, 'nix-2.8.0')).filter((f) => f.endsWith('.jsonl'))) {
    const text = v28(name);
    assert.deepEqual(classifyLogEvents(parseLog(text)), classify(text), name);
  }
});

test('nothing is lost: every error line of every fixture is in some problem\'s text or a build\'s log tail', () => {
  for (const version of ['nix-2.8.0', 'nix-2.19', 'nix-2.20']) {
    for (const name of readdirSync(path.join(FIXTURES, version)).filter((f) => /\.(stderr\.txt|jsonl)$/.test(f))) {
      const text = read(version, name);
      const problems = classify(text);
      const kept = problems.flatMap((p) => [...p.text.split('\n'), ...(p.kind === 'build-failed' ? p.details.logTail : [])]);
      // Nix's own error messages, from plain lines and from internal-json messages.
      const errors = parseLog(text)
        .flatMap((e) => (e.kind === 'plain' ? [e.text] : e.kind === 'msg' ? e.fullText.split('\n') : e.kind === 'result' && e.logLine !== undefined ? [stripAnsi(e.logLine)] : []))
        .filter((l) => /^error:/.test(l));
      for (const line of errors) assert.ok(kept.includes(line), `${version}/${name}: ${line}`);
      for (const p of problems) wellFormed(p);
    }
  }
});

test('total: never throws, on garbage, truncated fixtures and hostile input', () => {
  const samples = [
    '\u0000\u001b[',
    'error:',
    'error: \n\n\n',
    'Failed to find a machine for remote build!',
    'Failed to find a machine for remote build!\nrequired (system, features): (\n1 available machines:\n(systems, maxjobs, supportedFeatures, mandatoryFeatures)\n((((\n',
    "cannot build on '",
    "error: Cannot build '",
    'error: a \'x\' with features {',
    '@nix {"action":"msg","level":0,"msg":null}',
    '@nix {"action":"msg","level":0,"msg":"\\u001b[31;1merror:\\u001b[0m"}',
    '@nix {"action":"start","id":1,"type":105,"fields":[null,null]}\n@nix {"action":"result","id":1,"type":101,"fields":["error: x"]}',
    'error: ' + 'a'.repeat(100_000),
    '       at :0:0:',
    '@'.repeat(1000),
  ];
  for (const s of samples) {
    const problems = classify(s);
    assert.ok(Array.isArray(problems), JSON.stringify(s.slice(0, 40)));
    mostImportant(problems);
  }
  // Every fixture cut at arbitrary points.
  for (const name of readdirSync(path.join(FIXTURES, 'nix-2.8.0')).filter((f) => /\.(stderr\.txt|jsonl)$/.test(f))) {
    const text = v28(name);
    for (let cut = 0; cut < text.length; cut += Math.max(1, Math.floor(text.length / 23))) {
      classify(text.slice(0, cut));
      classify(text.slice(cut));
    }
  }
});

test('mostImportant orders root causes first', () => {
  const problems = classify(v28('connection-refused-build-ng.stderr.txt'));
  assert.deepEqual(kinds(problems), ['cannot-connect', 'no-machine']);
  assert.equal(mostImportant([...problems].reverse())?.kind, 'cannot-connect');
  assert.equal(mostImportant([]), undefined);
});

// ---------------------------------------------------------------------------------------------
// Nix 2.26.3 (Debian 13's nix-bin), recorded by test/fixtures/nix-2.26.3/record.sh

const v226 = (name: string) => read('nix-2.26.3', name);

test('s3-unsupported (2.26): s3-info.stderr.txt — Debian 13\'s Nix has no S3 either, and names only the scheme', () => {
  const p = only(classify(v226('s3-info.stderr.txt')), 's3-unsupported');
  wellFormed(p);
  assert.equal(p.details.storeUri, undefined);
  assert.match(p.cause, /without S3 support/);
});

test('system-mismatch (2.26.3): system-mismatch.stderr.txt and system-mismatch-features.stderr.txt — the 2.8 wording, uid-range among the local features', () => {
  const system = only(classify(v226('system-mismatch.stderr.txt')), 'system-mismatch');
  wellFormed(system);
  assert.match(system.message, /^a 'aarch64-linux' with features \{\} is required to build '\/nix\/store\/[a-z0-9]{32}-aarch64-226\.drv'/);
  assert.equal(system.details.requiredSystem, 'aarch64-linux');
  assert.equal(system.details.systemDiffers, true);
  assert.ok(system.details.localFeatures.includes('uid-range'));
  const features = only(classify(v226('system-mismatch-features.stderr.txt')), 'system-mismatch');
  assert.deepEqual(features.details.missingFeatures, ['nobody-has-this']);
  assert.equal(features.details.systemDiffers, false);
});

test('no-machine (2.26.3): no-machine.stderr.txt — the table, then "Unable to start any build;" wrapped on its own lines after a bare error: (one problem, not an unknown one)', () => {
  const problems = classify(v226('no-machine.stderr.txt'));
  assert.deepEqual(kinds(problems), ['no-machine']);
  const p = only(problems, 'no-machine');
  wellFormed(p);
  assert.equal(p.message, 'Unable to start any build; remote machines may not have all required system features.');
  assert.equal(p.details.reason, 'no-fitting-machine');
  assert.equal(p.details.requiredSystem, 'aarch64-linux');
  assert.equal(p.details.machines[0]?.mismatch, 'it builds x86_64-linux, not aarch64-linux');
});

test('no-machine with local builds off (2.26.3): max-jobs-zero.stderr.txt — the wrapped "either increase \'--max-jobs\'" sentence', () => {
  const p = only(classify(v226('max-jobs-zero.stderr.txt')), 'no-machine');
  wellFormed(p);
  assert.equal(p.details.reason, 'max-jobs-zero');
  assert.equal(p.message, "Unable to start any build; either increase '--max-jobs' or enable remote builds.");
});

test('cannot-connect then no-machine (2.26.3): connection-refused-build.stderr.txt — "failed to start SSH connection" inside "cannot build on"', () => {
  const problems = classify(v226('connection-refused-build.stderr.txt'));
  assert.deepEqual(kinds(problems), ['cannot-connect', 'no-machine']);
  const c = only(problems, 'cannot-connect');
  wellFormed(c);
  assert.equal(c.details.reason, 'connection-refused');
  assert.equal(c.details.storeUri, 'ssh://127.0.0.1');
});

test('lacks-signature (2.26.3): lacks-signature.stderr.txt — "lacks a signature by a trusted key" (the wording from 2.12)', () => {
  const p = only(classify(v226('lacks-signature.stderr.txt')), 'lacks-signature');
  wellFormed(p);
  assert.match(p.details.path, /^\/nix\/store\/[a-z0-9]{32}-ok-226$/);
});

test('build-failed (2.26.3): build-failure-nix-build.stderr.txt and build-failure.stderr.txt (nix build quotes the log tail) — the exit code and the log', () => {
  for (const file of ['build-failure-nix-build.stderr.txt', 'build-failure.stderr.txt']) {
    const p = only(classify(v226(file)), 'build-failed');
    wellFormed(p);
    assert.equal(p.details.exitCode, 3, file);
    assert.deepEqual(p.details.logTail, ['compiling', 'error: missing semicolon'], file);
  }
});

test('Nix 2.26.3 prints no "Cannot build … Reason:" (that wording is newer): nothing of its recorded stderr is unknown', () => {
  const dir = path.join(FIXTURES, 'nix-2.26.3');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.stderr.txt'))) {
    const text = v226(file);
    assert.doesNotMatch(text, /Cannot build '.*Reason:/s, file);
    assert.deepEqual(kinds(classify(text)).filter((k) => k === 'unknown'), [], file);
  }
});

test('not-privileged (2.26.3 client, 2.8 builder b3): not-privileged-ssh.stderr.txt, not-privileged-ssh-ng.stderr.txt — the builder and the derivation named', () => {
  for (const [file, uri] of [
    ['not-privileged-ssh.stderr.txt', 'ssh://nixremote@b3'],
    ['not-privileged-ssh-ng.stderr.txt', 'ssh-ng://nixremote@b3'],
  ] as const) {
    const p = only(classify(v226(file)), 'not-privileged');
    wellFormed(p);
    assert.equal(p.details.storeUri, uri, file);
    assert.match(p.details.drvPath ?? '', /-to-b3(-ng)?\.drv$/, file);
  }
});

test('remote-command-not-found (2.26.3 client): remote-command-not-found-build.stderr.txt — "cannot build on" wraps "cannot connect to"', () => {
  const p = only(classify(v226('remote-command-not-found-build.stderr.txt')), 'cannot-connect');
  wellFormed(p);
  assert.equal(p.details.reason, 'remote-command-not-found');
  assert.equal(p.details.storeUri, 'ssh://nopath@b4');
});

test('lacks-signature (2.26.3 client copying to the 2.8 builder b3): lacks-signature-ssh-ng.stderr.txt — 2.26 prints the target as \'ssh-ng://\' without its host: no store is named rather than that', () => {
  const p = only(classify(v226('lacks-signature-ssh-ng.stderr.txt')), 'lacks-signature');
  wellFormed(p);
  assert.equal(p.details.storeUri, undefined);
  assert.doesNotMatch(p.cause, /ssh-ng:\/\/\)/);
});

test('a successful remote build with a 2.26.3 client has no problems: remote-build-b1-nix-2.8.jsonl (internal-json, with parent ids), remote-build-b5.stderr.txt', () => {
  const jsonl = v226('remote-build-b1-nix-2.8.jsonl');
  assert.match(jsonl, /"parent":/);
  assert.deepEqual(classify(jsonl), []);
  assert.deepEqual(classifyLogEvents(parseLog(jsonl)), []);
  assert.deepEqual(classify(v226('remote-build-b5.stderr.txt')), []);
});

test('eval-error (2.26.3): eval-error.stderr.txt, eval-error-show-trace.stderr.txt, eval-undefined-variable.stderr.txt, eval-throw.stderr.txt — the 2.13+ layout, recorded', () => {
  for (const file of ['eval-error.stderr.txt', 'eval-error-show-trace.stderr.txt']) {
    const p = only(classify(v226(file)), 'eval-error');
    wellFormed(p);
    assert.equal(p.message, "attribute 'bash' missing", file);
    assert.deepEqual(p.details.position, { file: '/tmp/nix-builders-fixtures-2.26/evalerr.nix', line: 6, column: 13 }, file);
    assert.deepEqual(
      p.details.trace.map((f) => [f.text, f.position?.line]),
      [
        ["while calling the 'derivationStrict' builtin", 37],
        ["while evaluating derivation 'eval-error'", undefined],
        ["while evaluating attribute 'builder' of derivation 'eval-error'", 6],
      ],
      file,
    );
  }
  const undef = only(classify(v226('eval-undefined-variable.stderr.txt')), 'eval-error');
  assert.equal(undef.message, "undefined variable 'undefinedThing'");
  assert.deepEqual([undef.details.position?.line, undef.details.position?.column], [2, 7]);
  // From 2.13 a throw has the position of the throw itself (2.8: none).
  const thrown = only(classify(v226('eval-throw.stderr.txt')), 'eval-error');
  assert.equal(thrown.message, 'custom failure at 3');
  assert.deepEqual([thrown.details.position?.line, thrown.details.position?.column], [1, 26]);
});

test('eval and parse errors in internal-json (2.26.3): eval-error.jsonl, parse-error.jsonl — `file` of the msg holds "path:line:col" in 2.26: the position\'s file is the path alone', () => {
  const evalError = only(classify(v226('eval-error.jsonl')), 'eval-error');
  assert.deepEqual(evalError.details.position, { file: '/tmp/nix-builders-fixtures-2.26/evalerr.nix', line: 6, column: 13 });
  const parse = only(classify(v226('parse-error.jsonl')), 'parse-error');
  assert.deepEqual(parse.details.position, { file: '/tmp/nix-builders-fixtures-2.26/parse.nix', line: 3, column: 5 });
  for (const name of ['eval-error.jsonl', 'parse-error.jsonl']) assert.deepEqual(classifyLogEvents(parseLog(v226(name))), classify(v226(name)), name);
});

test('parse-error and infinite-recursion (2.26.3): parse-error.stderr.txt, parse-error-eof.stderr.txt, infinite-recursion.stderr.txt', () => {
  const p = only(classify(v226('parse-error.stderr.txt')), 'parse-error');
  wellFormed(p);
  assert.equal(p.message, "syntax error, unexpected '=', expecting ';'");
  assert.deepEqual([p.details.position?.line, p.details.position?.column], [3, 5]);
  const eof = only(classify(v226('parse-error-eof.stderr.txt')), 'parse-error');
  assert.equal(eof.details.unexpected, 'end of file');
  assert.deepEqual(eof.details.expecting, ['INHERIT']);
  const rec = only(classify(v226('infinite-recursion.stderr.txt')), 'infinite-recursion');
  assert.deepEqual([rec.details.position?.line, rec.details.position?.column], [2, 7]);
});

test('build-users (2.26.3): build-users-group-missing.stderr.txt — 2.26 warns at each start, then the error; build-users-group-missing-eval.stderr.txt (the warning only) is no problem', () => {
  const p = only(classify(v226('build-users-group-missing.stderr.txt')), 'build-users');
  wellFormed(p);
  assert.equal(p.details.group, 'nixbld');
  assert.equal(p.details.reason, 'group-missing');
  assert.deepEqual(classify(v226('build-users-group-missing-eval.stderr.txt')), []);
});
