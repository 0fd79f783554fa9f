"""Vector search inside PostgreSQL when it has the pgvector extension.

With ``vector`` installed, every chunk also carries its vector in ``embedding_vec``
(type ``vector``, no fixed dimension: stores of different embedding models share the
table), and each dimension in use gets a partial HNSW expression index::

    CREATE INDEX ix_retrieval_chunks_vec_384 ON retrieval_chunks
      USING hnsw ((embedding_vec::vector(384)) vector_ip_ops)
      WHERE vector_dims(embedding_vec) = 384

The vector side of `file_search` is then one SQL query per query vector, and no process
holds a matrix. The attribute filter is compiled to SQL (`filter_sql`) and evaluated by
PostgreSQL over the stores' files (`scope`); the vector query takes the store ids and
the passing file ids as conditions (a join to ``retrieval_files`` there makes the
planner sort every chunk instead of walking the index). Vectors are unit length (both embedders
normalise), so inner product is cosine; ``<#>`` is pgvector's negative inner product.

Which plan answers a query:

- HNSW (approximate) when the scope is a large enough part of the table, with
  ``hnsw.iterative_scan = relaxed_order`` so filtered queries keep walking the graph
  until they have their `k` rows instead of returning fewer;
- exact (the same ORDER BY without the cast, which no index matches, so PostgreSQL reads
  the scope's rows through the store index and sorts them) when the scope is small, or
  a small share of a shared table: an HNSW walk would visit ``k / share`` rows to find
  `k` in scope and could stop at ``hnsw.max_scan_tuples`` short of them.

The float32 bytes in ``embedding`` stay the source of truth, so a database without the
extension (or ``ASSISTANTD_VECTOR_INDEX=exact``) keeps working from the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from .embed import Matrix
from .filters import ComparisonFilter, CompoundFilter, Filter

COLUMN = "embedding_vec"
#: Scopes below this many chunks are searched exactly (a scan of 2k rows: ~10 ms here).
EXACT_BELOW_ROWS = 2_000
#: Below this share of the table an HNSW walk wastes most of its visits on other stores.
EXACT_BELOW_SHARE = 0.05
DEFAULT_EF_SEARCH = 200
#: HNSW build parameters: pgvector's default m; ef_construction doubled from its 64. At 100k
#: chunks (bench/vector_scale.py) that raised recall@10 at ef_search 200 from 0.93 to 0.98
#: for 2.5x the build time (105 s against 42 s here).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128


def available_sync(bind: Connection) -> bool:
    """Whether the server can install ``vector`` (for DDL run from ``create_all``)."""
    if bind.dialect.name != "postgresql":
        return False
    return bool(
        bind.execute(
            text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
        ).scalar()
    )


def enable_ddl() -> list[str]:
    """The extension and the column (the HNSW index comes per dimension, `ensure_index`)."""
    return [
        "CREATE EXTENSION IF NOT EXISTS vector",
        f"ALTER TABLE retrieval_chunks ADD COLUMN IF NOT EXISTS {COLUMN} vector",
        # Kept in the row when it fits (MAIN, not PLAIN: a 3072-dim vector is 12 kB, more
        # than a page): an exact scan then reads no TOAST pages.
        f"ALTER TABLE retrieval_chunks ALTER COLUMN {COLUMN} SET STORAGE MAIN",
    ]


async def column_present(c: AsyncConnection) -> bool:
    """Whether ``retrieval_chunks`` has the vector column (so the extension is installed)."""
    if c.dialect.name != "postgresql":
        return False
    found = await c.execute(
        text(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = 'retrieval_chunks' AND column_name = :col"
        ),
        {"col": COLUMN},
    )
    return bool(found.scalar())


def index_name(dims: int) -> str:
    return f"ix_retrieval_chunks_vec_{int(dims)}"


#: Advisory lock key serialising index creation between processes ("vecx").
_INDEX_LOCK = 0x7665_6378


async def ensure_index(c: AsyncConnection, dims: int) -> bool:
    """Create the HNSW index for `dims`-dimensional vectors unless it exists.

    Returns whether it existed already (committed). Call it before the transaction writes
    any chunk: two ingestions that had both inserted rows and then both asked for the
    table's share lock to build the index would deadlock. An advisory lock makes the
    second one wait for the first one's commit and then find the index.
    """
    name = index_name(dims)
    exists = await c.execute(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name})
    if exists.scalar():
        return True
    await c.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _INDEX_LOCK})
    exists = await c.execute(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name})
    if exists.scalar():
        return True
    d = int(dims)
    await c.execute(
        text(
            f"CREATE INDEX IF NOT EXISTS {name} ON retrieval_chunks USING hnsw "
            f"(({COLUMN}::vector({d})) vector_ip_ops) WITH (m = {HNSW_M}, ef_construction = "
            f"{HNSW_EF_CONSTRUCTION}) WHERE vector_dims({COLUMN}) = {d}"
        )
    )
    return False


#: The columns of a chunk's row beside its id and vector column, in `insert_chunks`'s order.
CHUNK_COLUMNS = (
    "vector_store_id",
    "file_id",
    "chunk_index",
    "text",
    "char_start",
    "char_end",
    "token_count",
    "embedding",
)
_INSERT_CHUNKS = (
    f"INSERT INTO retrieval_chunks ({', '.join(CHUNK_COLUMNS)}, {COLUMN}) VALUES "
    f"({', '.join(':' + name for name in CHUNK_COLUMNS)}, CAST(CAST(:v AS real[]) AS vector))"
)


async def insert_chunks(
    c: AsyncConnection, rows: Sequence[dict[str, Any]], vectors: Matrix
) -> None:
    """Insert chunks with their vector column set in the same statement (`rows[i]`'s vector
    is `vectors[i]`), rather than inserting them and then updating each row's vector: one
    tuple version per chunk, not two (and no dead row per chunk for vacuum)."""
    if not rows:
        return
    await c.execute(
        text(_INSERT_CHUNKS),
        [dict(row, v=vectors[i].tolist()) for i, row in enumerate(rows)],
    )


async def write_vectors(c: AsyncConnection, ids_and_rows: Sequence[tuple[int, Matrix]]) -> None:
    """Set the vector column of freshly inserted chunks (float4[] cast to vector)."""
    if not ids_and_rows:
        return
    await c.execute(
        text(
            f"UPDATE retrieval_chunks SET {COLUMN} = CAST(CAST(:v AS real[]) AS vector) "
            "WHERE id = :id"
        ),
        [{"id": i, "v": row.tolist()} for i, row in ids_and_rows],
    )


# -- filters ------------------------------------------------------------------------------

_SCALAR_TYPES = "('string', 'number', 'boolean')"


class _Params:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"flt{len(self.values)}"
        self.values[name] = value
        return f":{name}"


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _equal_sql(attr: str, typ: str, value: object, p: _Params) -> str:
    kind = _kind(value)
    if kind == "boolean":
        return f"({typ} = 'boolean' AND {attr} = {p.add('true' if value else 'false')})"
    if kind == "number":
        return f"({typ} = 'number' AND CAST({attr} AS numeric) = CAST({p.add(repr(value))} AS numeric))"
    return f"({typ} = 'string' AND {attr} = {p.add(value)})"


def _order_sql(op: str, attr: str, typ: str, value: object, p: _Params) -> str:
    sql_op = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
    kind = _kind(value)
    if kind == "number":
        return (
            f"({typ} = 'number' AND CAST({attr} AS numeric) {sql_op} "
            f"CAST({p.add(repr(value))} AS numeric))"
        )
    if kind == "string":
        # Code-point order, as Python compares strings (ISO dates sort right either way).
        return f"({typ} = 'string' AND {attr} COLLATE \"C\" {sql_op} {p.add(value)})"
    return "false"


def _comparison_sql(flt: ComparisonFilter, column: str, p: _Params) -> str:
    key = p.add(flt.key)
    attr = f"({column} ->> {key})"
    typ = f"json_typeof({column} -> {key})"
    if flt.type in ("in", "nin"):
        assert isinstance(flt.value, tuple)
        found = " OR ".join(_equal_sql(attr, typ, v, p) for v in flt.value) or "false"
        if flt.type == "in":
            return f"COALESCE({found}, false)"
        return f"COALESCE({typ} IN {_SCALAR_TYPES} AND NOT COALESCE({found}, false), false)"
    if flt.type == "eq":
        return f"COALESCE({_equal_sql(attr, typ, flt.value, p)}, false)"
    if flt.type == "ne":
        eq = _equal_sql(attr, typ, flt.value, p)
        return f"COALESCE({typ} IN {_SCALAR_TYPES} AND NOT COALESCE({eq}, false), false)"
    return f"COALESCE({_order_sql(flt.type, attr, typ, flt.value, p)}, false)"


def _filter_sql(flt: Filter, column: str, p: _Params) -> str:
    if isinstance(flt, CompoundFilter):
        if not flt.filters:
            return "true" if flt.type == "and" else "false"
        joiner = " AND " if flt.type == "and" else " OR "
        return "(" + joiner.join(_filter_sql(f, column, p) for f in flt.filters) + ")"
    return _comparison_sql(flt, column, p)


def filter_sql(flt: Filter, column: str = "f.attributes") -> tuple[str, dict[str, Any]]:
    """A PostgreSQL condition on the JSON `column` true exactly when `filters.matches` is.

    Every comparison is wrapped in ``COALESCE(..., false)``, so a missing key (SQL NULL)
    is false and never turns a ``NOT`` or ``OR`` into NULL.
    """
    p = _Params()
    return _filter_sql(flt, column, p), p.values


# -- search -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """What a search covers, read from ``retrieval_files`` with the filter in SQL."""

    #: Chunks in scope (of the searched model), to choose the plan.
    rows: int
    #: Per store, the files passing the filter; None when unfiltered.
    allowed_by_store: list[set[str]] | None
    #: File ids the vector query must stay within; None = every file of the stores.
    vector_files: list[str] | None


async def scope(
    c: AsyncConnection, vector_store_ids: Sequence[str], flt: Filter | None, model_id: str
) -> Scope:
    """Read the scope: the filter runs here, in SQL, over the stores' files.

    The vector query then takes the passing file ids (``file_id = ANY(...)``) instead of
    joining ``retrieval_files``: with the join, PostgreSQL plans a nested loop over
    files and sorts every chunk, never the HNSW index scan.
    """
    stores = list(vector_store_ids)
    if flt is None:
        total, same_model = (
            await c.execute(
                text(
                    "SELECT COALESCE(sum(chunk_count), 0), COALESCE(bool_and(embedding_model = "
                    ":model), true) FROM retrieval_files WHERE vector_store_id = ANY(:stores)"
                ),
                {"stores": stores, "model": model_id},
            )
        ).one()
        if same_model:
            return Scope(int(total), None, None)
        cond, params = "true", dict[str, Any]()
    else:
        cond, params = filter_sql(flt)
    rows = await c.execute(
        text(
            "SELECT f.vector_store_id, f.file_id, f.chunk_count, f.embedding_model = :model "
            f"FROM retrieval_files f WHERE f.vector_store_id = ANY(:stores) AND {cond}"
        ),
        {"stores": stores, "model": model_id, **params},
    )
    allowed: dict[str, set[str]] = {vs: set() for vs in stores}
    vector_files: set[str] = set()
    rows_in_scope = 0
    for vs, file_id, count, same in rows:
        allowed[vs].add(file_id)
        if same:
            vector_files.add(file_id)
            rows_in_scope += int(count)
    return Scope(
        rows_in_scope,
        [allowed[vs] for vs in stores] if flt is not None else None,
        sorted(vector_files),
    )


async def use_hnsw(c: AsyncConnection, scope_rows: int) -> bool:
    """Whether the scope is big enough, and a big enough share of the table, for HNSW."""
    if scope_rows < EXACT_BELOW_ROWS:
        return False
    estimate = await c.execute(
        text("SELECT reltuples FROM pg_class WHERE oid = to_regclass('retrieval_chunks')")
    )
    total = max(float(estimate.scalar() or 0.0), float(scope_rows))
    return scope_rows / total >= EXACT_BELOW_SHARE


def vector_sql(d: int, *, hnsw: bool, files: bool) -> str:
    """The vector query of `nearest` (parameters ``:q``, ``:stores``, ``:k``, ``:files``)."""
    vec = f"{COLUMN}::vector({int(d)})" if hnsw else COLUMN
    file_cond = "AND file_id = ANY(:files) " if files else ""
    return (
        f"SELECT id, -({vec} <#> {_QUERY}) AS score FROM retrieval_chunks "
        f"WHERE vector_store_id = ANY(:stores) AND vector_dims({COLUMN}) = {int(d)} {file_cond}"
        f"ORDER BY {vec} <#> {_QUERY} LIMIT :k"
    )


#: The query vector goes as a binary float4[] parameter (`query_param`), cast to vector in
#: the server: its text form ``[x,y,...]`` cost 0.8 ms per 384-dim query to format here,
#: a fifth of the whole query's time seen by the caller at 100k chunks.
_QUERY = "CAST(CAST(:q AS real[]) AS vector)"


def query_param(row: Matrix) -> list[float]:
    """The ``:q`` parameter of `vector_sql` (float32 values, exact in float4)."""
    return np.asarray(row, dtype=np.float32).tolist()  # type: ignore[no-any-return]


async def hnsw_settings(c: AsyncConnection, ef_search: int) -> None:
    """For the rest of `c`'s transaction: HNSW scans look at `ef_search` candidates, and
    continue (iterative scan, relaxed order) when filters leave too few."""
    await c.execute(
        text(
            "SELECT set_config('hnsw.ef_search', :ef, true), "
            "set_config('hnsw.iterative_scan', 'relaxed_order', true)"
        ),
        {"ef": str(ef_search)},
    )


async def nearest(
    c: AsyncConnection,
    *,
    vector_store_ids: Sequence[str],
    query_vectors: Matrix,
    k: int,
    files: Sequence[str] | None,
    hnsw: bool,
    ef_search: int = DEFAULT_EF_SEARCH,
) -> list[list[tuple[int, float]]]:
    """Per query row, the top-`k` (chunk id, inner product) of the stores, best first.

    `files` (from `scope`) limits the rows to those files; None = all of the stores.
    """
    d = int(query_vectors.shape[1])
    if files is not None and not files:
        return [[] for _ in range(len(query_vectors))]
    sql = text(vector_sql(d, hnsw=hnsw, files=files is not None))
    if hnsw:
        await hnsw_settings(c, max(int(ef_search), k))
    params: dict[str, Any] = {"stores": list(vector_store_ids), "k": k}
    if files is not None:
        params["files"] = list(files)
    out: list[list[tuple[int, float]]] = []
    for row in np.asarray(query_vectors, dtype=np.float32):
        result = await c.execute(sql, {"q": query_param(row), **params})
        hits = [(int(i), float(s)) for i, s in result]
        hits.sort(key=lambda h: -h[1])  # relaxed_order may return near-ties out of order
        out.append(hits)
    return out
