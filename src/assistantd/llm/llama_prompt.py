"""How a `ChatRequest` becomes a llama.cpp prompt, and the grammars that constrain its output.

Small local models know nothing of OpenAI tool calling, so tools are described in the system
prompt and calls are written in one fixed shape that the backend detects and constrains:

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

Tool results go back as user turns wrapped in `<tool_response name="...">`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .base import ChatMessage, ChatRequest, ToolSpec, content_text

TOOL_CALL_MARKER = "<tool_call>"
CALL_PREFIX = TOOL_CALL_MARKER + '\n{"name": '
ARGUMENTS_PREFIX = ', "arguments": '
CALL_SUFFIX = "}\n</tool_call>"


@dataclass(slots=True)
class Turn:
    """A message as the chat template sees it: a role and plain text."""

    role: str  # "system" | "user" | "assistant"
    content: str


def render_call(name: str, arguments: str) -> str:
    return f"{CALL_PREFIX}{json.dumps(name)}{ARGUMENTS_PREFIX}{arguments or '{}'}{CALL_SUFFIX}"


def tools_instructions(tools: list[ToolSpec], tool_choice: str) -> str:
    described = [
        {"name": t.name, "description": t.description or "", "parameters": t.parameters}
        for t in tools
    ]
    if tool_choice == "auto":
        when = "When a function would help answer, call it; otherwise answer normally."
    else:
        when = "You must call a function now."
    return (
        "You can call these functions:\n"
        + json.dumps(described, indent=1)
        + "\n\nTo call a function, reply with exactly:\n"
        + render_call("function_name", '{"argument": "value"}')
        + f"\n\n{when}"
    )


def to_turns(request: ChatRequest, *, describe_tools: bool) -> list[Turn]:
    """The request's messages in the strict shape most chat templates demand.

    One system turn first, then user and assistant strictly alternating, starting with user.
    Tool calls become text in the call format; tool results become user turns.
    """
    names = {c.id: c.name for m in request.messages for c in m.tool_calls}
    # Content is text: the embedded model takes no images (`supports_images` is False), so
    # the prompt builder gave it placeholders; parts that still arrive become theirs.
    system = [content_text(m.content) for m in request.messages if m.role == "system" and m.content]
    if describe_tools and request.tools:
        system.append(tools_instructions(request.tools, request.tool_choice))
    turns: list[Turn] = [Turn("system", "\n\n".join(system))] if system else []
    for message in request.messages:
        if message.role == "system":
            continue
        role, text = _as_turn(message, names)
        if turns and turns[-1].role == role:
            turns[-1].content += "\n\n" + text
        elif role == "assistant" and (not turns or turns[-1].role == "system"):
            turns += [Turn("user", ""), Turn(role, text)]
        else:
            turns.append(Turn(role, text))
    return turns


def _as_turn(message: ChatMessage, names: dict[str, str]) -> tuple[str, str]:
    if message.role == "tool":
        name = names.get(message.tool_call_id or "", "function")
        return (
            "user",
            f'<tool_response name="{name}">\n{content_text(message.content)}\n</tool_response>',
        )
    if message.role == "assistant":
        parts = [content_text(message.content)] if message.content else []
        parts += [render_call(c.name, c.arguments) for c in message.tool_calls]
        return "assistant", "\n".join(parts)
    return "user", content_text(message.content)


def render_gemma(turns: list[Turn], bos: str) -> str:
    """Gemma's chat format; its templates fold the system prompt into the first user turn."""
    system = turns[0].content if turns and turns[0].role == "system" else ""
    out = [bos]
    for i, turn in enumerate(t for t in turns if t.role != "system"):
        role = "model" if turn.role == "assistant" else "user"
        text = f"{system}\n\n{turn.content}" if i == 0 and system else turn.content
        out.append(f"<start_of_turn>{role}\n{text.strip()}<end_of_turn>\n")
    out.append("<start_of_turn>model\n")
    return "".join(out)


def render_chatml(turns: list[Turn], bos: str) -> str:
    """ChatML, the format most instruction-tuned GGUFs without a template were trained on."""
    body = "".join(f"<|im_start|>{t.role}\n{t.content}<|im_end|>\n" for t in turns)
    return f"{body}<|im_start|>assistant\n"


# -- grammars -----------------------------------------------------------------------------

_ROOT_RE = re.compile(r"(?<![\w-])root(?![\w-])")


def gbnf_literal(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def names_grammar(tools: list[ToolSpec]) -> str:
    """Exactly one of the function names, as a JSON string."""
    return "root ::= " + " | ".join(gbnf_literal(json.dumps(t.name)) for t in tools)


def schema_grammar(schema: dict[str, Any]) -> str:
    """A GBNF accepting exactly the JSON documents `schema` allows (as far as llama.cpp can say)."""
    from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

    try:
        gbnf = str(json_schema_to_gbnf(json.dumps(schema)))
    except Exception:
        # A schema feature the converter does not know: any JSON object is better than
        # failing the run; the run engine still sees the arguments and may reject them.
        return str(JSON_GBNF)
    # The converter lets string characters include raw control characters (a newline in a
    # string value), which strict JSON parsers reject; exclude them as JSON does.
    return gbnf.replace(_LOOSE_CHAR, _STRICT_CHAR)


_LOOSE_CHAR = r'char ::= [^"\\] |'
_STRICT_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


def json_object_grammar() -> str:
    """Any JSON object (llama.cpp's JSON grammar has an object at its root)."""
    from llama_cpp.llama_grammar import JSON_GBNF

    return str(JSON_GBNF)


def or_tool_call(gbnf: str) -> str:
    """`gbnf`, or else the tool-call marker: lets a constrained answer still choose to call."""
    return (
        _ROOT_RE.sub("answer-root", gbnf)
        + f"\nroot ::= answer-root | {gbnf_literal(TOOL_CALL_MARKER)}\n"
    )


# After a call: either stop, or open the next call.
ANOTHER_CALL_GRAMMAR = f"root ::= ({gbnf_literal(chr(10) + TOOL_CALL_MARKER)})?"
