"""PostgreSQL's pooled connections (`core/db.py`): one that idled in the pool is pinged
before it is handed out, and one that broke in a transaction on the driver's connection
(`driver_transaction`) is not handed out again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from assistantd.core import db
from assistantd.core.db import Prebuilt, create_engine, driver_transaction
from assistantd.testing.server import PG_ADMIN_URL, pg_database

BACKEND_PID = Prebuilt("SELECT pg_backend_pid()")


@pytest.fixture(params=["postgres"])
async def engine(request: pytest.FixtureRequest) -> AsyncIterator[AsyncEngine]:
    url, drop = pg_database()
    engine = create_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()
        drop()


async def _pid(engine: AsyncEngine) -> int:
    async with driver_transaction(engine) as tx:
        return int((await tx.fetch(BACKEND_PID, ()))[0][0])


async def _terminate(pid: int) -> None:
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def test_an_idle_connection_that_the_server_closed_is_replaced_at_checkout(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await _pid(engine)
    await _terminate(first)
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)  # every pooled connection has idled
    async with engine.connect() as conn:  # through SQLAlchemy
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    assert await _pid(engine) != first


async def test_a_connection_that_broke_in_a_driver_transaction_is_not_handed_out_again(
    engine: AsyncEngine,
) -> None:
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
        async with driver_transaction(engine) as tx:
            first = int((await tx.fetch(BACKEND_PID, ()))[0][0])
            await _terminate(first)  # while it is in use
            await tx.fetch(BACKEND_PID, ())
    assert await _pid(engine) != first


async def test_pooled_connections_the_server_closed_are_replaced_however_briefly_they_idled(
    engine: AsyncEngine,
) -> None:
    """A server restart or terminated backends with the pool full of recently used
    connections: none of them is handed out (the driver knows it closed), so no
    transaction meets one, through the driver or through SQLAlchemy."""
    held = [await engine.connect() for _ in range(3)]
    pids = []
    for conn in held:
        pids.append((await conn.execute(text("SELECT pg_backend_pid()"))).scalar())
    for conn in held:
        await conn.close()  # back in the pool, far less than IDLE_PING_SECONDS ago
    for pid in pids:
        await _terminate(int(pid))
    await asyncio.sleep(0.1)  # the event loop reads each socket's end
    seen = [await _pid(engine) for _ in range(5)]
    async with engine.connect() as conn:
        seen.append((await conn.execute(text("SELECT pg_backend_pid()"))).scalar())
    assert not set(seen) & set(pids)
