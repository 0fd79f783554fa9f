"""What the model sees (`worker/request.py`), built from a run and its context without a
database: the prompt, the token budget, the tools, and what the tools see."""

from __future__ import annotations

from typing import Any

import pytest

from assistantd.runs.objects import new_step
from assistantd.runs.state import StepState, StoredStep
from assistantd.testing.runs import run_body
from assistantd.testing.scripted import ScriptedBackend
from assistantd.worker.request import COMPLETION_RESERVE, OverBudget, build_chat_request, tool_view
from assistantd.worker.store import RunContext
from assistantd.worker.tools.base import ServerTool
from assistantd.worker.tools.file_search import FileSearchTool

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object"}},
}


def _run(**over: Any) -> dict[str, Any]:
    return run_body(
        **{
            "thread_id": "thread_1",
            "assistant_id": "asst_1",
            "instructions": "Be brief.",
            "temperature": 0.5,
            "top_p": 0.9,
            **over,
        }
    )


def _message(role: str, text: str, **over: Any) -> dict[str, Any]:
    return {
        "id": f"msg_{text[:4]}",
        "role": role,
        "attachments": [],
        "content": [{"type": "text", "text": {"value": text, "annotations": []}}],
        **over,
    }


def _context(
    *history: dict[str, Any],
    steps: list[StoredStep] | None = None,
    thread: dict[str, Any] | None = None,
    assistant: dict[str, Any] | None = None,
) -> RunContext:
    return RunContext(
        history=list(history),
        steps=steps or [],
        own_messages={},
        thread=thread,
        assistant=assistant,
    )


TOOLS: dict[str, ServerTool] = {"file_search": FileSearchTool(None)}  # type: ignore[arg-type]


def test_the_prompt_is_the_instructions_then_the_thread() -> None:
    context = _context(
        _message("user", "What is the weather?"),
        _message("assistant", "Sunny."),
        _message("user", "And tomorrow?"),
    )
    request = build_chat_request(context, _run(), ScriptedBackend([]), "served-name", TOOLS)
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "Be brief."),
        ("user", "What is the weather?"),
        ("assistant", "Sunny."),
        ("user", "And tomorrow?"),
    ]
    assert request.model == "served-name"
    assert (request.temperature, request.top_p, request.max_tokens) == (0.5, 0.9, None)
    assert request.tools == [] and request.tool_choice == "none"  # nothing to call
    assert request.response_format is None and request.parallel_tool_calls is True


def test_no_instructions_no_system_message() -> None:
    request = build_chat_request(
        _context(_message("user", "hi")), _run(instructions=""), ScriptedBackend([]), "m", TOOLS
    )
    assert [m.role for m in request.messages] == ["user"]


def test_tools_are_the_functions_then_the_server_tools() -> None:
    run = _run(
        tools=[{"type": "file_search"}, WEATHER],
        parallel_tool_calls=False,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        response_format={"type": "json_object"},
    )
    request = build_chat_request(
        _context(_message("user", "hi")), run, ScriptedBackend([]), "m", TOOLS
    )
    assert [t.name for t in request.tools] == ["get_weather", "file_search"]
    assert request.tool_choice == "get_weather"
    assert request.parallel_tool_calls is False
    assert request.response_format == {"type": "json_object"}
    named = build_chat_request(
        _context(_message("user", "hi")),
        _run(tools=[{"type": "file_search"}], tool_choice={"type": "file_search"}),
        ScriptedBackend([]),
        "m",
        TOOLS,
    )
    assert named.tool_choice == "file_search"
    unknown = build_chat_request(
        _context(_message("user", "hi")),
        _run(tools=[{"type": "code_interpreter"}]),
        ScriptedBackend([]),
        "m",
        TOOLS,
    )
    assert unknown.tools == [] and unknown.tool_choice == "none"  # no such tool in this process


def test_the_completion_budget_is_what_the_run_has_left() -> None:
    context = _context(_message("user", "hi"))
    request = build_chat_request(
        context,
        _run(max_completion_tokens=150),
        ScriptedBackend([]),
        "m",
        TOOLS,
        used=(10, 100),
    )
    assert request.max_tokens == 50
    with pytest.raises(OverBudget) as spent:
        build_chat_request(
            context,
            _run(max_completion_tokens=100),
            ScriptedBackend([]),
            "m",
            TOOLS,
            used=(10, 100),
        )
    assert spent.value.reason == "max_completion_tokens"


def test_a_prompt_over_max_prompt_tokens_is_refused() -> None:
    context = _context(_message("user", "a fairly long question " * 20))
    with pytest.raises(OverBudget) as over:
        build_chat_request(context, _run(max_prompt_tokens=5), ScriptedBackend([]), "m", TOOLS)
    assert over.value.reason == "max_prompt_tokens"


def test_auto_truncation_keeps_the_newest_messages_within_the_window() -> None:
    backend = ScriptedBackend([], context_window=COMPLETION_RESERVE + 60)
    history = [
        _message("user" if k % 2 == 0 else "assistant", f"message number {k} " + "word " * 10)
        for k in range(20)
    ]
    request = build_chat_request(_context(*history), _run(), backend, "m", TOOLS)
    kept = [m.content for m in request.messages if m.role != "system"]
    assert 0 < len(kept) < 20
    assert kept[-1] == history[-1]["content"][0]["text"]["value"]


def test_the_tools_see_resources_stores_the_last_question_and_earlier_citations() -> None:
    run = _run(tool_resources={"file_search": {"vector_store_ids": ["vs_run"]}})
    earlier = new_step(
        run,
        "tool_calls",
        {
            "type": "tool_calls",
            "tool_calls": [
                {"id": "call_1", "type": "file_search", "file_search": {}},
                {"id": "call_2", "type": "code_interpreter", "code_interpreter": {}},
                {"id": "call_3", "type": "file_search", "file_search": {}},
            ],
        },
    )
    call: Any = {"output": "", "model_call": {"name": "n", "arguments": "{}"}}
    kept = StepState(
        calls={
            "call_1": {**call, "citations": [["file_a", "a.txt"], ["file_b", "b.txt"]]},
            "call_2": {**call, "files": {"/mnt/data/out.csv": "file_out"}},
            "call_3": {**call, "citations": [["file_c", "c.txt"]]},
        }
    )
    context = _context(
        _message("user", "first"),
        _message("assistant", "answer"),
        _message(
            "user",
            "second",
            attachments=[{"file_id": "file_att", "tools": [{"type": "code_interpreter"}]}],
        ),
        steps=[StoredStep(earlier, kept)],
        thread={"tool_resources": {"file_search": {"vector_store_ids": ["vs_thread"]}}},
        assistant={
            "tool_resources": {
                "code_interpreter": {"file_ids": ["file_asst"]},
                "file_search": {"vector_store_ids": ["vs_asst"]},
            }
        },
    )
    view = tool_view(context, run)
    assert view.last_user_text == "second"
    assert view.thread_stores == ["vs_thread", "vs_run"]
    # The run's own file_search resources replace the assistant's for this run.
    assert view.resources == {
        "code_interpreter": ["file_asst", "file_att"],
        "file_search": ["vs_run", "vs_thread"],
    }
    assert view.file_search_calls == 2
    assert view.annotator.citations == {(0, 0): "file_a", (0, 1): "file_b", (1, 0): "file_c"}
    assert view.annotator.sandbox_files == {"/mnt/data/out.csv": "file_out"}
