#!/usr/bin/env bash
# Install the code_interpreter sandbox: bubblewrap, and in one directory outside the checkout
# the sandbox's own Python venv and the kernel it runs.
#
#   scripts/install-sandbox.sh [SANDBOX_DIR]
#
# SANDBOX_DIR defaults to $ASSISTANTD_SANDBOX_DIR, else /opt/assistantd/sandbox; a user who is
# not root and finds no root install of this kernel there gets ~/.local/share/assistantd/sandbox
# (the rule of default_sandbox_dir() in src/assistantd/sandbox/bubblewrap.py).
#
# Why outside the checkout: a root server runs each kernel as an unprivileged uid, which must
# read the venv and the kernel whatever the checkout's directories allow (a clone under a 0700
# directory included). So they live here, owned by root, read-only to everyone else, under
# directories everyone may enter. Layout: venv/ and kernel-<hash>.py (one per kernel version,
# so checkouts of different versions share the dir). The venv is built on Debian's
# /usr/bin/python3 on purpose: the sandbox then only needs /usr (read-only) plus the venv.
#
# Idempotent: an up-to-date dir is checked in a fraction of a second.
set -euo pipefail
umask 022

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kernel_src="$repo/src/assistantd/sandbox/kernel.py"
kernel_name="kernel-$(sha256sum "$kernel_src" | cut -c1-16).py"
system_dir=/opt/assistantd/sandbox
if [ -n "${1:-}" ]; then
  dir=$1
elif [ -n "${ASSISTANTD_SANDBOX_DIR:-}" ]; then
  dir=$ASSISTANTD_SANDBOX_DIR
elif [ "$(id -u)" -eq 0 ] || [ -f "$system_dir/$kernel_name" ]; then
  dir=$system_dir
else
  dir="$HOME/.local/share/assistantd/sandbox"
  echo "install-sandbox: not root, and $system_dir has no root install of this kernel:" \
    "installing for $(id -un) at $dir (ASSISTANTD_SANDBOX_DIR chooses; a root install serves every user)"
fi
dir="$(realpath -ms "$dir")"
venv="$dir/venv"
base_python="/usr/bin/python3"
# Bump when the package set changes so existing venvs are upgraded.
packages=("numpy>=1.26,<3" "pandas>=2.1,<3" "matplotlib>=3.8,<4")
stamp_content="v2 ${packages[*]}"
stamp="$venv/.assistantd-sandbox-stamp"

up_to_date() {
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_content" ] && [ -x "$venv/bin/python" ] \
    && cmp -s "$kernel_src" "$dir/$kernel_name"
}

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
  echo "install-sandbox: apt-get install ${need_apt[*]} (the sandbox runs on them; under a minute)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if up_to_date; then
  echo "install-sandbox: $dir is up to date"
  exit 0
fi

# A root server's kernels run as another uid, which must be able to enter every directory
# above the sandbox: refuse a place it cannot reach now rather than at the first launch.
if [ "$(id -u)" -eq 0 ]; then
  p=$dir
  while [ "$p" != / ]; do
    p=$(dirname "$p")
    if [ -d "$p" ] && (( (8#$(stat -c %a "$p") & 1) == 0 )); then
      echo "install-sandbox: $p (mode $(stat -c %a "$p")) is closed to other users, so the sandbox" \
        "uid could not reach $dir; choose another ASSISTANTD_SANDBOX_DIR or chmod o+x $p" >&2
      exit 1
    fi
  done
fi
mkdir -p "$dir"
if [ ! -w "$dir" ]; then
  echo "install-sandbox: $dir needs updating but is not writable by $(id -un); run" \
    "scripts/install-sandbox.sh as root, or set ASSISTANTD_SANDBOX_DIR to a directory of yours" >&2
  exit 1
fi
# Two checkouts installing into one dir at once take turns.
exec 9>"$dir/.install.lock"
flock 9
err=$(mktemp)
trap 'rm -f "$err"' EXIT

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$stamp_content" ] || [ ! -x "$venv/bin/python" ]; then
  echo "install-sandbox: building the code_interpreter venv at $venv (numpy, pandas, matplotlib" \
    "on $base_python, what user code may import; about a minute, more when pip must download)"
  "$base_python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --root-user-action=ignore "${packages[@]}"

  # Inside the sandbox the venv is mounted at /opt/venv (VENV_MOUNT in sandbox/bubblewrap.py),
  # wherever it lives here. Build matplotlib's font cache once, in bubblewrap against that
  # path; each kernel copies it into its writable MPLCONFIGDIR so start-up does not rescan
  # fonts (~1 s).
  # (Its stderr, fontconfig's complaints about the missing /etc/fonts, only shows on failure.)
  mkdir -p "$venv/share/assistantd-mplconfig"
  bwrap --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 \
    --symlink usr/bin /bin --ro-bind-try /etc/ld.so.cache /etc/ld.so.cache \
    --bind "$venv" /opt/venv --unshare-all --die-with-parent --proc /proc --dev /dev \
    --tmpfs /tmp --clearenv --setenv MPLBACKEND Agg \
    --setenv MPLCONFIGDIR /opt/venv/share/assistantd-mplconfig \
    /opt/venv/bin/python -c "import matplotlib.font_manager, matplotlib.pyplot" 2>"$err" \
    || { cat "$err" >&2; echo "install-sandbox: bubblewrap cannot run the venv here" >&2; exit 1; }
  echo "$stamp_content" >"$stamp"
fi

# The kernel: written under a temporary name and renamed, so a server never reads half a file.
cp "$kernel_src" "$dir/.$kernel_name.tmp"
mv -f "$dir/.$kernel_name.tmp" "$dir/$kernel_name"

# Owned by root (when root installs), read-only to everyone else.
[ "$(id -u)" -ne 0 ] || chown -R root:root "$dir"
chmod -R u+rwX,go+rX,go-w "$dir"

# Prove it starts inside bubblewrap the way the engine will run it: as an unprivileged uid
# with no groups when root installs, reading the venv and the kernel read-only.
as_sandbox_uid=()
[ "$(id -u)" -ne 0 ] || as_sandbox_uid=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
"${as_sandbox_uid[@]}" bwrap --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 \
  --symlink usr/bin /bin --ro-bind-try /etc/ld.so.cache /etc/ld.so.cache \
  --ro-bind "$venv" /opt/venv --ro-bind "$dir/$kernel_name" /opt/assistantd/kernel.py \
  --unshare-all --die-with-parent --proc /proc --dev /dev --tmpfs /tmp --clearenv \
  --setenv MPLBACKEND Agg \
  /opt/venv/bin/python -c "import numpy, pandas, matplotlib.pyplot; open('/opt/assistantd/kernel.py').read()" \
  2>"$err" || { cat "$err" >&2; echo "install-sandbox: bubblewrap cannot run the venv here as an" \
    "unprivileged uid" >&2; exit 1; }

echo "install-sandbox: ready at $dir"
