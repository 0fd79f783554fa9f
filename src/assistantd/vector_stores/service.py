"""Rules and state changes for vector stores, their files and file batches.

`file_counts`, `usage_bytes` and `status` of stores and batches are computed from the
store-file rows whenever an object is rendered, so they can never drift from the truth
however many ingestion tasks finish at once.

Functions for the run engine (each takes the `VectorStoreRuntime`,
`AppContext.stores`): `search_stores`, `create_store_with_files`, `add_files`,
`wait_ready`, `store_status`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from assistantd.core.db import UnitOfWork
from assistantd.core.errors import InvalidRequest, NotFound, ServiceUnavailable, not_found
from assistantd.core.ids import new_id, next_seq, now_seconds
from assistantd.core.pagination import ListParams
from assistantd.core.schemas import ToolResources
from assistantd.core.wire import Deleted, ListPage, deleted, list_of
from assistantd.files import storage
from assistantd.files.repository import FileRepository
from assistantd.retrieval import (
    ChunkingStrategy,
    InvalidChunkingStrategy,
    InvalidFilter,
)
from assistantd.retrieval.errors import EmbeddingError, RetrievalError
from assistantd.retrieval.parse import parse_bounded
from assistantd.retrieval.search import Ranker
from assistantd.vector_stores.models import (
    VectorStoreFileBatchRow,
    VectorStoreFileRow,
    VectorStoreRow,
)
from assistantd.vector_stores.references import References
from assistantd.vector_stores.repository import (
    FileBatchRepository,
    FileCounts,
    VectorStoreFileRepository,
    VectorStoreRepository,
)
from assistantd.vector_stores.runtime import VectorStoreRuntime
from assistantd.vector_stores.schemas import (
    FileBatchCreate,
    SearchRequest,
    VectorStoreCreate,
    VectorStoreFileCreate,
    VectorStoreFileUpdate,
    VectorStoreModify,
    chunking_wire,
)
from assistantd.vector_stores.wire import (
    FileBatch,
    FileContentPage,
    FileStatus,
    SearchResultsPage,
    StoredVectorStoreFile,
    TextChunk,
    VectorStore,
    VectorStoreFile,
    file_batch_object,
    store_file_object,
    vector_store_object,
)

SessionLike = AsyncSession | UnitOfWork
DAY = 86_400
#: Stores made for a thread's `tool_resources` or message attachments expire this long
#: after their last use unless told otherwise (OpenAI's default).
THREAD_STORE_EXPIRY_DAYS = 7

log = logging.getLogger("assistantd.vector_stores")


def _session(s: SessionLike) -> AsyncSession:
    return s.session if isinstance(s, UnitOfWork) else s


# -- rendering ---------------------------------------------------------------------------


def is_expired(row: VectorStoreRow, now: int | None = None) -> bool:
    t = now_seconds() if now is None else now
    return row.expired_at is not None or (row.expires_at is not None and row.expires_at <= t)


def store_wire(row: VectorStoreRow, counts: FileCounts | None) -> VectorStore:
    c = counts or FileCounts()
    out = cast(VectorStore, dict(row.body))
    out["usage_bytes"] = c.usage_bytes
    out["file_counts"] = c.wire()
    out["status"] = (
        "expired" if is_expired(row) else ("in_progress" if c.in_progress else "completed")
    )
    out["expires_at"] = row.expires_at
    return out


def file_wire(row: VectorStoreFileRow) -> VectorStoreFile:
    out = cast(VectorStoreFile, dict(row.body))
    out["status"] = cast(FileStatus, row.status)
    out["usage_bytes"] = row.usage_bytes
    return out


def batch_wire(row: VectorStoreFileBatchRow, counts: FileCounts | None) -> FileBatch:
    c = counts or FileCounts()
    out = cast(FileBatch, dict(row.body))
    status: FileStatus
    if row.cancelled:
        status = "cancelled"
    elif c.in_progress:
        status = "in_progress"
    elif c.total and c.failed == c.total:
        status = "failed"
    else:
        status = "completed"
    out["status"] = status
    out["file_counts"] = c.wire()
    return out


async def _render_store(s: AsyncSession, row: VectorStoreRow) -> VectorStore:
    counts = await VectorStoreFileRepository(s).counts_by_store([row.id])
    return store_wire(row, counts.get(row.id))


async def _render_batch(s: AsyncSession, row: VectorStoreFileBatchRow) -> FileBatch:
    counts = await VectorStoreFileRepository(s).counts_by_batch([row.id])
    return batch_wire(row, counts.get(row.id))


# -- helpers -----------------------------------------------------------------------------


async def _store(
    s: AsyncSession, project_id: str, vector_store_id: str, *, for_update: bool = False
) -> VectorStoreRow:
    row = await VectorStoreRepository(s).get(project_id, vector_store_id, for_update=for_update)
    if row is None:
        raise not_found("vector store", vector_store_id)
    return row


def _expired_error(row: VectorStoreRow) -> InvalidRequest:
    days = (row.body.get("expires_after") or {}).get("days")
    policy = f" (expires_after: {days} days after last activity)" if days else ""
    return InvalidRequest(
        f"Vector store {row.id} has expired{policy}; an expired vector store can no longer be searched "
        "or changed. Create a new vector store with the same files.",
        param="vector_store_id",
    )


async def _touch(s: AsyncSession, row: VectorStoreRow) -> None:
    """Record activity: `last_active_at` moves, and with it an `expires_after` deadline."""
    now = now_seconds()
    body = dict(row.body)
    body["last_active_at"] = now
    days = (body.get("expires_after") or {}).get("days")
    row.expires_at = now + int(days) * DAY if days else None
    await VectorStoreRepository(s).save_body(row, body)


def _strategy(wire: dict[str, Any] | None) -> ChunkingStrategy:
    try:
        return ChunkingStrategy.from_wire(wire)
    except InvalidChunkingStrategy as exc:
        raise InvalidRequest(
            f"Invalid 'chunking_strategy': {exc.message}.", param="chunking_strategy"
        ) from None


async def _check_embedding_model(
    rt: VectorStoreRuntime, s: AsyncSession, row: VectorStoreRow
) -> None:
    """A store keeps the embedding model it was built with; vectors of two models never mix."""
    recorded = row.embedding_model
    current = rt.embedder.model_id
    if recorded == current:
        return
    counts = (await VectorStoreFileRepository(s).counts_by_store([row.id])).get(row.id)
    if recorded is None or counts is None or counts.total == 0:
        row.embedding_model = current  # an empty store simply adopts the configured model
        await s.flush()
        return
    raise InvalidRequest(
        f"Vector store {row.id} was built with the embedding model '{recorded}', but this server now "
        f"embeds with '{current}'. Mixing embedding models in one store is refused: create a new vector "
        f"store, or set the ASSISTANTD_EMBEDDING_* settings back to '{recorded}'.",
        param="vector_store_id",
    )


async def _files(s: AsyncSession, project_id: str, param: str, file_ids: Sequence[str]) -> None:
    """404 naming `param` unless every file is in the project (one query)."""
    await References().files(param, file_ids).check(s, project_id)


async def _attach(
    rt: VectorStoreRuntime,
    uow: UnitOfWork,
    store: VectorStoreRow,
    file_id: str,
    strategy: ChunkingStrategy,
    attributes: dict[str, Any] | None,
    batch_id: str | None,
) -> VectorStoreFileRow:
    """Record a file as `in_progress` in the store; the worker ingests it after the commit.

    Attaching a file that is already in the store re-ingests it with the new strategy and
    attributes (its old chunks go now; a worker busy with it drops its result).
    """
    s = uow.session
    repo = VectorStoreFileRepository(s)
    created = now_seconds()
    body = store_file_object(file_id, store.id, created, strategy.to_wire(), attributes)
    row = await repo.get_in_store(store.project_id, store.id, file_id, for_update=True)
    if row is None:
        row = VectorStoreFileRow(
            id=file_id,
            vector_store_id=store.id,
            project_id=store.project_id,
            seq=next_seq(),
            created_at=created,
            body=body,
            status="in_progress",
            usage_bytes=0,
            batch_id=batch_id,
        )
        await repo.insert(row)
    else:
        await rt.index.delete_file(await s.connection(), vector_store_id=store.id, file_id=file_id)
        row.body, row.status, row.usage_bytes, row.batch_id = dict(body), "in_progress", 0, batch_id
        row.lease_owner = row.lease_expires_at = None
        await s.flush()
    uow.after_commit(lambda: rt.ingestion.submit(store.id, file_id))
    return row


async def _writable_store(
    rt: VectorStoreRuntime, uow: UnitOfWork, project_id: str, vector_store_id: str
) -> VectorStoreRow:
    row = await _store(uow.session, project_id, vector_store_id, for_update=True)
    if is_expired(row):
        raise _expired_error(row)
    await _check_embedding_model(rt, uow.session, row)
    return row


# -- vector stores -----------------------------------------------------------------------


async def _new_store(
    rt: VectorStoreRuntime,
    uow: UnitOfWork,
    project_id: str,
    *,
    name: str | None,
    description: str | None,
    metadata: dict[str, str] | None,
    expires_after_days: int | None,
) -> VectorStoreRow:
    now = now_seconds()
    body = vector_store_object(
        new_id("vs_"),
        now,
        name=name,
        description=description,
        metadata=metadata,
        expires_after_days=expires_after_days,
    )
    row = VectorStoreRow(
        id=body["id"],
        project_id=project_id,
        seq=next_seq(),
        created_at=now,
        body=body,
        expires_at=now + expires_after_days * DAY if expires_after_days else None,
        embedding_model=rt.embedder.model_id,
    )
    await VectorStoreRepository(uow.session).insert(row)
    return row


async def create(
    rt: VectorStoreRuntime, uow: UnitOfWork, project_id: str, req: VectorStoreCreate
) -> VectorStore:
    strategy = _strategy(chunking_wire(req.chunking_strategy))
    file_ids = list(dict.fromkeys(req.file_ids or []))
    await _files(uow.session, project_id, "file_ids", file_ids)
    row = await _new_store(
        rt,
        uow,
        project_id,
        name=req.name,
        description=req.description,
        metadata=req.metadata,
        expires_after_days=req.expires_after.days if req.expires_after else None,
    )
    for file_id in file_ids:
        await _attach(rt, uow, row, file_id, strategy, None, None)
    return await _render_store(uow.session, row)


async def retrieve(uow: UnitOfWork, project_id: str, vector_store_id: str) -> VectorStore:
    return await _render_store(uow.session, await _store(uow.session, project_id, vector_store_id))


async def modify(
    uow: UnitOfWork, project_id: str, vector_store_id: str, req: VectorStoreModify
) -> VectorStore:
    s = uow.session
    row = await _store(s, project_id, vector_store_id, for_update=True)
    body = dict(row.body)
    fields = req.model_fields_set
    if "name" in fields:
        body["name"] = req.name
    if "metadata" in fields:
        body["metadata"] = req.metadata or {}
    if "expires_after" in fields:
        body["expires_after"] = req.expires_after.model_dump() if req.expires_after else None
    await VectorStoreRepository(s).save_body(row, body)
    if not is_expired(row):
        await _touch(s, row)
    return await _render_store(s, row)


async def delete(
    rt: VectorStoreRuntime, uow: UnitOfWork, project_id: str, vector_store_id: str
) -> Deleted:
    s = uow.session
    row = await _store(s, project_id, vector_store_id, for_update=True)
    # File rows first: their row locks order us after a worker finishing one of them.
    await VectorStoreFileRepository(s).delete_store_files(row.id)
    await FileBatchRepository(s).delete_store_batches(row.id)
    await VectorStoreRepository(s).delete(row)
    await rt.index.delete_store(await s.connection(), vector_store_id=row.id)
    return deleted(vector_store_id, "vector_store.deleted")


async def list_(uow: UnitOfWork, project_id: str, params: ListParams) -> ListPage[VectorStore]:
    s = uow.session
    rows, more = await VectorStoreRepository(s).list_page(project_id, params)
    counts = await VectorStoreFileRepository(s).counts_by_store([r.id for r in rows])
    return list_of([store_wire(r, counts.get(r.id)) for r in rows], more)


# -- store files -------------------------------------------------------------------------


async def attach_file(
    rt: VectorStoreRuntime,
    uow: UnitOfWork,
    project_id: str,
    vector_store_id: str,
    req: VectorStoreFileCreate,
) -> VectorStoreFile:
    strategy = _strategy(chunking_wire(req.chunking_strategy))
    store = await _writable_store(rt, uow, project_id, vector_store_id)
    await _files(uow.session, project_id, "file_id", [req.file_id])
    row = await _attach(rt, uow, store, req.file_id, strategy, req.attributes, None)
    await _touch(uow.session, store)
    return file_wire(row)


async def _store_file(
    s: AsyncSession,
    project_id: str,
    vector_store_id: str,
    file_id: str,
    *,
    for_update: bool = False,
) -> VectorStoreFileRow:
    await _store(s, project_id, vector_store_id)
    row = await VectorStoreFileRepository(s).get_in_store(
        project_id, vector_store_id, file_id, for_update=for_update
    )
    if row is None:
        raise NotFound(f"No file found with id '{file_id}' in vector store '{vector_store_id}'.")
    return row


async def retrieve_file(
    uow: UnitOfWork, project_id: str, vector_store_id: str, file_id: str
) -> VectorStoreFile:
    return file_wire(await _store_file(uow.session, project_id, vector_store_id, file_id))


async def update_file(
    rt: VectorStoreRuntime,
    uow: UnitOfWork,
    project_id: str,
    vector_store_id: str,
    file_id: str,
    req: VectorStoreFileUpdate,
) -> VectorStoreFile:
    s = uow.session
    row = await _store_file(s, project_id, vector_store_id, file_id, for_update=True)
    body = cast(StoredVectorStoreFile, dict(row.body))
    body["attributes"] = dict(req.attributes or {})
    row.body = dict(body)
    await s.flush()
    # Chunks not written yet pick the new attributes up from the row when they are.
    await rt.index.update_attributes(
        await s.connection(),
        vector_store_id=vector_store_id,
        file_id=file_id,
        attributes=body["attributes"],
    )
    return file_wire(row)


async def detach_file(
    rt: VectorStoreRuntime, uow: UnitOfWork, project_id: str, vector_store_id: str, file_id: str
) -> Deleted:
    s = uow.session
    row = await _store_file(s, project_id, vector_store_id, file_id, for_update=True)
    await VectorStoreFileRepository(s).delete(row)
    await rt.index.delete_file(
        await s.connection(), vector_store_id=vector_store_id, file_id=file_id
    )
    return deleted(file_id, "vector_store.file.deleted")


async def detach_file_everywhere(
    rt: VectorStoreRuntime, uow: UnitOfWork, project_id: str, file_id: str
) -> list[str]:
    """Remove a file from every store of the project (the file is being deleted).

    Returns the ids of the stores it was in; their counts and usage follow at once.
    """
    s = uow.session
    repo = VectorStoreFileRepository(s)
    stores: list[str] = []
    for row in await repo.rows_of_file(project_id, file_id):
        stores.append(row.vector_store_id)
        await repo.delete(row)
        await rt.index.delete_file(
            await s.connection(), vector_store_id=row.vector_store_id, file_id=file_id
        )
    return stores


class VectorStoreDependents:
    """Vector stores as `files.service.FileDependents`: a deleted file leaves every store."""

    def __init__(self, rt: VectorStoreRuntime) -> None:
        self.rt = rt

    async def file_deleted(self, uow: UnitOfWork, project_id: str, file_id: str) -> None:
        await detach_file_everywhere(self.rt, uow, project_id, file_id)


async def list_files(
    uow: UnitOfWork,
    project_id: str,
    vector_store_id: str,
    params: ListParams,
    status: str | None,
    batch_id: str | None = None,
) -> ListPage[VectorStoreFile]:
    s = uow.session
    await _store(s, project_id, vector_store_id)
    m = VectorStoreFileRow
    where = [m.vector_store_id == vector_store_id]
    if status is not None:
        where.append(m.status == status)
    if batch_id is not None:
        where.append(m.batch_id == batch_id)
    rows, more = await VectorStoreFileRepository(s).list_page(project_id, params, *where)
    return list_of([file_wire(r) for r in rows], more)


async def file_content(
    rt: VectorStoreRuntime, uow: UnitOfWork, project_id: str, vector_store_id: str, file_id: str
) -> FileContentPage:
    """The parsed text of a store file, as the file_search tool sees it."""
    s = uow.session
    row = await _store_file(s, project_id, vector_store_id, file_id)
    data: list[TextChunk] = []
    file_row = await FileRepository(s).get_live(project_id, file_id)
    if row.status == "completed" and file_row is not None:
        try:
            raw = await storage.store_for(rt.settings.data_dir).get_bytes(project_id, file_id)
            doc = await parse_bounded(
                raw, str(file_row.body["filename"]), None, rt.ingestion.limits
            )
            data.append({"type": "text", "text": doc.text})
        except (OSError, RetrievalError):  # `storage.FileMissing` is an OSError
            pass  # the file changed under us since ingestion; report no content
        # A storage outage (`storage.StorageUnavailable`) is not "no content": it answers 503.
    return {
        "object": "vector_store.file_content.page",
        "data": data,
        "has_more": False,
        "next_page": None,
    }


# -- file batches ------------------------------------------------------------------------


async def create_batch(
    rt: VectorStoreRuntime,
    uow: UnitOfWork,
    project_id: str,
    vector_store_id: str,
    req: FileBatchCreate,
) -> FileBatch:
    s = uow.session
    entries: list[tuple[str, ChunkingStrategy, dict[str, Any] | None]] = []
    if req.files is not None:
        # Per-file settings; the request-level ones are ignored then (as the spec says).
        for f in req.files:
            entries.append((f.file_id, _strategy(chunking_wire(f.chunking_strategy)), f.attributes))
    else:
        strategy = _strategy(chunking_wire(req.chunking_strategy))
        entries = [(fid, strategy, req.attributes) for fid in req.file_ids or []]
    unique = list({e[0]: e for e in entries}.values())
    store = await _writable_store(rt, uow, project_id, vector_store_id)
    refs = References()
    if req.files is not None:
        for i, f in enumerate(req.files):
            refs.files(f"files[{i}].file_id", [f.file_id])
    else:
        refs.files("file_ids", req.file_ids)
    await refs.check(s, project_id)
    now = now_seconds()
    body = file_batch_object(new_id("vsfb_"), store.id, now)
    batch = VectorStoreFileBatchRow(
        id=body["id"],
        project_id=project_id,
        seq=next_seq(),
        created_at=now,
        body=body,
        vector_store_id=store.id,
        cancelled=False,
    )
    await FileBatchRepository(s).insert(batch)
    for file_id, strategy, attributes in unique:
        await _attach(rt, uow, store, file_id, strategy, attributes, batch.id)
    await _touch(s, store)
    return await _render_batch(s, batch)


async def _batch(
    s: AsyncSession,
    project_id: str,
    vector_store_id: str,
    batch_id: str,
    *,
    for_update: bool = False,
) -> VectorStoreFileBatchRow:
    await _store(s, project_id, vector_store_id)
    row = await FileBatchRepository(s).get(
        project_id,
        batch_id,
        VectorStoreFileBatchRow.vector_store_id == vector_store_id,
        for_update=for_update,
    )
    if row is None:
        raise not_found("vector store file batch", batch_id)
    return row


async def retrieve_batch(
    uow: UnitOfWork, project_id: str, vector_store_id: str, batch_id: str
) -> FileBatch:
    s = uow.session
    return await _render_batch(s, await _batch(s, project_id, vector_store_id, batch_id))


async def cancel_batch(
    uow: UnitOfWork, project_id: str, vector_store_id: str, batch_id: str
) -> FileBatch:
    """Cancel the batch's files not yet finished; finished ones stay as they are."""
    s = uow.session
    batch = await _batch(s, project_id, vector_store_id, batch_id, for_update=True)
    if await VectorStoreFileRepository(s).cancel_batch(batch.id):
        batch.cancelled = True
        await s.flush()
    return await _render_batch(s, batch)


async def list_batch_files(
    uow: UnitOfWork,
    project_id: str,
    vector_store_id: str,
    batch_id: str,
    params: ListParams,
    status: str | None,
) -> ListPage[VectorStoreFile]:
    await _batch(uow.session, project_id, vector_store_id, batch_id)
    return await list_files(uow, project_id, vector_store_id, params, status, batch_id=batch_id)


# -- search ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreHit:
    """One chunk found by `search_stores`, best first; spans index the parsed file text."""

    vector_store_id: str
    file_id: str
    filename: str
    score: float
    text: str
    attributes: dict[str, Any]
    chunk_index: int
    char_start: int
    char_end: int


async def _search(
    rt: VectorStoreRuntime,
    s: AsyncSession,
    project_id: str,
    vector_store_ids: Sequence[str],
    query: str | Sequence[str],
    *,
    max_num_results: int,
    score_threshold: float,
    ranker: Ranker,
    filters: dict[str, Any] | None,
    rewrite: bool,
) -> tuple[list[str], list[StoreHit]]:
    ids = list(dict.fromkeys(vector_store_ids))
    if not ids:
        return [], []
    # Load the model before any row is touched: on SQLite every transaction holds the write
    # lock, and the first load takes seconds.
    load = getattr(rt.embedder, "load", None)
    if load is not None:
        await load()
    for vs_id in ids:
        row = await _store(s, project_id, vs_id)
        if is_expired(row):
            raise _expired_error(row)
        recorded = row.embedding_model
        if recorded not in (None, rt.embedder.model_id):
            raise InvalidRequest(
                f"Vector store {vs_id} was built with the embedding model '{recorded}', but this server "
                f"embeds queries with '{rt.embedder.model_id}'; it cannot be searched until the "
                "ASSISTANTD_EMBEDDING_* settings name that model again.",
                param="vector_store_id",
            )
        await _touch(s, row)
    try:
        result = await rt.searcher.search(
            await s.connection(),
            vector_store_ids=ids,
            query=query,
            max_num_results=max_num_results,
            score_threshold=score_threshold,
            ranker=ranker,
            filters=filters,
            rewrite=rewrite,
        )
    except InvalidFilter as exc:
        raise InvalidRequest(f"Invalid 'filters': {exc.message}.", param="filters") from None
    except EmbeddingError as exc:
        log.warning("could not embed a search of %s: %s", ", ".join(ids), exc.detail)
        raise ServiceUnavailable(
            f"Could not embed the search query: {exc.message} Try again later."
        ) from exc
    names = await FileRepository(s).get_many(project_id, [h.file_id for h in result.hits])
    hits = [
        StoreHit(
            h.vector_store_id,
            h.file_id,
            str(names[h.file_id].body["filename"]),
            h.score,
            h.text,
            h.attributes,
            h.chunk_index,
            h.char_start,
            h.char_end,
        )
        for h in result.hits
        if h.file_id in names
    ]
    return result.search_queries, hits


async def search(
    rt: VectorStoreRuntime,
    uow: UnitOfWork,
    project_id: str,
    vector_store_id: str,
    req: SearchRequest,
) -> SearchResultsPage:
    """`POST /v1/vector_stores/{id}/search`: the `vector_store.search_results.page`."""
    ranking = req.ranking_options
    queries, hits = await _search(
        rt,
        uow.session,
        project_id,
        [vector_store_id],
        req.query,
        max_num_results=req.max_num_results,
        score_threshold=ranking.score_threshold if ranking else 0.0,
        ranker=ranking.ranker if ranking else "auto",
        filters=req.filters,
        rewrite=req.rewrite_query,
    )
    return {
        "object": "vector_store.search_results.page",
        "search_query": queries or ([req.query] if isinstance(req.query, str) else list(req.query)),
        "data": [
            {
                "file_id": h.file_id,
                "filename": h.filename,
                "score": h.score,
                "attributes": h.attributes,
                "content": [{"type": "text", "text": h.text}],
            }
            for h in hits
        ],
        "has_more": False,
        "next_page": None,
    }


# -- for the run engine ------------------------------------------------------------------


async def search_stores(
    rt: VectorStoreRuntime,
    session_or_uow: SessionLike,
    project_id: str,
    vector_store_ids: list[str],
    query: str | list[str],
    max_num_results: int = 20,
    score_threshold: float = 0.0,
    *,
    ranker: Ranker = "auto",
    filters: dict[str, Any] | None = None,
    rewrite: bool = False,
) -> list[StoreHit]:
    """Hybrid search over the project's stores, best hit first (the file_search tool).

    Raises `NotFound` for an unknown store and `InvalidRequest` for an expired one or one
    built with another embedding model (a run should fail with that message, as OpenAI's
    do on an expired thread store). Updates the stores' `last_active_at`.
    """
    _, hits = await _search(
        rt,
        _session(session_or_uow),
        project_id,
        vector_store_ids,
        query,
        max_num_results=max_num_results,
        score_threshold=score_threshold,
        ranker=ranker,
        filters=filters,
        rewrite=rewrite,
    )
    return hits


async def create_store_with_files(
    rt: VectorStoreRuntime,
    uow: UnitOfWork,
    project_id: str,
    file_ids: list[str],
    *,
    name: str | None = None,
    expires_after_days: int | None = THREAD_STORE_EXPIRY_DAYS,
    metadata: dict[str, str] | None = None,
    chunking_strategy: dict[str, Any] | None = None,
) -> VectorStore:
    """Create a store holding `file_ids` (the `tool_resources.file_search.vector_stores`
    helper and message attachments); 7-day expiry after last use by default.

    The caller has checked the files (`vector_stores.references`: one query for the whole request).
    Ingestion starts after the caller's commit. Raises `InvalidRequest` for a bad
    `chunking_strategy` (wire dict, `auto` or `static`).
    """
    strategy = _strategy(chunking_strategy)
    ids = list(dict.fromkeys(file_ids))
    row = await _new_store(
        rt,
        uow,
        project_id,
        name=name,
        description=None,
        metadata=metadata,
        expires_after_days=expires_after_days,
    )
    for file_id in ids:
        await _attach(rt, uow, row, file_id, strategy, None, None)
    return await _render_store(uow.session, row)


async def resolve_store_helpers(
    uow: UnitOfWork,
    stores: VectorStoreRuntime,
    project_id: str,
    resources: ToolResources | None,
    *,
    expires_after_days: int | None,
) -> ToolResources | None:
    """Turn `tool_resources.file_search.vector_stores` helpers into real stores (ids)."""
    fs = resources.file_search if resources else None
    if resources is None or fs is None or not fs.vector_stores:
        return resources
    ids = list(fs.vector_store_ids or [])
    for helper in fs.vector_stores:
        store = await create_store_with_files(
            stores,
            uow,
            project_id,
            helper.file_ids,
            metadata=helper.metadata,
            chunking_strategy=helper.chunking_strategy,
            expires_after_days=expires_after_days,
        )
        ids.append(store["id"])
    new_fs = fs.model_copy(update={"vector_store_ids": ids, "vector_stores": None})
    return resources.model_copy(update={"file_search": new_fs})


async def add_files(
    rt: VectorStoreRuntime,
    uow: UnitOfWork,
    project_id: str,
    vector_store_id: str,
    file_ids: list[str],
    *,
    chunking_strategy: dict[str, Any] | None = None,
) -> VectorStore:
    """Attach files to an existing store (message attachments extending the thread's store).

    Files already in the store are left as they are; the caller has checked the files
    (`vector_stores.references`). Returns the store object.
    """
    strategy = _strategy(chunking_strategy)
    store = await _writable_store(rt, uow, project_id, vector_store_id)
    ids = list(dict.fromkeys(file_ids))
    repo = VectorStoreFileRepository(uow.session)
    for file_id in ids:
        if await repo.get_in_store(project_id, store.id, file_id) is None:
            await _attach(rt, uow, store, file_id, strategy, None, None)
    await _touch(uow.session, store)
    return await _render_store(uow.session, store)


async def store_status(
    rt: VectorStoreRuntime, project_id: str, vector_store_ids: list[str]
) -> dict[str, VectorStore]:
    """The current store objects by id (in a fresh transaction; unknown ids are absent)."""
    out: dict[str, VectorStore] = {}
    async with rt.sessions() as s:
        for vs_id in dict.fromkeys(vector_store_ids):
            row = await VectorStoreRepository(s).get(project_id, vs_id)
            if row is not None:
                out[vs_id] = await _render_store(s, row)
    return out


async def wait_ready(
    rt: VectorStoreRuntime,
    project_id: str,
    vector_store_ids: list[str],
    within_seconds: float = 60.0,
    poll_seconds: float = 0.25,
) -> bool:
    """Wait until no file of the stores is `in_progress`; False if `within_seconds` pass first.

    Call it outside the run's own transaction: it reads in fresh ones so it sees the
    ingestion worker's commits.
    """
    deadline = time.monotonic() + within_seconds
    while True:
        stores = await store_status(rt, project_id, vector_store_ids)
        if all(s["file_counts"]["in_progress"] == 0 for s in stores.values()):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(poll_seconds)
