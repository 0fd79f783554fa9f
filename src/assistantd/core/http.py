"""Small HTTP plumbing shared by every router: the JSON response class, request ids, and work
started after the response (`after_response`)."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import orjson
from starlette.responses import Response

from assistantd.core.ids import new_id


class JSONResponse(Response):
    """JSON rendered by orjson (several times faster than the stdlib on run objects)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class AfterResponse:
    """The calls `after_response` queued during one request; the HTTP edge
    (`ops/middleware.py::HttpEdge`) runs them once the response is out (`run`)."""

    __slots__ = ("calls", "done")

    def __init__(self) -> None:
        self.calls: list[Callable[[], None]] = []
        self.done = False

    def run(self) -> None:
        self.done = True
        calls, self.calls = self.calls, []
        for fn in calls:
            fn()


_after_response: contextvars.ContextVar[AfterResponse | None] = contextvars.ContextVar(
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


def hold_after_response() -> tuple[AfterResponse, contextvars.Token[AfterResponse | None]]:
    """Start collecting the current request's `after_response` calls (the HTTP edge does,
    once per request); the token resets it."""
    pending = AfterResponse()
    return pending, _after_response.set(pending)


def release_after_response(token: contextvars.Token[AfterResponse | None]) -> None:
    _after_response.reset(token)


def new_request_id() -> str:
    """An `x-request-id` (the SDKs expose it as `request_id`)."""
    return "req_" + new_id("", 24)
