"""One running kernel: start it, feed it cells, read its frames, kill it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from assistantd.sandbox.base import (
    PNG_SIGNATURE,
    ExecutionEvent,
    ExecutionResult,
    InputFile,
    LogChunk,
    OutputFile,
    SandboxUnavailable,
)
from assistantd.sandbox.limits import SessionLimits
from assistantd.sandbox.protocol import (
    Frame,
    OutputLimitExceeded,
    ProtocolError,
    encode,
    read_frame,
)

_STDERR_KEPT = 8192


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """How to start one kernel: the full argv and, when the host runs as root, whom to run as.

    `pass_fds` are open fds the argv refers to (the seccomp filter); the launch hands them
    to the child and closes them, whether or not the kernel started.
    """

    argv: list[str]
    uid: int | None = None
    gid: int | None = None
    pass_fds: tuple[int, ...] = ()


class KernelProcess:
    """A started kernel; `broken` once it timed out, died or misbehaved and must be discarded."""

    def __init__(
        self, proc: asyncio.subprocess.Process, spec: LaunchSpec, limits: SessionLimits
    ) -> None:
        self._proc = proc
        self.spec = spec
        self._limits = limits
        self.broken = False
        self.started_at = time.monotonic()
        self._stderr = bytearray()
        self._stderr_task = asyncio.create_task(self._drain_stderr())

    @classmethod
    async def start(
        cls, spec: LaunchSpec, limits: SessionLimits, start_timeout: float
    ) -> KernelProcess:
        """Spawn the kernel and wait for its `ready` frame (after the warm imports)."""
        argv = list(spec.argv)
        if spec.uid is not None:
            # Drop to the session's uid with setpriv rather than create_subprocess_exec's
            # user/group: uvloop (uvicorn's default loop) does not support those.
            gid = spec.gid if spec.gid is not None else spec.uid
            argv = [
                "setpriv",
                f"--reuid={spec.uid}",
                f"--regid={gid}",
                "--clear-groups",
                "--",
                *argv,
            ]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                # Nothing of the server's environment reaches the launcher, let alone the code.
                env={"PATH": "/usr/bin:/bin"},
                cwd="/",
                start_new_session=True,
                pass_fds=spec.pass_fds,
            )
        except OSError as exc:
            raise SandboxUnavailable(
                f"cannot start the sandbox kernel {spec.argv[0]!r}: {exc}"
            ) from exc
        finally:
            for fd in spec.pass_fds:
                os.close(fd)
        kernel = cls(proc, spec, limits)
        try:
            async with asyncio.timeout(start_timeout):
                frame = await kernel._read()
        except (TimeoutError, ProtocolError) as exc:
            await kernel.kill()
            raise SandboxUnavailable(
                f"the sandbox kernel did not start ({exc or 'timed out'}); "
                f"its stderr: {kernel.stderr_text() or '(empty)'}"
            ) from exc
        except BaseException:
            await asyncio.shield(kernel.kill())
            raise
        if frame.header.get("op") != "ready":
            await kernel.kill()
            raise SandboxUnavailable(f"the sandbox kernel sent {frame.header!r} instead of ready")
        return kernel

    @property
    def alive(self) -> bool:
        return not self.broken and self._proc.returncode is None

    @property
    def pid(self) -> int:
        return self._proc.pid

    def stderr_text(self) -> str:
        return self._stderr.decode("utf-8", "replace").strip()

    async def _drain_stderr(self) -> None:
        # Must be read continuously or a chatty bwrap could block on a full pipe.
        assert self._proc.stderr is not None
        while chunk := await self._proc.stderr.read(4096):
            self._stderr += chunk
            del self._stderr[:-_STDERR_KEPT]

    async def _read(self) -> Frame:
        assert self._proc.stdout is not None
        return await read_frame(self._proc.stdout, self._limits.output)

    async def run(self, code: str, files: Sequence[InputFile]) -> AsyncIterator[ExecutionEvent]:
        """Execute one cell, yielding `LogChunk`s and finally the `ExecutionResult`.

        What the kernel sends is counted here, not trusted: more frames or characters of
        output than the limits allow ends the execution with an error and kills the kernel.
        """
        assert self._proc.stdin is not None
        chunks: list[str] = []
        chars = 0
        frames = 0
        done = False
        try:
            self._proc.stdin.write(
                encode(
                    {"op": "execute", "code": code, "files": [f.name for f in files]},
                    [f.data for f in files],
                )
            )
            deadline = time.monotonic() + self._limits.timeout_seconds
            while True:
                try:
                    async with asyncio.timeout_at(_loop_deadline(deadline)):
                        await self._proc.stdin.drain()
                        frame = await self._read()
                    frames += 1
                    if frames > self._limits.output.max_frames:
                        raise OutputLimitExceeded(
                            f"more than {self._limits.output.max_frames} frames in one execution"
                        )
                    op = frame.header.get("op")
                    if op == "stream":
                        text = frame.header.get("text", "")
                        if not isinstance(text, str):
                            raise ProtocolError("a stream frame whose text is not a string")
                        chars += len(text)
                        self._check_chars(chars)
                        if text:
                            chunks.append(text)
                            yield LogChunk(text)
                        continue
                    if op != "result":
                        continue
                    result = self._result(frame, chunks, chars)
                except TimeoutError:
                    done = True
                    await self.kill()
                    text = (
                        f"\n[Execution timed out after {self._limits.timeout_seconds:g} s and was "
                        "stopped. The session was restarted: variables and files in /mnt/data "
                        "are gone.]\n"
                    )
                    yield LogChunk(text)
                    chunks.append(text)
                    yield ExecutionResult("".join(chunks), error=True, session_restarted=True)
                    return
                except (ProtocolError, ConnectionError) as exc:
                    done = True
                    status = await self.kill()
                    if isinstance(exc, OutputLimitExceeded):
                        reason = (
                            f"The session sent more than the server accepts ({exc}) and was "
                            "stopped."
                        )
                    else:
                        reason = _death_reason(status, exc)
                    text = f"\n[{reason} The session was restarted: variables and files in /mnt/data are gone.]\n"
                    yield LogChunk(text)
                    chunks.append(text)
                    yield ExecutionResult("".join(chunks), error=True, session_restarted=True)
                    return
                done = True
                streamed = "".join(chunks)
                if result.logs != streamed:
                    yield LogChunk(result.logs[len(streamed) :])
                yield result
                return
        finally:
            if not done:
                # The consumer stopped listening mid-cell: the kernel's state is unknown.
                await self.kill()

    def _check_chars(self, chars: int) -> None:
        if chars > self._limits.max_output_chars:
            raise OutputLimitExceeded(
                f"more than {self._limits.max_output_chars} characters of output in one execution"
            )

    def _result(self, frame: Frame, chunks: list[str], chars: int) -> ExecutionResult:
        header = frame.header
        limits = self._limits.output
        logs = "".join(chunks)
        omitted = header.get("omitted", 0)
        tail = header.get("tail", "")
        if not isinstance(tail, str):
            raise ProtocolError("a result frame whose tail is not a string")
        self._check_chars(chars + len(tail))
        if isinstance(omitted, int) and omitted > 0:
            logs += f"\n[... {omitted} characters of output omitted ...]\n"
        logs += tail
        n_images = header.get("images", 0)
        names = header.get("files", [])
        if (
            not isinstance(n_images, int)
            or not isinstance(names, list)
            or n_images < 0
            or n_images + len(names) != len(frame.blobs)
        ):
            raise ProtocolError("result frame does not match its blobs")
        if n_images > limits.max_images or len(names) > limits.max_files:
            raise OutputLimitExceeded(
                f"{n_images} images and {len(names)} files, over the limit of "
                f"{limits.max_images} images and {limits.max_files} files"
            )
        images = list(frame.blobs[:n_images])
        files: list[OutputFile] = []
        for name, data in zip(names, frame.blobs[n_images:], strict=True):
            if not isinstance(name, str) or name.startswith("/") or ".." in name.split("/"):
                raise ProtocolError(f"kernel reported a bad output file name {name!r}")
            files.append(OutputFile(name, data))
            if name.lower().endswith(".png") and data.startswith(PNG_SIGNATURE):
                images.append(data)
        exc_type = header.get("exc_type")
        restarted = exc_type == "MemoryError"
        if restarted:
            self.broken = True
            logs += (
                f"\n[The session ran out of memory (limit {self._limits.memory_mb} MB) and was "
                "restarted: variables and files in /mnt/data are gone.]\n"
            )
        return ExecutionResult(
            logs,
            error=bool(header.get("error")),
            images=images,
            files=files,
            session_restarted=restarted,
        )

    async def kill(self) -> int | None:
        """Kill the whole process tree, innermost first, and reap the launcher."""
        self.broken = True
        if self._proc.returncode is None:
            if self.spec.uid is not None:
                # Everything below the launcher runs as the kernel's own host uid. Killing
                # those first lets the launcher reap them; killing only the launcher's group
                # would miss bwrap's setsid'd children and orphan them to the host's init.
                for _ in range(100):
                    if not kill_uid_except(self.spec.uid, self._proc.pid):
                        break
                    await asyncio.sleep(0.005)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        # wait() returns only once stdout is closed too, and a kernel that flooded it has
        # left the reader paused (buffer full): read what is left to EOF, discarding it.
        drain = asyncio.create_task(_discard(self._proc.stdout))
        status = await self._proc.wait()
        await drain
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self._stderr_task, 1)
        return status


def kill_uid_except(uid: int, spared: int) -> bool:
    """SIGKILL every live process whose real uid is `uid`, except `spared`; True if any was found."""
    found = False
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == spared:
            continue
        try:
            with open(f"/proc/{entry.name}/status") as f:
                status = f.read()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("Uid", "").split()[:1] == [str(uid)] and not fields.get(
            "State", ""
        ).startswith("Z"):
            found = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
    return found


async def _discard(reader: asyncio.StreamReader | None) -> None:
    if reader is not None:
        with contextlib.suppress(Exception):
            while await reader.read(1 << 16):
                pass


def _loop_deadline(monotonic_deadline: float) -> float:
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())


def _death_reason(status: int | None, exc: Exception) -> str:
    # bwrap reports a kernel killed by a signal as 128 + signal, like a shell.
    if status is not None and status > 128:
        status = 128 - status
    if status is not None and status < 0:
        if -status == signal.SIGXCPU:
            return "The session used up its CPU time budget and was stopped."
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"The session's Python process was killed by {name}."
    if status is not None:
        return f"The session's Python process exited with status {status}."
    return f"The session's Python process stopped answering ({exc})."
