#!/usr/bin/env bash
# Installs the pinned Claude Code CLI from the npm registry into a cache outside the
# clone (idempotent: a matching install is reused). Prints the binary's path last.
# The Claude executor's tests run this real CLI against a local replay server.
set -euo pipefail
VERSION="${AOF_CLAUDE_VERSION:-2.1.330}"
DIR="${AOF_CLAUDE_DIR:-/var/tmp/aof-claude-cli}"
BIN="$DIR/node_modules/.bin/claude"
if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "^$VERSION "; then
  echo "$BIN"
  exit 0
fi
command -v npm >/dev/null || { echo "claude.sh: npm is needed to install Claude Code" >&2; exit 1; }
mkdir -p "$DIR"
cd "$DIR"
[ -f package.json ] || echo '{"name":"aof-claude-cli","private":true}' > package.json
npm install --no-audit --no-fund --loglevel=error "@anthropic-ai/claude-code@$VERSION" >&2
"$BIN" --version >&2
echo "$BIN"
