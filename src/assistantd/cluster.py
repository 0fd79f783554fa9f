"""`assistantd cluster`: N API processes and M workers on one host, supervised.

For a local scale-out (tests, benchmarks, a single big machine): it migrates once, then
starts ``assistantd serve`` N times (``ASSISTANTD_WORKER_ENABLED=false``, one port each)
and ``assistantd worker`` M times, all from this process's environment, and prints one
line per process and a final ``ready`` line once every API answers ``/health``::

    api 1 http://127.0.0.1:8000 pid 4242
    worker 1 pid 4250
    ready api=http://127.0.0.1:8000,http://127.0.0.1:8001 workers=4250,4251

A child that exits is started again after a second (its runs are taken over by the other
workers when its leases lapse, as on separate hosts); SIGTERM or SIGINT stops every child
(SIGTERM, then SIGKILL after 30 s) and exits. It needs PostgreSQL and Redis: without Redis
an API process can only stream the runs it executes itself, and API processes here execute
none.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

import httpx

from assistantd.core.settings import Settings

RESTART_DELAY_SECONDS = 1.0
STOP_GRACE_SECONDS = 30.0


@dataclass
class Child:
    """One supervised process: its role, its command, and the running process."""

    role: str
    number: int
    args: list[str]
    env: dict[str, str]
    port: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = field(default=0)

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "assistantd", *self.args], env=self.env)

    @property
    def url(self) -> str:
        return f"http://{self.env.get('ASSISTANTD_CLUSTER_HOST', '127.0.0.1')}:{self.port}"

    def describe(self) -> str:
        pid = self.proc.pid if self.proc else "-"
        where = f" {self.url}" if self.port is not None else ""
        return f"{self.role} {self.number}{where} pid {pid}"


def check(settings: Settings) -> str | None:
    """Why this configuration cannot run as a cluster, or None."""
    if not settings.resolved_database_url.startswith("postgresql"):
        return "assistantd cluster needs PostgreSQL: set ASSISTANTD_DATABASE_URL=postgresql+asyncpg://..."
    if not settings.redis_url:
        return "assistantd cluster needs Redis: set ASSISTANTD_REDIS_URL=redis://..."
    return None


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def plan(apis: int, workers: int, host: str, port: int, log_level: str) -> list[Child]:
    """The children to start; `port` 0 gives every API a free port of the OS."""
    env = dict(os.environ)
    api_env = dict(env, ASSISTANTD_WORKER_ENABLED="false", ASSISTANTD_CLUSTER_HOST=host)
    children = []
    for i in range(apis):
        p = _free_port(host) if port == 0 else port + i
        args = ["serve", "--host", host, "--port", str(p), "--log-level", log_level]
        children.append(Child("api", i + 1, args, api_env, port=p))
    worker_env = dict(env, ASSISTANTD_WORKER_ENABLED="true")
    children += [Child("worker", i + 1, ["worker"], worker_env) for i in range(workers)]
    return children


def _wait_ready(children: list[Child], timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    pending = [c for c in children if c.port is not None]
    while pending:
        if time.monotonic() > deadline:
            return False
        for c in list(pending):
            try:
                if httpx.get(f"{c.url}/health", timeout=2).status_code == 200:
                    pending.remove(c)
            except httpx.TransportError:
                pass
        time.sleep(0.2)
    return True


def _stop(children: list[Child]) -> None:
    for c in children:
        if c.proc is not None and c.proc.poll() is None:
            c.proc.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for c in children:
        if c.proc is None:
            continue
        try:
            c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait()


def supervise(children: list[Child]) -> int:
    """Start the children, restart any that exits, stop them all on SIGTERM/SIGINT."""
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        for c in children:
            c.start()
            print(c.describe(), flush=True)
        if not _wait_ready(children):
            print("cluster: an API process did not become ready", file=sys.stderr, flush=True)
            return 1
        urls = ",".join(c.url for c in children if c.port is not None)
        pids = ",".join(str(c.proc.pid) for c in children if c.port is None and c.proc)
        print(f"ready api={urls} workers={pids}", flush=True)
        while not stopping:
            time.sleep(0.2)
            for c in children:
                if not stopping and c.proc is not None and c.proc.poll() is not None:
                    code = c.proc.returncode
                    time.sleep(RESTART_DELAY_SECONDS)
                    c.restarts += 1
                    c.start()
                    print(f"restarted {c.describe()} (exit {code})", flush=True)
        return 0
    finally:
        _stop(children)
