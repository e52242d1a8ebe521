#!/usr/bin/env bash
# `aof bench lifecycle` against 1, 2 and 3 coordinators sharing one PostgreSQL (issue #23):
# for each N, a fresh database, N `aof coordinator` processes on it, one bench run with
# every coordinator's URL and PID and the postmaster's PID, then one summary table.
#
#   scripts/bench/pg-coordinators.sh [-n RUNS] [-r RUNNERS] [-e EVENTS] [--producers P]
#       [--rate R | --half-peak] [--counts "1 2 3"] [--timeout S]
#
#   -n/-r/-e/--producers/--timeout  passed to `aof bench lifecycle` (-r is per coordinator)
#   --rate R      runs created per second (the same offered load for every N)
#   --half-peak   for each N: flat out first, then again at half the runs/s it reached
#                 (issue #23's "dispatch p99 at half of peak load"), each on a fresh database
#   --counts      the coordinator counts to run (default "1 2 3")
#
# Environment:
#   AOF_BIN        the `aof` binary (default target/release/aof; build it with --release)
#   AOF_PG_URL     a PostgreSQL server URL whose role may create databases; default: start or
#                  reuse the cluster of scripts/ci/postgres.sh (AOF_PG_DIR, AOF_PG_PORT honoured;
#                  note its fast flags: fsync and synchronous_commit off unless AOF_PG_DURABLE=1)
#   AOF_PG_PID     the postmaster's PID (default: from $AOF_PG_DIR/data/postmaster.pid)
#   AOF_BENCH_OUT  where the JSON lines and logs go (default: a new temp dir, printed)
#
# Each coordinator is polled only by its own simulated runners; PostgreSQL CPU is the
# postmaster's whole process tree (shared with anything else using that server: run on a
# quiet cluster). Exits non-zero if any bench run failed (errors, lost, duplicated or
# reordered events).
set -euo pipefail
cd "$(dirname "$0")/../.."

die() { echo "pg-coordinators.sh: $*" >&2; exit 2; }

bench_args=()
counts="1 2 3"
rate=""
half_peak=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n|-r|-e|--producers|--timeout)
      [ $# -ge 2 ] || die "$1 needs a value"; bench_args+=("$1" "$2"); shift 2 ;;
    --rate) [ $# -ge 2 ] || die "--rate needs a value"; rate="$2"; shift 2 ;;
    --half-peak) half_peak=1; shift ;;
    --counts) [ $# -ge 2 ] || die "--counts needs a value"; counts="$2"; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[ -n "$rate" ] && [ "$half_peak" = 1 ] && die "--rate and --half-peak exclude each other"

bin="${AOF_BIN:-target/release/aof}"
[ -x "$bin" ] || die "no aof binary at $bin (cargo build --release -p aof-cli, or set AOF_BIN)"
pg_dir="${AOF_PG_DIR:-/var/tmp/aof-pg}"
server="${AOF_PG_URL:-$(bash scripts/ci/postgres.sh start)}"
pg_pid="${AOF_PG_PID:-$(head -1 "$pg_dir/data/postmaster.pid" 2>/dev/null || true)}"
[ -n "$pg_pid" ] && [ -d "/proc/$pg_pid" ] \
  || die "no postmaster PID (set AOF_PG_PID, or AOF_PG_DIR to the cluster's directory)"
out="${AOF_BENCH_OUT:-$(mktemp -d /tmp/aof-pg-bench.XXXXXX)}"
mkdir -p "$out"
echo "pg-coordinators.sh: results in $out; postmaster $pg_pid; $(uptime)" >&2

# postgres://user@host:port/db?x → postgres://user@host:port (the server, no database).
server_root="${server%%\?*}"
server_root="$(echo "$server_root" | sed -E 's#^(postgres(ql)?://[^/]+).*#\1#')"

pids=()
db=""
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
  if [ -n "$db" ]; then
    psql "$server_root/postgres" -qtA -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    db=""
  fi
}
trap cleanup EXIT

# One measurement: N coordinators on a fresh database, one bench run. Writes $out/$tag.json.
measure() {
  local n="$1" tag="$2"; shift 2
  db="aof_bench_$(date +%s)_$$_$n"
  psql "$server_root/postgres" -v ON_ERROR_STOP=1 -qtA -c "CREATE DATABASE $db" >/dev/null \
    || die "cannot create database $db on $server_root"
  local urls=() i d
  for i in $(seq 1 "$n"); do
    d="$out/$tag-c$i"
    rm -rf "$d"; mkdir -p "$d"
    AOF_DATABASE_URL="$server_root/$db" "$bin" coordinator --listen 127.0.0.1:0 \
      --addr-file "$d/addr" --data-dir "$d" >"$d/log" 2>&1 &
    pids+=("$!")
  done
  for i in $(seq 1 "$n"); do
    d="$out/$tag-c$i"
    local t=0
    until [ -s "$d/addr" ]; do
      sleep 0.1; t=$((t + 1))
      [ "$t" -lt 600 ] || { tail "$d/log" >&2; die "coordinator $i of $n wrote no address in 60 s"; }
    done
    urls+=(--url "http://$(cat "$d/addr")" --pid "${pids[$((i - 1))]}")
  done
  local load_before rc=0
  load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
  "$bin" bench lifecycle "${urls[@]}" --pg-pid "$pg_pid" --sse-check "${bench_args[@]}" "$@" \
    >"$out/$tag.json" 2>"$out/$tag.log" || rc=$?
  cleanup
  # The bench's JSON line plus what only this script knows.
  local line
  line="$(tail -1 "$out/$tag.json")"
  [ -n "$line" ] || { cat "$out/$tag.log" >&2; die "bench $tag printed no JSON (exit $rc)"; }
  echo "$line" | jq -c --arg load "$load_before" --arg load_after "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --argjson rc "$rc" --arg tag "$tag" '. + {tag: $tag, exit: $rc, load_before: $load, load_after: $load_after}' \
    >"$out/$tag.json"
  cat "$out/$tag.log" >&2
  return "$rc"
}

failed=0
for n in $counts; do
  if [ "$half_peak" = 1 ]; then
    measure "$n" "n$n-peak" || failed=1
    half="$(jq -r '.runs_per_s / 2' "$out/n$n-peak.json")"
    measure "$n" "n$n-half" --rate "$half" || failed=1
  elif [ -n "$rate" ]; then
    measure "$n" "n$n-rate" --rate "$rate" || failed=1
  else
    measure "$n" "n$n" || failed=1
  fi
done

# One table for all N, from the JSON lines.
{
  printf '%-9s %-3s %9s %10s %10s %13s %10s %9s %6s %14s %14s %-14s\n' \
    run N "runs/s" "disp p50" "disp p99" "coord ms/run" "PG ms/run" "cores" ok \
    "lost/dup/reord" "sse l/d/r" "load before"
  for f in "$out"/n*.json; do
    jq -r '[.tag, .coordinators, .runs_per_s, .dispatch_p50_ms, .dispatch_p99_ms,
            (.cpu_ms_per_run.coordinators // "-"), (.cpu_ms_per_run.pg // "-"),
            .cpu_cores_used, .ok,
            "\(.events_lost)/\(.events_duplicated)/\(.events_reordered)",
            "\(.sse_lost // "-")/\(.sse_duplicated // "-")/\(.sse_reordered // "-")",
            .load_before] | @tsv' "$f" |
      while IFS=$'\t' read -r tag c rps p50 p99 cms pms cores ok integ sse load; do
        printf '%-9s %-3s %9s %10s %10s %13s %10s %9s %6s %14s %14s %-14s\n' \
          "$tag" "$c" "$rps" "$p50" "$p99" "$cms" "$pms" "$cores" "$ok" "$integ" "$sse" "$load"
      done
  done
} | tee "$out/summary.txt"
exit "$failed"
