"""Vector store, vector store file and file batch objects, and the search and content pages.

A row's `body` holds the stored part (`Stored*`); the derived fields (`status`,
`file_counts`, `usage_bytes`, a store's `expires_at`) are added from the row's columns and
its files' counts each time the object is rendered (`vector_stores.service`), after the
stored keys, as they have always been sent.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from assistantd.core.wire import JSONValue, LastError, Metadata


class FileCountsWire(TypedDict):
    in_progress: int
    completed: int
    failed: int
    cancelled: int
    total: int


class ExpiresAfter(TypedDict):
    anchor: Literal["last_active_at"]
    days: int


class StoredVectorStore(TypedDict):
    id: str
    object: Literal["vector_store"]
    created_at: int
    name: str | None
    # An extension: OpenAI accepts `description` on create and does not echo it.
    description: str | None
    metadata: Metadata
    expires_after: ExpiresAfter | None
    last_active_at: int


class VectorStore(StoredVectorStore):
    usage_bytes: int
    file_counts: FileCountsWire
    status: Literal["expired", "in_progress", "completed"]
    expires_at: int | None


def vector_store_object(
    store_id: str,
    now: int,
    *,
    name: str | None,
    description: str | None,
    metadata: Metadata | None,
    expires_after_days: int | None,
) -> StoredVectorStore:
    return {
        "id": store_id,
        "object": "vector_store",
        "created_at": now,
        "name": name,
        "description": description,
        "metadata": metadata or {},
        "expires_after": {"anchor": "last_active_at", "days": expires_after_days}
        if expires_after_days
        else None,
        "last_active_at": now,
    }


FileStatus = Literal["in_progress", "completed", "failed", "cancelled"]


class StoredVectorStoreFile(TypedDict):
    id: str
    object: Literal["vector_store.file"]
    created_at: int
    vector_store_id: str
    last_error: LastError | None
    chunking_strategy: dict[str, JSONValue]
    attributes: dict[str, Any]


class VectorStoreFile(StoredVectorStoreFile):
    status: FileStatus
    usage_bytes: int


def store_file_object(
    file_id: str,
    vector_store_id: str,
    created: int,
    chunking_strategy: dict[str, JSONValue],
    attributes: dict[str, Any] | None,
) -> StoredVectorStoreFile:
    return {
        "id": file_id,
        "object": "vector_store.file",
        "created_at": created,
        "vector_store_id": vector_store_id,
        "last_error": None,
        "chunking_strategy": chunking_strategy,
        "attributes": dict(attributes or {}),
    }


class StoredFileBatch(TypedDict):
    id: str
    object: Literal["vector_store.files_batch"]
    created_at: int
    vector_store_id: str


class FileBatch(StoredFileBatch):
    status: FileStatus
    file_counts: FileCountsWire


def file_batch_object(batch_id: str, vector_store_id: str, created: int) -> StoredFileBatch:
    return {
        "id": batch_id,
        "object": "vector_store.files_batch",
        "created_at": created,
        "vector_store_id": vector_store_id,
    }


class TextChunk(TypedDict):
    type: Literal["text"]
    text: str


class SearchResult(TypedDict):
    file_id: str
    filename: str
    score: float
    attributes: dict[str, Any]
    content: list[TextChunk]


class SearchResultsPage(TypedDict):
    object: Literal["vector_store.search_results.page"]
    search_query: list[str]
    data: list[SearchResult]
    has_more: bool
    next_page: str | None


class FileContentPage(TypedDict):
    object: Literal["vector_store.file_content.page"]
    data: list[TextChunk]
    has_more: bool
    next_page: str | None
