"""Split a document's text into overlapping token windows that keep their source spans.

Sizes are counted in the embedding model's tokenizer tokens, as the contract's
``chunking_strategy`` is: ``auto`` is 800 tokens with 400 overlap; ``static`` takes
``max_chunk_size_tokens`` 100–4096 and ``chunk_overlap_tokens`` ≤ half of it.

A window never ends inside a word (it steps back over word-piece continuations, at most
half a window), so chunk text and its ``char_start``/``char_end`` span line up with
whole words of the source text: ``text[chunk.char_start:chunk.char_end] == chunk.text``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidChunkingStrategy, InvalidFile
from .tokens import Tokenizer

AUTO_MAX_TOKENS = 800
AUTO_OVERLAP_TOKENS = 400


@dataclass(frozen=True, slots=True)
class ChunkingStrategy:
    """Token budget of a chunk and of the overlap between neighbours."""

    max_tokens: int = AUTO_MAX_TOKENS
    overlap_tokens: int = AUTO_OVERLAP_TOKENS

    @classmethod
    def auto(cls) -> ChunkingStrategy:
        return cls(AUTO_MAX_TOKENS, AUTO_OVERLAP_TOKENS)

    @classmethod
    def static(cls, max_chunk_size_tokens: int, chunk_overlap_tokens: int) -> ChunkingStrategy:
        """Validate the contract's bounds; raises `InvalidChunkingStrategy` with the reason."""
        if not 100 <= max_chunk_size_tokens <= 4096:
            raise InvalidChunkingStrategy(
                f"max_chunk_size_tokens must be between 100 and 4096, got {max_chunk_size_tokens}"
            )
        if not 0 <= chunk_overlap_tokens <= max_chunk_size_tokens // 2:
            raise InvalidChunkingStrategy(
                "chunk_overlap_tokens must be between 0 and half of max_chunk_size_tokens "
                f"({max_chunk_size_tokens // 2}), got {chunk_overlap_tokens}"
            )
        return cls(max_chunk_size_tokens, chunk_overlap_tokens)

    @classmethod
    def from_wire(cls, value: dict[str, Any] | None) -> ChunkingStrategy:
        """Build from the API's ``{"type": "auto"}`` / ``{"type": "static", "static": {...}}``."""
        if value is None or value.get("type") == "auto":
            return cls.auto()
        if value.get("type") == "static" and isinstance(value.get("static"), dict):
            static = value["static"]
            try:
                return cls.static(
                    int(static["max_chunk_size_tokens"]), int(static["chunk_overlap_tokens"])
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidChunkingStrategy(
                    "static chunking_strategy needs integer max_chunk_size_tokens and "
                    "chunk_overlap_tokens"
                ) from exc
        raise InvalidChunkingStrategy(
            f"chunking_strategy.type must be 'auto' or 'static', got {value.get('type')!r}"
        )

    def to_wire(self) -> dict[str, Any]:
        """The VectorStoreFile ``chunking_strategy`` object (auto is reported as static)."""
        return {
            "type": "static",
            "static": {
                "max_chunk_size_tokens": self.max_tokens,
                "chunk_overlap_tokens": self.overlap_tokens,
            },
        }


@dataclass(frozen=True, slots=True)
class Chunk:
    """One window of a document: its text, where it sits in the source, its token range."""

    index: int
    text: str
    char_start: int
    char_end: int
    token_start: int
    token_end: int

    @property
    def token_count(self) -> int:
        return self.token_end - self.token_start


def chunk_text(text: str, tokenizer: Tokenizer, strategy: ChunkingStrategy) -> list[Chunk]:
    """Chunk `text` by `strategy` counted in `tokenizer` tokens."""
    return chunk_offsets(text, tokenizer.offsets(text), strategy)


# Text is tokenized this many characters at a time by `chunk_bounded` (cut at a newline or a
# space), so a text past the token bound is refused after at most one piece too many.
_BOUNDED_PIECE_CHARS = 1_000_000

Offsets = Sequence[tuple[int, int]] | np.ndarray


def chunk_bounded(
    text: str, tokenizer: Tokenizer, strategy: ChunkingStrategy, max_chunks: int, filename: str
) -> tuple[np.ndarray, list[Chunk]]:
    """Token offsets (an (n, 2) int64 array, 16 bytes a token) and chunks, at most `max_chunks`.

    Raises `InvalidFile` past the bound: as soon as the text has more tokens than
    `max_chunks` full chunks could hold (tokenizing stops there), else once chunked.
    """
    max_tokens = max_chunks * strategy.max_tokens
    arrays: list[np.ndarray] = []
    total = start = 0
    while start < len(text):
        end = min(start + _BOUNDED_PIECE_CHARS, len(text))
        if end < len(text):
            cut = text.rfind("\n", start + _BOUNDED_PIECE_CHARS // 2, end)
            if cut == -1:
                cut = text.rfind(" ", start + _BOUNDED_PIECE_CHARS // 2, end)
            end = cut if cut > start else end
        piece = tokenizer.offsets(text[start:end])
        if piece:
            arrays.append(np.asarray(piece, dtype=np.int64) + start)
            total += len(piece)
        if total > max_tokens:
            raise InvalidFile(_too_many_chunks(filename, max_chunks))
        start = end
    offsets = np.concatenate(arrays) if arrays else np.zeros((0, 2), dtype=np.int64)
    chunks = chunk_offsets(text, offsets, strategy)
    if len(chunks) > max_chunks:
        raise InvalidFile(_too_many_chunks(filename, max_chunks))
    return offsets, chunks


def _too_many_chunks(filename: str, max_chunks: int) -> str:
    return (
        f"{filename!r} has more text than {max_chunks} chunks hold (ASSISTANTD_INGEST_MAX_CHUNKS); "
        "split it into smaller files"
    )


def chunk_offsets(text: str, offsets: Offsets, strategy: ChunkingStrategy) -> list[Chunk]:
    """Chunk from precomputed token offsets (lets the caller reuse them for embedding)."""
    n = len(offsets)
    if n == 0:
        return []
    size, overlap = strategy.max_tokens, strategy.overlap_tokens
    chunks: list[Chunk] = []
    start = 0
    while True:
        end = min(start + size, n)
        if end < n:
            end = _back_to_word_start(text, offsets, end, floor=start + max(1, size // 2))
        char_start, char_end = int(offsets[start][0]), int(offsets[end - 1][1])
        chunks.append(
            Chunk(len(chunks), text[char_start:char_end], char_start, char_end, start, end)
        )
        if end >= n:
            return chunks
        next_start = max(end - overlap, start + 1)
        # Start on a word too, but never at or past `end`, so the document always advances.
        start = _forward_to_word_start(text, offsets, next_start, ceiling=end - 1)


def _inside_word(text: str, offsets: Offsets, i: int) -> bool:
    """True when token i continues the word of token i-1 (a ``##piece``)."""
    if i <= 0 or i >= len(offsets):
        return False
    s = int(offsets[i][0])
    return s == int(offsets[i - 1][1]) and s > 0 and text[s - 1].isalnum() and text[s].isalnum()


def _back_to_word_start(text: str, offsets: Offsets, end: int, floor: int) -> int:
    probe = end
    while probe > floor and _inside_word(text, offsets, probe):
        probe -= 1
    return probe if probe > floor or not _inside_word(text, offsets, probe) else end


def _forward_to_word_start(text: str, offsets: Offsets, i: int, ceiling: int) -> int:
    probe = i
    while probe < ceiling and _inside_word(text, offsets, probe):
        probe += 1
    return probe
