"""Keyword candidates: SQLite's two query shapes agree; the coverage term matcher."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from assistantd.retrieval import ChunkIndex
from assistantd.retrieval.search import _stems_in
from assistantd.testing.embedders import HashingEmbedder
from assistantd.testing.indexing import add_text

EMB = HashingEmbedder()


async def _fill(index: ChunkIndex, engine: AsyncEngine) -> None:
    # One chunk a file, every chunk a different length so no two bm25 scores tie. A
    # third of vs_big's chunks say "kiwi" once to four times; vs_small's say it eight
    # times, so the top of the whole table is vs_small's and the ranked-first shape has
    # to look past them, or fall back to the joined shape, for vs_big.
    for f in range(60):
        kiwi = "kiwi " * (1 + f % 4) if f % 3 == 0 else ""
        words = " ".join(f"word{f}x{j}" for j in range(5 + f))
        await add_text(index, engine, EMB, "vs_big", f"file-b{f}", kiwi + words, {"n": f})
    for f in range(6):
        words = " ".join(f"other{f}x{j}" for j in range(3 + f))
        await add_text(index, engine, EMB, "vs_small", f"file-s{f}", "kiwi " * 8 + words)


@pytest.mark.parametrize(
    ("stores", "files"),
    [
        (["vs_big"], None),
        (["vs_small"], None),
        (["vs_big", "vs_small"], None),
        (["vs_big"], {"file-b3", "file-b30"}),
        (["vs_big"], {f"file-b{f}" for f in range(0, 60, 2)}),
    ],
)
async def test_ranked_first_and_joined_shapes_agree(
    engine: AsyncEngine, stores: list[str], files: set[str] | None
) -> None:
    index = ChunkIndex()
    await _fill(index, engine)
    in_scope = 60 if stores == ["vs_big"] else 6 if stores == ["vs_small"] else 66
    in_scope = len(files) if files else in_scope
    for k in (3, 20):
        joined = await index.keyword_candidates(engine, stores, ["kiwi"], k, files)
        assert joined
        for scope_rows in (in_scope, 10 * in_scope):  # the right count and an overestimate
            ranked = await index.keyword_candidates(
                engine, stores, ["kiwi"], k, files, scope_rows=scope_rows
            )
            assert [i for i, _ in ranked] == [i for i, _ in joined]
            assert [s for _, s in ranked] == pytest.approx([s for _, s in joined])


@pytest.mark.parametrize(
    ("text", "stems", "found"),
    [
        ("Refunds are refundable.", ["refund"], {0}),
        ("the x20 model", ["x2"], set()),  # short stems match whole words only
        ("the x2, not x20", ["x2"], {0}),
        ("a refund_code field", ["refund"], set()),  # "_" joins words, as in \b
        ("old_refund", ["refund"], set()),
        ("refundable", ["refund", "refundab"], {0}),  # a word counts for its first stem
        ("refund-able", ["able", "refund"], {0, 1}),
        ("", ["refund"], set()),
    ],
)
def test_stems_in(text: str, stems: list[str], found: set[int]) -> None:
    assert _stems_in(text.lower(), stems) == found
