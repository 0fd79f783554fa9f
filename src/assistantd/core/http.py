"""Small HTTP plumbing shared by every router: the JSON response class and request ids."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistantd.core.ids import new_id


class JSONResponse(Response):
    """JSON rendered by orjson (several times faster than the stdlib on run objects)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class _AfterResponse:
    def __init__(self) -> None:
        self.calls: list[Callable[[], None]] = []
        self.done = False

    def run(self) -> None:
        self.done = True
        calls, self.calls = self.calls, []
        for fn in calls:
            fn()


_after_response: contextvars.ContextVar[_AfterResponse | None] = contextvars.ContextVar(
    "assistantd_after_response", default=None
)


def after_response(fn: Callable[[], None]) -> None:
    """Call `fn` once the current request's response has been handed to the socket (for a
    stream: once its headers have), or now outside a request.

    For work the response does not wait for, such as starting a run: the client reads the
    response while the work runs, instead of after it.
    """
    pending = _after_response.get()
    if pending is None or pending.done:
        fn()
    else:
        pending.calls.append(fn)


class RequestIdMiddleware:
    """Gives every response an `x-request-id` (the SDKs expose it as `request_id`), and runs
    the request's `after_response` calls once the response is out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = "req_" + new_id("", 24)
        scope["request_id"] = request_id
        raw = request_id.encode()

        pending = _AfterResponse()
        token = _after_response.set(pending)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", raw)]
                await send(message)
                if pending.calls and any(
                    k == b"content-type" and v.startswith(b"text/event-stream")
                    for k, v in message["headers"]
                ):
                    pending.run()  # a stream's events come from the work itself
                return
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                pending.run()

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            pending.run()  # no response was sent (the client left): still start the work
            _after_response.reset(token)
