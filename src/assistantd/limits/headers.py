"""`x-ratelimit-*` headers on successful responses: the limiter fills a holder that this ASGI
middleware puts on the response (a refused request carries them on its 429 instead)."""

from __future__ import annotations

import contextvars

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_holder: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "assistantd_ratelimit_headers", default=None
)


def add_headers(headers: dict[str, str]) -> None:
    """Send `headers` with the current request's response (no-op outside a request)."""
    holder = _holder.get()
    if holder is not None:
        holder.update(headers)


def duration(seconds: float) -> str:
    """OpenAI's reset durations: `120ms`, `17s`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{round(rest, 3):g}s"


class RateLimitHeaders:
    """Adds the headers `add_headers` collected during the request to its response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        holder: dict[str, str] = {}
        token = _holder.set(holder)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and holder:
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (k.encode(), v.encode()) for k, v in holder.items() if k.encode() not in present
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            _holder.reset(token)
