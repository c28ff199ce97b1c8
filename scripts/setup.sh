#!/usr/bin/env bash
# Installs what Nix Builders needs to build, run and test, on Debian with Node 20+.
# Idempotent and quick when everything is already there. Used by `npm start` and `npm test`.
#   scripts/setup.sh [--no-code-server]
set -euo pipefail
cd "$(dirname "$0")/.."

want_code_server=1
[[ "${1:-}" == "--no-code-server" ]] && want_code_server=0

# Debian packages: real Nix, OpenSSH for the builder lab, Chromium for the real VS Code tests,
# and what code-server's native modules need to build.
apt_packages=(nix-bin openssh-server openssh-client chromium libkrb5-dev pkg-config procps util-linux zsh fish)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then sudo=(sudo); else
      echo "setup: run as root: apt-get install -y ${missing[*]}" >&2; exit 1
    fi
  fi
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Node packages, again only when package-lock.json changed since the last install.
stamp=node_modules/.package-lock.json
if [[ ! -f $stamp || package-lock.json -nt $stamp ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi

if ((want_code_server)); then
  bash scripts/ensure-code-server.sh >/dev/null
fi

node scripts/build.mjs
