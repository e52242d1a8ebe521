#!/usr/bin/env bash
# Dashboard browser tests: Debian chromium + chromedriver (apt) and axe-core (npm), both
# idempotent; axe-core is cached under /var/tmp, outside the clone. Prints the env the
# tests read; scripts/test.sh sources it. With CI=true a failure here fails the run.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
chromium --version
chromedriver --version

AXE_DIR="${AOF_AXE_CACHE:-/var/tmp/aof-axe}"
if [ ! -f "$AXE_DIR/node_modules/axe-core/axe.min.js" ]; then
  mkdir -p "$AXE_DIR"
  npm install --prefix "$AXE_DIR" --no-audit --no-fund --silent axe-core@4 >/dev/null
fi
export AOF_AXE_JS="$AXE_DIR/node_modules/axe-core/axe.min.js"
test -f "$AOF_AXE_JS"
echo "axe-core: $AOF_AXE_JS"
