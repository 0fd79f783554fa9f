"""How uvicorn serves the app: slow or idle clients cannot hold a connection.

uvicorn bounds only the idle time *between* requests (`timeout_keep_alive`, armed after a
response): a connection that never sends a byte, or sends its headers a byte a second, or
stops half-way through a body, is kept for ever, and one address may open any number of
them. `GuardedHTTP` is the `http` protocol factory given to uvicorn; the protocol it builds
is uvicorn's own (httptools when installed, as uvicorn's `auto` picks, else h11) with a
guard added:

- **header timeout**: a request's headers must be complete within `header_timeout` seconds
  of the connection opening or of the previous response ending (a deadline, not an idle
  timer: a slowloris sending a byte a second is closed too), and be at most
  `MAX_HEADER_BYTES` long;
- **body timeout**: while a request body is being received, the client may pause at most
  `body_timeout` seconds between two reads; the timer waits while the server itself is not
  reading (flow control, `Expect: 100-continue` not yet answered);
- **connections per address**: past `max_per_client` open connections from one address,
  a new one is answered 429 and closed.

Responses are never bounded: once a request is read, an SSE stream or a long poll may stay
silent as long as the app wants. The limits are counted per server process.
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal, cast

import orjson

from assistantd.core.metrics import RATE_LIMIT_REJECTIONS
from assistantd.core.settings import Settings
from assistantd.core.wire import error_envelope

#: Largest request head (request line and headers) accepted; h11 alone stops at 16 KiB.
MAX_HEADER_BYTES = 64 * 1024

Phase = Literal["headers", "body", "none"]


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    max_per_client: int  # 0: no bound


def _refusal(limit: int) -> bytes:
    body = orjson.dumps(
        error_envelope(
            f"Too many connections from your address: at most {limit} may be open at once "
            "(ASSISTANTD_HTTP_MAX_CONNECTIONS_PER_CLIENT).",
            "requests",
            None,
            "rate_limit_exceeded",
        )
    )
    return (
        b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
        b"retry-after: 1\r\nconnection: close\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


class _Guard:
    """The mixin: timers and counting around a uvicorn HTTP protocol (see the module doc).

    The subclasses for h11 and httptools say which phase the connection is in; uvicorn's
    attributes used here (`transport`, `client`, `flow`, `cycle`, `loop`,
    `timeout_keep_alive_task`) are the same in both.
    """

    guard: GuardedHTTP
    transport: asyncio.Transport
    client: tuple[str, int] | None
    flow: Any
    cycle: Any
    loop: asyncio.AbstractEventLoop
    timeout_keep_alive_task: asyncio.TimerHandle | None

    _phase: Phase = "headers"
    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _header_bytes = 0
    _counted: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        transport = cast(asyncio.Transport, transport)
        limits, host = self.guard.limits, self.client[0] if self.client else None
        if host is not None:
            self._counted = host
            self.guard.open_per_client[host] += 1
            if limits.max_per_client and self.guard.open_per_client[host] > limits.max_per_client:
                self._phase = "none"
                RATE_LIMIT_REJECTIONS.labels("connections_per_client").inc()
                transport.write(_refusal(limits.max_per_client))
                transport.close()
                return
        self._enter("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self._counted is not None:
            counts = self.guard.open_per_client
            counts[self._counted] -= 1
            if counts[self._counted] <= 0:
                del counts[self._counted]
            self._counted = None
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        if self._phase == "headers":
            self._header_bytes += len(data)
        super().data_received(data)  # type: ignore[misc]
        self._sync()
        if self._phase == "body":
            self._arm_body()
        elif self._phase == "headers" and self._header_bytes > MAX_HEADER_BYTES:
            self._close()  # still no end of the head in that much

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        # uvicorn arms its keep-alive timer when it waits for the next request.
        if self.timeout_keep_alive_task is not None:
            self._sync(idle=True)

    # -- for the subclasses -------------------------------------------------------------

    def _current_phase(self, idle: bool) -> Phase:
        raise NotImplementedError

    # -- timers -----------------------------------------------------------------------

    def _sync(self, idle: bool = False) -> None:
        phase = self._current_phase(idle)
        if phase != self._phase:
            self._enter(phase)

    def _enter(self, phase: Phase) -> None:
        self._phase = phase
        self._cancel_timers()
        if phase == "headers":
            self._header_bytes = 0
            self._header_timer = self.loop.call_later(
                self.guard.limits.header_timeout, self._header_expired
            )

    def _arm_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
        self._body_timer = self.loop.call_later(self.guard.limits.body_timeout, self._body_expired)

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    def _header_expired(self) -> None:
        self._header_timer = None
        if self._phase == "headers":
            self._close()

    def _body_expired(self) -> None:
        self._body_timer = None
        if self._phase != "body":
            return
        cycle = self.cycle
        if self.flow.read_paused or getattr(cycle, "waiting_for_100_continue", False):
            self._arm_body()  # the server is not reading: not the client's pause
            return
        self._close()

    def _close(self) -> None:
        self._phase = "none"
        self._cancel_timers()
        if not self.transport.is_closing():
            self.transport.close()


def _h11_class() -> type[asyncio.Protocol]:
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11(_Guard, H11Protocol):
        def _current_phase(self, idle: bool) -> Phase:
            state = self.conn.their_state
            if state is h11.IDLE:
                return "headers"
            return "body" if state is h11.SEND_BODY else "none"

    return GuardedH11


def _httptools_class() -> type[asyncio.Protocol]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpTools(_Guard, HttpToolsProtocol):
        _parsed: Phase = "headers"  # what the parser is in: set by its callbacks

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._parsed = "headers"

        def on_headers_complete(self) -> None:
            self._parsed = "body"
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._parsed = "none"
            super().on_message_complete()

        def _current_phase(self, idle: bool) -> Phase:
            if idle and self._parsed == "none" and not self.pipeline:
                return "headers"  # the response is out; the next request has not begun
            return self._parsed

    return GuardedHttpTools


def _protocol_class() -> type[asyncio.Protocol]:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return _h11_class()
    return _httptools_class()


class GuardedHTTP:
    """uvicorn's `http=` factory: uvicorn's protocol with the guard (see the module doc).

    Picklable (uvicorn `--workers` sends the config to its worker processes); each process
    counts its own connections.
    """

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open_per_client: Counter[str] = Counter()
        self._cls: type[asyncio.Protocol] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"limits": self.limits}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["limits"])  # type: ignore[misc]

    def __call__(self, **kwargs: Any) -> asyncio.Protocol:
        if self._cls is None:
            self._cls = _protocol_class()
        protocol = self._cls(**kwargs)
        protocol.guard = self  # type: ignore[attr-defined]
        return protocol


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn settings assistantd serves with (`assistantd serve` and the tests)."""
    limits = ConnectionLimits(
        header_timeout=settings.http_header_timeout_seconds,
        body_timeout=settings.http_body_timeout_seconds,
        max_per_client=settings.http_max_connections_per_client,
    )
    return {
        "http": GuardedHTTP(limits),
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }


#: Allocations between two young-generation collections once `tune_gc()` ran (CPython's
#: default is 700). A request allocates thousands of short-lived objects (SQLAlchemy
#: statements and rows, pydantic and Starlette objects); at 700 the collector ran several
#: times per request.
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a long-running server process.

    Called once the app has started (`assistantd serve`'s factory only; a test process that
    builds many apps keeps the defaults). `gc.freeze()` moves everything alive after startup
    (modules, the ORM's mappers, FastAPI's routes, compiled pydantic validators: hundreds of
    thousands of objects that never die) out of the collector's reach, so an old-generation
    collection scans what requests made, not the whole program; the higher young-generation
    threshold makes collections rarer without holding much more garbage (cycles are rare on
    the request path, reference counting frees the rest at once).
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
