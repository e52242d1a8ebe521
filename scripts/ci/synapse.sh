#!/usr/bin/env bash
# A throwaway Matrix homeserver (Synapse from PyPI, SQLite) for the Matrix bridge tests,
# on loopback only.
#   eval "$(bash scripts/ci/synapse.sh start)"   # idempotent; prints the env to export
#   bash scripts/ci/synapse.sh stop              # scripts/test.sh does this on exit
# Prints AOF_TEST_SYNAPSE_URL, AOF_TEST_SYNAPSE_SECRET (registration shared secret) and
# AOF_TEST_SYNAPSE_REGISTER (Synapse's own `register_new_matrix_user`) and
# AOF_TEST_SYNAPSE_LOG (its log, with one line per request). Everything lives
# under /var/tmp, outside the clone; the venv is reused between runs. Message rate limits
# are tight on purpose (a burst of 5, then one per 2 s), so the bridge meets real 429s
# with `retry_after_ms`. Any failure exits non-zero, so CI never skips.
# AOF_SYNAPSE_DIR and AOF_SYNAPSE_PORT override the place and port.
set -euo pipefail

version=1.163.2
dir="${AOF_SYNAPSE_DIR:-/var/tmp/aof-synapse}"
port="${AOF_SYNAPSE_PORT:-28008}"
venv="$dir/venv"
data="$dir/data"
url="http://127.0.0.1:${port}"
secret=aof-test-registration-secret
die() { echo "synapse.sh: $*" >&2; exit 1; }

install() {
  if [ -x "$venv/bin/synapse_homeserver" ] \
    && [ "$("$venv/bin/python" -c 'import synapse; print(synapse.__version__)' 2>/dev/null)" = "$version" ]; then
    return 0
  fi
  echo "synapse.sh: installing matrix-synapse $version (PyPI) into $venv" >&2
  mkdir -p "$dir"
  python3 -m venv "$venv" >&2 || die "python3 -m venv failed"
  "$venv/bin/pip" install -q "matrix-synapse==$version" >&2 || die "pip install matrix-synapse failed"
}

config() {
  mkdir -p "$data/media"
  # The request log names each request's user and status: the tests read it to see
  # the homeserver's 429s to the bridge.
  cat >"$data/log.yaml" <<EOF
version: 1
formatters:
  precise:
    format: "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
handlers:
  file:
    class: logging.FileHandler
    filename: "$data/homeserver.log"
    formatter: precise
root:
  level: INFO
  handlers: [file]
disable_existing_loggers: false
EOF
  cat >"$data/homeserver.yaml" <<EOF
server_name: "localhost"
pid_file: "$data/homeserver.pid"
log_config: "$data/log.yaml"
listeners:
  - port: $port
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "$data/homeserver.db"
media_store_path: "$data/media"
signing_key_path: "$data/localhost.signing.key"
registration_shared_secret: "$secret"
macaroon_secret_key: "aof-test-macaroon"
form_secret: "aof-test-form"
report_stats: false
enable_registration: false
trusted_key_servers: []
suppress_key_server_warning: true
presence:
  enabled: false
rc_message:
  per_second: 0.5
  burst_count: 5
rc_login:
  address: {per_second: 100, burst_count: 1000}
  account: {per_second: 100, burst_count: 1000}
  failed_attempts: {per_second: 100, burst_count: 1000}
rc_registration:
  per_second: 100
  burst_count: 1000
rc_joins:
  local: {per_second: 100, burst_count: 1000}
rc_invites:
  per_room: {per_second: 100, burst_count: 1000}
  per_user: {per_second: 100, burst_count: 1000}
EOF
}

healthy() { curl -fsS "$url/health" >/dev/null 2>&1; }

start() {
  install
  if ! healthy; then
    config
    [ -f "$data/localhost.signing.key" ] \
      || "$venv/bin/synapse_homeserver" -c "$data/homeserver.yaml" --generate-keys >&2 \
      || die "generating the signing key failed"
    "$venv/bin/synapse_homeserver" -c "$data/homeserver.yaml" --daemonize >"$data/start.log" 2>&1 \
      || { cat "$data/start.log" >&2; die "synapse did not start"; }
    local i
    for i in $(seq 1 120); do
      healthy && break
      [ "$i" = 120 ] && { tail -30 "$data/start.log" >&2; die "synapse not healthy on $url after 60 s"; }
      sleep 0.5
    done
  fi
  echo "export AOF_TEST_SYNAPSE_URL=$url"
  echo "export AOF_TEST_SYNAPSE_SECRET=$secret"
  echo "export AOF_TEST_SYNAPSE_REGISTER=$venv/bin/register_new_matrix_user"
  echo "export AOF_TEST_SYNAPSE_LOG=$data/homeserver.log"
}

stop() {
  local pid
  pid="$(cat "$data/homeserver.pid" 2>/dev/null || true)"
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do
    healthy || break
    sleep 0.25
  done
  # A fresh homeserver per CI run: users, rooms and rate-limit state start empty.
  rm -rf "$data"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: synapse.sh start|stop" ;;
esac
