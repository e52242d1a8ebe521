#!/usr/bin/env bash
# The sessions page at N sessions (default 100,000), for each `aof` binary given:
# seeds one store once (the browser tests' seeding helper), then per binary starts a
# coordinator on a copy of it and measures the page in chromium (first rows on screen,
# first contentful paint, HTTP bytes, the live feed's start). One JSON line per round.
#
#   source scripts/ci/browser.sh
#   scripts/bench/sessions-page.sh /path/to/aof-before /path/to/aof-after
#
# Env: AOF_BENCH_SESSIONS (100000), AOF_BENCH_ROUNDS (3), AOF_BENCH_WORK (a temp dir).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/aof-target}"
work="${AOF_BENCH_WORK:-$(mktemp -d /var/tmp/aof-bench-sessions.XXXXXX)}"
export AOF_BENCH_SESSIONS="${AOF_BENCH_SESSIONS:-100000}"
seed="$work/seed"
if [ ! -f "$seed/observability.db" ]; then
  AOF_BENCH_DATA_DIR="$seed" cargo nextest run -p aof-cli --test browser --run-ignored only \
    --no-capture -E 'test(=bench::seed_bench_store)'
fi
for bin in "$@"; do
  data="$work/run"; rm -rf "$data"; cp -r "$seed" "$data"
  "$bin" coordinator --listen 127.0.0.1:0 --data-dir "$data" --addr-file "$data/addr" \
    >"$data/coordinator.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do [ -s "$data/addr" ] && break; sleep 0.1; done
  url="http://$(cat "$data/addr")"
  echo "== $bin ($url, $AOF_BENCH_SESSIONS sessions)"
  AOF_BENCH_URL="$url" cargo nextest run -p aof-cli --test browser --run-ignored only \
    --no-capture -E 'test(=bench::sessions_page_first_rows)' 2>/dev/null | grep '^{' || true
  kill "$pid"; wait "$pid" || true
done
