"""ChunkIndex on SQLite and PostgreSQL: writes, reads, and the matrix cache's freshness."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from assistantd.retrieval import ChunkIndex, ChunkingStrategy, HybridSearcher
from assistantd.testing.embedders import HashingEmbedder
from assistantd.testing.indexing import add_text

EMB = HashingEmbedder()


def searcher(index: ChunkIndex) -> HybridSearcher:
    return HybridSearcher(index, EMB)


async def files_found(
    index: ChunkIndex, engine: AsyncEngine, query: str, **kw: object
) -> list[str]:
    result = await searcher(index).search(
        engine,
        vector_store_ids=["vs_a"],
        query=query,
        ranker="none",
        **kw,  # type: ignore[arg-type]
    )
    return [h.file_id for h in result.hits]


async def test_chunks_round_trip_with_spans_and_attributes(engine: AsyncEngine) -> None:
    index = ChunkIndex()
    text = "Apples are red. " * 200
    n = await add_text(
        index, engine, EMB, "vs_a", "file-1", text, {"team": "fruit", "year": 2024},
        ChunkingStrategy.static(100, 20),
    )  # fmt: skip
    assert n > 5
    stored = await index.file_chunks(engine, vector_store_id="vs_a", file_id="file-1")
    assert [c.chunk_index for c in stored] == list(range(n))
    source = "Apples are red. " * 200
    assert all(source.strip()[c.char_start : c.char_end] == c.text for c in stored)
    assert stored[0].attributes == {"team": "fruit", "year": 2024}
    assert await index.count_chunks(engine, vector_store_id="vs_a") == n


async def test_re_adding_a_file_replaces_its_chunks(engine: AsyncEngine) -> None:
    index = ChunkIndex()
    await add_text(index, engine, EMB, "vs_a", "file-1", "zebra stripes")
    assert await files_found(index, engine, "zebra") == ["file-1"]
    await add_text(index, engine, EMB, "vs_a", "file-1", "giraffe necks")
    assert await index.count_chunks(engine, vector_store_id="vs_a") == 1
    hits = (await searcher(index).search(engine, vector_store_ids=["vs_a"], query="giraffe")).hits
    assert [h.text for h in hits] == ["giraffe necks"]


async def test_delete_file_and_store(engine: AsyncEngine) -> None:
    index = ChunkIndex()
    await add_text(index, engine, EMB, "vs_a", "file-1", "kiwi orchards in spring")
    await add_text(index, engine, EMB, "vs_a", "file-2", "mango orchards in summer")
    await add_text(index, engine, EMB, "vs_b", "file-1", "kiwi in another store")
    assert sorted(await files_found(index, engine, "orchards")) == ["file-1", "file-2"]
    assert await index.delete_file(engine, vector_store_id="vs_a", file_id="file-1") == 1
    assert await files_found(index, engine, "kiwi orchards") == ["file-2"]
    assert await index.delete_store(engine, vector_store_id="vs_a") == 1
    assert await files_found(index, engine, "mango") == []
    # The same file in another store is untouched.
    assert await index.count_chunks(engine, vector_store_id="vs_b") == 1


async def test_update_attributes(engine: AsyncEngine) -> None:
    index = ChunkIndex()
    await add_text(index, engine, EMB, "vs_a", "file-1", "pears", {"v": 1})
    assert (
        await files_found(index, engine, "pears", filters={"type": "eq", "key": "v", "value": 2})
        == []
    )
    assert await index.update_attributes(
        engine, vector_store_id="vs_a", file_id="file-1", attributes={"v": 2}
    )
    hits = (
        await searcher(index).search(
            engine,
            vector_store_ids=["vs_a"],
            query="pears",
            filters={"type": "eq", "key": "v", "value": 2},
        )
    ).hits
    assert [h.attributes for h in hits] == [{"v": 2}]
    assert not await index.update_attributes(
        engine, vector_store_id="vs_a", file_id="nope", attributes={}
    )


async def test_another_process_write_is_seen(engine: AsyncEngine) -> None:
    """Two indexes on one database stand for two processes: caches never go stale."""
    api, worker = ChunkIndex(), ChunkIndex()
    await add_text(worker, engine, EMB, "vs_a", "file-1", "lemon tart recipe")
    assert await files_found(api, engine, "lemon") == ["file-1"]  # api caches the matrix
    await add_text(worker, engine, EMB, "vs_a", "file-2", "lemon sorbet recipe")
    await worker.update_attributes(
        engine, vector_store_id="vs_a", file_id="file-1", attributes={"k": "x"}
    )
    assert sorted(await files_found(api, engine, "lemon", mode="vector")) == ["file-1", "file-2"]
    assert await files_found(
        api, engine, "lemon", filters={"type": "eq", "key": "k", "value": "x"}
    ) == ["file-1"]
    await worker.delete_file(engine, vector_store_id="vs_a", file_id="file-1")
    assert await files_found(api, engine, "lemon", mode="vector") == ["file-2"]


async def test_rolled_back_write_is_not_searched(engine: AsyncEngine) -> None:
    index = ChunkIndex()
    await add_text(index, engine, EMB, "vs_a", "file-1", "plum jam")
    assert await files_found(index, engine, "plum", mode="vector") == ["file-1"]
    with pytest.raises(RuntimeError, match="abort"):
        async with engine.begin() as conn:
            await add_text(index, conn, EMB, "vs_a", "file-2", "plum cake")
            raise RuntimeError("abort")
    assert await files_found(index, engine, "plum", mode="vector") == ["file-1"]


async def test_search_across_stores_and_connection_argument(engine: AsyncEngine) -> None:
    index = ChunkIndex()
    async with engine.begin() as conn:
        await add_text(index, conn, EMB, "vs_a", "file-1", "cherry blossom festival")
        await add_text(index, conn, EMB, "vs_b", "file-2", "cherry pie contest")
    async with engine.connect() as conn:
        result = await searcher(index).search(
            conn, vector_store_ids=["vs_a", "vs_b"], query="cherry"
        )
    assert sorted((h.vector_store_id, h.file_id) for h in result.hits) == [
        ("vs_a", "file-1"),
        ("vs_b", "file-2"),
    ]


async def test_filters_apply_per_store(engine: AsyncEngine) -> None:
    """One file attached to two stores with different attributes passes only where it matches."""
    index = ChunkIndex()
    await add_text(index, engine, EMB, "vs_a", "file-1", "walnut harvest notes", {"team": "a"})
    await add_text(index, engine, EMB, "vs_b", "file-1", "walnut harvest notes", {"team": "b"})
    result = await searcher(index).search(
        engine,
        vector_store_ids=["vs_a", "vs_b"],
        query="walnut harvest",
        filters={"type": "eq", "key": "team", "value": "b"},
    )
    assert [(h.vector_store_id, h.file_id, h.attributes) for h in result.hits] == [
        ("vs_b", "file-1", {"team": "b"})
    ]


async def test_concurrent_first_writes_to_a_new_store(engine: AsyncEngine) -> None:
    """Files of a new store ingested at once (a file batch) must not collide on its row."""
    index = ChunkIndex()
    await asyncio.gather(
        *(add_text(index, engine, EMB, "vs_a", f"file-{i}", f"hazelnut note {i}") for i in range(4))
    )
    assert await index.count_chunks(engine, vector_store_id="vs_a") == 4
    assert len(await files_found(index, engine, "hazelnut", mode="vector")) == 4
