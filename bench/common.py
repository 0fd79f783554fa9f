"""What the benchmarks share: a served assistantd, upstreams, statistics, results files.

Everything runs on loopback. The server is a real `assistantd serve` subprocess (so its RSS
and CPU time are its own, and the client's CPU does not share its GIL); upstreams run as
subprocesses too, for the same reason.

    python -m bench.common upstream --port 8090 --token-delay 0.5 --tokens 60
        a streaming upstream whose every token is the wall-clock time it was written at
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
VENV_BIN = Path(sys.executable).parent
API_KEY = "bench-key"
REPLY = "Hello there! This is a short benchmark reply of a dozen tokens."


# -- statistics ----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return math.nan
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    """median, p90, p99, min, max, mean and n of a sample."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "median": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "min": min(values),
        "max": max(values),
        "mean": sum(values) / len(values),
    }


def fmt(v: float | None, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (it reads fine in a terminal too)."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)


# -- results -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem_gib = kb / 2**20
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"benchmark": name, "machine": machine(), **data}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


def publish(
    name: str, result: dict[str, Any], table_text: str, plot: Callable[[Path], None]
) -> Path:
    """Write `bench/results/<name>.json` (with the printed table) and its PNG plot."""
    png = write_results(name, {**result, "table": table_text}).with_suffix(".png")
    plot(png)
    print(f"\nwrote {png.with_suffix('.json')} and {png}")
    return png


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# -- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_nofile(want: int = 65536) -> int:
    """Raise this process's open-file limit (children inherit it); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(want, hard) if hard != resource.RLIM_INFINITY else want
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM (kB) and Threads from /proc/<pid>/status."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (clock ticks from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat; diff two readings."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return float(sum(fields) - idle), float(sum(fields))


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s")


def _stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Server:
    """`assistantd serve` in a subprocess on a free port, with its own temporary data dir.

    `database_url=None` = SQLite in the data dir. `env` adds `ASSISTANTD_*` settings.
    """

    def __init__(
        self,
        *,
        llm_base_url: str | None,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
        log_level: str = "warning",
        ready_timeout: float = 60.0,
    ) -> None:
        self.port = free_port()
        self.llm_base_url = llm_base_url
        self.database_url = database_url
        self.extra_env = env or {}
        self.log_level = log_level
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None
        self._env: dict[str, str] = {}
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Server:
        self._dir = tempfile.mkdtemp(prefix="assistantd-bench-")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANTD_")}
        env.update(
            {
                "ASSISTANTD_DATA_DIR": self._dir,
                "ASSISTANTD_API_KEYS": API_KEY,
                # Every benchmark client is one loopback address (1,000 open streams and more).
                "ASSISTANTD_HTTP_MAX_CONNECTIONS_PER_CLIENT": "0",
                **self.extra_env,
            }
        )
        if self.llm_base_url:
            env["ASSISTANTD_LLM_BASE_URL"] = self.llm_base_url
        if self.database_url:
            env["ASSISTANTD_DATABASE_URL"] = self.database_url
        self._env = env
        self.log_path = Path(self._dir) / "server.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                str(VENV_BIN / "assistantd"),
                "serve",
                "--port",
                str(self.port),
                "--log-level",
                self.log_level,
            ],
            env=env,
            cwd=self._dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_http(f"{self.url}/health", self.proc, self.ready_timeout, "assistantd serve")
        except BaseException as exc:
            tail = self.log_tail()
            self.__exit__(None, None, None)
            if isinstance(exc, RuntimeError):
                raise RuntimeError(f"{exc}; its log ends:\n{tail}") from None
            raise
        return self

    def create_key(self, project: str = "default") -> str:
        """A project key stored in the server's database (`assistantd keys create`), unlike
        the static `API_KEY`: authenticating it reads the database. Returns its secret."""
        out = subprocess.run(
            [
                str(VENV_BIN / "assistantd"),
                "keys",
                "create",
                "--name",
                "bench",
                "--project",
                project,
            ],
            env=self._env,
            cwd=self._dir,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip().splitlines()[-1]

    def log_tail(self, n: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            _stop(self.proc)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


class Upstream:
    """An OpenAI-compatible upstream in a subprocess.

    `stamped=False`: assistantd's own fake upstream (`assistantd.testing.fake_upstream`), answering
    every request with `reply`. `stamped=True`: `StampedUpstream` below, `tokens` tokens each
    carrying the time it was written.
    """

    def __init__(
        self,
        *,
        token_delay: float = 0.0,
        reply: str = REPLY,
        stamped: bool = False,
        tokens: int = 20,
    ) -> None:
        self.port = free_port()
        self.token_delay = token_delay
        self.reply = reply
        self.stamped = stamped
        self.tokens = tokens
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Upstream:
        if self.stamped:
            cmd = [
                sys.executable,
                "-m",
                "bench.common",
                "upstream",
                "--port",
                str(self.port),
                "--token-delay",
                str(self.token_delay),
                "--tokens",
                str(self.tokens),
            ]
        else:
            cmd = [
                sys.executable,
                "-m",
                "assistantd.testing.fake_upstream",
                "--port",
                str(self.port),
                "--token-delay",
                str(self.token_delay),
                "--reply",
                self.reply,
            ]
        self.proc = subprocess.Popen(
            cmd, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_http(f"{self.base_url}/models", self.proc, 30, "upstream")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            _stop(self.proc)


@contextlib.contextmanager
def profiled(pid: int | None, out: Path | None, rate: int = 250) -> Iterator[None]:
    """py-spy samples process `pid` while the block runs (no-op when `out` is None).

    Writes collapsed stacks to `out` (`--format raw`; `hot_spots()` ranks them).
    """
    if pid is None or out is None:
        yield
        return
    spy = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
    if spy is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            spy,
            "record",
            "-p",
            str(pid),
            "-r",
            str(rate),
            "--format",
            "raw",
            "-o",
            str(out),
            "--nonblocking",
            "--threads",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def hot_spots(
    collapsed: Path, top: int = 25, self_time: bool = False, contains: str = ""
) -> list[tuple[float, str]]:
    """Share of samples per frame (cumulative, or self with `self_time`), from py-spy raw output."""
    totals: dict[str, int] = {}
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if contains and not any(contains in f for f in frames):
            continue
        samples += n
        if self_time:
            totals[frames[-1]] = totals.get(frames[-1], 0) + n
        else:
            for f in set(frames):
                totals[f] = totals.get(f, 0) + n
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return [(100 * n / max(samples, 1), f) for f, n in ranked]


def print_hot_spots(collapsed: Path, top: int) -> None:
    """Print the server's hot spots from a `profiled()` file: cumulative, then self."""
    for title, self_time in (("cumulative", False), ("self", True)):
        print(f"\nserver hot spots ({title} % of samples):")
        for share, frame in hot_spots(collapsed, top, self_time=self_time):
            print(f"  {share:5.1f}%  {frame}")


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one benchmark (the tests' scratch-database helper);
    dropped afterwards. Yields its URL."""
    from assistantd.testing.server import pg_database

    url, drop = pg_database("assistantd_bench")
    try:
        yield url
    finally:
        drop()


def postgres_available() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 5432), timeout=1):
        return True
    return False


# -- the stamped upstream ------------------------------------------------------------------


def _stamped_upstream_main(argv: Sequence[str]) -> None:
    from assistantd.testing import fake_upstream as fu

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-delay", type=float, default=0.5)
    parser.add_argument("--tokens", type=int, default=20)
    args = parser.parse_args(argv)

    class StampedUpstream(fu.FakeUpstream):
        """Streams `tokens` tokens, `token_delay` apart; each token's text is ` <time.time()>`
        taken just before it is written, so a reader can tell how long it took to arrive.
        A model named `<name>:<k>` gets `k` tokens instead (short warm-up replies)."""

        async def _respond(
            self,
            method: str,
            path: str,
            raw: bytes,
            reader: asyncio.StreamReader,
            writer: asyncio.StreamWriter,
        ) -> None:
            if method != "POST" or "chat/completions" not in path:
                await super()._respond(method, path, raw, reader, writer)
                return
            body = json.loads(raw)
            self._counter += 1
            c = fu._Completion(body, fu.FakeReply(text=""), self._counter)
            tokens = int(str(body.get("model", "")).partition(":")[2] or args.tokens)
            writer.write(
                fu._head(
                    200,
                    {
                        "content-type": "text/event-stream",
                        "transfer-encoding": "chunked",
                        "cache-control": "no-cache",
                    },
                )
            )
            writer.write(fu._chunked(fu._sse(c._chunk({"role": "assistant", "content": ""}))))
            await writer.drain()
            start = time.monotonic()
            for i in range(tokens):
                # Scheduled against the start, so a late token does not push the others back.
                await asyncio.sleep(max(0.0, start + (i + 1) * args.token_delay - time.monotonic()))
                if reader.at_eof():
                    raise ConnectionResetError("client closed the stream")
                c.completion_tokens += 1
                writer.write(fu._chunked(fu._sse(c._chunk({"content": f" {time.time():.6f}"}))))
                await writer.drain()
            writer.write(fu._chunked(fu._sse(c._chunk({}, "stop"))))
            if (body.get("stream_options") or {}).get("include_usage"):
                final = c._chunk({})
                final["choices"] = []
                final["usage"] = c.usage()
                writer.write(fu._chunked(fu._sse(final)))
            writer.write(fu._chunked(fu._sse("[DONE]")) + b"0\r\n\r\n")
            await writer.drain()

    upstream = StampedUpstream(port=args.port)

    async def run() -> None:
        server = await upstream.serve()
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "upstream":
        raise_nofile()
        _stamped_upstream_main(sys.argv[2:])
    else:
        print(__doc__)
