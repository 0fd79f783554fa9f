"""From an uploaded file to chunks and their vectors, ready for `ChunkIndex.add_file_chunks`.

Long chunks and short-context models: all-MiniLM-L6-v2 reads only 254 word pieces, but
``auto`` chunks are 800 tokens. Embedding a chunk as is would leave two thirds of it
invisible to vector search. Instead, when a chunk is longer than the model's input,
`embed_chunks` cuts the document at every chunk boundary, splits the pieces between
consecutive boundaries into near-equal windows that fit the model, embeds each window
once, and gives each chunk the token-weighted mean of its windows' vectors
(re-normalised). Every token then counts; because overlapping chunks share windows, the
model still sees each token of the document only once (~1.6x the work of truncating
800/400 chunks to 254 tokens, for all of the text instead of 32% of it). The mean dilutes
a passage that fills only a quarter of its chunk; the keyword side of hybrid search sees
the whole chunk and makes up for much of that.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .chunk import Chunk, ChunkingStrategy, Offsets, chunk_offsets
from .embed import Embedder, Matrix, normalize_rows
from .parse import ParsedDocument, parse_document

LongChunkPolicy = Literal["window_mean", "truncate"]


@dataclass(frozen=True, slots=True)
class PreparedFile:
    """A parsed, chunked, embedded file."""

    document: ParsedDocument
    chunks: list[Chunk]
    embeddings: Matrix
    model_id: str


async def prepare_file(
    data: bytes,
    filename: str,
    embedder: Embedder,
    strategy: ChunkingStrategy,
    *,
    mime_type: str | None = None,
    long_chunks: LongChunkPolicy = "window_mean",
) -> PreparedFile:
    """Parse, chunk and embed a file without blocking the event loop.

    Raises `UnsupportedFile` / `InvalidFile` from parsing.
    """
    document = await asyncio.to_thread(parse_document, data, filename, mime_type)
    tokenizer = embedder.tokenizer()
    offsets = await asyncio.to_thread(tokenizer.offsets, document.text)
    chunks = await asyncio.to_thread(chunk_offsets, document.text, offsets, strategy)
    embeddings = await embed_chunks(
        embedder, document.text, offsets, chunks, long_chunks=long_chunks
    )
    return PreparedFile(document, chunks, embeddings, embedder.model_id)


async def embed_chunks(
    embedder: Embedder,
    text: str,
    offsets: Offsets,
    chunks: list[Chunk],
    *,
    long_chunks: LongChunkPolicy = "window_mean",
) -> Matrix:
    """One unit vector per chunk; see the module docstring for chunks longer than the model."""
    if not chunks:
        return np.zeros((0, embedder.dimensions), dtype=np.float32)
    limit = embedder.max_input_tokens
    if long_chunks == "truncate" or all(c.token_count <= limit for c in chunks):
        return await embedder.embed([c.text for c in chunks])
    windows = _windows(chunks, limit)
    window_vectors = await embedder.embed(
        [text[offsets[a][0] : offsets[b - 1][1]] for a, b in windows]
    )
    starts = [a for a, _ in windows]
    weights = np.asarray([b - a for a, b in windows], dtype=np.float32)[:, None]
    weighted = window_vectors * weights
    pooled = np.empty((len(chunks), window_vectors.shape[1]), dtype=np.float32)
    for row, chunk in enumerate(chunks):
        first = bisect.bisect_left(starts, chunk.token_start)
        last = bisect.bisect_left(starts, chunk.token_end)
        pooled[row] = weighted[first:last].sum(axis=0)
    return normalize_rows(pooled)


def _windows(chunks: list[Chunk], limit: int) -> list[tuple[int, int]]:
    """Token ranges that tile the chunks, each ≤ `limit`, never crossing a chunk boundary."""
    cuts = sorted({c.token_start for c in chunks} | {c.token_end for c in chunks})
    windows: list[tuple[int, int]] = []
    for a, b in itertools.pairwise(cuts):
        parts = -(-(b - a) // limit)
        edges = [a + (b - a) * i // parts for i in range(parts + 1)]
        windows.extend(itertools.pairwise(edges))
    return windows
