"""What vector stores need from the process: the chunk index, the embedder, the searcher,
the ingestion worker. Built once by the app lifespan (`start_ingestion`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistantd.core.settings import Settings
from assistantd.retrieval import (
    ChunkIndex,
    Embedder,
    HybridSearcher,
    MiniLMEmbedder,
    OpenAIEmbedder,
)
from assistantd.retrieval.parse import ParseLimits
from assistantd.vector_stores.ingest import IngestionWorker

#: Model asked of `ASSISTANTD_EMBEDDING_BASE_URL` when `ASSISTANTD_EMBEDDING_MODEL` is unset.
DEFAULT_REMOTE_EMBEDDING_MODEL = "text-embedding-3-small"


@dataclass
class VectorStoreRuntime:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    index: ChunkIndex
    embedder: Embedder
    searcher: HybridSearcher
    ingestion: IngestionWorker

    async def aclose(self) -> None:
        await self.ingestion.stop()
        await self.embedder.aclose()


def build_embedder(settings: Settings) -> Embedder:
    """The configured embedder: a remote OpenAI-compatible endpoint, or MiniLM on CPU."""
    if settings.embedding_base_url:
        return OpenAIEmbedder(
            settings.embedding_base_url,
            settings.embedding_api_key,
            settings.embedding_model or DEFAULT_REMOTE_EMBEDDING_MODEL,
        )
    return MiniLMEmbedder()


async def _prepare_vectors(
    index: ChunkIndex, sessions: async_sessionmaker[AsyncSession], embedder: Embedder
) -> None:
    """On pgvector, build the embedder's HNSW index now, before any ingestion holds rows."""
    try:
        dims = embedder.dimensions
    except RuntimeError:
        return  # a remote model's size is known after its first call; the first write builds it
    async with sessions() as session:
        await index.prepare_vectors(await session.connection(), dims)
        await session.commit()


async def start_ingestion(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], embedder: Embedder | None = None
) -> VectorStoreRuntime:
    """Build the vector-store runtime for the app lifespan and start its worker.

    `embedder` is used instead of the configured one when given.
    The worker runs only where runs do (`ASSISTANTD_WORKER_ENABLED`); an API-only process
    leaves files to the worker process's sweep.
    """
    if embedder is None:
        embedder = build_embedder(settings)
    index = ChunkIndex(vector_index=settings.vector_index, ef_search=settings.pgvector_ef_search)
    await _prepare_vectors(index, sessions, embedder)
    limits = ParseLimits(
        max_unzipped_bytes=settings.ingest_max_unzipped_bytes,
        max_paragraphs=settings.ingest_max_paragraphs,
        timeout_seconds=settings.ingest_parse_timeout_seconds,
        memory_mb=settings.ingest_parse_memory_mb,
    )
    worker = IngestionWorker(
        sessions,
        index,
        embedder,
        settings.data_dir,
        limits=limits,
        max_chunks=settings.ingest_max_chunks,
        host_id=settings.host_id,
    )
    rt = VectorStoreRuntime(
        settings=settings,
        sessions=sessions,
        index=index,
        embedder=embedder,
        searcher=HybridSearcher(index, embedder),
        ingestion=worker,
    )
    if settings.worker_enabled:
        await worker.start()
    return rt
