"""The chunk index: chunks and vectors in the app's database, searched two ways.

The database is the source of truth: chunk text, span, and the vector as float32 bytes.
Keyword search runs in the database (SQLite FTS5 bm25, PostgreSQL ``ts_rank`` over a
GIN-indexed ``tsvector``; see `keyword.py`). Vector search is an exact dot product
against an in-process float32 matrix per (vector store, embedding model), loaded on the
first search and kept current by the store's ``generation`` token: every write replaces
the token, every search reads it (one primary-key lookup) and reloads the matrix when it
changed. So several API/worker processes can share one database and never search stale
vectors. Writes made by this process patch its own cached matrix instead of reloading.

On PostgreSQL with pgvector (`pgvector.py`), chunks also get their vector in a pgvector
column and the searcher asks the database instead (`uses_pgvector`); this matrix is then
never loaded. Elsewhere exact search over 100k × 384 float32 (150 MB) is a single
matrix-vector product of ~10 milliseconds on one core, with perfect recall, identical on
SQLite and PostgreSQL; the matrix cache is bounded (LRU by bytes) so many small stores fit.

All methods take an ``AsyncConnection`` (or an ``AsyncEngine``, for which they open their
own transaction). Writes do not commit: the caller owns the transaction. From an
``AsyncSession`` pass ``await session.connection()``.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import keyword, pgvector
from .chunk import Chunk
from .embed import Matrix
from .tables import retrieval_chunks, retrieval_files, retrieval_stores

Conn = AsyncConnection | AsyncEngine
_INSERT_BATCH = 500
# A filtered vector scan reads only the filter's runs of rows when there are at most this
# many (one einsum call each, ~5 µs); past it, one full scan with the rest masked out.
_MAX_FILTER_SPANS = 256


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk as stored, with its file's current attributes."""

    id: int
    vector_store_id: str
    file_id: str
    chunk_index: int
    text: str
    char_start: int
    char_end: int
    attributes: dict[str, Any]


@dataclass(slots=True)
class _StoreMatrix:
    """One store's vectors for one embedding model, plus its files' attributes."""

    generation: str
    chunk_ids: npt.NDArray[np.int64]
    file_codes: npt.NDArray[np.int32]
    vectors: Matrix
    file_ids: list[str]
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes + self.chunk_ids.nbytes + self.file_codes.nbytes)

    def code_of(self, file_id: str) -> int:
        try:
            return self.file_ids.index(file_id)
        except ValueError:
            self.file_ids.append(file_id)
            return len(self.file_ids) - 1

    def row_of(self, chunk_id: int) -> int | None:
        # chunk ids are appended in insertion order, which is increasing id order.
        pos = int(np.searchsorted(self.chunk_ids, chunk_id))
        if pos < len(self.chunk_ids) and self.chunk_ids[pos] == chunk_id:
            return pos
        return None

    def rows_of(self, chunk_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Matrix rows of `chunk_ids`, -1 for ids not in this matrix (one bisect each)."""
        pos = np.searchsorted(self.chunk_ids, chunk_ids)
        pos[pos >= len(self.chunk_ids)] = 0
        found = len(self.chunk_ids) > 0 and self.chunk_ids[pos] == chunk_ids
        return np.where(found, pos, -1)

    def row_mask(self, files: set[str]) -> npt.NDArray[np.bool_]:
        """Which rows belong to `files`: a lookup by file code, not a set test per row."""
        allowed = np.fromiter(
            (f in files for f in self.file_ids), dtype=bool, count=len(self.file_ids)
        )
        return allowed[self.file_codes] if len(allowed) else np.zeros(len(self.file_codes), bool)


@asynccontextmanager
async def _connect(conn: Conn) -> AsyncIterator[AsyncConnection]:
    if isinstance(conn, AsyncEngine):
        async with conn.begin() as owned:
            yield owned
    else:
        yield conn


class ChunkIndex:
    """Stores chunks per (vector store, file) and answers keyword and vector queries.

    One instance per database, shared by the whole app (it holds the matrix cache).
    """

    def __init__(
        self,
        *,
        cache_bytes: int = 1 << 30,
        vector_index: str = "auto",
        ef_search: int = pgvector.DEFAULT_EF_SEARCH,
    ) -> None:
        """`vector_index`: ``auto`` uses pgvector where the database has its column (see
        `pgvector.py`), ``exact`` always the in-process matrix."""
        if vector_index not in ("auto", "exact"):
            raise ValueError(f"vector_index must be auto or exact, not {vector_index!r}")
        self._cache: OrderedDict[tuple[str, str], _StoreMatrix] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._guard = threading.Lock()
        self._vector_index = vector_index
        self.ef_search = ef_search
        self._pgvector: bool | None = None
        self._indexed_dims: set[int] = set()

    async def uses_pgvector(self, conn: Conn) -> bool:
        """Whether vectors are searched in the database (pgvector) rather than in a matrix.

        Decided once per index (one per database): the column is added by a migration,
        which a running process does not see until it restarts.
        """
        if self._pgvector is None:
            if self._vector_index == "exact":
                self._pgvector = False
            else:
                async with _connect(conn) as c:
                    self._pgvector = await pgvector.column_present(c)
        return self._pgvector

    # -- writes ---------------------------------------------------------------------------

    async def add_file_chunks(
        self,
        conn: Conn,
        *,
        vector_store_id: str,
        file_id: str,
        chunks: Sequence[Chunk],
        embeddings: Matrix,
        embedding_model: str,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        """Store a file's chunks and vectors, replacing what the file had in this store."""
        if len(chunks) != len(embeddings):
            raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
        vectors = np.ascontiguousarray(embeddings, dtype="<f4")
        async with _connect(conn) as c:
            if len(chunks) and await self.uses_pgvector(c):
                await self.prepare_vectors(c, int(vectors.shape[1]))
            await self._delete_rows(c, vector_store_id, file_id)
            attrs = dict(attributes or {})
            await c.execute(
                insert(retrieval_files).values(
                    vector_store_id=vector_store_id,
                    file_id=file_id,
                    attributes=attrs,
                    embedding_model=embedding_model,
                    chunk_count=len(chunks),
                )
            )
            rows = [
                {
                    "vector_store_id": vector_store_id,
                    "file_id": file_id,
                    "chunk_index": ch.index,
                    "text": ch.text,
                    "char_start": ch.char_start,
                    "char_end": ch.char_end,
                    "token_count": ch.token_count,
                    "embedding": vectors[i].tobytes(),
                }
                for i, ch in enumerate(chunks)
            ]
            with_vectors = bool(rows) and await self.uses_pgvector(c)
            for start in range(0, len(rows), _INSERT_BATCH):
                batch = rows[start : start + _INSERT_BATCH]
                if with_vectors:
                    await pgvector.insert_chunks(c, batch, vectors[start : start + len(batch)])
                else:
                    await c.execute(insert(retrieval_chunks), batch)
            stored = (
                await c.execute(
                    select(retrieval_chunks.c.id, retrieval_chunks.c.chunk_index).where(
                        retrieval_chunks.c.vector_store_id == vector_store_id,
                        retrieval_chunks.c.file_id == file_id,
                    )
                )
            ).all()
            old, new = await self._bump(c, vector_store_id)

        def patch(m: _StoreMatrix) -> None:
            _drop_file_rows(m, file_id)
            m.attributes[file_id] = attrs
            if stored:
                # Matrix rows stay in id order (row_of bisects); vectors follow their chunk.
                position = {ch.index: i for i, ch in enumerate(chunks)}
                by_id = sorted(stored)
                new_ids = np.asarray([r[0] for r in by_id], dtype=np.int64)
                if len(m.chunk_ids) and new_ids[0] <= m.chunk_ids[-1]:
                    raise _Stale  # ids not increasing: cannot append, reload instead
                code = m.code_of(file_id)
                m.chunk_ids = np.concatenate([m.chunk_ids, new_ids])
                m.file_codes = np.concatenate(
                    [m.file_codes, np.full(len(new_ids), code, dtype=np.int32)]
                )
                rows_in_order = vectors[[position[r[1]] for r in by_id]].astype(np.float32)
                m.vectors = np.ascontiguousarray(np.concatenate([m.vectors, rows_in_order]))

        self._patch(vector_store_id, old, new, patch, model=embedding_model)

    async def prepare_vectors(self, conn: Conn, dims: int) -> None:
        """On pgvector, make sure the HNSW index for `dims` exists (a no-op elsewhere).

        The app calls it at startup for its embedder, in a transaction of its own;
        `add_file_chunks` calls it too, before writing, for any other dimension.
        """
        if dims in self._indexed_dims:
            return
        async with _connect(conn) as c:
            if await self.uses_pgvector(c) and await pgvector.ensure_index(c, dims):
                # Only an index seen committed is remembered: one created by a transaction
                # that may still roll back is checked again next time.
                self._indexed_dims.add(dims)

    async def delete_file(self, conn: Conn, *, vector_store_id: str, file_id: str) -> int:
        """Remove a file's chunks from one store; returns how many chunks were removed."""
        async with _connect(conn) as c:
            removed = await self._delete_rows(c, vector_store_id, file_id)
            old, new = await self._bump(c, vector_store_id)

        def patch(m: _StoreMatrix) -> None:
            m.attributes.pop(file_id, None)
            _drop_file_rows(m, file_id)

        self._patch(vector_store_id, old, new, patch)
        return removed

    async def delete_store(self, conn: Conn, *, vector_store_id: str) -> int:
        """Remove every chunk and file of a store; returns how many chunks were removed."""
        async with _connect(conn) as c:
            result = await c.execute(
                delete(retrieval_chunks).where(
                    retrieval_chunks.c.vector_store_id == vector_store_id
                )
            )
            await c.execute(
                delete(retrieval_files).where(retrieval_files.c.vector_store_id == vector_store_id)
            )
            await c.execute(
                delete(retrieval_stores).where(
                    retrieval_stores.c.vector_store_id == vector_store_id
                )
            )
        with self._guard:
            for key in [k for k in self._cache if k[0] == vector_store_id]:
                del self._cache[key]
        return int(result.rowcount or 0)

    async def update_attributes(
        self,
        conn: Conn,
        *,
        vector_store_id: str,
        file_id: str,
        attributes: Mapping[str, Any] | None,
    ) -> bool:
        """Replace a file's attributes; returns False when the file is not in the store."""
        attrs = dict(attributes or {})
        async with _connect(conn) as c:
            result = await c.execute(
                update(retrieval_files)
                .where(
                    retrieval_files.c.vector_store_id == vector_store_id,
                    retrieval_files.c.file_id == file_id,
                )
                .values(attributes=attrs)
            )
            if not result.rowcount:
                return False
            old, new = await self._bump(c, vector_store_id)

        def patch(m: _StoreMatrix) -> None:
            m.attributes[file_id] = attrs

        self._patch(vector_store_id, old, new, patch)
        return True

    async def _delete_rows(self, c: AsyncConnection, vector_store_id: str, file_id: str) -> int:
        result = await c.execute(
            delete(retrieval_chunks).where(
                retrieval_chunks.c.vector_store_id == vector_store_id,
                retrieval_chunks.c.file_id == file_id,
            )
        )
        await c.execute(
            delete(retrieval_files).where(
                retrieval_files.c.vector_store_id == vector_store_id,
                retrieval_files.c.file_id == file_id,
            )
        )
        return int(result.rowcount or 0)

    async def _bump(self, c: AsyncConnection, vector_store_id: str) -> tuple[str | None, str]:
        """Give the store a new generation token; returns (old, new)."""
        old = await self._generation(c, vector_store_id)
        new = secrets.token_hex(16)
        # An upsert, not insert-or-update: two transactions ingesting the first files of a
        # new store concurrently both see no row. `old` may be outdated by then; `_patch`
        # only trusts it when the cached matrix agrees, so that is harmless.
        dialect_insert = pg_insert if c.dialect.name == "postgresql" else sqlite_insert
        stmt = dialect_insert(retrieval_stores).values(
            vector_store_id=vector_store_id, generation=new
        )
        await c.execute(
            stmt.on_conflict_do_update(
                index_elements=[retrieval_stores.c.vector_store_id],
                set_={"generation": stmt.excluded.generation},
            )
        )
        return old, new

    def _patch(
        self,
        vector_store_id: str,
        old: str | None,
        new: str,
        patch: Any,
        *,
        model: str | None = None,
    ) -> None:
        """Apply an in-process write to cached matrices that were current before it.

        A matrix whose generation is not `old` missed someone else's write: drop it. If our
        transaction rolls back, the database keeps `old` while the cache says `new`, so the
        next search sees a mismatch and reloads: correctness never depends on the patch.
        """
        with self._guard:
            for key in [k for k in self._cache if k[0] == vector_store_id]:
                matrix = self._cache[key]
                if old is None or matrix.generation != old:
                    del self._cache[key]
                    continue
                try:
                    if model is not None and key[1] != model:
                        raise _Stale  # a file of another model changed; simplest to reload
                    patch(matrix)
                except _Stale:
                    del self._cache[key]
                    continue
                matrix.generation = new

    # -- reads ----------------------------------------------------------------------------

    async def _generation(self, c: AsyncConnection, vector_store_id: str) -> str | None:
        return (
            await c.execute(
                select(retrieval_stores.c.generation).where(
                    retrieval_stores.c.vector_store_id == vector_store_id
                )
            )
        ).scalar_one_or_none()

    async def store_matrix(
        self, conn: Conn, vector_store_id: str, model_id: str, dimensions: int
    ) -> _StoreMatrix:
        """The current vectors of a store for `model_id`, from cache or freshly loaded."""
        async with _connect(conn) as c:
            generation = await self._generation(c, vector_store_id) or ""
            key = (vector_store_id, model_id)
            with self._guard:
                cached = self._cache.get(key)
                if cached is not None and cached.generation == generation:
                    self._cache.move_to_end(key)
                    return cached
            matrix = await self._load(c, vector_store_id, model_id, dimensions, generation)
        with self._guard:
            self._cache[key] = matrix
            self._cache.move_to_end(key)
            total = sum(m.nbytes for m in self._cache.values())
            while total > self._cache_bytes and len(self._cache) > 1:
                _, evicted = self._cache.popitem(last=False)
                total -= evicted.nbytes
        return matrix

    async def _load(
        self, c: AsyncConnection, vector_store_id: str, model_id: str, dims: int, generation: str
    ) -> _StoreMatrix:
        files = (
            await c.execute(
                select(
                    retrieval_files.c.file_id,
                    retrieval_files.c.attributes,
                    retrieval_files.c.embedding_model,
                ).where(retrieval_files.c.vector_store_id == vector_store_id)
            )
        ).all()
        attributes = {row.file_id: dict(row.attributes or {}) for row in files}
        wanted = [row.file_id for row in files if row.embedding_model == model_id]
        rows = (
            (
                await c.execute(
                    select(
                        retrieval_chunks.c.id,
                        retrieval_chunks.c.file_id,
                        retrieval_chunks.c.embedding,
                    )
                    .where(
                        retrieval_chunks.c.vector_store_id == vector_store_id,
                        retrieval_chunks.c.file_id.in_(wanted),
                    )
                    .order_by(retrieval_chunks.c.id)
                )
            ).all()
            if wanted
            else []
        )
        codes = {file_id: i for i, file_id in enumerate(wanted)}
        raw = np.frombuffer(b"".join(r.embedding for r in rows), dtype="<f4")
        # A copy into memory numpy allocates, not a view of the joined bytes: numpy aligns
        # large arrays and asks Linux for huge pages, and the scan of a 100k-row matrix
        # took 16.5 ms on the bytes view against 10.5 ms on the copy (fewer TLB misses).
        vectors = raw.reshape(len(rows), dims).astype(np.float32, copy=True)
        return _StoreMatrix(
            generation=generation,
            chunk_ids=np.asarray([r.id for r in rows], dtype=np.int64),
            file_codes=np.asarray([codes[r.file_id] for r in rows], dtype=np.int32),
            vectors=vectors,
            file_ids=list(wanted),
            attributes=attributes,
        )

    def vector_candidates(
        self,
        matrix: _StoreMatrix,
        query_vectors: Matrix,
        k: int,
        allowed_files: set[str] | None = None,
    ) -> list[list[tuple[int, float]]]:
        """Top-`k` (chunk id, cosine) per query row, exact, optionally limited to files.

        Synchronous and memory-bound (100k × 384 float32 is a 150 MB read, ~10 ms on one
        core here): run it in a thread, where numpy releases the GIL, alongside the
        keyword query. One query row goes through ``einsum``, which stays on that one
        thread: BLAS would spread the product over every core and spin-wait on them,
        which on two cores took ~45% more CPU per search than the database's keyword
        query running beside a one-core scan (bench/retrieval_speed.py, 100k chunks).
        """
        n = len(matrix.chunk_ids)
        none: list[list[tuple[int, float]]] = [[] for _ in range(len(query_vectors))]
        if n == 0:
            return none
        rows: npt.NDArray[np.int64] | None = None  # matrix row of each score column
        if allowed_files is None:
            scores = _cosines(matrix.vectors, query_vectors)
        else:
            mask = matrix.row_mask(allowed_files)
            spans = _spans(mask)
            if not spans:
                return none
            if len(spans) <= _MAX_FILTER_SPANS:
                # A file's rows are contiguous (inserted together, kept in id order), so a
                # filter selects a few runs of rows: scan just those, not the whole matrix.
                scores = np.concatenate(
                    [_cosines(matrix.vectors[a:b], query_vectors) for a, b in spans], axis=1
                )
                rows = np.concatenate([np.arange(a, b) for a, b in spans])
            else:
                scores = _cosines(matrix.vectors, query_vectors)
                scores[:, ~mask] = -np.inf
        out: list[list[tuple[int, float]]] = []
        kk = min(k, scores.shape[1])
        for row in scores:
            top = np.argpartition(row, len(row) - kk)[len(row) - kk :]
            top = top[np.argsort(-row[top])]
            top = top[row[top] > -np.inf]
            ids = matrix.chunk_ids[top if rows is None else rows[top]]
            out.append(list(zip(ids.tolist(), row[top].tolist(), strict=True)))
        return out

    async def vectors_of(self, conn: Conn, chunk_ids: Sequence[int], dims: int) -> _StoreMatrix:
        """The stored vectors of some chunks, as a matrix (rows in id order; `rows_of` works).

        For the pgvector path, which keeps no matrix but still needs the cosine of keyword
        hits the vector query did not return.
        """
        ids = sorted(set(chunk_ids))
        rows: list[Any] = []
        if ids:
            async with _connect(conn) as c:
                rows = list(
                    (
                        await c.execute(
                            select(retrieval_chunks.c.id, retrieval_chunks.c.embedding)
                            .where(retrieval_chunks.c.id.in_(ids))
                            .order_by(retrieval_chunks.c.id)
                        )
                    ).all()
                )
        rows = [r for r in rows if len(r.embedding) == 4 * dims]  # other models' chunks
        raw = np.frombuffer(b"".join(r.embedding for r in rows), dtype="<f4")
        return _StoreMatrix(
            generation="",
            chunk_ids=np.asarray([r.id for r in rows], dtype=np.int64),
            file_codes=np.zeros(len(rows), dtype=np.int32),
            vectors=raw.reshape(len(rows), dims).astype(np.float32, copy=True),
            file_ids=[],
        )

    async def keyword_candidates(
        self,
        conn: Conn,
        vector_store_ids: Sequence[str],
        terms: Sequence[str],
        k: int,
        allowed_files: set[str] | None = None,
        *,
        scope_rows: int | None = None,
    ) -> list[tuple[int, float]]:
        """Top-`k` (chunk id, keyword score, higher is better) for any of `terms`.

        `scope_rows` (how many chunks the stores and files searched hold) is a hint that
        lets SQLite pick the faster query shape; see `keyword.py`.
        """
        if not terms:
            return []
        async with _connect(conn) as c:
            return await keyword.search(
                c, vector_store_ids, terms, k, allowed_files, scope_rows=scope_rows
            )

    async def fetch_chunks(
        self,
        conn: Conn,
        chunk_ids: Sequence[int],
        *,
        attributes: Mapping[str, Mapping[str, dict[str, Any]]] | None = None,
    ) -> dict[int, StoredChunk]:
        """Chunks by id with their files' current attributes (missing ids are skipped).

        `attributes` (vector store id → file id → attributes, e.g. from `store_matrix`
        matrices read in the same transaction) saves the join and JSON decoding of
        ``retrieval_files``; chunks of stores or files missing from it are skipped.
        """
        if not chunk_ids:
            return {}
        t, f = retrieval_chunks, retrieval_files
        columns = [
            t.c.id,
            t.c.vector_store_id,
            t.c.file_id,
            t.c.chunk_index,
            t.c.text,
            t.c.char_start,
            t.c.char_end,
        ]
        async with _connect(conn) as c:
            if attributes is not None:
                rows = (await c.execute(select(*columns).where(t.c.id.in_(list(chunk_ids))))).all()
            else:
                rows = (
                    await c.execute(
                        select(*columns, f.c.attributes)
                        .join(
                            f,
                            (f.c.vector_store_id == t.c.vector_store_id)
                            & (f.c.file_id == t.c.file_id),
                        )
                        .where(t.c.id.in_(list(chunk_ids)))
                    )
                ).all()
        found = {}
        for r in rows:
            attrs = (
                attributes.get(r.vector_store_id, {}).get(r.file_id)
                if attributes is not None
                else r.attributes or {}
            )
            if attrs is not None:
                found[r.id] = StoredChunk(
                    r.id,
                    r.vector_store_id,
                    r.file_id,
                    r.chunk_index,
                    r.text,
                    r.char_start,
                    r.char_end,
                    dict(attrs),
                )
        return found

    async def file_chunks(
        self, conn: Conn, *, vector_store_id: str, file_id: str
    ) -> list[StoredChunk]:
        """A file's chunks in order (e.g. for citations or the file content endpoint)."""
        t = retrieval_chunks
        async with _connect(conn) as c:
            ids = (
                (
                    await c.execute(
                        select(t.c.id)
                        .where(t.c.vector_store_id == vector_store_id, t.c.file_id == file_id)
                        .order_by(t.c.chunk_index)
                    )
                )
                .scalars()
                .all()
            )
            found = await self.fetch_chunks(c, list(ids))
        return [found[i] for i in ids if i in found]

    async def count_chunks(self, conn: Conn, *, vector_store_id: str) -> int:
        """How many chunks a store holds."""
        async with _connect(conn) as c:
            return int(
                (
                    await c.execute(
                        select(func.count()).where(
                            retrieval_chunks.c.vector_store_id == vector_store_id
                        )
                    )
                ).scalar_one()
            )


def _cosines(vectors: Matrix, query_vectors: Matrix) -> Matrix:
    """(queries, rows) dot products; one query row stays on one core (see above)."""
    if len(query_vectors) == 1:
        scores: Matrix = np.einsum("ij,j->i", vectors, query_vectors[0])[None, :]
        return scores
    return query_vectors @ vectors.T


def _spans(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """The [start, stop) runs of True in `mask`."""
    edges = np.flatnonzero(np.diff(mask, prepend=False, append=False))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _drop_file_rows(m: _StoreMatrix, file_id: str) -> None:
    if file_id in m.file_ids:
        keep = m.file_codes != m.file_ids.index(file_id)
        m.chunk_ids, m.file_codes = m.chunk_ids[keep], m.file_codes[keep]
        m.vectors = np.ascontiguousarray(m.vectors[keep])


class _Stale(Exception):
    """A cached matrix cannot be patched in place; drop it and reload on the next search."""
