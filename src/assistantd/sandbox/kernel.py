"""The Python kernel that runs inside the sandbox: one persistent namespace, cells in, results out.

This file is executed by the sandbox's own interpreter (the venv made by
scripts/install-sandbox.sh), bind-mounted read-only; it must not import assistantd and
uses only the standard library (numpy, pandas and matplotlib are pre-imported if present).

Protocol on the kernel's stdin/stdout, both directions the same frame:
    4-byte big-endian length N, N bytes of UTF-8 JSON header, then the blobs whose byte
    lengths the header lists under "blobs", back to back. The server enforces its own limits
    on all of it (sandbox/limits.py OutputLimits, passed in the start-up config so that this
    kernel stays within them: extra figures and files are reported in the output, not sent).
host → kernel  {"op": "execute", "code": str, "files": [name, ...]}  + one blob per file
kernel → host  {"op": "ready"}                          once, after start-up
               {"op": "stream", "text": str}            output as it is produced
               {"op": "result", "error": bool, "exc_type": str | null, "omitted": int,
                "tail": str, "images": int, "files": [name, ...]}  + images then file blobs
The user's code gets fresh fds 1 and 2 (one pipe, so stdout and stderr interleave in the
order they were written, subprocesses included); the protocol keeps duplicates of the
original fds, so nothing the code prints can break the framing by accident.
"""

from __future__ import annotations

import ast
import codecs
import io
import json
import linecache
import os
import shutil
import signal
import struct
import sys
import threading
import time
import traceback
from typing import Any

DATA_DIR = "/mnt/data"
_HEADER = struct.Struct(">I")
_MAX_HEADER = 64 * 1024 * 1024  # a cell's code and file names; blobs are separate


class Channel:
    """Framed messages over a pair of raw fds; writes are serialised for the reader thread."""

    def __init__(self, fd_in: int, fd_out: int) -> None:
        self._in = os.fdopen(fd_in, "rb", buffering=1 << 16)
        self._out = fd_out
        self._lock = threading.Lock()

    def _write_all(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._out, view) :]

    def send(
        self,
        header: dict[str, Any],
        blobs: list[bytes] | None = None,
        paths: list[tuple[str, int]] | None = None,
    ) -> None:
        """Send a frame; `paths` are files streamed from disk so big ones need no copy in memory."""
        blob_list = blobs or []
        path_list = paths or []
        header = {**header, "blobs": [len(b) for b in blob_list] + [n for _, n in path_list]}
        raw = json.dumps(header).encode()
        with self._lock:
            self._write_all(_HEADER.pack(len(raw)) + raw)
            for blob in blob_list:
                self._write_all(blob)
            for path, size in path_list:
                self._send_file(path, size)

    def _send_file(self, path: str, size: int) -> None:
        # Exactly `size` bytes were announced: pad if the file shrank, stop if it grew.
        sent = 0
        try:
            with open(path, "rb") as f:
                while sent < size:
                    chunk = f.read(min(1 << 20, size - sent))
                    if not chunk:
                        break
                    self._write_all(chunk)
                    sent += len(chunk)
        except OSError:
            pass
        if sent < size:
            self._write_all(b"\0" * (size - sent))

    def _read_exact(self, n: int) -> bytes:
        data = self._in.read(n)
        if data is None or len(data) != n:
            raise EOFError
        return data

    def receive(self) -> tuple[dict[str, Any], list[bytes]]:
        (length,) = _HEADER.unpack(self._read_exact(_HEADER.size))
        if length > _MAX_HEADER:
            raise EOFError
        header: dict[str, Any] = json.loads(self._read_exact(length))
        blobs = [self._read_exact(int(n)) for n in header.get("blobs", [])]
        return header, blobs


class OutputPump(threading.Thread):
    """Forwards what lands on fds 1/2 as stream frames, up to a limit, then keeps a tail.

    A cell ends by writing a sync marker into the same pipe; when the pump reaches it, all
    output written before it has been forwarded, so the result frame follows the last log.
    """

    def __init__(self, fd: int, channel: Channel, max_chars: int, max_frames: int) -> None:
        super().__init__(daemon=True, name="output-pump")
        self._fd = fd
        self._channel = channel
        self._marker = b"\x00\x1b" + os.urandom(8).hex().encode() + b":"
        self._synced = threading.Event()
        self._head_limit = max_chars - max_chars // 4
        self._tail_limit = max_chars // 4
        # The server accepts max_frames per execution, the result frame included.
        self._max_stream_frames = max_frames - 1
        self.reset()

    def reset(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.forwarded = 0
        self.frames = 0
        self.omitted = 0
        self._tail = ""

    def sync(self, fd: int) -> None:
        """Block until everything written to the pipe so far has been handled."""
        self._synced.clear()
        os.write(fd, self._marker + b"\x00")
        if not self._synced.wait(10):
            raise RuntimeError("output pump did not drain")

    def tail(self) -> str:
        return self._tail

    def _emit(self, text: str) -> None:
        if not text:
            return
        room = self._head_limit - self.forwarded
        if room > 0 and self.frames < self._max_stream_frames:
            head, text = text[:room], text[room:]
            self.forwarded += len(head)
            self.frames += 1
            self._channel.send({"op": "stream", "text": head})
        if text:
            self.omitted += len(text)
            self._tail = (self._tail + text[-self._tail_limit :])[-self._tail_limit :]

    def run(self) -> None:
        buf = b""
        while True:
            data = os.read(self._fd, 1 << 16)
            if not data:
                return
            buf += data
            while True:
                at = buf.find(self._marker)
                if at < 0:
                    break
                end = buf.find(b"\x00", at + len(self._marker))
                if end < 0:
                    break
                self._emit(self._decoder.decode(buf[:at]))
                self._emit(self._decoder.decode(b"", final=True))
                buf = buf[end + 1 :]
                self._synced.set()
            # Hold back only what could be the start of a marker split across reads.
            keep = buf.find(self._marker)
            if keep < 0:
                keep = len(buf)
                for k in range(min(len(self._marker), len(buf)), 0, -1):
                    if self._marker.startswith(buf[-k:]):
                        keep = len(buf) - k
                        break
            self._emit(self._decoder.decode(buf[:keep]))
            buf = buf[keep:]


class Kernel:
    """The persistent namespace and everything needed to run one cell in it."""

    def __init__(self, channel: Channel, config: dict[str, Any]) -> None:
        self.channel = channel
        self.max_images = int(config.get("max_images", 10))
        self.max_files = int(config.get("max_files", 10))
        self.max_file_bytes = int(config.get("max_file_bytes", 32 * 1024 * 1024))
        self.images_dropped = 0
        self.pid = os.getpid()
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
        self.images: list[bytes] = []
        self.cell_count = 0
        read_fd, self.write_fd = os.pipe()
        os.dup2(self.write_fd, 1)
        os.dup2(self.write_fd, 2)
        sys.stdout = self._text_stream(1)
        sys.stderr = self._text_stream(2)
        self.pump = OutputPump(
            read_fd,
            channel,
            int(config.get("max_output_chars", 20000)),
            int(config.get("max_frames", 20000)),
        )
        self.pump.start()

    @staticmethod
    def _text_stream(fd: int) -> io.TextIOWrapper:
        raw = io.FileIO(fd, "w", closefd=False)
        return io.TextIOWrapper(
            raw,
            encoding="utf-8",
            errors="backslashreplace",
            line_buffering=True,
            write_through=True,
        )

    def warm_up(self) -> None:
        """Pre-import the heavy libraries so the first cell does not pay for them."""
        for module in ("numpy", "pandas"):
            try:
                __import__(module)
            except ImportError:
                pass
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return

        def show(*args: object, **kwargs: object) -> None:
            for number in plt.get_fignums():
                buffer = io.BytesIO()
                plt.figure(number).savefig(buffer, format="png")
                png = buffer.getvalue()
                if len(self.images) < self.max_images and len(png) <= self.max_file_bytes:
                    self.images.append(png)
                else:
                    self.images_dropped += 1
            plt.close("all")

        plt.show = show

    def snapshot(self) -> dict[str, tuple[int, int]]:
        seen: dict[str, tuple[int, int]] = {}
        for root, _dirs, names in os.walk(DATA_DIR):
            for name in names:
                path = os.path.join(root, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if os.path.isfile(path) and not os.path.islink(path):
                    seen[os.path.relpath(path, DATA_DIR)] = (st.st_mtime_ns, st.st_size)
        return seen

    def compile_cell(self, code: str) -> tuple[Any, Any]:
        """Compile a cell Jupyter-style: the last bare expression is evaluated and echoed."""
        self.cell_count += 1
        filename = f"<cell {self.cell_count}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        tree = ast.parse(code, filename, "exec")
        last = None
        tail = tree.body[-1] if tree.body else None
        if isinstance(tail, ast.Expr):
            tree.body.pop()
            last = compile(ast.Expression(tail.value), filename, "eval")
        return compile(tree, filename, "exec"), last

    def run_code(self, code: str) -> str | None:
        """Run a cell; returns the exception type name if it failed."""
        try:
            body, last = self.compile_cell(code)
            exec(body, self.namespace)
            if last is not None:
                value = eval(last, self.namespace)
                if value is not None:
                    self.namespace["_"] = value
                    print(repr(value))
            return None
        except BaseException as exc:
            if os.getpid() != self.pid:
                # A forked child must never return into the kernel's loop.
                os._exit(1)
            tb = exc.__traceback__
            # Drop the kernel's own frames so the traceback starts at the user's code.
            while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
                tb = tb.tb_next
            if isinstance(exc, SyntaxError):
                traceback.print_exception(type(exc), exc, None)
            else:
                traceback.print_exception(type(exc), exc, tb)
            return type(exc).__name__
        finally:
            if os.getpid() != self.pid:
                os._exit(0)

    def kill_strays(self) -> None:
        """Processes a cell started do not outlive it: no background CPU burners or writers.

        We are alone with bwrap's init in this pid namespace, so kill(-1) hits exactly the
        cell's processes. It is repeated because a fork bomb can fork while being killed,
        and our own children are reaped (orphans are reaped by bwrap as pid 1).
        """
        for _ in range(200):
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
            while True:
                try:
                    pid, _status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
            others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, self.pid)]
            if not others:
                return
            time.sleep(0.005)

    def outputs(
        self, before: dict[str, tuple[int, int]]
    ) -> tuple[list[tuple[str, int]], list[tuple[str, int, str]]]:
        """The changed files to send, and those the server's limits leave out (with why)."""
        send: list[tuple[str, int]] = []
        left: list[tuple[str, int, str]] = []
        for name, meta in sorted(self.snapshot().items()):
            if before.get(name) == meta:
                continue
            size = meta[1]
            if size > self.max_file_bytes:
                left.append(
                    (name, size, f"larger than the {_size(self.max_file_bytes)} limit per file")
                )
            elif len(send) >= self.max_files:
                left.append((name, size, f"over the limit of {self.max_files} files per execution"))
            else:
                send.append((name, size))
        return send, left

    def report_not_kept(self, not_kept: list[tuple[str, int, str]]) -> None:
        """Tell the model, in the cell's output, which outputs the user will not get."""
        notes = []
        if not_kept:
            listed = "; ".join(
                f"{name[:120]} ({_size(size)}, {why})" for name, size, why in not_kept[:10]
            )
            more = f"; and {len(not_kept) - 10} more" if len(not_kept) > 10 else ""
            notes.append(
                f"\n[Not copied out of {DATA_DIR} for the user: {listed}{more}. "
                "They are still in the session.]\n"
            )
        if self.images_dropped:
            notes.append(
                f"\n[{self.images_dropped} figure(s) from plt.show() were not kept: at most "
                f"{self.max_images} per execution, each at most {_size(self.max_file_bytes)}.]\n"
            )
        # Straight to the pipe: the cell may have replaced sys.stdout.
        for note in notes:
            os.write(self.write_fd, note.encode("utf-8", "backslashreplace"))

    def execute(self, header: dict[str, Any], blobs: list[bytes]) -> None:
        self.pump.reset()
        self.images = []
        self.images_dropped = 0
        exc_type: str | None = None
        try:
            for name, data in zip(header.get("files", []), blobs, strict=True):
                with open(os.path.join(DATA_DIR, os.path.basename(name)), "wb") as f:
                    f.write(data)
        except OSError as exc:
            print(f"Could not place input file in {DATA_DIR}: {exc}", file=sys.stderr)
            exc_type = type(exc).__name__
        before = self.snapshot()
        if exc_type is None:
            exc_type = self.run_code(str(header.get("code", "")))
        sys.stdout.flush()
        sys.stderr.flush()
        self.kill_strays()
        changed, not_kept = self.outputs(before)
        self.report_not_kept(not_kept)
        self.pump.sync(self.write_fd)
        self.channel.send(
            {
                "op": "result",
                "error": exc_type is not None,
                "exc_type": exc_type,
                "omitted": self.pump.omitted - len(self.pump.tail()),
                "tail": self.pump.tail(),
                "images": len(self.images),
                "files": [name for name, _ in changed],
            },
            blobs=self.images,
            paths=[(os.path.join(DATA_DIR, name), size) for name, size in changed],
        )


def _size(n: int) -> str:
    mb = n / (1024 * 1024)
    return f"{mb:.1f} MB" if n >= 1024 * 1024 else f"{n} bytes"


def main() -> None:
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    channel = Channel(os.dup(0), os.dup(1))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    # matplotlib's font cache was built by the install script; a copy saves a ~1 s rescan.
    mpl_seed, mpl_dir = config.get("mpl_cache"), os.environ.get("MPLCONFIGDIR")
    if mpl_seed and mpl_dir and os.path.isdir(mpl_seed):
        shutil.copytree(mpl_seed, mpl_dir, dirs_exist_ok=True)
    os.makedirs(DATA_DIR, exist_ok=True)
    os.chdir(DATA_DIR)
    kernel = Kernel(channel, config)
    if config.get("warm", True):
        kernel.warm_up()
    channel.send({"op": "ready", "pid": os.getpid()})
    while True:
        try:
            header, blobs = channel.receive()
        except EOFError:
            return
        if header.get("op") == "execute":
            kernel.execute(header, blobs)


if __name__ == "__main__":
    main()
