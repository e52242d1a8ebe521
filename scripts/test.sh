#!/usr/bin/env bash
# The README's test command: installs what the tests need, builds `aof` once, runs
# format + lint checks and every test. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/aof-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
start_all=$(date +%s)
stage() { echo; echo "=== [$(date +%H:%M:%S) +$(( $(date +%s) - start_all ))s] $*"; }

stage "toolchain"
cargo --version
if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy || true

stage "deps"
AOF_CLAUDE_BIN="$(bash scripts/ci/claude.sh)"; export AOF_CLAUDE_BIN  # Claude Code CLI for the executor tests (a failed install stops the run)
llm_env="$(bash scripts/ci/llm.sh)"; eval "$llm_env"; export AOF_LLAMA_SERVER AOF_LLM_MODEL_15B  # llama-server + Qwen 1.5B for the model_api tests (cached under /var/tmp/aof-llm)
ref_env="$(bash scripts/ci/reference.sh)"; eval "$ref_env"  # the AOF reference as a test peer (interop tests): venv, uv cache, dashboard build under /var/tmp
source scripts/ci/browser.sh  # dashboard browser tests: chromium, chromedriver, axe-core (AOF_AXE_JS)
bash scripts/ci/images.sh deps
for p in sqlite3 iproute2; do dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p"; }; done  # fault tests: sqlite3 CLI, ip netns
AOF_TEST_DATABASE_URL="$(bash scripts/ci/postgres.sh start)"; export AOF_TEST_DATABASE_URL; trap 'bash scripts/ci/postgres.sh stop; bash scripts/ci/synapse.sh stop' EXIT  # PostgreSQL store tests: a loopback server, stopped on exit
synapse_env="$(bash scripts/ci/synapse.sh start)"; eval "$synapse_env"  # Matrix bridge tests: Synapse (PyPI) on loopback, stopped on exit

stage "cargo fmt --check"
cargo fmt --all -- --check

stage "build (aof binary once, all targets)"
cargo build --locked --all-targets
export AOF_BIN="$CARGO_TARGET_DIR/debug/aof"

stage "clippy -D warnings"
cargo clippy --locked --all-targets -- -D warnings

stage "clippy -D warnings of the images' builds (aof-cli features coordinator+matrix, runner)"
for f in coordinator,matrix runner; do cargo clippy --locked -p aof-cli --no-default-features --features "$f" -- -D warnings; done

stage "unused dependencies (cargo machete)"
command -v cargo-machete >/dev/null 2>&1 || cargo install --locked cargo-machete
cargo machete

stage "tests (nextest)"
cargo nextest run --locked --workspace --no-fail-fast

stage "API suite again on PostgreSQL (AOF_TEST_STORE=postgres: a fresh database per coordinator)"
# --workspace, not -p: the features resolve as in the build above, so nothing compiles again.
AOF_TEST_STORE=postgres cargo nextest run --locked --workspace --no-fail-fast --test api --test auth --test e2e --test interop \
  -E '(binary(interop) & test(/^(ref_runner_on_ours|import|dashboard)::/)) | (package(aof-coordinator) & binary(api)) | (binary(auth) - test(/^browser::/)) | (binary(e2e) & test(/^(approvals|cli|crash|drain|event_batch|leases|longpoll|mcp|orchestration|otel|protocol|runners|shutdown|sse_replay)::/))'

stage "doc tests"
cargo test --locked --workspace --doc

stage "kubernetes manifests: render, validate, policy (scripts/ci/k8s.sh)"
bash scripts/ci/k8s.sh

stage "helm chart: lint, render, validate, policy, schema, parity with kustomize, package (scripts/ci/helm.sh)"
bash scripts/ci/helm.sh

stage "schemathesis against /openapi.json (live coordinator)"
bash scripts/ci/schemathesis.sh
stage "container images (build, check, compose, push; scripts/ci/images.sh)"
bash scripts/ci/images.sh test

stage "done in $(( $(date +%s) - start_all ))s"
