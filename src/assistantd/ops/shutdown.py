"""SIGTERM begins the drain of the run worker (`worker/drain.py` says what a drain does).

The app context holds the drain as this Protocol, so that nothing outside the composition
root imports run execution.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from types import FrameType
from typing import Protocol


class Drain(Protocol):
    def begin(self) -> None:
        """Start draining now (in the event loop's thread); again: nothing."""

    async def finish(self) -> None:
        """Drain (if not begun) and wait until the worker has stopped."""


def drain_on_sigterm(drain: Drain) -> None:
    """Begin `drain` at SIGTERM, before uvicorn waits for open connections (streams end when
    their runs do), then let the handler in place (uvicorn's) run. Main thread only: a test
    server in a thread has no signals."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)

    def handler(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(drain.begin)
        if callable(previous):
            previous(sig, frame)

    signal.signal(signal.SIGTERM, handler)
