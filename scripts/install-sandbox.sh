#!/usr/bin/env bash
# Prepare the code_interpreter sandbox: bubblewrap and the sandbox's own Python venv.
#
#   scripts/install-sandbox.sh [VENV_DIR]     (default: <repo>/.venv-sandbox)
#
# Idempotent: a second run checks a stamp file and returns in well under a second.
# The venv is built on Debian's /usr/bin/python3 on purpose: the sandbox then only
# needs /usr (read-only) plus the venv itself, and no interpreter living under /root
# or the repo has to be made visible inside it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$repo/.venv-sandbox}"
base_python="/usr/bin/python3"
# Bump when the package set changes so existing venvs are upgraded.
packages=("numpy>=1.26,<3" "pandas>=2.1,<3" "matplotlib>=3.8,<4")
stamp_content="v2 ${packages[*]}"
stamp="$venv/.assistantd-sandbox-stamp"

need_apt=()
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
command -v prlimit >/dev/null 2>&1 || need_apt+=(util-linux)
command -v setpriv >/dev/null 2>&1 || need_apt+=(util-linux)
ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || need_apt+=(libseccomp2)  # seccomp filter
[ -x "$base_python" ] || need_apt+=(python3)
"$base_python" -c "import ensurepip, venv" >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-sandbox: need root to apt-get install ${need_apt[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_content" ] && [ -x "$venv/bin/python" ]; then
  echo "install-sandbox: $venv is up to date"
  exit 0
fi

"$base_python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"

# Inside the sandbox the venv is mounted at /opt/venv (VENV_MOUNT in sandbox/bubblewrap.py),
# wherever it lives here. Build matplotlib's font cache once, in bubblewrap against that
# path; each kernel copies it into its writable MPLCONFIGDIR so start-up does not rescan
# fonts (~1 s).
mkdir -p "$venv/share/assistantd-mplconfig"
in_sandbox() {
  bwrap --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 \
    --symlink usr/bin /bin --ro-bind-try /etc/ld.so.cache /etc/ld.so.cache "$@"
}
in_sandbox --bind "$venv" /opt/venv --unshare-all --die-with-parent --proc /proc --dev /dev \
  --tmpfs /tmp --clearenv --setenv MPLBACKEND Agg \
  --setenv MPLCONFIGDIR /opt/venv/share/assistantd-mplconfig \
  /opt/venv/bin/python -c "import matplotlib.font_manager, matplotlib.pyplot" \
  || { echo "install-sandbox: bubblewrap cannot run the venv here" >&2; exit 1; }

# The sandbox runs as an unprivileged uid that must be able to read the venv.
chmod -R a+rX "$venv"

# Prove it starts inside bubblewrap the way the engine will run it.
in_sandbox --ro-bind "$venv" /opt/venv --unshare-all --die-with-parent \
  --proc /proc --dev /dev --tmpfs /tmp --clearenv --setenv MPLBACKEND Agg \
  /opt/venv/bin/python -c "import numpy, pandas, matplotlib.pyplot" \
  || { echo "install-sandbox: bubblewrap cannot run the venv here" >&2; exit 1; }

echo "$stamp_content" >"$stamp"
echo "install-sandbox: ready at $venv"
