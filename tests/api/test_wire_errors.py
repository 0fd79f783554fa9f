"""Error answers OpenAI gives exactly: wrong methods, missing nested parameters, tool_choice."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from assistantd.testing.server import Server


def _headers(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.keys['alpha']}", "OpenAI-Beta": "assistants=v2"}


def _invalid_url(method: str, path: str) -> dict[str, Any]:
    return {
        "error": {
            "message": f"Invalid URL ({method} {path})",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/assistants"),
        ("DELETE", "/threads/thread_abc/messages"),
        ("PATCH", "/assistants/asst_abc"),
        ("PATCH", "/threads"),  # GET is the thread-list extension; PATCH is nothing
        ("POST", "/threads/thread_abc/runs/run_abc/steps"),
        ("GET", "/threads/thread_abc/runs/run_abc/cancel"),
        ("PUT", "/no/such/path"),
    ],
)
def test_wrong_method_or_path_is_404_invalid_url(server: Server, method: str, path: str) -> None:
    r = httpx.request(method, server.base_url + path, headers=_headers(server), json={})
    assert r.status_code == 404, r.text
    assert r.json() == _invalid_url(method, f"/v1{path}")


def _create_run(server: Server, client: openai.OpenAI, **body: Any) -> httpx.Response:
    a = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    t = client.beta.threads.create()
    return httpx.post(
        f"{server.base_url}/threads/{t.id}/runs",
        headers=_headers(server),
        json={"assistant_id": a.id, **body},
    )


def _bad_request(message: str, param: str) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    }


def test_json_schema_format_without_json_schema_names_the_nested_parameter(
    server: Server, client: openai.OpenAI
) -> None:
    r = _create_run(server, client, response_format={"type": "json_schema"})
    assert r.status_code == 400, r.text
    assert r.json() == _bad_request(
        "Missing required parameter: 'response_format.json_schema'.", "response_format.json_schema"
    )
    r = httpx.post(
        f"{server.base_url}/assistants",
        headers=_headers(server),
        json={"model": "m", "response_format": {"type": "json_schema"}},
    )
    assert r.status_code == 400, r.text
    assert r.json() == _bad_request(
        "Missing required parameter: 'response_format.json_schema'.", "response_format.json_schema"
    )


@pytest.mark.parametrize("kind", ["file_search", "code_interpreter"])
def test_tool_choice_naming_a_tool_the_run_lacks_is_400(
    server: Server, client: openai.OpenAI, kind: str
) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    r = _create_run(server, client, tools=tools, tool_choice={"type": kind})
    assert r.status_code == 400, r.text
    assert r.json() == _bad_request(
        f"Invalid 'tool_choice': tool '{kind}' is not one of the run's tools.", "tool_choice"
    )
    # With the tool, the same choice is accepted.
    r = _create_run(server, client, tools=[*tools, {"type": kind}], tool_choice={"type": kind})
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["tool_choice"] == {"type": kind}
    # Let the run end here: a run left going on the shared server would take the next test's
    # scripted turns.
    final = client.beta.threads.runs.poll(run["id"], thread_id=run["thread_id"])
    assert final.status in ("completed", "failed", "incomplete", "requires_action"), final
