"""A deterministic embedder with no model, for tests and benchmarks of everything around it.

A real `Embedder` (L2-normalised float32 rows, same interface as the production ones), so
storage, search plumbing and benchmarks run quickly without loading MiniLM.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from assistantd.retrieval.embed import Embedder, Matrix, normalize_rows
from assistantd.retrieval.tokens import Tokenizer, minilm_tokenizer


class HashingEmbedder(Embedder):
    """Signed feature hashing of lower-cased words and word bigrams; no semantics at all.

    Two texts are close only when they share words. Good for exercising storage, search
    plumbing and benchmarks quickly; useless as a stand-in for semantic quality.
    """

    max_input_tokens = 1 << 30

    def __init__(self, dimensions: int = 384) -> None:
        self._dims = dimensions
        self.model_id = f"hashing-{dimensions}"

    @property
    def dimensions(self) -> int:
        return self._dims

    def tokenizer(self) -> Tokenizer:
        return minilm_tokenizer()

    def _vector(self, text: str) -> npt.NDArray[np.float32]:
        vec = np.zeros(self._dims, dtype=np.float32)
        words = re.findall(r"\w+", text.lower())
        for feature in words + [f"{a} {b}" for a, b in itertools.pairwise(words)]:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            h = int.from_bytes(digest, "little")
            vec[h % self._dims] += 1.0 if (h >> 63) & 1 else -1.0
        return vec

    async def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self._dims), dtype=np.float32)
        return normalize_rows(np.stack([self._vector(t) for t in texts]))
