"""`x-ratelimit-*` headers on successful responses: the limiter fills a holder that the HTTP
edge (`ops/middleware.py::HttpEdge`) puts on the response (a refused request carries them on
its 429 instead)."""

from __future__ import annotations

import contextvars

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


def collect() -> tuple[dict[str, str], contextvars.Token[dict[str, str] | None]]:
    """Start collecting the current request's headers (the HTTP edge does, once per
    request): the holder `add_headers` fills, and the token that resets it."""
    holder: dict[str, str] = {}
    return holder, _holder.set(holder)


def release(token: contextvars.Token[dict[str, str] | None]) -> None:
    _holder.reset(token)


def with_headers(
    headers: list[tuple[bytes, bytes]], holder: dict[str, str]
) -> list[tuple[bytes, bytes]]:
    """A response's `headers` and, after them, those of `holder` it does not carry yet."""
    present = {k.lower() for k, _ in headers}
    extra = [(k.encode(), v.encode()) for k, v in holder.items() if k.encode() not in present]
    return [*headers, *extra]
