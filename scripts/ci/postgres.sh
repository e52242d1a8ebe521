#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the tests, on loopback only.
#   bash scripts/ci/postgres.sh start   # idempotent; prints the server URL on stdout
#   bash scripts/ci/postgres.sh stop    # stops it (scripts/test.sh does this on exit)
# The URL names database `aof`; the role may create databases, so each test makes its
# own (AOF_TEST_DATABASE_URL). Cluster under /var/tmp, outside the clone. Installs the
# Debian package when missing (as root); any failure exits non-zero, so CI never skips.
# AOF_PG_DIR and AOF_PG_PORT override the place and port (two clusters side by side).
# AOF_PG_DURABLE=1 keeps PostgreSQL's durable defaults (fsync, synchronous_commit,
# full_page_writes on) instead of the fast test flags: for benchmarks (BENCHMARKS.md).
set -euo pipefail

dir="${AOF_PG_DIR:-/var/tmp/aof-pg}"
# Below the kernel's ephemeral range (32768+), so no test's outgoing connection holds it.
port="${AOF_PG_PORT:-25432}"
bin=/usr/lib/postgresql/15/bin
url="postgres://aof@127.0.0.1:${port}/aof"
die() { echo "postgres.sh: $*" >&2; exit 1; }

# As the postgres user when root (initdb and postgres refuse to run as root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install() {
  [ -x "$bin/pg_ctl" ] && return 0
  [ "$(id -u)" = 0 ] || die "PostgreSQL 15 is missing ($bin) and we are not root to install it"
  echo "postgres.sh: installing postgresql (apt)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; } >&2 \
    || die "apt-get install postgresql failed"
  [ -x "$bin/pg_ctl" ] || die "postgresql installed but $bin/pg_ctl is missing"
}

start() {
  install
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  fi
  mkdir -p "$dir/run"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir/run"
  if ! as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    # fsync off: a test cluster is rebuilt after a crash anyway, and it saves minutes.
    local fast="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    [ "${AOF_PG_DURABLE:-}" = 1 ] && fast=""
    # A few tries: a port just released by an earlier run can take a moment to free.
    local try
    for try in 1 2 3 4 5; do
      as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/run $fast -c max_connections=300" \
        start >&2 && break
      [ "$try" = 5 ] && { tail -20 "$dir/server.log" >&2; die "the server did not start (port $port taken?)"; }
      sleep 3
    done
  fi
  psql_pg() { as_pg "$bin/psql" -h "$dir/run" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
  if [ "$(psql_pg -c "SELECT 1 FROM pg_roles WHERE rolname = 'aof'")" != 1 ]; then
    psql_pg -c "CREATE ROLE aof LOGIN CREATEDB" >&2 || die "cannot create role aof"
  fi
  if [ "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname = 'aof'")" != 1 ]; then
    psql_pg -c "CREATE DATABASE aof OWNER aof" >&2 || die "cannot create database aof"
  fi
  drop_test_dbs
  as_pg "$bin/pg_isready" -h 127.0.0.1 -p "$port" -q || die "server not ready on 127.0.0.1:$port"
  echo "$url"
}

# Tests make a database each (aof_test_*); they would pile up across runs (~8 MB each).
drop_test_dbs() {
  local db
  for db in $(as_pg "$bin/psql" -h "$dir/run" -p "$port" -U postgres -d postgres -qtA \
      -c "SELECT datname FROM pg_database WHERE datname LIKE 'aof\_test\_%'"); do
    as_pg "$bin/psql" -h "$dir/run" -p "$port" -U postgres -d postgres -q \
      -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >&2 || true
  done
}

stop() {
  [ -f "$dir/data/postmaster.pid" ] || return 0
  drop_test_dbs || true
  as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: postgres.sh start|stop" ;;
esac
