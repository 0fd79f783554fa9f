"""Put small documents into an index the way the vector-store service will."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from assistantd.retrieval import ChunkIndex, ChunkingStrategy, Embedder, prepare_file


async def add_text(
    index: ChunkIndex,
    conn: AsyncEngine | AsyncConnection,
    embedder: Embedder,
    vector_store_id: str,
    file_id: str,
    text: str,
    attributes: dict[str, Any] | None = None,
    strategy: ChunkingStrategy | None = None,
) -> int:
    prepared = await prepare_file(
        text.encode(), f"{file_id}.txt", embedder, strategy or ChunkingStrategy.auto()
    )
    await index.add_file_chunks(
        conn,
        vector_store_id=vector_store_id,
        file_id=file_id,
        chunks=prepared.chunks,
        embeddings=prepared.embeddings,
        embedding_model=prepared.model_id,
        attributes=attributes,
    )
    return len(prepared.chunks)
