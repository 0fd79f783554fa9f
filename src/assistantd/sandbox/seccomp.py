"""The seccomp filter every kernel runs under, compiled on the server with libseccomp.

bubblewrap installs it (`--seccomp FD`) after building the sandbox and before it executes
the kernel, so nothing the user's code runs is ever outside it. It allows everything a
Python data session uses and fails, with EPERM, the syscalls such a session never needs
and that widen the kernel attack surface: namespaces (a new user namespace is what makes
most unprivileged kernel exploits reachable), tracing other processes, mounting, BPF,
perf, keyrings, io_uring, userfaultfd, module loading, reboot and the like. `clone3` gets
ENOSYS, since its flags cannot be inspected: libc then falls back to `clone`, whose
namespace flags are refused.

Only the native architecture's syscall table is allowed; a syscall made through another
ABI (32-bit `int 0x80`, x32) kills the process (libseccomp's default bad-arch action).
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile

from assistantd.sandbox.base import SandboxUnavailable

#: Refused with EPERM. Names libseccomp does not know on this architecture are skipped.
BLOCKED_SYSCALLS = (
    # namespaces
    "unshare",
    "setns",
    # other processes' memory and execution
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    # mounts and filesystems
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "swapon",
    "swapoff",
    "open_by_handle_at",
    "name_to_handle_at",
    "quotactl",
    "quotactl_fd",
    "acct",
    "fanotify_init",
    # kernel facilities with a history of exploitable bugs
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    # the machine itself
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "syslog",
    "iopl",
    "ioperm",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "vhangup",
    "uselib",
    "nfsservctl",
    "lookup_dcookie",
)

#: clone(2) flags that create namespaces (linux/sched.h; `os.CLONE_*` needs Python 3.12);
#: `clone` with any of them is refused.
NAMESPACE_CLONE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)


@functools.cache
def compiled_filter() -> bytes:
    """The filter as the BPF program `bwrap --seccomp` reads; compiled once per process."""
    try:
        import pyseccomp as sc
    except (ImportError, RuntimeError) as exc:  # RuntimeError: libseccomp.so not found
        raise SandboxUnavailable(
            f"cannot build the sandbox's seccomp filter ({exc}); install libseccomp2 "
            "(scripts/install-sandbox.sh) and the pyseccomp package"
        ) from exc
    f = sc.SyscallFilter(sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in BLOCKED_SYSCALLS:
        try:
            f.add_rule(deny, name)
        except (ValueError, OSError):
            continue  # not a syscall on this architecture
    for flag in NAMESPACE_CLONE_FLAGS:
        # clone's flags are its first argument on x86_64 and arm64 alike.
        f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        return out.read()


def filter_fd() -> int:
    """A fresh read-only fd holding the compiled filter, for one bwrap launch to read."""
    program = compiled_filter()
    fd = os.memfd_create("assistantd-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(fd, program)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
