"""Exact vector candidates against a brute-force scan, with and without file filters."""

from __future__ import annotations

import numpy as np
import pytest

from assistantd.retrieval import index as index_module
from assistantd.retrieval.index import ChunkIndex, _StoreMatrix


def _matrix(codes: list[int], seed: int = 0) -> _StoreMatrix:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((len(codes), 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return _StoreMatrix(
        generation="g",
        chunk_ids=np.arange(100, 100 + 3 * len(codes), 3, dtype=np.int64),
        file_codes=np.asarray(codes, dtype=np.int32),
        vectors=vectors,
        file_ids=["file-a", "file-b", "file-c"],
    )


def _brute(m: _StoreMatrix, q: np.ndarray, k: int, files: set[str] | None) -> list[list[int]]:
    out = []
    for row in q:
        scores = m.vectors @ row
        keep = [
            i for i in range(len(scores)) if files is None or m.file_ids[m.file_codes[i]] in files
        ]
        keep.sort(key=lambda i: -scores[i])
        out.append([int(m.chunk_ids[i]) for i in keep[:k]])
    return out


@pytest.mark.parametrize(
    "codes",
    [
        [0] * 30 + [1] * 25 + [2] * 20,  # files in contiguous runs, as ingestion writes them
        [0, 1, 2] * 25,  # interleaved: one run per row
    ],
)
@pytest.mark.parametrize("files", [None, {"file-b"}, {"file-a", "file-c"}, {"file-x"}])
@pytest.mark.parametrize("max_spans", [256, 0])  # scan the runs / scan all and mask
@pytest.mark.parametrize("queries", [1, 3])
def test_vector_candidates_match_brute_force(
    monkeypatch: pytest.MonkeyPatch,
    codes: list[int],
    files: set[str] | None,
    max_spans: int,
    queries: int,
) -> None:
    monkeypatch.setattr(index_module, "_MAX_FILTER_SPANS", max_spans)
    m = _matrix(codes)
    q = m.vectors[:queries] * 0.5 + np.float32(0.1)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    for k in (1, 7, 100):
        got = ChunkIndex().vector_candidates(m, q, k, files)
        assert [[i for i, _ in hits] for hits in got] == _brute(m, q, k, files)
        for hits, row in zip(got, q, strict=True):
            rows = [m.row_of(i) for i, _ in hits]
            assert [s for _, s in hits] == pytest.approx(
                [float(m.vectors[r] @ row) for r in rows], abs=1e-6
            )
