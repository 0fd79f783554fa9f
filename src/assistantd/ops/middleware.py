"""The HTTP edge: the one ASGI layer of ours in front of the request guard and the routers.

Per request it gives the response its `x-request-id` (the SDKs expose it as `request_id`)
and the `x-ratelimit-*` headers the limiter collected (`limits/headers.py`), runs the
request's `after_response` work once the response is out (`core/http.py`), and observes
it: a count and a latency by route template and status, the open SSE streams, a server
span (when tracing is on) and, with JSON logs, an access log line. It sits outside the
request guard, so a 413 of the guard counts too and carries the id.

These were three middlewares, each wrapping `send` once more; one layer does the same
work in the same order (a response's headers, then the rate-limit ones, then the id).
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistantd.core import metrics as m
from assistantd.core.http import hold_after_response, new_request_id, release_after_response
from assistantd.limits import headers as ratelimit
from assistantd.ops import context, tracing

access = logging.getLogger("assistantd.access")

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
#: The route label of a request that matched no route (any unknown path: one label, not one each).
UNMATCHED = "unmatched"


def route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class HttpEdge:
    """ASGI middleware: request id, rate-limit headers, after-response work, observation."""

    def __init__(self, app: ASGIApp, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        request_id = scope["request_id"] = new_request_id()
        raw_id = request_id.encode()
        pending, pending_token = hold_after_response()
        holder, holder_token = ratelimit.collect()
        method = scope["method"] if scope["method"] in _METHODS else "other"
        status = 500  # the app raised before any response
        stream = False
        rid = context.request_id.set(request_id)
        span, token = tracing.start_request(method, scope["headers"])

        async def edge_send(message: Message) -> None:
            nonlocal status, stream
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", [])
                if holder:
                    headers = ratelimit.with_headers(headers, holder)
                for k, v in headers:
                    if k == b"content-type" and v.startswith(b"text/event-stream"):
                        stream = True
                        m.SSE_STREAMS.inc()
                message["headers"] = [*headers, (b"x-request-id", raw_id)]
                await send(message)
                if stream and pending.calls:
                    pending.run()  # a stream's events come from the work itself
                return
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                pending.run()

        try:
            await self.app(scope, receive, edge_send)
        finally:
            try:
                ratelimit.release(holder_token)
                if stream:
                    m.SSE_STREAMS.dec()
                route = route_of(scope)
                elapsed = time.perf_counter() - began
                m.HTTP_REQUESTS.labels(method, route, str(status)).inc()
                m.HTTP_DURATION.labels(method, route).observe(elapsed)
                tracing.end_request(span, token, method, route, status)
                if self.access_log:
                    self._log(scope, method, route, status, elapsed)
            finally:  # whatever the observation did, the request's work still starts
                context.request_id.reset(rid)
                pending.run()  # no response was sent (the client left): still start it
                release_after_response(pending_token)

    @staticmethod
    def _log(scope: Scope, method: str, route: str, status: int, elapsed: float) -> None:
        principal = scope.get("principal")
        project = getattr(principal, "project_id", None)
        # The route template, never the path or query: they may carry what a client typed.
        access.info(
            "%s %s %d",
            method,
            route,
            status,
            extra={
                "route": route,
                "method": method,
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "project": project,
            },
        )
