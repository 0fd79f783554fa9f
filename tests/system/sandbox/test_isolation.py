"""Attacks a user's code could try; each must fail inside the sandbox and leave the host unharmed.

Every test performs the attack for real from inside a BubblewrapSandbox session.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from assistantd.sandbox import BubblewrapSandbox
from assistantd.sandbox.base import SandboxUnavailable
from assistantd.sandbox.bubblewrap import KERNEL_PATH, KERNEL_SOURCE, kernel_name
from assistantd.testing.sandbox import SANDBOX_DIR, SECRET

REPO = Path(__file__).resolve().parents[3]


async def run_json(sandbox: BubblewrapSandbox, key: str, code: str) -> object:
    """Run `code`, whose last line prints one JSON document, and decode it."""
    result = await sandbox.execute(key, code)
    assert not result.error, result.logs
    return json.loads(result.logs.strip().splitlines()[-1])


async def test_no_internet(sandbox: BubblewrapSandbox) -> None:
    # PyPI is reachable from this host; from inside the sandbox it must not be.
    try:
        pypi_ip = socket.getaddrinfo("pypi.org", 443, socket.AF_INET)[0][4][0]
    except OSError:
        pypi_ip = "151.101.0.223"
    code = f"""
import json, socket
out = {{"interfaces": [name for _, name in socket.if_nameindex()]}}
try:
    socket.getaddrinfo("pypi.org", 443)
    out["dns"] = "resolved"
except OSError as exc:
    out["dns"] = type(exc).__name__
s = socket.socket()
s.settimeout(3)
try:
    s.connect(({pypi_ip!r}, 443))
    out["connect"] = "connected"
except OSError as exc:
    out["connect"] = exc.errno
print(json.dumps(out))
"""
    out = await run_json(sandbox, "t", code)
    assert out == {"interfaces": ["lo"], "dns": "gaierror", "connect": 101}  # ENETUNREACH


async def test_host_loopback_port_is_unreachable(sandbox: BubblewrapSandbox) -> None:
    connections = 0

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        # Sanity check from the host side: the port really is listening.
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.05)
        assert connections == 1
        code = f"""
import json, socket
results = []
for host in ("127.0.0.1", "::1"):
    try:
        socket.create_connection((host, {port}), timeout=3).close()
        results.append("connected")
    except OSError as exc:
        results.append(type(exc).__name__)
print(json.dumps(results))
"""
        out = await run_json(sandbox, "t", code)
        assert out == ["ConnectionRefusedError"] * 2
        assert connections == 1
    finally:
        server.close()
        await server.wait_closed()


async def test_host_files_are_not_visible(sandbox: BubblewrapSandbox, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "assistantd.sqlite3").write_text("secret rows")
    paths = [
        str(data_dir / "assistantd.sqlite3"),
        str(REPO / "pyproject.toml"),
        str(REPO / "src" / "assistantd" / "core" / "settings.py"),
        "/root",
        "/etc/passwd",
        "/etc/shadow",
        "/home",
        "/var",
        "/sys",
    ]
    code = f"""
import json, os
out = {{}}
for path in {paths!r}:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path).read()
        out[path] = "read"
    except OSError as exc:
        out[path] = type(exc).__name__
print(json.dumps(out))
"""
    out = await run_json(sandbox, "t", code)
    assert out == dict.fromkeys(paths, "FileNotFoundError")


async def test_system_dirs_and_venv_are_read_only(sandbox: BubblewrapSandbox) -> None:
    code = f"""
import json, os, sys
out = []
for path in ["/usr/evil", sys.prefix + "/evil", {KERNEL_PATH!r}, "/evil", "/dev/evil", "/proc/evil"]:
    try:
        open(path, "w").write("x")
        out.append("written")
    except OSError as exc:
        out.append(type(exc).__name__)
print(json.dumps(out))
"""
    out = await run_json(sandbox, "t", code)
    assert "written" not in out, out


async def test_other_sessions_files_are_not_visible(sandbox: BubblewrapSandbox) -> None:
    await sandbox.execute("thread_a", "open('/mnt/data/a_secret.txt', 'w').write('for a only')")
    code = """
import glob, json, os
found = glob.glob('/mnt/data/*') + glob.glob('/tmp/*')
for pid in os.listdir('/proc'):
    if pid.isdigit():
        found += glob.glob(f'/proc/{pid}/root/mnt/data/*')
print(json.dumps({"found": found, "pids": sorted(p for p in os.listdir('/proc') if p.isdigit())}))
"""
    out = await run_json(sandbox, "thread_b", code)
    assert isinstance(out, dict)
    assert out["found"] == []
    # Only bwrap's init and the kernel itself exist in this pid namespace.
    assert len(out["pids"]) <= 3


async def test_host_environment_is_not_inherited(sandbox: BubblewrapSandbox) -> None:
    assert os.environ["ASSISTANTD_LLM_API_KEY"] == SECRET
    code = """
import json, os
environs = {}
for pid in os.listdir('/proc'):
    if pid.isdigit():
        try:
            environs[pid] = open(f'/proc/{pid}/environ', 'rb').read().decode()
        except OSError:
            pass
print(json.dumps({"env": dict(os.environ), "procs": environs}))
"""
    out = await run_json(sandbox, "t", code)
    assert isinstance(out, dict)
    assert SECRET not in json.dumps(out)
    assert not [k for k in out["env"] if k.startswith("ASSISTANTD_") or "SECRET" in k]


def host_kernel_processes() -> list[dict[str, str]]:
    """The host's view (/proc status) of every running sandbox kernel."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if KERNEL_PATH.encode() not in cmdline or b"bwrap" in cmdline:
                continue
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        found.append(dict(line.split(":\t", 1) for line in lines if ":\t" in line))
    return found


async def test_code_is_not_root_and_has_no_capabilities(sandbox: BubblewrapSandbox) -> None:
    code = """
import json, os
status = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)
out = {"uid": os.getuid(), "CapEff": status["CapEff"], "CapBnd": status["CapBnd"]}
for name, attempt in [("setuid", lambda: os.setuid(0)), ("chroot", lambda: os.chroot('/')),
                      ("mknod", lambda: os.mknod('/mnt/data/dev', 0o600 | 0o060000, os.makedev(8, 0)))]:
    try:
        attempt()
        out[name] = "allowed"
    except OSError as exc:
        out[name] = type(exc).__name__
print(json.dumps(out))
"""
    out = await run_json(sandbox, "t", code)
    assert out == {
        "uid": 1000,
        "CapEff": "0000000000000000",
        "CapBnd": "0000000000000000",
        "setuid": "OSError",  # EINVAL: no uid 0 exists in the sandbox's user namespace
        "chroot": "PermissionError",
        "mknod": "PermissionError",
    }
    kernels = host_kernel_processes()
    assert kernels, "no sandbox kernel found in the host's /proc"
    for status in kernels:
        real, effective, saved, fs = status["Uid"].split()
        assert "0" not in (real, effective, saved, fs)
        assert int(status["CapEff"], 16) == 0


async def host_still_works(sandbox: BubblewrapSandbox) -> None:
    """The host can fork and other sessions still run code."""
    proc = await asyncio.create_subprocess_exec("true")
    assert await proc.wait() == 0
    other = await sandbox.execute("bystander", "sum(range(10))")
    assert (other.error, other.logs) == (False, "45\n")


async def test_infinite_loop_times_out_and_next_call_is_fresh() -> None:
    box = BubblewrapSandbox(sandbox_dir=SANDBOX_DIR, timeout_seconds=2.0, pool_size=1)
    try:
        await box.start()
        await box.execute("t", "x = 1")
        result = await box.execute("t", "print('spinning', flush=True)\nwhile True:\n    pass")
        assert result.error
        assert result.session_restarted
        assert result.logs.startswith("spinning\n")
        assert "timed out after 2 s" in result.logs
        after = await box.execute("t", "'x' in dir()")
        assert (after.error, after.logs) == (False, "False\n")
        await host_still_works(box)
    finally:
        await box.close()


async def test_fork_bomb_is_contained(sandbox: BubblewrapSandbox) -> None:
    await sandbox.execute("bystander", "y = 2")
    result = await sandbox.execute("t", "import os\nwhile True:\n    os.fork()")
    assert result.error
    assert "BlockingIOError" in result.logs
    # The children are gone: the session is usable and alone in its pid namespace.
    after = await sandbox.execute(
        "t", "import os\nlen([p for p in os.listdir('/proc') if p.isdigit()])"
    )
    assert (after.error, after.logs) == (False, "2\n")
    await host_still_works(sandbox)
    assert (await sandbox.execute("bystander", "y")).logs == "2\n"


async def test_fork_bomb_that_ignores_errors_times_out() -> None:
    box = BubblewrapSandbox(
        sandbox_dir=SANDBOX_DIR, timeout_seconds=3.0, pool_size=0, max_processes=32
    )
    try:
        code = (
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
        )
        result = await box.execute("t", code)
        assert result.error and result.session_restarted
        assert "timed out" in result.logs
        assert (await box.execute("t", "1 + 1")).logs == "2\n"
        await host_still_works(box)
        kernel = box._sessions["t"].kernel
        assert kernel is not None and kernel.spec.uid is not None
        uid = kernel.spec.uid
    finally:
        await box.close()
    # Nothing that ran as this session's host uid outlives close() (other tests' and other
    # servers' kernels on this host run under other uids).
    assert [s for s in host_kernel_processes() if s["Uid"].split()[0] == str(uid)] == []


@pytest.mark.parametrize(
    "code",
    [
        "x = bytearray(16 * 1024 ** 3)",
        "chunks = []\nwhile True:\n    chunks.append(bytearray(64 * 1024 ** 2))",
        "import numpy as np\na = np.ones((40_000, 40_000))",
    ],
    ids=["one-allocation", "gradual", "numpy"],
)
async def test_memory_bomb_is_an_error_and_restarts_the_session(
    sandbox: BubblewrapSandbox, code: str
) -> None:
    await sandbox.execute("t", "x = 1")
    result = await sandbox.execute("t", code)
    assert result.error
    assert "MemoryError" in result.logs
    assert result.session_restarted
    assert "ran out of memory (limit 768 MB)" in result.logs
    assert (await sandbox.execute("t", "'x' in dir()")).logs == "False\n"
    await host_still_works(sandbox)


async def test_disk_fill_stops_at_the_quota(sandbox: BubblewrapSandbox, tmp_path: Path) -> None:
    code = """
block = b'\\0' * (1024 * 1024)
written = 0
with open('/mnt/data/fill.bin', 'wb') as f:
    while True:
        f.write(block)
        written += 1
"""
    result = await sandbox.execute("t", code)
    assert result.error
    assert "No space left on device" in result.logs
    # /tmp is on the same quota.
    tmp = await sandbox.execute("t", "open('/tmp/more.bin', 'wb').write(b'x' * 4 * 1024 * 1024)")
    assert tmp.error and "No space left on device" in tmp.logs
    # Freeing space makes the session usable again; the host's disk was never touched.
    cleanup = await sandbox.execute("t", "import os\nos.remove('/mnt/data/fill.bin')\nwritten")
    assert not cleanup.error
    assert 28 <= int(cleanup.logs) <= 32
    await host_still_works(sandbox)


@pytest.fixture
def closed_sandbox_dir() -> Iterator[tuple[Path, Path]]:
    """(a directory closed to other users, a sandbox dir inside it). Not under tmp_path:
    pytest's own base directory is closed to other users too."""
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        base.chmod(0o755)
        closed = base / "private"
        sandbox_dir = closed / "sandbox"
        python = sandbox_dir / "venv" / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.symlink_to(sys.executable)
        shutil.copy(KERNEL_SOURCE, sandbox_dir / kernel_name())
        closed.chmod(0o700)
        yield closed, sandbox_dir
    finally:
        shutil.rmtree(base)


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root server drops to the sandbox uid")
async def test_a_sandbox_dir_behind_a_closed_directory_is_refused_with_the_fix(
    closed_sandbox_dir: tuple[Path, Path],
) -> None:
    closed, sandbox_dir = closed_sandbox_dir
    box = BubblewrapSandbox(sandbox_dir=sandbox_dir, pool_size=0)
    with pytest.raises(SandboxUnavailable) as raised:
        await box.execute("t", "1")
    assert f"{closed} is closed to other users (mode 700)" in str(raised.value)
    assert "ASSISTANTD_SANDBOX_DIR" in str(raised.value)
    assert f"chmod o+x {closed}" in str(raised.value)
    await box.close()


# Each attempt prints the errno name it got, or "ok". A raw clone() that succeeds returns
# 0 in a child running this same code, which must leave at once.
SYSCALL_ATTEMPTS = r"""
import ctypes, errno, json, os, subprocess
libc = ctypes.CDLL(None, use_errno=True)
out = {}
def attempt(name, number, *args):
    r = libc.syscall(number, *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    if r == 0 and name.startswith("clone"):
        pid = os.getpid()
        if pid != kernel_pid:
            os._exit(0)
    out[name] = "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]
kernel_pid = os.getpid()
"""

USERNS_ATTEMPTS = (
    SYSCALL_ATTEMPTS
    + r"""
unshare = subprocess.run(["unshare", "-U", "-r", "true"], capture_output=True, text=True)
out["unshare -U -r true"] = unshare.returncode
# unshare(CLONE_NEWUSER) needs a single-threaded caller (the kernel has threads): a child.
child = "import ctypes, errno; libc = ctypes.CDLL(None, use_errno=True); " \
    "print('ok' if libc.syscall(272, 0x10000000) == 0 else errno.errorcode[ctypes.get_errno()])"
import sys
out["unshare(CLONE_NEWUSER)"] = subprocess.run([sys.executable, "-c", child], capture_output=True,
                                               text=True).stdout.strip()
attempt("clone(CLONE_NEWUSER)", 56, 0x10000000 | 17, 0, 0, 0, 0)
print(json.dumps(out))
"""
)


class WithoutArgs(BubblewrapSandbox):
    """The real sandbox minus its seccomp filter and/or --disable-userns, to test each alone."""

    def __init__(self, *, seccomp: bool, disable_userns: bool) -> None:
        super().__init__(pool_size=0, timeout_seconds=20)
        self.seccomp, self.disable_userns = seccomp, disable_userns

    def _launch_spec(self) -> Any:
        spec = super()._launch_spec()
        argv = list(spec.argv)
        assert "--disable-userns" in argv, "this bwrap has no --disable-userns"
        if not self.disable_userns:
            argv.remove("--disable-userns")
        if not self.seccomp:
            at = argv.index("--seccomp")
            del argv[at : at + 2]
            for fd in spec.pass_fds:
                os.close(fd)
            return replace(spec, argv=argv, pass_fds=())
        return replace(spec, argv=argv)


@pytest.mark.parametrize(
    ("seccomp", "disable_userns"),
    [(True, True), (False, True), (True, False)],
    ids=["both", "--disable-userns alone", "seccomp alone"],
)
async def test_no_nested_user_namespaces(seccomp: bool, disable_userns: bool) -> None:
    box = WithoutArgs(seccomp=seccomp, disable_userns=disable_userns)
    try:
        out = await run_json(box, "t", USERNS_ATTEMPTS)
    finally:
        await box.close()
    assert isinstance(out, dict)
    assert out["unshare -U -r true"] != 0
    assert out["unshare(CLONE_NEWUSER)"] in ("EPERM", "ENOSPC"), out
    assert out["clone(CLONE_NEWUSER)"] in ("EPERM", "ENOSPC"), out


async def test_syscalls_a_data_session_never_needs_are_refused(sandbox: BubblewrapSandbox) -> None:
    code = (
        SYSCALL_ATTEMPTS
        + r"""
buf = ctypes.create_string_buffer(64)
attempt("ptrace", 101, 0, 0, 0, 0)  # PTRACE_TRACEME
attempt("mount", 165, b"none", b"/mnt/data", b"tmpfs", 0, 0)
attempt("umount2", 166, b"/proc", 2)
attempt("pivot_root", 155, b"/mnt", b"/mnt/data")
attempt("setns", 308, 0, 0)
attempt("keyctl", 250, 0, -1, 0, 0)  # KEYCTL_GET_KEYRING_ID
attempt("add_key", 248, b"user", b"k", buf, 1, -2)
attempt("request_key", 249, b"user", b"k", 0, 0)
attempt("bpf", 321, 0, buf, 64)
attempt("perf_event_open", 298, buf, 0, -1, -1, 0)
attempt("userfaultfd", 323, 0)
attempt("io_uring_setup", 425, 1, buf)
attempt("process_vm_readv", 310, 1, buf, 1, buf, 1, 0)
attempt("open_by_handle_at", 304, -100, buf, 0)
attempt("name_to_handle_at", 303, -100, b"/", buf, buf, 0)
attempt("kexec_load", 246, 0, 0, 0, 0)
attempt("init_module", 175, buf, 1, b"")
attempt("delete_module", 176, b"x", 0)
attempt("swapon", 167, b"/mnt/data/x", 0)
attempt("reboot", 169, 0, 0, 0, 0)
print(json.dumps(out))
"""
    )
    out = await run_json(sandbox, "t", code)
    assert out == dict.fromkeys(out, "EPERM") and len(out) == 20, out


async def test_data_work_still_runs_under_the_filter(sandbox: BubblewrapSandbox) -> None:
    code = """
import json, os, subprocess, threading
import numpy as np, pandas as pd, matplotlib.pyplot as plt
df = pd.DataFrame({"a": np.arange(1000), "b": np.random.default_rng(0).random(1000)})
df.to_csv("/mnt/data/d.csv")
plt.plot(df["a"], df["b"]); plt.savefig("/mnt/data/p.png")
t = threading.Thread(target=lambda: None); t.start(); t.join()
pid = os.fork()
if pid == 0:
    os._exit(7)
print(json.dumps({"sum": int(df["a"].sum()), "inv": float(np.linalg.inv(np.eye(3)).sum()),
                  "echo": subprocess.run(["echo", "hi"], capture_output=True, text=True).stdout,
                  "fork": os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}))
"""
    out = await run_json(sandbox, "t", code)
    assert out == {"sum": 499500, "inv": 3.0, "echo": "hi\n", "fork": 7}


async def test_a_sandbox_dir_without_an_install_says_how_to_install(tmp_path: Path) -> None:
    box = BubblewrapSandbox(sandbox_dir=tmp_path / "none", pool_size=0)
    with pytest.raises(SandboxUnavailable) as raised:
        await box.execute("t", "1")
    assert f"run scripts/install-sandbox.sh {tmp_path / 'none'}" in str(raised.value)
    await box.close()
