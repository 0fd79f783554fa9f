"""Embedders: the real MiniLM model offline, an OpenAI-compatible endpoint, the hashing fake."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from assistantd.retrieval import MiniLMEmbedder, OpenAIEmbedder, embed_chunks
from assistantd.retrieval.chunk import ChunkingStrategy, chunk_offsets
from assistantd.testing.embedders import HashingEmbedder


async def test_minilm_is_offline_normalized_and_semantic(minilm: MiniLMEmbedder) -> None:
    vecs = await minilm.embed(
        [
            "How do I get my money back?",
            "Refunds are issued within 14 days.",
            "The cat sat on the mat.",
        ]
    )
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.2
    assert (await minilm.embed([])).shape == (0, 384)


async def test_long_chunks_are_embedded_as_window_means(minilm: MiniLMEmbedder) -> None:
    # The refund sentence sits past token 254 of its chunk: truncation cannot see it.
    filler = "Our office plants are watered on Mondays by the facilities team. " * 30
    text = filler + "Customers can return a product for a full refund within 45 days."
    tok = minilm.tokenizer()
    offsets = tok.offsets(text)
    chunks = chunk_offsets(text, offsets, ChunkingStrategy.auto())
    assert len(chunks) == 1 and chunks[0].token_count > 300
    windowed = await embed_chunks(minilm, text, offsets, chunks)
    truncated = await embed_chunks(minilm, text, offsets, chunks, long_chunks="truncate")
    query = (await minilm.embed(["refund policy for returned products"]))[0]
    assert np.isclose(np.linalg.norm(windowed[0]), 1.0, atol=1e-5)
    assert query @ windowed[0] > query @ truncated[0] + 0.05


def _embedding_app(seen: list[dict[str, object]]) -> Starlette:
    """A real OpenAI-compatible /v1/embeddings server backed by the hashing embedder."""
    backend = HashingEmbedder(16)

    async def embeddings(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append({"auth": request.headers.get("authorization"), **body})
        vecs = await backend.embed(body["input"])
        # Unnormalised and out of order, as some servers answer.
        data = [
            {"object": "embedding", "index": i, "embedding": (v * 3).tolist()}
            for i, v in reversed(list(enumerate(vecs)))
        ]
        return JSONResponse({"object": "list", "data": data, "model": body["model"]})

    return Starlette(routes=[Route("/v1/embeddings", embeddings, methods=["POST"])])


async def test_openai_embedder_batches_orders_and_normalizes() -> None:
    seen: list[dict[str, object]] = []
    transport = httpx.ASGITransport(app=_embedding_app(seen))
    embedder = OpenAIEmbedder(
        "http://embed.test/v1",
        "sk-test",
        "text-embedding-3-small",
        batch_size=2,
        transport=transport,
    )
    texts: Sequence[str] = ["alpha beta", "gamma", "alpha beta delta"]
    try:
        vecs = await embedder.embed(texts)
    finally:
        await embedder.aclose()
    assert vecs.shape == (3, 16) and embedder.dimensions == 16
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    expected = await HashingEmbedder(16).embed(texts)
    assert np.allclose(vecs, expected, atol=1e-5)
    assert [len(s["input"]) for s in seen] == [2, 1]  # type: ignore[arg-type]
    assert seen[0]["auth"] == "Bearer sk-test" and seen[0]["model"] == "text-embedding-3-small"


async def test_hashing_embedder_shares_words() -> None:
    vecs = await HashingEmbedder().embed(["red apple pie", "red apple", "blue ocean"])
    assert vecs[0] @ vecs[1] > 0.5 and abs(vecs[0] @ vecs[2]) < 0.3
