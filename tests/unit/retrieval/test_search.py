"""Hybrid search with the real MiniLM model on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from assistantd.retrieval import (
    ChunkIndex,
    HybridSearcher,
    InvalidFilter,
    MiniLMEmbedder,
    rewrite_query,
)
from assistantd.testing.indexing import add_text

DOCS = {
    "file-refund": (
        "Returns and refunds. Customers may send back Zephyr X2 headphones within 45 days "
        "of delivery and receive their money back in full. Opened software is not refundable.",
        {"team": "support", "year": 2024, "public": True},
    ),
    "file-shipping": (
        "Shipping. Orders leave our Rotterdam warehouse every weekday. Express parcels reach "
        "EU addresses in two business days.",
        {"team": "logistics", "year": 2023, "public": True},
    ),
    "file-security": (
        "Security. Staff rotate passwords every ninety days and use hardware keys for VPN "
        "access. Incident code SEC-4471 covers lost laptops.",
        {"team": "it", "year": 2025, "public": False},
    ),
    "file-payroll": (
        "Payroll. Salaries are paid on the 25th of each month by bank transfer; expense "
        "claims submitted before the 10th are reimbursed with that salary.",
        {"team": "finance", "year": 2025},
    ),
}


@pytest.fixture
async def store(engine: AsyncEngine, minilm: MiniLMEmbedder) -> HybridSearcher:
    index = ChunkIndex()
    for file_id, (text, attrs) in DOCS.items():
        await add_text(index, engine, minilm, "vs_docs", file_id, text, attrs)
    return HybridSearcher(index, minilm)


async def top(
    store: HybridSearcher, engine: AsyncEngine, query: str | list[str], **kw: object
) -> list[str]:
    result = await store.search(engine, vector_store_ids=["vs_docs"], query=query, **kw)  # type: ignore[arg-type]
    return [h.file_id for h in result.hits]


@pytest.mark.parametrize("ranker", ["auto", "none", "default-2024-11-15"])
async def test_paraphrase_and_exact_code_both_found(
    store: HybridSearcher, engine: AsyncEngine, ranker: str
) -> None:
    # No shared content words: only the vector side can find it.
    assert (await top(store, engine, "how long can I take to return a headset?", ranker=ranker))[
        0
    ] == "file-refund"
    # An identifier the model has no meaning for: the keyword side finds it.
    assert (await top(store, engine, "SEC-4471", ranker=ranker))[0] == "file-security"


async def test_scores_are_sorted_in_range_and_thresholded(
    store: HybridSearcher, engine: AsyncEngine
) -> None:
    result = await store.search(
        engine, vector_store_ids=["vs_docs"], query="when is salary paid", max_num_results=4
    )
    scores = [h.score for h in result.hits]
    assert result.hits[0].file_id == "file-payroll"
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    cut = (scores[0] + scores[-1]) / 2
    kept = await store.search(
        engine, vector_store_ids=["vs_docs"], query="when is salary paid", score_threshold=cut
    )
    assert kept.hits and all(h.score >= cut for h in kept.hits)
    assert len(kept.hits) < len(result.hits)
    # Scores are absolute, not relative to the best hit: an off-topic query scores low.
    off_topic = await store.search(
        engine,
        vector_store_ids=["vs_docs"],
        query="lattice gluon chromodynamics",
        score_threshold=0.3,
    )
    assert off_topic.hits == []


async def test_max_num_results_bounds(store: HybridSearcher, engine: AsyncEngine) -> None:
    assert len(await top(store, engine, "policy", max_num_results=2)) == 2
    for bad in (0, 51):
        with pytest.raises(ValueError, match="max_num_results"):
            await top(store, engine, "policy", max_num_results=bad)


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"type": "eq", "key": "team", "value": "it"}, {"file-security"}),
        (
            {"type": "ne", "key": "team", "value": "it"},
            {"file-refund", "file-shipping", "file-payroll"},
        ),
        (
            {"type": "gt", "key": "year", "value": 2023},
            {"file-refund", "file-security", "file-payroll"},
        ),
        ({"type": "gte", "key": "year", "value": 2025}, {"file-security", "file-payroll"}),
        ({"type": "lt", "key": "year", "value": 2024}, {"file-shipping"}),
        ({"type": "lte", "key": "year", "value": 2024}, {"file-shipping", "file-refund"}),
        (
            {"type": "in", "key": "team", "value": ["it", "finance"]},
            {"file-security", "file-payroll"},
        ),
        (
            {"type": "nin", "key": "team", "value": ["it", "finance"]},
            {"file-refund", "file-shipping"},
        ),
        ({"type": "eq", "key": "public", "value": True}, {"file-refund", "file-shipping"}),
        (
            {
                "type": "or",
                "filters": [
                    {"type": "eq", "key": "team", "value": "finance"},
                    {
                        "type": "and",
                        "filters": [
                            {"type": "eq", "key": "public", "value": True},
                            {"type": "gte", "key": "year", "value": 2024},
                        ],
                    },
                ],
            },
            {"file-payroll", "file-refund"},
        ),
    ],
)
async def test_filters(
    store: HybridSearcher, engine: AsyncEngine, flt: dict[str, object], expected: set[str]
) -> None:
    assert (
        set(await top(store, engine, "company policy", filters=flt, max_num_results=10)) == expected
    )


async def test_invalid_filter(store: HybridSearcher, engine: AsyncEngine) -> None:
    with pytest.raises(InvalidFilter, match=r"filters\.type"):
        await top(store, engine, "x", filters={"type": "like", "key": "a", "value": "b"})


async def test_multiple_queries_are_fused(store: HybridSearcher, engine: AsyncEngine) -> None:
    hits = await top(
        store, engine, ["password rotation", "express parcel delivery time"], max_num_results=2
    )
    assert set(hits) == {"file-security", "file-shipping"}


async def test_rewrite_query(store: HybridSearcher, engine: AsyncEngine) -> None:
    assert rewrite_query("What is the refund window for the Zephyr X2 headphones?") == (
        "refund window Zephyr X2 headphones"
    )
    assert rewrite_query("What is it?") == "What is it?"
    result = await store.search(
        engine, vector_store_ids=["vs_docs"], query="When do I get my salary?", rewrite=True
    )
    assert result.search_queries == ["salary"]
    assert result.hits[0].file_id == "file-payroll"
