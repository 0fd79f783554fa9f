"""Chunking: sizes and overlap in MiniLM tokens, spans into the source, strategy bounds."""

from __future__ import annotations

import itertools

import pytest

from assistantd.retrieval import ChunkingStrategy, InvalidChunkingStrategy, chunk_text
from assistantd.retrieval.tokens import minilm_tokenizer

WORDS = (
    "The quarterly maintenance window for the Helios cluster starts at 02:00 UTC. "
    "Operators must drain workloads, snapshot volumes, and announce the outage internationally. "
)


def test_auto_is_800_by_400_and_reported_as_static() -> None:
    auto = ChunkingStrategy.from_wire({"type": "auto"})
    assert (auto.max_tokens, auto.overlap_tokens) == (800, 400)
    assert ChunkingStrategy.from_wire(None) == auto
    assert auto.to_wire() == {
        "type": "static",
        "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
    }


@pytest.mark.parametrize(("size", "overlap"), [(99, 0), (4097, 0), (100, 51), (200, -1)])
def test_static_bounds(size: int, overlap: int) -> None:
    with pytest.raises(InvalidChunkingStrategy):
        ChunkingStrategy.from_wire(
            {
                "type": "static",
                "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap},
            }
        )


def test_static_accepts_edges() -> None:
    assert ChunkingStrategy.static(100, 50).max_tokens == 100
    assert ChunkingStrategy.static(4096, 2048).overlap_tokens == 2048


def test_chunks_respect_size_overlap_and_spans() -> None:
    text = WORDS * 60
    tok = minilm_tokenizer()
    total = tok.count(text)
    strategy = ChunkingStrategy.static(150, 50)
    chunks = chunk_text(text, tok, strategy)
    assert len(chunks) > 5
    for i, ch in enumerate(chunks):
        assert ch.index == i
        assert text[ch.char_start : ch.char_end] == ch.text
        assert ch.token_count <= 150
        # Spans never start or end inside a word.
        s, e = ch.char_start, ch.char_end
        assert s == 0 or not (text[s - 1].isalnum() and text[s].isalnum())
        assert e == len(text) or not (text[e - 1].isalnum() and text[e].isalnum())
        assert tok.count(ch.text) == ch.token_count
    for prev, nxt in itertools.pairwise(chunks):
        overlap = prev.token_end - nxt.token_start
        assert 0 < overlap <= 50
        assert nxt.token_start > prev.token_start
    assert chunks[0].token_start == 0 and chunks[-1].token_end == total
    # Every chunk but the last is close to full size (word snapping costs a few tokens).
    assert all(ch.token_count >= 140 for ch in chunks[:-1])


def test_short_text_is_one_chunk_and_empty_is_none() -> None:
    tok = minilm_tokenizer()
    chunks = chunk_text("Just one line.", tok, ChunkingStrategy.auto())
    assert [(c.text, c.char_start, c.char_end) for c in chunks] == [("Just one line.", 0, 14)]
    assert chunk_text("", tok, ChunkingStrategy.auto()) == []


def test_long_text_is_tokenized_in_pieces_with_correct_offsets() -> None:
    text = ("alpha beta gamma\n" * 10_000)[:-1]  # 170k chars, more than one tokenizer piece
    tok = minilm_tokenizer()
    offsets = tok.offsets(text)
    assert len(offsets) == 30_000
    assert all(text[s:e] in {"alpha", "beta", "gamma"} for s, e in offsets[::997])
    chunks = chunk_text(text, tok, ChunkingStrategy.auto())
    assert chunks[-1].char_end == len(text)
