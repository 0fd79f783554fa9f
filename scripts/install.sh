#!/usr/bin/env bash
# Set up everything assistantd needs: the package, the embedded model and the offline embedder
# in .venv, the code-interpreter sandbox in its own place (scripts/install-sandbox.sh), and the
# Node SDK used by the tests. Every slow step says what it does, why and about how long first.
# Idempotent: a stamp holding a hash of the inputs makes a repeated run take about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
say() { echo "install: $*"; }

inputs_hash() {
  cat pyproject.toml scripts/*.sh tests/node/package.json 2>/dev/null | sha256sum | cut -c1-16
}
stamp="$VENV/.assistantd-installed"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(inputs_hash)" ]; then
  started=$(date +%s)
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  pip=("$VENV/bin/pip" install -q --disable-pip-version-check)
  "${pip[@]}" -U pip wheel setuptools
  # torch first, pinned: the CPU build on this machine; anything unpinned pulls CUDA.
  say "installing torch 2.13.0 (CPU) into $VENV for the offline embedder that file_search" \
    "uses; about a minute, more when pip must download it"
  "${pip[@]}" 'torch==2.13.0'
  say "installing assistantd with its server, retrieval and test dependencies" \
    "(sentence-transformers, the SDK, pytest, ...); about a minute"
  "${pip[@]}" -e '.[dev,retrieval]'
  # The embedded model (a cached llama-cpp-python wheel, built once) into our venv.
  scripts/install-llama.sh "$VENV"
  if [ -f tests/node/package.json ] && command -v npm >/dev/null; then
    say "npm install in tests/node (the Node openai SDK the tests drive; about 10 s)"
    (cd tests/node && npm install --no-audit --no-fund --silent)
  fi
  inputs_hash > "$stamp"
  say "$VENV ready in $(( $(date +%s) - started )) s"
fi
# Debian's chromium, which the console's browser tests (tests/system/test_console.py) drive
# headless through Playwright; Playwright's own browser download is never used. Checked
# every time (a fraction of a second when it is there).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "need root to apt-get install chromium (the console's browser tests); they fail without it"
  else
    say "apt-get install chromium (the console's browser tests drive it headless; about a minute)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi
# The code-interpreter sandbox, checked every time (a fraction of a second when up to date):
# it lives outside the checkout, where ASSISTANTD_SANDBOX_DIR (or .env) says.
sandbox_dir=$("$VENV/bin/python" -c \
  'from assistantd.core.settings import Settings; print(Settings().sandbox_dir or "")')
ASSISTANTD_SANDBOX_DIR=$sandbox_dir scripts/install-sandbox.sh
