"""Keyword (full-text) candidate search; the one place SQLite and PostgreSQL differ.

Queries are a disjunction (OR) of the query's content words: BM25-style ranking then
rewards chunks that contain more of them, rarer ones weighing more, instead of
requiring all words the way ``plainto_tsquery``/implicit-AND FTS5 queries would.

- SQLite: FTS5 ``MATCH '"w1" OR "w2"'`` ranked by ``bm25()`` (porter-stemmed tokens).
- PostgreSQL: ``to_tsquery('english', 'w1 | w2')`` on the GIN-indexed ``tsv`` column,
  ranked by ``ts_rank(tsv, q, 1)`` (term frequency, divided by 1 + log(length)).
  Neither ``ts_rank`` nor ``ts_rank_cd`` knows inverse document frequency, so a rare
  codename weighs no more than "battery"; keyword-only search is therefore weaker on
  PostgreSQL (eval MRR 0.68 vs 0.79 on SQLite). ``ts_rank_cd`` (cover density) was
  slightly worse still for these OR queries (0.67). Hybrid search does not suffer: its
  fusion weighs keyword hits by idf-weighted query coverage (`search.py`), and scores
  the same on both databases.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

# Past this many allowed files the id list is dropped from SQL and results are filtered
# afterwards from a larger candidate pool (SQLite caps bound parameters at 32766).
_MAX_FILE_PARAMS = 2000


async def search(
    c: AsyncConnection,
    vector_store_ids: Sequence[str],
    terms: Sequence[str],
    k: int,
    allowed_files: set[str] | None,
) -> list[tuple[int, float]]:
    """Top-`k` (chunk id, score ≥ 0, higher is better) matching any of `terms`."""
    if allowed_files is not None and not allowed_files:
        return []
    in_sql = allowed_files is not None and len(allowed_files) <= _MAX_FILE_PARAMS
    post_filter = allowed_files is not None and not in_sql
    limit = k * 5 if post_filter else k
    params: dict[str, object] = {"stores": list(vector_store_ids), "k": limit}
    file_clause = ""
    if in_sql:
        assert allowed_files is not None
        file_clause = " AND c.file_id IN :files"
        params["files"] = sorted(allowed_files)
    if c.dialect.name == "sqlite":
        params["q"] = " OR ".join('"' + t.replace('"', "") + '"' for t in terms)
        sql = (
            # `rank` is bm25() computed inside FTS5's own sort, ~1.5x faster than calling
            # bm25() from SQL for ORDER BY.
            "SELECT c.id AS id, c.file_id AS file_id, -retrieval_chunks_fts.rank AS score "
            "FROM retrieval_chunks_fts JOIN retrieval_chunks c ON c.id = retrieval_chunks_fts.rowid "
            "WHERE retrieval_chunks_fts MATCH :q AND c.vector_store_id IN :stores"
            f"{file_clause} ORDER BY retrieval_chunks_fts.rank LIMIT :k"
        )
    elif c.dialect.name == "postgresql":
        params["q"] = " | ".join(terms)
        sql = (
            "SELECT c.id AS id, c.file_id AS file_id, ts_rank(c.tsv, q, 1) AS score "
            "FROM retrieval_chunks c, to_tsquery('english', :q) q "
            "WHERE c.tsv @@ q AND c.vector_store_id IN :stores"
            f"{file_clause} ORDER BY score DESC LIMIT :k"
        )
    else:
        raise ValueError(f"keyword search supports sqlite and postgresql, not {c.dialect.name}")
    stmt = text(sql).bindparams(bindparam("stores", expanding=True))
    if in_sql:
        stmt = stmt.bindparams(bindparam("files", expanding=True))
    rows = (await c.execute(stmt, params)).all()
    hits = [
        (int(r.id), float(r.score))
        for r in rows
        if not post_filter or (allowed_files is not None and r.file_id in allowed_files)
    ]
    return hits[:k]
