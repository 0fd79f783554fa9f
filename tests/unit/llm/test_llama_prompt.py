"""How requests become prompts for the embedded model (no model needed)."""

from __future__ import annotations

from assistantd.llm.base import ChatMessage, ChatRequest, ToolCall, ToolSpec
from assistantd.llm.llama_cpp import _marker_prefix_length
from assistantd.llm.llama_prompt import (
    Turn,
    gbnf_literal,
    names_grammar,
    or_tool_call,
    render_gemma,
    to_turns,
)

WEATHER = ToolSpec("get_weather", "Weather", {"type": "object", "properties": {}})


def test_turns_alternate_and_carry_tool_calls_as_text() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            ChatMessage("system", "Be brief."),
            ChatMessage("assistant", "Hello, how can I help?"),
            ChatMessage("user", "Weather in Oslo?"),
            ChatMessage("user", "And quickly."),
            ChatMessage("assistant", None, [ToolCall("call_1", "get_weather", '{"city": "Oslo"}')]),
            ChatMessage("tool", "rain", tool_call_id="call_1"),
        ],
        tools=[WEATHER],
    )
    turns = to_turns(request, describe_tools=True)
    assert [t.role for t in turns] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert turns[0].content.startswith("Be brief.") and '"get_weather"' in turns[0].content
    assert turns[1].content == ""  # templates need a user turn before the first assistant one
    assert turns[3].content == "Weather in Oslo?\n\nAnd quickly."
    assert turns[4].content == (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    )
    assert turns[5].content == '<tool_response name="get_weather">\nrain\n</tool_response>'


def test_gemma_format_folds_the_system_prompt_into_the_first_user_turn() -> None:
    prompt = render_gemma([Turn("system", "Be brief."), Turn("user", "Hi")], "<bos>")
    assert prompt == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    )


def test_grammar_helpers() -> None:
    assert gbnf_literal('"a"\n') == r'"\"a\"\n"'
    assert names_grammar([WEATHER, ToolSpec("get_time")]) == (
        r'root ::= "\"get_weather\"" | "\"get_time\""'
    )
    combined = or_tool_call('root ::= "{" space "}"\nroot-x ::= root\nspace ::= " "?')
    assert 'answer-root ::= "{" space "}"' in combined
    assert "root-x ::= answer-root" in combined
    assert combined.rstrip().endswith('root ::= answer-root | "<tool_call>"')


def test_marker_prefix_is_held_back() -> None:
    assert _marker_prefix_length("Sure <tool") == len("<tool")
    assert _marker_prefix_length("Sure <") == 1
    assert _marker_prefix_length("Sure.") == 0
