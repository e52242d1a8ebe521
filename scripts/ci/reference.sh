#!/usr/bin/env bash
# The AOF reference implementation as a test peer (issue #21's interop matrix).
#   eval "$(bash scripts/ci/reference.sh)"
# Prepares, idempotently and cached under /var/tmp outside the clone:
#   - a Python venv with the reference coordinator's and runner's packages, resolved with
#     the versions of the reference commit's date (uv --exclude-newer), so a newer FastAPI
#     cannot change what "the reference" means;
#   - the reference dashboard built with vite against a sentinel API URL, which the tests
#     rewrite in a copy to the URL of the coordinator they start (vite bakes the URL in).
# Prints the env the interop tests read. With CI=true any failure fails the run.
set -euo pipefail
cd "$(dirname "$0")/../.."

die() { echo "reference.sh: $*" >&2; exit 1; }

src="${AOF_REFERENCE_DIR:-$(cd .. && pwd)/shared/aof-reference}"
[ -d "$src/servers/agent-coordinator" ] || src=/work/shared/aof-reference
[ -f "$src/servers/agent-coordinator/main.py" ] || die "reference checkout not found (set AOF_REFERENCE_DIR; looked in ../shared/aof-reference)"
cache="${AOF_REFERENCE_CACHE:-/var/tmp/aof-reference}"
# The newest upload in the reference's uv.lock is 2026-01-07: the commit's date.
exclude_newer="2026-01-08T00:00:00Z"
sentinel="http://aof-interop-sentinel.invalid:1"
mkdir -p "$cache"

# --- Python: coordinator + runner packages -------------------------------------------
py_pkgs=(fastapi 'uvicorn[standard]' 'pydantic>=2' 'PyJWT[crypto]' httpx jsonschema python-multipart typer mcp fastmcp)
py_stamp="$cache/venv/.aof-stamp"
py_want="$exclude_newer ${py_pkgs[*]}"
if [ ! -f "$py_stamp" ] || [ "$(cat "$py_stamp")" != "$py_want" ]; then
  echo "reference.sh: building the reference venv (uv, exclude-newer $exclude_newer)" >&2
  rm -rf "$cache/venv" "$cache/uv"
  python3 -m venv "$cache/uv" >&2 || die "python3 -m venv failed (apt install python3-venv)"
  "$cache/uv/bin/pip" install -q uv >&2 || die "pip install uv failed"
  "$cache/uv/bin/uv" venv -q --python "$(command -v python3)" "$cache/venv" >&2 || die "uv venv failed"
  "$cache/uv/bin/uv" pip install -q --python "$cache/venv/bin/python" --exclude-newer "$exclude_newer" "${py_pkgs[@]}" >&2 \
    || die "uv pip install of the reference packages failed"
  echo "$py_want" > "$py_stamp"
fi
"$cache/venv/bin/python" -c 'import fastapi, uvicorn, jwt, httpx, typer, mcp, fastmcp' || die "reference venv is incomplete"
# The reference runner starts each executor with `uv run --script`, which resolves the
# script's own dependencies: pin them to the same date and warm the cache now, so no test
# waits on PyPI. (The echo executor exits 1 on empty stdin, after its env is built.)
export UV_EXCLUDE_NEWER="$exclude_newer" UV_CACHE_DIR="$cache/uv-cache"
for exe in "$src"/servers/agent-runner/executors/echo-executor/ao-echo-exec; do
  out="$("$cache/uv/bin/uv" run -q --script "$exe" </dev/null 2>&1 || true)"
  case "$out" in *"empty stdin"*) ;; *) die "uv could not prepare $exe: $out" ;; esac
done

# --- Dashboard: npm ci at the workspace root, vite build in apps/dashboard -----------
lock_sum="$(sha256sum "$src/package-lock.json" "$src/apps/dashboard/package.json" | sha256sum | cut -c1-16)"
dash_stamp="$cache/dashboard-dist/.aof-stamp"
if [ ! -f "$dash_stamp" ] || [ "$(cat "$dash_stamp")" != "$lock_sum $sentinel" ]; then
  echo "reference.sh: building the reference dashboard (npm ci + vite build)" >&2
  rm -rf "$cache/dashboard-src" "$cache/dashboard-dist"
  mkdir -p "$cache/dashboard-src"
  # The checkout is read-only; npm and vite write next to the sources.
  (cd "$src" && tar --exclude=node_modules --exclude=servers -cf - .) | (cd "$cache/dashboard-src" && tar -xf -)
  chmod -R u+w "$cache/dashboard-src"
  (cd "$cache/dashboard-src" && npm ci --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed"
  # The SDK packages the dashboard imports ship as TypeScript: compile them first.
  for pkg in "$cache"/dashboard-src/packages/*/; do
    (cd "$pkg" && npx tsc >&2) || die "tsc in $pkg failed"
  done
  # `tsc -b` (the workspace's build script) fails on the reference's own type errors;
  # vite alone builds the bundle.
  (cd "$cache/dashboard-src/apps/dashboard" && VITE_AGENT_ORCHESTRATOR_API_URL="$sentinel" npx vite build --logLevel error --outDir "$cache/dashboard-dist" >&2) \
    || die "vite build failed"
  grep -rqF "$sentinel" "$cache/dashboard-dist" || die "the built dashboard does not carry the sentinel URL"
  echo "$lock_sum $sentinel" > "$dash_stamp"
fi

echo "export AOF_REF_DIR='$src'"
echo "export AOF_REF_PYTHON='$cache/venv/bin/python'"
echo "export AOF_REF_UV_DIR='$cache/uv/bin'"
echo "export AOF_REF_UV_CACHE='$cache/uv-cache'"
echo "export AOF_REF_EXCLUDE_NEWER='$exclude_newer'"
echo "export AOF_REF_DASHBOARD_DIST='$cache/dashboard-dist'"
echo "export AOF_REF_DASHBOARD_SENTINEL='$sentinel'"
