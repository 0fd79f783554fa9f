"""Retrieval engine: parse files, chunk them, embed chunks, index them, search them.

The vector-store service calls, in order:

1. `prepare_file(data, filename, embedder, ChunkingStrategy.from_wire(...))` → parsed
   text, chunks and vectors (raises `UnsupportedFile` / `InvalidFile`);
2. `ChunkIndex.add_file_chunks(conn, ...)` inside its transaction;
3. `HybridSearcher.search(conn, ...)` for the search endpoint and the file_search tool;
4. `ChunkIndex.update_attributes` / `delete_file` / `delete_store` on changes.
"""

from .chunk import Chunk, ChunkingStrategy, chunk_text
from .embed import Embedder, MiniLMEmbedder, OpenAIEmbedder
from .errors import (
    EmbeddingError,
    InvalidChunkingStrategy,
    InvalidFile,
    InvalidFilter,
    RetrievalError,
    UnsupportedFile,
)
from .filters import ComparisonFilter, CompoundFilter, Filter, parse_filter
from .index import ChunkIndex, StoredChunk
from .parse import ParsedDocument, parse_document
from .pipeline import PreparedFile, embed_chunks, prepare_file
from .search import HybridSearcher, SearchHit, SearchResult, rewrite_query
from .tables import full_text_ddl, metadata

__all__ = [
    "Chunk",
    "ChunkIndex",
    "ChunkingStrategy",
    "ComparisonFilter",
    "CompoundFilter",
    "Embedder",
    "EmbeddingError",
    "Filter",
    "HybridSearcher",
    "InvalidChunkingStrategy",
    "InvalidFile",
    "InvalidFilter",
    "MiniLMEmbedder",
    "OpenAIEmbedder",
    "ParsedDocument",
    "PreparedFile",
    "RetrievalError",
    "SearchHit",
    "SearchResult",
    "StoredChunk",
    "UnsupportedFile",
    "chunk_text",
    "embed_chunks",
    "full_text_ddl",
    "metadata",
    "parse_document",
    "parse_filter",
    "prepare_file",
    "rewrite_query",
]
