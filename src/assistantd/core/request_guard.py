"""What every request body must be before it is routed.

`RequestGuard` sits in front of the routers (ASGI middleware):

- a POST with no body at all is read as `{}` (the Node SDK sends no body for
  `vectorStores.create()` without arguments), so it is accepted exactly where `{}` is and
  otherwise the 400 names the real missing field.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_FORM_TYPES = (b"multipart/form-data", b"application/x-www-form-urlencoded")


class RequestGuard:
    """ASGI middleware: normalizes an empty POST body to `{}` (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.split(b";", 1)[0].strip().lower()
        if content_type in _FORM_TYPES:
            await self.app(scope, receive, send)
            return

        first = await receive()
        if first["type"] == "http.request" and not first.get("body") and not first.get("more_body"):
            # No body at all: the same as `{}` sent as JSON.
            scope["headers"] = [(k, v) for k, v in scope["headers"]
                                if k not in (b"content-type", b"content-length")]
            scope["headers"] += [(b"content-type", b"application/json"), (b"content-length", b"2")]
            first = {"type": "http.request", "body": b"{}", "more_body": False}

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await receive()

        await self.app(scope, replay, send)
