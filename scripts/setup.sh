#!/usr/bin/env bash
# Installs what Nix Builders needs to build, run and test, on Debian with Node 20+.
# Idempotent and quick when everything is already there. Used by `npm start` and `npm test`.
#   scripts/setup.sh [--no-code-server]
set -euo pipefail
cd "$(dirname "$0")/.."

want_code_server=1
[[ "${1:-}" == "--no-code-server" ]] && want_code_server=0

# The builder lab (test/lab/lab.ts) makes a mount namespace per builder, bind-mounts its /nix and
# /etc over the real ones and runs sshd; the tests and the demo build with this machine's own
# /nix/store, which Debian's nix-bin leaves root's (no daemon). All of that needs root.
if [[ $(id -u) -ne 0 ]]; then
  echo "setup: needs root (the builder lab uses mount namespaces, bind mounts and sshd, and builds use" >&2
  echo "setup: root's /nix/store): run it as root, or with sudo: sudo npm test, sudo npm start" >&2
  exit 1
fi

# Debian packages: real Nix, OpenSSH for the builder lab, Chromium for the real VS Code tests,
# what code-server's native modules need to build (node-gyp: a C++ toolchain, make, python3), and
# debootstrap for a newer Nix (scripts/ensure-nix.sh), and diffoscope (the reproducibility check's report; the
# minimal package without its recommends: 3 packages, 844 kB; the recommended tools are 860 packages, 4.3 GB).
apt_packages=(nix-bin openssh-server openssh-client chromium build-essential python3 libkrb5-dev pkg-config procps util-linux zsh fish debootstrap neovim diffoscope-minimal)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Node packages, again only when package-lock.json changed since the last install. No dependency's
# install script runs: package.json's allowScripts denies each (none is needed), and
# --strict-allow-scripts makes one that is not reviewed there an error rather than a warning, so
# npm 11 installs what npm 12 (which blocks unreviewed scripts) does.
stamp=node_modules/.package-lock.json
if [[ ! -f $stamp || package-lock.json -nt $stamp ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --strict-allow-scripts
fi

if ((want_code_server)); then
  bash scripts/ensure-code-server.sh >/dev/null
fi

# Nix 2.26 (Debian 13's) beside Debian 12's 2.8, for the tests of a newer Nix; they skip without it.
bash scripts/ensure-nix.sh >/dev/null || echo "setup: no Nix 2.26 (see above): the tests that need it will skip" >&2

node scripts/build.mjs
