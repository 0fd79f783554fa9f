"""The production sandbox: each session is a kernel in its own bubblewrap namespaces.

Per kernel:
- user, pid, net, ipc, uts, mount and cgroup namespaces (`bwrap --unshare-all`); the net
  namespace has only its own loopback, so neither the internet nor the host's 127.0.0.1
  (the server's port) is reachable;
- when the server runs as root, the launcher first drops to a host uid of its own
  (`uid_base + n`, never 0, no supplementary groups): the kernel is not root on the host
  even through the user namespace, and RLIMIT_NPROC, which the kernel counts per host uid,
  is one session's budget instead of one shared by every session;
- no nested user namespaces (`--disable-userns`) and a seccomp filter (sandbox/seccomp.py)
  that refuses the syscalls a Python data session never needs, installed by bwrap just
  before it runs the kernel;
- rlimits set by `prlimit` before bwrap starts, inherited by everything inside (address
  space, processes, CPU seconds, file size, no core dumps);
- a filesystem of its own: /usr and the sandbox venv read-only, the kernel read-only, a
  fresh /proc and minimal /dev, and one size-limited tmpfs at /mnt holding /mnt/data and
  /tmp (a symlink to /mnt/tmp), which is the session's disk quota. The server's data dir,
  config, repo and other sessions' files are simply not in that mount namespace;
- a cleared environment: only the variables set below exist inside.

The tmpfs is the quota because it is a hard limit the kernel enforces (ENOSPC) with no
privileged setup, and its lifetime is exactly the session's: a session that restarts is
fresh anyway. Its pages are memory, so the host must budget disk_mb per live session.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from assistantd.sandbox.base import SandboxUnavailable
from assistantd.sandbox.limits import OutputLimits, SessionLimits
from assistantd.sandbox.process import LaunchSpec
from assistantd.sandbox.seccomp import filter_fd
from assistantd.sandbox.sessions import PooledKernelSandbox

KERNEL_SOURCE = Path(__file__).with_name("kernel.py")
KERNEL_PATH = "/opt/assistantd/kernel.py"
SANDBOX_UID = 1000  # the uid the code sees inside its user namespace
# Not secrets: CPU-model workarounds for OpenBLAS that the host may need to pass on.
PASSED_THROUGH_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# Per-uid lock files shared by every assistantd process on the host (see _claim_uid).
UID_LOCK_DIR = Path("/run/assistantd-sandbox")


# Where the sandbox venv appears inside the sandbox (scripts/install-sandbox.sh builds the
# matplotlib font cache against this path too).
VENV_MOUNT = "/opt/venv"


# Where scripts/install-sandbox.sh installs the sandbox (`venv/` and `kernel-<hash>.py`) by
# default: outside any checkout, owned by root and readable by the dropped sandbox uid wherever
# the checkout lives (ASSISTANTD_SANDBOX_DIR chooses another place).
SYSTEM_SANDBOX_DIR = Path("/opt/assistantd/sandbox")


@functools.cache
def kernel_name() -> str:
    """The installed kernel's file name: one per version of kernel.py, so checkouts of
    different versions can share one sandbox dir."""
    return f"kernel-{hashlib.sha256(KERNEL_SOURCE.read_bytes()).hexdigest()[:16]}.py"


def default_sandbox_dir() -> Path:
    """SYSTEM_SANDBOX_DIR, or for a user who is not root and finds no root install of this
    kernel there, `~/.local/share/assistantd/sandbox` (the rule scripts/install-sandbox.sh
    follows too)."""
    if os.geteuid() == 0 or (SYSTEM_SANDBOX_DIR / kernel_name()).is_file():
        return SYSTEM_SANDBOX_DIR
    return Path.home() / ".local" / "share" / "assistantd" / "sandbox"


@functools.cache
def disables_userns(bwrap: str) -> bool:
    """Whether this bwrap has `--disable-userns` (0.8.0 and later)."""
    try:
        out = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10)
        version = tuple(int(n) for n in re.findall(r"\d+", out.stdout)[:2])
    except (OSError, subprocess.SubprocessError, ValueError):
        return False
    return version >= (0, 8)


def unsearchable_dir(path: Path) -> Path | None:
    """The first directory above `path` that a user with no relation to it (the sandbox's
    dropped uid, no groups) may not enter, if any."""
    for directory in reversed(path.absolute().parents):
        if not directory.stat().st_mode & 0o001:
            return directory
    return None


class BubblewrapSandbox(PooledKernelSandbox):
    """Kernels isolated by bubblewrap namespaces, rlimits, a tmpfs quota and a host uid of their own."""

    def __init__(
        self,
        *,
        sandbox_dir: Path | None = None,
        idle_seconds: float = 3600,
        timeout_seconds: float = 60.0,
        memory_mb: int = 1024,
        disk_mb: int = 512,
        max_processes: int = 64,
        pool_size: int = 2,
        cpu_seconds: int = 3600,
        max_output_chars: int = 20_000,
        output_limits: OutputLimits | None = None,
        uid_base: int = 200_000,
        uid_count: int = 10_000,
        bwrap: str | None = None,
    ) -> None:
        super().__init__(
            limits=SessionLimits(
                timeout_seconds=timeout_seconds,
                memory_mb=memory_mb,
                disk_mb=disk_mb,
                max_processes=max_processes,
                cpu_seconds=cpu_seconds,
                max_output_chars=max_output_chars,
                output=output_limits or OutputLimits(),
            ),
            idle_seconds=idle_seconds,
            pool_size=pool_size,
        )
        self.sandbox_dir = (sandbox_dir or default_sandbox_dir()).absolute()
        self.venv = self.sandbox_dir / "venv"
        self.kernel = self.sandbox_dir / kernel_name()
        self._python = self.venv / "bin" / "python"
        self._bwrap = bwrap or shutil.which("bwrap")
        self._prlimit = shutil.which("prlimit")
        if uid_base <= 0:
            raise ValueError("uid_base must be a positive host uid: the sandbox never runs as root")
        # Dropping to another uid needs root; otherwise the kernel runs as the server's uid,
        # still unprivileged inside its own user namespace.
        self._drop_privileges = os.geteuid() == 0
        self._free_uids = list(range(uid_base + uid_count - 1, uid_base - 1, -1))
        self._taken_elsewhere: list[int] = []
        self._uid_locks: dict[int, int] = {}

    def _check_installed(self) -> None:
        if self._bwrap is None or self._prlimit is None:
            raise SandboxUnavailable(
                "bubblewrap (bwrap) or prlimit is not installed; run scripts/install-sandbox.sh"
            )
        if not os.access(self._python, os.X_OK) or not self.kernel.is_file():
            missing = self.kernel if os.access(self._python, os.X_OK) else self._python
            raise SandboxUnavailable(
                f"the sandbox is not installed at {self.sandbox_dir} ({missing} does not exist); "
                f"run scripts/install-sandbox.sh {self.sandbox_dir}"
            )
        if self._drop_privileges:
            for path in (self.venv, self.kernel):
                closed = unsearchable_dir(path)
                if closed is not None:
                    raise SandboxUnavailable(
                        f"the sandbox user cannot reach {path}: {closed} is closed to other users "
                        f"(mode {closed.stat().st_mode & 0o777:o}); set ASSISTANTD_SANDBOX_DIR to a "
                        f"directory every user may enter (default {SYSTEM_SANDBOX_DIR}), "
                        f"or `chmod o+x {closed}`"
                    )

    def _launch_spec(self) -> LaunchSpec:
        self._check_installed()
        assert self._bwrap is not None and self._prlimit is not None
        uid: int | None = None
        if self._drop_privileges:
            uid = self._claim_uid()
        # The venv is mounted at one fixed path inside, wherever it lives on the host (a
        # checkout under /tmp would otherwise collide with the sandbox's own /tmp).
        venv = VENV_MOUNT
        env = {
            "PATH": f"{venv}/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "USER": "sandbox",
            "LOGNAME": "sandbox",
            "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": "/tmp/.matplotlib",
            "XDG_CACHE_HOME": "/tmp/.cache",
            # One BLAS/OpenMP thread: threads count against the process limit and each
            # reserves address space, and two cores are shared by every session anyway.
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "MALLOC_ARENA_MAX": "2",
            **{k: os.environ[k] for k in PASSED_THROUGH_ENV if k in os.environ},
        }
        config = {
            "max_output_chars": self.limits.max_output_chars,
            **self.limits.output.kernel_config(),
            "mpl_cache": f"{venv}/share/assistantd-mplconfig",
            "warm": True,
        }
        argv = [self._prlimit, *self.limits.prlimit_args(), "--", self._bwrap]
        # No nested user namespaces (bwrap >= 0.8; the seccomp filter refuses them anyway)
        # and the seccomp filter itself, installed by bwrap right before it runs the kernel.
        if disables_userns(self._bwrap):
            argv += ["--unshare-user", "--disable-userns"]
        # fmt: off
        argv += [
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--cap-drop", "ALL",
            "--uid", str(SANDBOX_UID),
            "--gid", str(SANDBOX_UID),
            "--hostname", "sandbox",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin",
            "--symlink", "usr/sbin", "/sbin",
            "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
            "--ro-bind-try", "/etc/localtime", "/etc/localtime",
            "--ro-bind", str(self.venv), venv,
            "--ro-bind", str(self.kernel), KERNEL_PATH,
            "--proc", "/proc",
            "--dev", "/dev",
            "--size", str(self.limits.disk_mb * 1024 * 1024),
            "--perms", "0755",
            "--tmpfs", "/mnt",
            "--dir", "/mnt/data",
            "--dir", "/mnt/tmp",
            "--symlink", "/mnt/tmp", "/tmp",
            # The root and /dev tmpfs bwrap builds are writable with no size limit: seal them
            # (device nodes are separate bind mounts, so /dev/null stays writable).
            "--remount-ro", "/",
            "--remount-ro", "/dev",
            "--chdir", "/mnt/data",
            "--clearenv",
        ]
        # fmt: on
        for key, value in env.items():
            argv += ["--setenv", key, value]
        seccomp = filter_fd()
        argv += ["--seccomp", str(seccomp)]
        argv += [f"{venv}/bin/python", "-I", KERNEL_PATH, json.dumps(config)]
        return LaunchSpec(argv=argv, uid=uid, gid=uid, pass_fds=(seccomp,))

    def _claim_uid(self) -> int:
        """A uid no other kernel on this host uses, in this process or any other.

        Killing a session kills every process of its uid, so two servers (or two sandboxes
        in one process) must never share one: each uid is held by an flock on a file in
        UID_LOCK_DIR for as long as its kernel lives.
        """
        UID_LOCK_DIR.mkdir(parents=True, exist_ok=True)
        while self._free_uids:
            uid = self._free_uids.pop()
            fd = os.open(UID_LOCK_DIR / f"uid-{uid}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self._taken_elsewhere.append(uid)
                continue
            self._uid_locks[uid] = fd
            return uid
        self._free_uids, self._taken_elsewhere = self._taken_elsewhere[::-1], []
        raise SandboxUnavailable("every sandbox uid is in use; raise uid_count")

    def _released(self, spec: LaunchSpec) -> None:
        if spec.uid is not None:
            fd = self._uid_locks.pop(spec.uid, None)
            if fd is not None:
                os.close(fd)  # releases the flock
            self._free_uids.append(spec.uid)
