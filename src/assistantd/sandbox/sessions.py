"""Sessions keyed by thread, a pool of pre-warmed kernels, idle expiry: launcher-independent."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from assistantd.files.names import safe_filename
from assistantd.sandbox.base import (
    CodeSandbox,
    ExecutionEvent,
    ExecutionResult,
    InputFile,
    SandboxClosed,
)
from assistantd.sandbox.limits import SessionLimits
from assistantd.sandbox.process import KernelProcess, LaunchSpec

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Session:
    """The kernel currently serving one key; `kernel` is None until the first execution."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    kernel: KernelProcess | None = None
    last_used: float = field(default_factory=time.monotonic)


def check_input_name(name: str) -> None:
    """Input files land directly in /mnt/data: only names the upload rule would keep as they are."""
    if safe_filename(name) != name:
        raise ValueError(
            f"input file name {name!r} is not a safe bare file name; pass it through "
            "assistantd.files.names.safe_filename first"
        )


class PooledKernelSandbox(CodeSandbox):
    """A `CodeSandbox` whose sessions are kernel processes started by `_launch_spec()`.

    Subclasses decide only how a kernel is launched (and isolated); this class keeps the
    key → session map, the warm pool, per-key serialisation and idle expiry.
    """

    def __init__(
        self,
        *,
        limits: SessionLimits,
        idle_seconds: float = 3600,
        pool_size: int = 2,
        start_timeout: float = 30.0,
    ) -> None:
        self.limits = limits
        self.idle_seconds = idle_seconds
        self.pool_size = pool_size
        self.start_timeout = start_timeout
        self._sessions: dict[str, Session] = {}
        self._pool: list[KernelProcess] = []
        self._starting = 0
        self._background: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def warm_kernels(self) -> int:
        """How many pre-warmed kernels are ready to serve a new session right now."""
        return len(self._pool)

    @abc.abstractmethod
    def _launch_spec(self) -> LaunchSpec:
        """The argv (and identity) of a new kernel; may reserve resources such as a uid."""

    def _released(self, spec: LaunchSpec) -> None:
        """Called once a kernel launched with `spec` is dead; frees what `_launch_spec` took."""

    async def start(self) -> None:
        """Fill the warm pool now instead of on first use (call from the app's lifespan)."""
        self._ensure_background()
        await self._fill_pool()

    async def _launch(self) -> KernelProcess:
        spec = self._launch_spec()
        # Never cancel a launch half-way: asyncio would kill only the launcher and orphan
        # bwrap's children. A cancelled caller waits for the launch, then kills the kernel.
        launch = asyncio.create_task(KernelProcess.start(spec, self.limits, self.start_timeout))
        try:
            return await asyncio.shield(launch)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self._discard(await launch)
            raise
        except BaseException:
            self._released(spec)
            raise

    async def _discard(self, kernel: KernelProcess) -> None:
        await kernel.kill()
        self._released(kernel.spec)

    async def _fill_pool(self) -> None:
        while not self._closed and len(self._pool) + self._starting < self.pool_size:
            self._starting += 1
            try:
                kernel = await self._launch()
            except Exception:
                logger.exception("could not pre-warm a sandbox kernel")
                return
            finally:
                self._starting -= 1
            if self._closed:
                await self._discard(kernel)
                return
            self._pool.append(kernel)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _ensure_background(self) -> None:
        if self._reaper is None and not self._closed:
            self._reaper = asyncio.create_task(self._reap_forever())

    async def _take_kernel(self) -> KernelProcess:
        """A warm kernel from the pool if one is ready, else a cold start; then refill."""
        kernel: KernelProcess | None = None
        while self._pool:
            candidate = self._pool.pop(0)
            if candidate.alive:
                kernel = candidate
                break
            await self._discard(candidate)
        if kernel is None:
            kernel = await self._launch()
        if self.pool_size > 0:
            self._spawn(self._fill_pool())
        return kernel

    async def execute_stream(
        self, session_key: str, code: str, files: Sequence[InputFile] = ()
    ) -> AsyncIterator[ExecutionEvent]:
        if self._closed:
            raise SandboxClosed("the code sandbox has been closed")
        for f in files:
            check_input_name(f.name)
        self._ensure_background()
        session = self._sessions.setdefault(session_key, Session())
        async with session.lock:
            kernel = session.kernel
            if kernel is not None and (
                not kernel.alive or time.monotonic() - session.last_used > self.idle_seconds
            ):
                session.kernel = None
                await self._discard(kernel)
            if session.kernel is None:
                session.kernel = await self._take_kernel()
            kernel = session.kernel
            try:
                async for event in kernel.run(code, files):
                    if isinstance(event, ExecutionResult) and not kernel.alive:
                        event.session_restarted = True
                    yield event
            finally:
                session.last_used = time.monotonic()
                if not kernel.alive:
                    session.kernel = None
                    await self._discard(kernel)

    def live_sessions(self) -> int:
        return sum(1 for s in self._sessions.values() if s.kernel is not None)

    async def reset(self, session_key: str) -> None:
        session = self._sessions.pop(session_key, None)
        if session is None:
            return
        async with session.lock:
            if session.kernel is not None:
                kernel, session.kernel = session.kernel, None
                await self._discard(kernel)

    async def expire_idle(self) -> int:
        """Stop the kernels of sessions idle for longer than `idle_seconds`; returns how many."""
        now = time.monotonic()
        expired = 0
        for key, session in list(self._sessions.items()):
            if session.lock.locked() or now - session.last_used <= self.idle_seconds:
                continue
            if self._sessions.get(key) is session:
                del self._sessions[key]
            if session.kernel is not None:
                kernel, session.kernel = session.kernel, None
                await self._discard(kernel)
                expired += 1
        return expired

    async def _reap_forever(self) -> None:
        interval = max(0.5, min(self.idle_seconds / 4, 60.0))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.expire_idle()
            except Exception:  # the reaper must outlive one bad kill
                logger.exception("sandbox idle expiry failed")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        # Pool refills finish their launch and, seeing `_closed`, discard the kernel.
        await asyncio.gather(*self._background, return_exceptions=True)
        kernels = [s.kernel for s in self._sessions.values() if s.kernel is not None]
        self._sessions.clear()
        kernels += self._pool
        self._pool = []
        await asyncio.gather(*(self._discard(k) for k in kernels))
