#!/usr/bin/env bash
# Set up everything assistantd needs in .venv: the package, the embedded model, the
# offline embedder, the code-interpreter sandbox and the Node SDK used by the tests.
# Idempotent: a stamp holding a hash of the inputs makes a repeated run take a second.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

inputs_hash() {
  cat pyproject.toml scripts/*.sh tests/node/package.json 2>/dev/null | sha256sum | cut -c1-16
}
stamp="$VENV/.assistantd-installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(inputs_hash)" ]; then
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -U pip wheel setuptools
# torch first, pinned: the CPU build on this machine; anything unpinned pulls CUDA.
"$VENV/bin/pip" install -q --disable-pip-version-check 'torch==2.13.0'
"$VENV/bin/pip" install -q --disable-pip-version-check -e '.[dev,retrieval]'
# The embedded model (a cached llama-cpp-python wheel) into our venv; the code-interpreter
# sandbox (bubblewrap and its own venv with numpy/pandas/matplotlib) into .venv-sandbox.
scripts/install-llama.sh "$VENV"
scripts/install-sandbox.sh
if [ -f tests/node/package.json ] && command -v npm >/dev/null; then
  (cd tests/node && npm install --no-audit --no-fund --silent)
fi
inputs_hash > "$stamp"
