"""Keyword (full-text) candidate search; the one place SQLite and PostgreSQL differ.

Queries are a disjunction (OR) of the query's content words: BM25-style ranking then
rewards chunks that contain more of them, rarer ones weighing more, instead of
requiring all words the way ``plainto_tsquery``/implicit-AND FTS5 queries would.

- SQLite: FTS5 ``MATCH '"w1" OR "w2"'`` ranked by ``bm25()`` (porter-stemmed tokens),
  in one of two query shapes depending on how much of the table the search covers
  (`_sqlite`).
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
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

# Past this many allowed files the id list is dropped from SQL and results are filtered
# afterwards from a larger candidate pool (SQLite caps bound parameters at 32766).
_MAX_FILE_PARAMS = 2000
# SQLite: rank the whole FTS table first when the scope holds at least this share of its
# rows, fetching at most this many ranked rows (see `_sqlite`).
_MIN_SHARE_TO_RANK_FIRST = 0.05
_MAX_RANK_FIRST = 2000


async def search(
    c: AsyncConnection,
    vector_store_ids: Sequence[str],
    terms: Sequence[str],
    k: int,
    allowed_files: set[str] | None,
    *,
    scope_rows: int | None = None,
) -> list[tuple[int, float]]:
    """Top-`k` (chunk id, score ≥ 0, higher is better) matching any of `terms`.

    `scope_rows`, how many chunks the stores and files in scope hold, lets SQLite rank
    the whole table and filter afterwards when the scope is most of it (see `_sqlite`).
    """
    if allowed_files is not None and not allowed_files:
        return []
    if c.dialect.name == "sqlite":
        return await _sqlite(c, vector_store_ids, terms, k, allowed_files, scope_rows)
    if c.dialect.name == "postgresql":
        return await _postgres(c, vector_store_ids, terms, k, allowed_files)
    raise ValueError(f"keyword search supports sqlite and postgresql, not {c.dialect.name}")


def _fts5_query(terms: Sequence[str]) -> str:
    return " OR ".join('"' + t.replace('"', "") + '"' for t in terms)


async def _sqlite(
    c: AsyncConnection,
    vector_store_ids: Sequence[str],
    terms: Sequence[str],
    k: int,
    allowed_files: set[str] | None,
    scope_rows: int | None,
) -> list[tuple[int, float]]:
    """FTS5 bm25, ranked over the whole table when the scope is a large share of it.

    bm25 is computed for every chunk matching any term (~12k of 110k for a 6-word query
    in bench/retrieval_speed.py); that is the cost. Two query shapes:

    - ranked first: ``bm25()`` top-`n` of the FTS table alone (SQLite keeps a top-n heap;
      8 ms there), then a primary-key lookup of just those `n` rows for the store and
      file check. Exact whenever `k` of them pass: every chunk in scope ranked above the
      k-th passing one is among the `n`. `n` is sized from the scope's share of the
      table, and if too few pass the query below runs after all.
    - joined: every match joined to its chunk row, in FTS5's own ``rank`` order (which
      sorts inside FTS5, so the join stops after `k` passing rows; 12 ms there). Used
      when the scope is a small part of a shared table.
    """
    q = _fts5_query(terms)
    if scope_rows:
        total = (await c.execute(text("SELECT max(id) FROM retrieval_chunks"))).scalar()
        share = scope_rows / max(int(total or 0), scope_rows, 1)
        if share >= _MIN_SHARE_TO_RANK_FIRST:
            n = min(_MAX_RANK_FIRST, int(2 * k / share) + k)
            rows = (
                await c.execute(
                    text(
                        "SELECT f.id AS id, c.vector_store_id AS vector_store_id, "
                        "c.file_id AS file_id, -f.s AS score FROM ("
                        "SELECT rowid AS id, bm25(retrieval_chunks_fts) AS s "
                        "FROM retrieval_chunks_fts WHERE retrieval_chunks_fts MATCH :q "
                        "ORDER BY s LIMIT :n) f JOIN retrieval_chunks c ON c.id = f.id "
                        "ORDER BY f.s"
                    ),
                    {"q": q, "n": n},
                )
            ).all()
            stores = set(vector_store_ids)
            hits = [
                (int(r.id), float(r.score))
                for r in rows
                if r.vector_store_id in stores
                and (allowed_files is None or r.file_id in allowed_files)
            ]
            if len(hits) >= k or len(rows) < n:
                return hits[:k]
    return await _scoped(
        c,
        # `rank` sorts inside FTS5, so the join below runs in rank order and stops at :k.
        "SELECT c.id AS id, c.file_id AS file_id, -retrieval_chunks_fts.rank AS score "
        "FROM retrieval_chunks_fts JOIN retrieval_chunks c ON c.id = retrieval_chunks_fts.rowid "
        "WHERE retrieval_chunks_fts MATCH :q AND c.vector_store_id IN :stores"
        "{files} ORDER BY retrieval_chunks_fts.rank LIMIT :k",
        q,
        vector_store_ids,
        k,
        allowed_files,
    )


async def _postgres(
    c: AsyncConnection,
    vector_store_ids: Sequence[str],
    terms: Sequence[str],
    k: int,
    allowed_files: set[str] | None,
) -> list[tuple[int, float]]:
    return await _scoped(
        c,
        "SELECT c.id AS id, c.file_id AS file_id, ts_rank(c.tsv, q, 1) AS score "
        "FROM retrieval_chunks c, to_tsquery('english', :q) q "
        "WHERE c.tsv @@ q AND c.vector_store_id IN :stores"
        "{files} ORDER BY score DESC LIMIT :k",
        " | ".join(terms),
        vector_store_ids,
        k,
        allowed_files,
    )


async def _scoped(
    c: AsyncConnection,
    sql: str,
    q: str,
    vector_store_ids: Sequence[str],
    k: int,
    allowed_files: set[str] | None,
) -> list[tuple[int, float]]:
    """Run a dialect's top-`k` query (`:q`, `:stores`, `:k`, and `{files}` where the file
    condition goes) limited to the stores and files in scope."""
    in_sql = allowed_files is not None and len(allowed_files) <= _MAX_FILE_PARAMS
    post_filter = allowed_files is not None and not in_sql
    params: dict[str, object] = {
        "q": q,
        "stores": list(vector_store_ids),
        "k": k * 5 if post_filter else k,
    }
    file_clause = ""
    if in_sql:
        assert allowed_files is not None
        file_clause = " AND c.file_id IN :files"
        params["files"] = sorted(allowed_files)
    stmt = text(sql.format(files=file_clause)).bindparams(bindparam("stores", expanding=True))
    if in_sql:
        stmt = stmt.bindparams(bindparam("files", expanding=True))
    return _filtered(await c.execute(stmt, params), allowed_files if post_filter else None, k)


def _filtered(result: Any, allowed_files: set[str] | None, k: int) -> list[tuple[int, float]]:
    hits = [
        (int(r.id), float(r.score))
        for r in result
        if allowed_files is None or r.file_id in allowed_files
    ]
    return hits[:k]
