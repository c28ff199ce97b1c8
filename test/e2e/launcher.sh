#!/bin/sh
# The "VS Code executable" given to @vscode/test-electron's runTests({ vscodeExecutablePath }):
# runs test/e2e/launcher.ts (code-server + headless Chromium) with the same arguments.
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
# tsx resolved from the repo, whatever the current directory is.
tsx=$(node -p 'require("url").pathToFileURL(require.resolve("tsx", { paths: [process.argv[1]] })).href' "$here")
exec node --import "$tsx" "$here/launcher.ts" "$@"
