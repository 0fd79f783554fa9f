"""The chat-completions wire helpers that need no server: line splitting of an SSE body."""

from __future__ import annotations

import pytest

from assistantd.llm.base import RefusalDelta
from assistantd.llm.openai_wire import ChunkParser, LineSplitter

BODY = 'data: {"a": "é"}\r\n\r\ndata: [DONE]\n\n: keep-alive\rdata: x\r\rtail'
LINES = ['data: {"a": "é"}', "", "data: [DONE]", "", ": keep-alive", "data: x", "", "tail"]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_lines_split_the_same_whatever_the_chunking(size: int) -> None:
    raw = BODY.encode()
    splitter = LineSplitter()
    lines: list[str] = []
    for i in range(0, len(raw), size):  # chunks may split a CRLF or a UTF-8 character
        lines += splitter.feed(raw[i : i + size])
    lines += splitter.flush()
    assert lines == LINES


def test_flush_without_a_last_line_gives_nothing() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"data: 1\n\n") == ["data: 1", ""]
    assert splitter.flush() == []


def test_refusal_fragments_become_refusal_events() -> None:
    parser = ChunkParser()
    events = [
        e
        for chunk in (
            {
                "choices": [
                    {"index": 0, "delta": {"role": "assistant", "content": None, "refusal": ""}}
                ]
            },
            {"choices": [{"index": 0, "delta": {"refusal": "I can't"}}]},
            {"choices": [{"index": 0, "delta": {"refusal": " help."}, "finish_reason": "stop"}]},
        )
        for e in parser.feed(chunk)
    ]
    assert events == [RefusalDelta("I can't"), RefusalDelta(" help.")]
    whole = list(
        ChunkParser().feed(
            {
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": None, "refusal": "No."},
                    }
                ]
            }
        )
    )
    assert whole == [RefusalDelta("No.")]
