"""What vector stores need from the process: the chunk index, the embedder, the searcher,
the ingestion worker. Built once by the app lifespan (`ingest.start_ingestion`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistantd.core.settings import Settings
from assistantd.retrieval import (
    ChunkIndex,
    Embedder,
    HybridSearcher,
    MiniLMEmbedder,
    OpenAIEmbedder,
)

if TYPE_CHECKING:
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
        return OpenAIEmbedder(settings.embedding_base_url, settings.embedding_api_key,
                              settings.embedding_model or DEFAULT_REMOTE_EMBEDDING_MODEL)
    return MiniLMEmbedder()


async def vector_store_runtime(request: Request) -> VectorStoreRuntime:
    """FastAPI dependency: the runtime the lifespan stored in `ctx.extras["vector_stores"]`."""
    rt: VectorStoreRuntime = request.app.state.ctx.extras["vector_stores"]
    return rt
