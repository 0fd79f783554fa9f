"""Background work that repeats: the workers' sweeps."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


async def every(
    seconds: float, work: Callable[[], Awaitable[None]], log: logging.Logger, what: str
) -> None:
    """Run `work` every `seconds` until cancelled; a failed round is logged, not fatal."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed", what)
