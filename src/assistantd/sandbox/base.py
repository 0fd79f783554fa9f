"""The code execution interface: the only thing the run engine knows about code_interpreter.

A `CodeSandbox` runs Python cells in a stateful session that belongs to a key (the thread
id). Variables, imports and files under `/mnt/data` survive between executions of the same
key until the session has been idle for `idle_seconds`, is reset, or had to be restarted
(timeout, crash, out of memory); the next execution then starts in a fresh session.

What the user's code did wrong is never an exception: it is an `ExecutionResult` with
`error=True` and the traceback in `logs`, because that is what the model must read.
Exceptions are for faults of the engine itself:

    SandboxError            base: the engine cannot serve the call; the run step fails
    ├── SandboxUnavailable  no kernel could be started (bubblewrap or the venv missing, ...)
    └── SandboxClosed       `execute` after `close()`
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class SandboxError(Exception):
    """Base of the engine's own failures; never raised itself."""


class SandboxUnavailable(SandboxError):
    """Raised when a kernel process cannot be started or dies before it is ready."""


class SandboxClosed(SandboxError):
    """Raised when the sandbox is used after `close()`."""


@dataclass(frozen=True, slots=True)
class InputFile:
    """A file placed at `/mnt/data/<name>` before the code runs; `name` is a bare file name."""

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class OutputFile:
    """A file under `/mnt/data` that the code created or changed; `name` is relative to it."""

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class LogChunk:
    """A fragment of the logs as it is produced, for streaming `code_interpreter.outputs`."""

    text: str


@dataclass(slots=True)
class ExecutionResult:
    """What one execution produced, in the shape a code_interpreter run step needs.

    `logs` is stdout, stderr and the traceback interleaved as a terminal would show them,
    shortened in the middle with a marker when longer than the sandbox's output limit.
    `images` holds the PNGs of `plt.show()` followed by PNG files the code saved (those
    are also in `files`, so the caller can dedupe by content if it wants one or the other).
    `session_restarted` says the session was discarded after this execution, so the next
    one starts without the variables and files of this one.
    """

    logs: str
    error: bool
    images: list[bytes] = field(default_factory=list)
    files: list[OutputFile] = field(default_factory=list)
    session_restarted: bool = False


ExecutionEvent = LogChunk | ExecutionResult


class CodeSandbox(abc.ABC):
    """Stateful, isolated Python sessions keyed by thread id."""

    @abc.abstractmethod
    def execute_stream(
        self, session_key: str, code: str, files: Sequence[InputFile] = ()
    ) -> AsyncIterator[ExecutionEvent]:
        """Run `code` in the session of `session_key`, yielding log fragments as they appear.

        The last event is always the `ExecutionResult`, whose `logs` hold the whole output
        (the fragments concatenated, plus the tail when the output was truncated).
        Executions of one key run one at a time, in call order.
        """

    async def execute(
        self, session_key: str, code: str, files: Sequence[InputFile] = ()
    ) -> ExecutionResult:
        """Run `code` in the session of `session_key` and return what it produced."""
        async for event in self.execute_stream(session_key, code, files):
            if isinstance(event, ExecutionResult):
                return event
        raise SandboxError("the execution ended without a result")  # pragma: no cover

    async def start(self) -> None:
        """Prepare ahead of the first execution (a warm pool, say); the app's lifespan calls
        it in the background. Nothing to prepare by default."""
        return None

    def live_sessions(self) -> int:
        """Sessions holding a kernel right now (for the metrics)."""
        return 0

    @abc.abstractmethod
    async def reset(self, session_key: str) -> None:
        """Discard the session of `session_key`; the next execution starts fresh."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop every session and pre-warmed kernel; the sandbox cannot be used afterwards."""
