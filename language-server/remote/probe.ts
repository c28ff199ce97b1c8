// The remote side of the builder health check: the scripts that run on a builder (through one SSH
// exec each) and the parser of what they print. Pure: no I/O here.
//
// Two round trips on one connection:
//   1. discovery (a constant script, the program name as $1): where the non-interactive shell finds
//      Nix's remote program, where a login shell finds it, the Nix version, the user and its
//      groups, how Nix would open the store (local or daemon), load, cores, free disk;
//   2. nix (built from the version found in 1): the remote `nix show-config` / `nix config show`,
//      and `nix store ping|info --store daemon` where that reports `Trusted:` (2.15+).
//
// The scripts run under /bin/sh, read from stdin (see shellQuote.REMOTE_COMMAND), started by the
// user's login shell exactly like Nix's `nix-store --serve --write`, so `command -v` sees the PATH
// that Nix's command sees. Each section prints `@@nbp <name> <exit code>`, its output, and `@@nbp.`.
import { parseConfigText } from '../nix/nixConf';
import { parseNixVersion, type NixCapabilities, type NixVersion } from '../nix/version';
import { REMOTE_COMMAND, shellCommand, shScript } from './shellQuote';

const BEGIN = '@@nbp';
const END = '@@nbp.';

/** Where Nix is usually installed, when no shell knows it. */
export const NIX_LOCATIONS = [
  '/nix/var/nix/profiles/default/bin',
  '$HOME/.nix-profile/bin',
  '/run/current-system/sw/bin',
  '/usr/local/bin',
  '/usr/bin',
  '/opt/homebrew/bin',
];

/** Utilities the probe needs (id, df, nproc, …) may be missing from a broken PATH: these are added after the PATH check. */
const EXTRA_PATH = '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin';

// The login shell's own lookup runs `exec /bin/sh -s` through it (shell-neutral, like every remote
// command) with the program name in the environment, never in a string the login shell parses.
const DISCOVERY_SCRIPT = `set -f
NL='
'
emit() { printf '%s %s %s%s%s%s%s%s' '${BEGIN}' "$1" "$2" "$NL" "$3" "$NL" '${END}' "$NL"; }
P=$1
BASE=\${P##*/}
ORIGPATH=$PATH
out=$(command -v "$P" 2>&1); emit path $? "$out"
emit env 0 "PATH=$PATH\${NL}SHELL=$SHELL\${NL}HOME=$HOME\${NL}NIX_REMOTE=$NIX_REMOTE"
found=
case $out in /*) found=$out ;; esac
PATH=$PATH:${EXTRA_PATH}
export PATH
login=
if [ -z "$found" ]; then
  out=$(printf '%s\\n' 'command -v "$NBP_PROGRAM"' | NBP_PROGRAM=$P PATH=$ORIGPATH "\${SHELL:-/bin/sh}" -lc '${REMOTE_COMMAND}' 2>&1); rc=$?
  emit login $rc "$out"
  IFS=$NL
  for l in $out; do case $l in /*) login=$l ;; esac; done
  unset IFS
fi
cands=
first=
for d in ${NIX_LOCATIONS.map((d) => (d.startsWith('$') ? `"${d}"` : d)).join(' ')}; do
  case $P in /*) break ;; esac
  if [ -x "$d/$BASE" ]; then cands=$cands$d/$BASE$NL; [ -n "$first" ] || first=$d/$BASE; fi
done
emit candidates 0 "$cands"
S=\${found:-\${login:-$first}}
emit chosen 0 "$S"
if [ -n "$S" ]; then
  out=$("$S" --version </dev/null 2>&1); emit version $? "$out"
  N=\${S%/*}/nix
  [ -x "$N" ] || N=$(command -v nix 2>/dev/null)
  emit nix 0 "$N"
fi
out=$( (id -un; id -Gn) 2>&1); emit id $? "$out"
ST=\${NIX_STATE_DIR:-/nix/var/nix}
SOCK=\${NIX_DAEMON_SOCKET_PATH:-$ST/daemon-socket/socket}
W=0; [ -r "$ST" ] && [ -w "$ST" ] && W=1
SK=0; [ -S "$SOCK" ] && SK=1
OS=0; [ -e /etc/NIXOS ] && OS=1
emit store 0 "state-dir=$ST\${NL}writable=$W\${NL}socket=$SOCK\${NL}socket-exists=$SK\${NL}nixos=$OS"
out=$(cat /proc/loadavg 2>/dev/null || sysctl -n vm.loadavg 2>&1); emit load $? "$out"
out=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>&1); emit cores $? "$out"
out=$(df -Pk /nix 2>&1); emit disk $? "$out"
out=$(uname -srm 2>&1); emit uname $? "$out"
`;

/** The script of round 1. `program`: what Nix runs remotely (nix-store, nix-daemon or remote-program). */
export function discoveryScript(program: string): string {
  return shScript(DISCOVERY_SCRIPT, [program]);
}

/** One command of round 2: a section name and the words to run. */
export interface ProbeSection {
  name: string;
  words: readonly string[];
}

/** The script for a list of sections: constant text plus quoted words only. */
export function sectionsScript(sections: readonly ProbeSection[]): string {
  const lines = [
    'NL=\'',
    '\'',
    `emit() { printf '%s %s %s%s%s%s%s%s' '${BEGIN}' "$1" "$2" "$NL" "$3" "$NL" '${END}' "$NL"; }`,
    ...sections.map((s) => {
      if (!/^[a-z][a-z0-9-]*$/.test(s.name)) throw new Error(`bad section name ${s.name}`);
      return `out=$(${shellCommand(s.words)} </dev/null 2>&1); emit ${s.name} $? "$out"`;
    }),
  ];
  return shScript(lines.join('\n'));
}

/** Round 2: the remote configuration and, where Nix reports it (2.15+) and a daemon is used, trust. */
export function nixSections(nix: string, caps: NixCapabilities, askDaemonTrust: boolean): ProbeSection[] {
  const sections: ProbeSection[] = [{ name: 'config', words: [nix, ...caps.nixCommandPrefix, ...caps.showConfig] }];
  if (askDaemonTrust && caps.reportsTrust) sections.push({ name: 'trust', words: [nix, ...caps.nixCommandPrefix, ...caps.storeInfo, '--store', 'daemon'] });
  return sections;
}

export interface Section {
  exitCode: number | undefined;
  text: string;
}

/** Sections of a probe's output. Total: text outside sections and unterminated sections are kept as best it can. */
export function parseSections(stdout: string): Map<string, Section> {
  const sections = new Map<string, Section>();
  const lines = stdout.split('\n');
  let current: { name: string; exitCode: number | undefined; lines: string[] } | undefined;
  const close = () => {
    if (current) sections.set(current.name, { exitCode: current.exitCode, text: current.lines.join('\n') });
    current = undefined;
  };
  for (const line of lines) {
    const begin = /^@@nbp (\S+) (\d*)$/.exec(line);
    if (begin) {
      close();
      current = { name: begin[1] as string, exitCode: begin[2] ? Number(begin[2]) : undefined, lines: [] };
    } else if (line === END) {
      close();
    } else if (current) {
      current.lines.push(line);
    }
  }
  close();
  return sections;
}

export interface StoreAccess {
  stateDir: string;
  /** The user may write the state dir: Nix opens the store directly (no daemon, no trust check). */
  writable: boolean;
  socket: string;
  socketExists: boolean;
  nixos: boolean;
}

export interface DiskSpace {
  mount: string;
  totalKiB: number;
  availableKiB: number;
}

/** What round 1 found out. Every field is optional: a broken builder prints little. */
export interface Discovery {
  /** PATH, SHELL, HOME, NIX_REMOTE of the non-interactive shell. */
  env: Record<string, string>;
  /** Where the non-interactive shell finds the program (absolute), if it does. */
  onPath?: string;
  /** Where a login shell finds it. */
  viaLogin?: string;
  /** Executables found in the usual places. */
  candidates: string[];
  /** What the other probes used. */
  chosen?: string;
  /** `nix` next to it (or on the extended PATH). */
  nix?: string;
  versionText?: string;
  version?: NixVersion;
  /** Output of `--version` when it failed. */
  versionError?: string;
  user?: string;
  groups: string[];
  store?: StoreAccess;
  load?: [number, number, number];
  cores?: number;
  disk?: DiskSpace;
  /** `df` output when it could not be read. */
  diskError?: string;
  uname?: string;
}

function keyValues(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) m.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return m;
}

/** `nix-store (Nix) 2.8.0` / `nix-daemon (Lix, like Nix) 2.91.1` → version. */
export function parseProgramVersion(text: string): NixVersion | undefined {
  const line = text.split('\n').find((l) => /^\S+ \([^)]*\)\s+\d/.test(l.trim()));
  if (!line) return undefined;
  return parseNixVersion(line.trim().replace(/^\S+ \(/, 'nix ('));
}

/** `df -Pk` output → space of the last line. */
export function parseDf(text: string): DiskSpace | undefined {
  const lines = text.split('\n').filter((l) => l.trim().length > 0);
  const last = lines[lines.length - 1];
  if (!last || lines.length < 2) return undefined;
  const m = /^(.*?)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)%\s+(.+)$/.exec(last.trim());
  if (!m) return undefined;
  return { totalKiB: Number(m[2]), availableKiB: Number(m[4]), mount: (m[6] as string).trim() };
}

/** `/proc/loadavg` (`0.52 0.40 0.31 1/123 456`) or BSD `sysctl vm.loadavg` (`{ 0.52 0.40 0.31 }`). */
export function parseLoad(text: string): [number, number, number] | undefined {
  const m = /(\d+(?:\.\d+)?)\s+(\d+(?:\.\d+)?)\s+(\d+(?:\.\d+)?)/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

export function parseDiscovery(stdout: string): Discovery {
  const s = parseSections(stdout);
  const text = (name: string) => s.get(name)?.text.trim() ?? '';
  const ok = (name: string) => s.get(name)?.exitCode === 0;
  const d: Discovery = { env: Object.fromEntries(keyValues(s.get('env')?.text ?? '')), candidates: [], groups: [] };
  if (ok('path') && text('path').startsWith('/')) d.onPath = text('path');
  const login = text('login')
    .split('\n')
    .filter((l) => l.startsWith('/'))
    .pop();
  if (login) d.viaLogin = login;
  d.candidates = text('candidates')
    .split('\n')
    .filter((l) => l.startsWith('/'));
  if (text('chosen').startsWith('/')) d.chosen = text('chosen');
  if (text('nix').startsWith('/')) d.nix = text('nix');
  if (s.has('version')) {
    const version = ok('version') ? parseProgramVersion(text('version')) : undefined;
    if (version) {
      d.version = version;
      d.versionText = text('version').split('\n')[0];
    } else d.versionError = text('version') || `exit code ${s.get('version')?.exitCode}`;
  }
  if (ok('id')) {
    const [user, groups] = text('id').split('\n');
    if (user) d.user = user.trim();
    d.groups = (groups ?? '').split(/\s+/).filter((g) => g.length > 0);
  }
  if (s.has('store')) {
    const kv = keyValues(text('store'));
    d.store = {
      stateDir: kv.get('state-dir') ?? '/nix/var/nix',
      writable: kv.get('writable') === '1',
      socket: kv.get('socket') ?? '/nix/var/nix/daemon-socket/socket',
      socketExists: kv.get('socket-exists') === '1',
      nixos: kv.get('nixos') === '1',
    };
  }
  if (ok('load')) {
    const load = parseLoad(text('load'));
    if (load) d.load = load;
  }
  const cores = Number(text('cores').split('\n')[0]);
  if (ok('cores') && Number.isInteger(cores) && cores > 0) d.cores = cores;
  const disk = parseDf(text('disk'));
  if (disk) d.disk = disk;
  else if (s.has('disk')) d.diskError = text('disk');
  if (ok('uname') && text('uname')) d.uname = text('uname');
  return d;
}

/** What round 2 found out. */
export interface NixReport {
  /** `nix show-config` as key → value, when it ran. */
  config?: Map<string, string>;
  configError?: string;
  /** From `Trusted: 1|0` (2.15+), when asked. */
  trusted?: boolean;
  trustError?: string;
}

export function parseNixReport(stdout: string): NixReport {
  const s = parseSections(stdout);
  const r: NixReport = {};
  const config = s.get('config');
  if (config) {
    if (config.exitCode === 0) r.config = parseConfigText(config.text);
    else r.configError = config.text.trim() || `exit code ${config.exitCode}`;
  }
  const trust = s.get('trust');
  if (trust) {
    const m = /^Trusted:\s*(\d)/m.exec(trust.text);
    if (trust.exitCode === 0 && m) r.trusted = m[1] === '1';
    else r.trustError = trust.text.trim() || `exit code ${trust.exitCode}`;
  }
  return r;
}
