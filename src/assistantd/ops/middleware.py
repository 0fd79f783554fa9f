"""The HTTP edge, observed: per request a count and a latency by route template and status,
the open SSE streams, a server span (when tracing is on) and, with JSON logs, an access
log line. Sits inside `RequestIdMiddleware` (so the request id is known) and outside
everything else (so a 413 of the request guard counts too)."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistantd.core import metrics as m
from assistantd.ops import context, tracing

access = logging.getLogger("assistantd.access")

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
#: The route label of a request that matched no route (any unknown path: one label, not one each).
UNMATCHED = "unmatched"


def route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class ObservingMiddleware:
    def __init__(self, app: ASGIApp, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        method = scope["method"] if scope["method"] in _METHODS else "other"
        status = 500  # the app raised before any response
        stream = False
        rid = context.request_id.set(scope.get("request_id"))
        span, token = tracing.start_request(method, scope["headers"])

        async def observed(message: Message) -> None:
            nonlocal status, stream
            if message["type"] == "http.response.start":
                status = message["status"]
                for k, v in message.get("headers", ()):
                    if k == b"content-type" and v.startswith(b"text/event-stream"):
                        stream = True
                        m.SSE_STREAMS.inc()
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            if stream:
                m.SSE_STREAMS.dec()
            route = route_of(scope)
            elapsed = time.perf_counter() - began
            m.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            m.HTTP_DURATION.labels(method, route).observe(elapsed)
            tracing.end_request(span, token, method, route, status)
            if self.access_log:
                self._log(scope, method, route, status, elapsed)
            context.request_id.reset(rid)

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
