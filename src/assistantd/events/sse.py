"""Server-sent events: a run's log as a `text/event-stream` response."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from starlette.responses import StreamingResponse

from assistantd.events.bus import DONE, EventBus

KEEPALIVE_SECONDS = 15.0
PING = b": ping\n\n"


async def frames(bus: EventBus, run_id: str, after: int, prefix: list[bytes] | None = None,
                 keepalive: float = KEEPALIVE_SECONDS) -> AsyncIterator[bytes]:
    """Frames of the run's events after `after` up to `done`, with comments while silent."""
    for chunk in prefix or []:
        yield chunk
    # aclosing: a client that hangs up ends the subscription now, not at garbage collection.
    async with aclosing(bus.subscribe(run_id, after, idle=keepalive)) as events:
        async for event in events:
            if event is None:
                yield PING
                continue
            yield event.frame()
            if event.event == DONE:
                return


def sse_response(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
