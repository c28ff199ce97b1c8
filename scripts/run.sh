#!/usr/bin/env bash
# `npm start`: set up (idempotent), then serve the extension in VS Code in the browser, against the
# builder lab. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node --import tsx scripts/demo.ts
