"""The embedded default: the real bundled llama.cpp model behind runs (no scripted backend)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistantd.llm.router import build_model_router
from assistantd.testing.server import Server, make_settings, start_server

pytestmark = pytest.mark.llama


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = make_settings(tmp_path_factory.mktemp("llama"), llm_context_size=2048)
    srv, stop = start_server(settings, models=build_model_router(settings))
    yield srv
    stop()


def test_text_run_streams_from_the_real_model(llama_server: Server) -> None:
    with llama_server.client() as client:
        a = client.beta.assistants.create(
            model="gemma", instructions="Answer in one short sentence."
        )
        t = client.beta.threads.create(
            messages=[{"role": "user", "content": "What color is the sky?"}]
        )
        deltas: list[str] = []
        with client.beta.threads.runs.stream(
            thread_id=t.id, assistant_id=a.id, max_completion_tokens=256, temperature=0
        ) as stream:
            for delta in stream.text_deltas:
                deltas.append(delta)
            run = stream.get_final_run()
        assert run.status in ("completed", "incomplete")
        assert len(deltas) > 1 and "".join(deltas).strip()
        assert run.usage.completion_tokens > 0 and run.usage.prompt_tokens > 0
        msg = client.beta.threads.messages.list(t.id).data[0]
        assert msg.content[0].text.value == "".join(deltas)


def test_forced_tool_call_is_schema_valid(llama_server: Server) -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer"},
        },
        "required": ["city", "unit", "days"],
        "additionalProperties": False,
    }
    with llama_server.client() as client:
        a = client.beta.assistants.create(
            model="gemma",
            tools=[
                {"type": "function", "function": {"name": "get_forecast", "parameters": schema}}
            ],
        )
        t = client.beta.threads.create(
            messages=[{"role": "user", "content": "Forecast for Paris, 3 days."}]
        )
        run = client.beta.threads.runs.create_and_poll(
            thread_id=t.id,
            assistant_id=a.id,
            temperature=0,
            tool_choice={"type": "function", "function": {"name": "get_forecast"}},
        )
        assert run.status == "requires_action", run.last_error
        call = run.required_action.submit_tool_outputs.tool_calls[0]
        assert call.function.name == "get_forecast"
        args = json.loads(call.function.arguments)
        assert set(args) == {"city", "unit", "days"}
        assert isinstance(args["city"], str) and args["unit"] in ("celsius", "fahrenheit")
        assert isinstance(args["days"], int) and not isinstance(args["days"], bool)
        client.beta.threads.runs.cancel(run.id, thread_id=t.id)
        assert client.beta.threads.runs.poll(run.id, thread_id=t.id).status == "cancelled"


def test_bundled_model_file_is_found(tmp_path: Path) -> None:
    from assistantd.llm.llama_cpp import bundled_gguf_path

    assert bundled_gguf_path().stat().st_size > 100_000_000


def test_a_run_without_a_budget_stops_at_the_response_bound(tmp_path: Path) -> None:
    """A base model asked for something long may never end its turn; one response stops at
    ASSISTANTD_LLM_MAX_RESPONSE_TOKENS and the run ends as the contract's length stop."""
    settings = make_settings(tmp_path, llm_context_size=2048, llm_max_response_tokens=24)
    srv, stop = start_server(settings, models=build_model_router(settings))
    try:
        with srv.client() as client:
            a = client.beta.assistants.create(model="gemma", instructions="Write at great length.")
            t = client.beta.threads.create(
                messages=[
                    {
                        "role": "user",
                        "content": "Tell me a very long story about a dragon, in ten chapters.",
                    }
                ]
            )
            run = client.beta.threads.runs.create_and_poll(
                thread_id=t.id, assistant_id=a.id, temperature=0
            )
            assert run.status == "incomplete", run.last_error
            assert run.incomplete_details is not None
            assert run.incomplete_details.reason == "max_completion_tokens"
            assert run.usage is not None and run.usage.completion_tokens == 24
            msg = client.beta.threads.messages.list(t.id).data[0]
            assert msg.status == "incomplete" and msg.incomplete_details is not None
            assert msg.incomplete_details.reason == "max_tokens"
            assert msg.content[0].text.value.strip()
    finally:
        stop()
