"""The SQLite connection that runs on the event loop, and work started after a response."""

from __future__ import annotations

import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from sqlalchemy import text

from assistantd.core.db import create_engine, offloaded
from assistantd.core.http import after_response
from assistantd.ops.middleware import HttpEdge


async def _thread_of_statement(engine: Any) -> int:
    """The id of the thread that executed a statement (an SQL function reports it)."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        seen: list[int] = []

        def where() -> int:
            seen.append(threading.get_ident())
            return 1

        await raw.driver_connection.create_function("where_am_i", 0, where)
        await conn.execute(text("SELECT where_am_i()"))
        return seen[0]


async def test_sqlite_statements_run_on_the_loop_thread_unless_offloaded(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    try:
        assert await _thread_of_statement(engine) == threading.get_ident()
        with offloaded():
            assert await _thread_of_statement(engine) != threading.get_ident()
        async with engine.begin() as conn:  # the connection still works as usual
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1), (2)"))
        with offloaded():
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT sum(x) FROM t"))).scalar() == 3
    finally:
        await engine.dispose()


async def _call(app: Any, order: list[str]) -> None:
    """Run one request through the middleware, noting each message sent in `order`."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        order.append(message["type"] + (":more" if message.get("more_body") else ""))

    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    await HttpEdge(app)(scope, receive, send)


async def test_after_response_runs_once_the_body_is_sent() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        after_response(lambda: order.append("work"))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b"{}"})

    order: list[str] = []
    await _call(app, order)
    assert order == ["http.response.start", "http.response.body", "work"]


async def test_after_response_runs_once_a_stream_has_started() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        after_response(lambda: order.append("work"))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    order: list[str] = []
    await _call(app, order)
    assert order == ["http.response.start", "work", "http.response.body:more", "http.response.body"]


async def test_after_response_runs_even_without_a_response() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        after_response(lambda: seen.append("work"))
        raise ConnectionResetError

    seen: list[str] = []
    try:
        await _call(app, [])
    except ConnectionResetError:
        pass
    assert seen == ["work"]


def test_after_response_outside_a_request_runs_at_once() -> None:
    seen: list[str] = []
    after_response(lambda: seen.append("work"))
    assert seen == ["work"]
