"""Server-sent events: a run's log as a `text/event-stream` response."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse

from assistantd.events.bus import DONE, EventBus, RunEvent

KEEPALIVE_SECONDS = 15.0
PING = b": ping\n\n"


async def frames(bus: EventBus, run_id: str, after: int, prefix: list[bytes] | None = None,
                 keepalive: float = KEEPALIVE_SECONDS) -> AsyncIterator[bytes]:
    """Frames of the run's events after `after` up to `done`, with comments while silent."""
    for chunk in prefix or []:
        yield chunk
    events = bus.subscribe(run_id, after).__aiter__()
    pending: asyncio.Task[RunEvent] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(events.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=keepalive)
            if not done:
                # Waiting must not cancel the read (that would close the subscription).
                yield PING
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield event.frame()
            if event.event == DONE:
                return
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                await pending
        with contextlib.suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]


def sse_response(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
