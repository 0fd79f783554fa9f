"""Hybrid search over vector stores: keyword + vector candidates, fused, then reranked.

1. Queries: ``query`` may be a list; with ``rewrite=True`` (the API's ``rewrite_query``)
   each is rewritten by `rewrite_query` (stop words and question phrasing dropped).
2. Candidates per query: the top ``pool`` chunks by cosine similarity (exact, from the
   process's matrix; or HNSW in PostgreSQL with pgvector, `pgvector.py`) and the top
   ``pool`` by the database's BM25-style keyword rank, both limited to files passing
   ``filters``.
3. Fusion: reciprocal rank fusion, ``Σ w/(60 + rank)`` over every list of every query.
   Vector hits have ``w = 1``. A keyword hit's ``w`` is its coverage of the query: the
   idf-weighted share of the query's content words it contains, idf taken over the
   candidate pool. Plain RRF (``w = 1`` everywhere) let chunks that matched only an
   incidental word ("long", "time") outrank the vector side's best hit whenever the
   question shared no real keyword with its answer; on bench/retrieval_eval.py plain
   RRF scored MRR 0.837 against vector-only 0.882, coverage-weighted RRF 0.937.
4. Ranking (``ranker``):

   - ``none``: order by the fused score; ``score`` is it divided by its maximum possible
     value (first in every list = 1.0), so it measures how much the lists agree.
   - ``auto`` / ``default-2024-11-15`` (and the tool's ``default_2024_08_21``): the fused
     top candidates are re-scored with an absolute relevance in 0–1,
     ``0.65 * calibrated(cosine) + 0.35 * coverage``, where ``calibrated`` maps MiniLM
     cosine 0.15→0 … 0.75→1 and ``coverage`` is the idf-weighted share of the query's
     content words (suffixes stripped, prefix-matched) the chunk contains; the order is by that
     relevance plus a small fused-rank prior (``0.15 * normalised RRF``), which keeps a
     chunk that both lists ranked first from being overtaken on a near tie.

``score_threshold`` applies to the final ``score``; at most ``max_num_results`` (1–50)
hits come back, best first. Scores are not probabilities; they are comparable across
queries of the same store, which is what a threshold needs.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from assistantd.core.db import offloaded

from . import pgvector
from .embed import Embedder
from .filters import Filter, matches, parse_filter
from .index import ChunkIndex, Conn, StoredChunk, _connect, _StoreMatrix

Ranker = Literal["none", "auto", "default-2024-11-15", "default_2024_08_21"]
SearchMode = Literal["hybrid", "vector", "keyword"]
RRF_K = 60

_STOP_WORDS = frozenset(
    """a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can can't could couldn't did didn't do does doesn't
    doing don't down during each few for from further had hadn't has hasn't have haven't having
    he her here hers herself him himself his how i if in into is isn't it it's its itself just
    let's me more most mustn't my myself no nor not now of off on once only or other ought our
    ours ourselves out over own same shan't she should shouldn't so some such than that the
    their theirs them themselves then there these they this those through to too under until
    up very was wasn't we were weren't what when where which while who whom why will with won't
    would wouldn't you your yours yourself yourselves s t d ll m re ve y
    tell know find show give please explain describe need want get got us does""".split()
)
_WORD_RUN = re.compile(r"[^\W_]*")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One chunk in the results."""

    vector_store_id: str
    file_id: str
    chunk_index: int
    text: str
    char_start: int
    char_end: int
    score: float
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SearchResult:
    """The queries actually searched (after rewriting) and the hits, best first."""

    search_queries: list[str]
    hits: list[SearchHit]


@dataclass(slots=True)
class _Scope:
    """What one search covers, as the exact path or the pgvector path prepared it."""

    vector_store_ids: list[str]
    #: Per store, the files passing the filter; None without a filter.
    allowed_by_store: list[set[str]] | None
    #: Chunks in scope (a SQLite keyword-plan hint); None when not known for free.
    scope_rows: int | None
    #: Store → file → attributes read in this transaction (saves a join), or None.
    attributes: dict[str, dict[str, dict[str, Any]]] | None
    #: The exact path's matrices; None on the pgvector path.
    matrices: list[_StoreMatrix] | None
    #: The pgvector path's vector candidates, already queried.
    vector_lists: list[list[tuple[int, float]]] = field(default_factory=list)

    @property
    def allowed(self) -> set[str] | None:
        if self.allowed_by_store is None:
            return None
        return set().union(*self.allowed_by_store)


def rewrite_query(query: str) -> str:
    """Keyword-style rewrite: keep content words in order, drop stop words and duplicates.

    "What is the refund window for the Zephyr X2 headphones?" → "refund window Zephyr X2
    headphones". This is deliberately simple (no model): it removes question phrasing
    that dilutes the query vector and matches nothing useful in full text. A query that
    would come out empty is kept as it was.
    """
    seen: set[str] = set()
    kept: list[str] = []
    for word in _WORD.findall(query):
        low = word.lower()
        if low in _STOP_WORDS or low in seen:
            continue
        seen.add(low)
        kept.append(word)
    return " ".join(kept) if kept else query.strip()


def query_terms(query: str, limit: int = 32) -> list[str]:
    """Lower-cased content words of a query, for full-text matching."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        word = word.replace("'", "")
        if word and word not in _STOP_WORDS:
            seen.setdefault(word, None)
    return list(seen)[:limit]


def _stem(word: str) -> str:
    """A light suffix stripper so "refunds"/"refunded" count as "refund" in coverage."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


class HybridSearcher:
    """Searches one or more vector stores of a `ChunkIndex` with an `Embedder`."""

    def __init__(self, index: ChunkIndex, embedder: Embedder) -> None:
        self.index = index
        self.embedder = embedder

    async def search(
        self,
        conn: Conn,
        *,
        vector_store_ids: Sequence[str],
        query: str | Sequence[str],
        max_num_results: int = 10,
        score_threshold: float = 0.0,
        ranker: Ranker = "auto",
        filters: Mapping[str, Any] | Filter | None = None,
        rewrite: bool = False,
        mode: SearchMode = "hybrid",
    ) -> SearchResult:
        """Search the stores; `mode` other than hybrid exists for evaluation benchmarks.

        Raises `InvalidFilter` for a malformed filter and ValueError for out-of-range
        ``max_num_results`` / ``score_threshold``.
        """
        if not 1 <= max_num_results <= 50:
            raise ValueError(f"max_num_results must be between 1 and 50, got {max_num_results}")
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be between 0 and 1, got {score_threshold}")
        raw_queries = [query] if isinstance(query, str) else list(query)
        queries = [rewrite_query(q) if rewrite else q for q in raw_queries if q.strip()]
        if not queries:
            return SearchResult([], [])
        flt = parse_filter(filters) if filters is not None else None
        pool = max(4 * max_num_results, 40)

        # Embed before taking a connection: the model call should not hold one from the pool.
        qvecs = await self.embedder.embed(queries)
        # SQLite statements here can take tens of milliseconds at 100k chunks (the first
        # matrix load, a second or so): run them in a thread, not on the event loop.
        with offloaded():
            async with _connect(conn) as c:
                if await self.index.uses_pgvector(c):
                    scope = await self._database_scope(c, vector_store_ids, flt, qvecs, pool, mode)
                else:
                    scope = await self._matrix_scope(c, vector_store_ids, flt)
                kept, found = await self._rank(
                    c, scope, queries, qvecs, pool, mode, ranker, max_num_results, score_threshold
                )
        hits = [
            SearchHit(
                vector_store_id=ch.vector_store_id,
                file_id=ch.file_id,
                chunk_index=ch.chunk_index,
                text=ch.text,
                char_start=ch.char_start,
                char_end=ch.char_end,
                score=round(min(1.0, max(0.0, s)), 6),
                attributes=ch.attributes,
            )
            for i, s in kept
            if (ch := found.get(i)) is not None
        ]
        if scope.allowed_by_store is not None:
            # Keyword candidates were filtered by file id across all stores; recheck the pair.
            passing = {
                (vs, f)
                for vs, files in zip(vector_store_ids, scope.allowed_by_store, strict=True)
                for f in files
            }
            hits = [h for h in hits if (h.vector_store_id, h.file_id) in passing]
        return SearchResult(queries, hits)

    async def _matrix_scope(
        self, c: AsyncConnection, vector_store_ids: Sequence[str], flt: Filter | None
    ) -> _Scope:
        """The exact path: each store's matrix, and the files passing the filter from it."""
        matrices = [
            await self.index.store_matrix(c, vs, self.embedder.model_id, self.embedder.dimensions)
            for vs in vector_store_ids
        ]
        # Per store: one file may sit in two stores with different attributes.
        allowed_by_store: list[set[str]] | None = None
        if flt is not None:
            allowed_by_store = [
                {f for f, attrs in m.attributes.items() if matches(flt, attrs)} for m in matrices
            ]
        scope_rows = (
            sum(len(m.chunk_ids) for m in matrices)
            if allowed_by_store is None
            else sum(
                int(m.row_mask(files).sum())
                for m, files in zip(matrices, allowed_by_store, strict=True)
            )
        )
        return _Scope(
            vector_store_ids=list(vector_store_ids),
            allowed_by_store=allowed_by_store,
            scope_rows=scope_rows,
            # Attributes come from the matrices read above, in this same transaction.
            attributes={vs: m.attributes for vs, m in zip(vector_store_ids, matrices, strict=True)},
            matrices=matrices,
        )

    async def _database_scope(
        self,
        c: AsyncConnection,
        vector_store_ids: Sequence[str],
        flt: Filter | None,
        qvecs: np.ndarray[Any, Any],
        pool: int,
        mode: SearchMode,
    ) -> _Scope:
        """The pgvector path: the filter and the vector query both run in PostgreSQL."""
        found = await pgvector.scope(c, vector_store_ids, flt, self.embedder.model_id)
        allowed_by_store = found.allowed_by_store
        vector_lists: list[list[tuple[int, float]]] = []
        if mode != "keyword":
            vector_lists = [[] for _ in range(len(qvecs))]
            if found.rows:
                vector_lists = await pgvector.nearest(
                    c,
                    vector_store_ids=vector_store_ids,
                    query_vectors=qvecs,
                    k=pool,
                    files=found.vector_files,
                    hnsw=await pgvector.use_hnsw(c, found.rows),
                    ef_search=self.index.ef_search,
                )
        return _Scope(
            vector_store_ids=list(vector_store_ids),
            allowed_by_store=allowed_by_store,
            scope_rows=None,
            attributes=None,
            matrices=None,
            vector_lists=vector_lists,
        )

    async def _rank(
        self,
        c: AsyncConnection,
        scope: _Scope,
        queries: list[str],
        qvecs: np.ndarray[Any, Any],
        pool: int,
        mode: SearchMode,
        ranker: Ranker,
        max_num_results: int,
        score_threshold: float,
    ) -> tuple[list[tuple[int, float]], dict[int, StoredChunk]]:
        """Candidates of both sides, fused and ranked: (kept (chunk id, score), texts)."""
        # The exact vector scan (numpy, in a thread) overlaps the keyword queries, the read
        # of the keyword hits' texts and their term scan (database and main thread).
        vector_task = (
            asyncio.create_task(
                asyncio.to_thread(
                    self._vector_lists, scope.matrices, qvecs, pool, scope.allowed_by_store
                )
            )
            if mode != "keyword" and scope.matrices is not None
            else None
        )
        keyword_lists: list[list[tuple[int, float]]] = []
        found: dict[int, StoredChunk] = {}
        evidence = _Evidence(queries)
        try:
            if mode != "vector":
                for q in queries:
                    keyword_lists.append(
                        await self.index.keyword_candidates(
                            c,
                            scope.vector_store_ids,
                            query_terms(q),
                            pool,
                            scope.allowed,
                            scope_rows=scope.scope_rows,
                        )
                    )
            if mode == "hybrid":
                # One read per side serves coverage, reranking and the final hits.
                found = await self.index.fetch_chunks(
                    c, _ids(keyword_lists), attributes=scope.attributes
                )
                evidence.scan(found)
        finally:
            vector_lists = await vector_task if vector_task is not None else scope.vector_lists
        best_possible = (len(vector_lists) + len(keyword_lists)) / (RRF_K + 1)
        if mode != "hybrid":
            fused = _rrf(vector_lists + keyword_lists, None)
            order = sorted(fused, key=lambda i: -fused[i])
            scored = [(i, fused[i] / best_possible) for i in order]
        else:
            rest = [i for i in _ids(vector_lists) if i not in found]
            more = await self.index.fetch_chunks(c, rest, attributes=scope.attributes)
            evidence.scan(more)
            found.update(more)
            matrices = scope.matrices
            if matrices is None:
                # No matrix in this process: read just the vectors the lists lack.
                listed = set(_ids(vector_lists))
                missing = [i for i in found if i not in listed]
                matrices = [await self.index.vectors_of(c, missing, int(qvecs.shape[1]))]
            evidence.finish(qvecs, matrices, vector_lists)
            fused = _rrf(vector_lists, None)
            for qi, ranked in enumerate(keyword_lists):
                for i, w in _rrf([ranked], evidence.coverage[qi]).items():
                    fused[i] = fused.get(i, 0.0) + w
            order = sorted(fused, key=lambda i: -fused[i])
            if ranker == "none":
                scored = [(i, fused[i] / best_possible) for i in order]
            else:
                candidates = order[: max(3 * max_num_results, 30)]
                scored = sorted(
                    ((i, evidence.relevance(i)) for i in candidates if i in found),
                    key=lambda p: -(p[1] + 0.15 * fused[p[0]] / best_possible),
                )
        kept = [(i, s) for i, s in scored if s >= score_threshold][:max_num_results]
        if not found:
            found = await self.index.fetch_chunks(
                c, [i for i, _ in kept], attributes=scope.attributes
            )
        return kept, found

    def _vector_lists(
        self,
        matrices: Sequence[Any],
        qvecs: np.ndarray[Any, Any],
        pool: int,
        allowed_by_store: list[set[str]] | None,
    ) -> list[list[tuple[int, float]]]:
        """Per query, the top `pool` chunks by cosine across all the stores' matrices."""
        per_store = [
            self.index.vector_candidates(
                m, qvecs, pool, None if allowed_by_store is None else allowed_by_store[n]
            )
            for n, m in enumerate(matrices)
        ]
        lists = []
        for qi in range(len(qvecs)):
            merged = [hit for store in per_store for hit in store[qi]]
            merged.sort(key=lambda h: -h[1])
            lists.append(merged[:pool])
        return lists


def _rrf(
    lists: Sequence[list[tuple[int, float]]], weights: Mapping[int, float] | None
) -> dict[int, float]:
    """Reciprocal rank fusion; `weights` scales each chunk's contribution (default 1)."""
    fused: dict[int, float] = {}
    for ranked in lists:
        for rank, (chunk_id, _) in enumerate(ranked, start=1):
            w = 1.0 if weights is None else weights.get(chunk_id, 0.0)
            fused[chunk_id] = fused.get(chunk_id, 0.0) + w / (RRF_K + rank)
    return fused


def _stems_in(low: str, stems: list[str]) -> set[int]:
    """Indexes of the `stems` that some word of the lower-cased text `low` matches.

    A stem matches a word that starts with it ("refund" → "refunds", "refundable");
    stems of three characters or fewer must be the whole word ("x2" ≠ "x20"). A word
    counts for the first matching stem only. Words are runs of letters and digits, as
    ``\\b[^\\W_]+\\b``. ``str.find`` per stem, then a look at the word around each
    occurrence, is ~3x faster than one regex alternation over the text: most texts hold
    a stem a few times at most, and the regex engine tries every alternative at every
    word.
    """
    found: set[int] = set()
    for stem in stems:
        start = low.find(stem)
        while start >= 0:
            if start == 0 or not (low[start - 1].isalnum() or low[start - 1] == "_"):
                end = _WORD_RUN.match(low, start).end()  # type: ignore[union-attr]
                if end == len(low) or low[end] != "_":
                    word = low[start:end]
                    for k, s in enumerate(stems):
                        if word == s or (len(s) > 3 and word.startswith(s)):
                            found.add(k)
                            break
            start = low.find(stem, start + 1)
    return found


def _ids(lists: Sequence[list[tuple[int, float]]]) -> list[int]:
    """The distinct chunk ids of ranked lists, first appearance first."""
    return list(dict.fromkeys(i for ranked in lists for i, _ in ranked))


class _Evidence:
    """Per-candidate cosine and query-term coverage, the inputs of fusion and reranking.

    Filled in steps so the term scan of the keyword hits can run while the vector scan
    is still going: `scan` texts as they arrive, then `finish` once the pool is complete.
    """

    def __init__(self, queries: list[str]) -> None:
        self._stems = [sorted({_stem(t) for t in query_terms(q)}) for q in queries]
        self._present: list[dict[int, set[int]]] = [{} for _ in queries]
        self.coverage: list[dict[int, float]] = [{} for _ in queries]
        self.cosine: list[dict[int, float]] = [{} for _ in queries]

    def scan(self, chunks: Mapping[int, StoredChunk]) -> None:
        """Record which query stems each chunk's text contains."""
        for i, ch in chunks.items():
            low = ch.text.lower()
            for stems, present in zip(self._stems, self._present, strict=True):
                present[i] = _stems_in(low, stems)

    def finish(
        self,
        qvecs: np.ndarray[Any, Any],
        matrices: Sequence[Any],
        vector_lists: Sequence[list[tuple[int, float]]],
    ) -> None:
        """Coverage weights over the scanned pool, and the cosine of every scanned chunk."""
        for qi, (stems, present) in enumerate(zip(self._stems, self._present, strict=True)):
            if not stems:
                continue
            # Document frequency within the candidate pool: a word every candidate shares
            # says little; a rare one (a product codename) says a lot.
            n = max(1, len(present))
            df: Counter[int] = Counter()
            for found in present.values():
                df.update(found)
            weights = [math.log(1 + n / (1 + df[k])) + 0.1 for k in range(len(stems))]
            total = sum(weights)
            self.coverage[qi] = {
                i: sum(weights[k] for k in found) / total for i, found in present.items()
            }
        # The vector lists hold the cosine of their own hits; look up only the others.
        if len(vector_lists) == len(self.cosine):
            self.cosine = [dict(ranked) for ranked in vector_lists]
        scanned = self._present[0] if self._present else {}
        missing = np.fromiter(
            (i for i in scanned if any(i not in cos for cos in self.cosine)), dtype=np.int64
        )
        for m in matrices:
            if not len(missing):
                break
            rows = m.rows_of(missing)
            hit = rows >= 0
            if hit.any():
                sims = qvecs @ m.vectors[rows[hit]].T  # (queries, found)
                for qi, cos in enumerate(self.cosine):
                    cos.update(zip(missing[hit].tolist(), sims[qi].tolist(), strict=True))
                missing = missing[~hit]

    def relevance(self, chunk_id: int) -> float:
        """Absolute 0–1 relevance: calibrated cosine and coverage, best over the queries."""
        best = 0.0
        for qi in range(len(self.coverage)):
            cosine = self.cosine[qi].get(chunk_id, 0.0)
            semantic = min(1.0, max(0.0, (cosine - 0.15) / 0.60))
            best = max(best, 0.65 * semantic + 0.35 * self.coverage[qi].get(chunk_id, 0.0))
        return best
