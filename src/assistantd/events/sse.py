"""Server-sent events: a run's log as a `text/event-stream` response."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import aclosing

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from assistantd.events.bus import DONE, EventBus

KEEPALIVE_SECONDS = 15.0
# A keep-alive is one comment line and never a blank line: a blank line ends an event, and
# the official SDKs' decoders do not all agree on what an event is. The Python SDK's (1.x
# to 3.x) remembers the last `id:` across events and dispatches at any blank line once it
# has one, so `: ping` + blank line after a frame with an `id:` became an event with empty
# data, whose `json.loads('')` failed the stream. A comment line alone is skipped, line by
# line, by every decoder (the SDKs' and browsers' EventSource), and still keeps bytes
# flowing through proxies. So every blank line a stream sends ends a frame with `event:`
# and `data:`, and the frames' `id:` lines (for resuming) are harmless.
PING = b": ping\n"
# While frames flow, how often a stream checks that its client is still there.
HANGUP_CHECK_SECONDS = 5.0


async def frames(
    bus: EventBus,
    run_id: str,
    after: int,
    prefix: list[bytes] | None = None,
    keepalive: float = KEEPALIVE_SECONDS,
) -> AsyncIterator[bytes]:
    """Frames of the run's events after `after` up to `done`, with a comment line (`PING`)
    each `keepalive` seconds of silence."""
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


class EventStreamResponse(StreamingResponse):
    """A streaming response that runs in the request's own task.

    Starlette's StreamingResponse runs the body in a second task beside one that waits
    for the client to hang up (ASGI 2.3 servers, uvicorn among them). With a thousand
    open streams those tasks, their task group and scopes were ~8 kB a stream. Here the
    body checks for a hang-up itself, at each keep-alive and every few seconds while
    frames flow; a client that left is noticed within `HANGUP_CHECK_SECONDS`, or a
    keep-alive interval if the run is silent. (Until then the server drops what is sent.)
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        checked = time.monotonic()
        body = self.body_iterator
        try:
            async for chunk in body:
                if not isinstance(chunk, bytes | memoryview):
                    chunk = chunk.encode(self.charset)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                now = time.monotonic()
                if chunk is PING or now - checked >= HANGUP_CHECK_SECONDS:
                    if await _hung_up(receive):
                        return
                    checked = now
        except OSError:
            return  # an ASGI 2.4 server's send says the client has gone
        finally:
            close = getattr(body, "aclose", None)
            if close is not None:
                await close()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _hung_up(receive: Receive) -> bool:
    """Whether the client has gone, without waiting: a connected client's `receive()`
    blocks (its request body was read long ago), so it is cancelled at once."""
    try:
        async with asyncio.timeout(0):
            message = await receive()
    except TimeoutError:
        return False
    return bool(message["type"] == "http.disconnect")


def sse_response(body: AsyncIterator[bytes]) -> StreamingResponse:
    return EventStreamResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
