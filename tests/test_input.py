"""Request input at the edge: bodies, paths, queries and headers that must never reach a 5xx."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import openai
import pytest

from assistantd.app import create_app
from assistantd.core.settings import Settings
from tests.conftest import Server


def _post_paths() -> list[str]:
    """Every POST route the app serves, from its own OpenAPI document."""
    paths = create_app(Settings(_env_file=None)).openapi()["paths"]  # type: ignore[call-arg]
    return sorted(p for p, ops in paths.items() if "post" in ops)


def _headers(server: Server, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.keys['alpha']}", "OpenAI-Beta": "assistants=v2", **extra}


@pytest.fixture(scope="module")
def objects(server: Server) -> dict[str, str]:
    """One of everything a POST path can name, in project alpha."""
    c = server.client()
    asst = c.beta.assistants.create(model="m")
    thread = c.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = c.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst.id)
    message = c.beta.threads.messages.list(thread.id).data[0]
    f = c.files.create(file=("a.txt", b"hello world"), purpose="assistants")
    vs = c.vector_stores.create(name="s", file_ids=[f.id])
    batch = c.vector_stores.file_batches.create_and_poll(vector_store_id=vs.id, file_ids=[f.id])
    return {"assistant_id": asst.id, "thread_id": thread.id, "run_id": run.id,
            "message_id": message.id, "file_id": f.id, "vector_store_id": vs.id, "batch_id": batch.id}


def _error(r: httpx.Response) -> Any:
    return r.json().get("error") if r.status_code >= 400 else None


@pytest.mark.parametrize("path", _post_paths())
def test_no_body_is_read_as_an_empty_object(server: Server, objects: dict[str, str], path: str) -> None:
    url = server.base_url.removesuffix("/v1") + path.format(**objects)
    bare = httpx.post(url, headers=_headers(server))  # no body, no content-type: the Node SDK
    typed = httpx.post(url, headers=_headers(server, **{"Content-Type": "application/json"}))
    empty = httpx.post(url, headers=_headers(server), json={})
    for r in (bare, typed, empty):
        assert r.status_code < 500, r.text
        err = _error(r)
        if err is None:
            continue
        assert "'None'" not in err["message"], err
        missing = re.fullmatch(r"Missing required parameter: '([^']+)'\.", err["message"])
        if missing:
            assert err["param"] == missing[1], err
    assert bare.status_code == typed.status_code == empty.status_code, (bare.text, empty.text)
    assert _error(bare) == _error(typed) == _error(empty)


def test_no_body_names_the_missing_field(server: Server) -> None:
    r = httpx.post(f"{server.base_url}/assistants", headers=_headers(server))
    assert r.status_code == 400
    assert r.json()["error"] == {"message": "Missing required parameter: 'model'.",
                                 "type": "invalid_request_error", "param": "model", "code": None}
    r = httpx.post(f"{server.base_url}/vector_stores", headers=_headers(server))
    assert r.status_code == 200 and r.json()["object"] == "vector_store"


@pytest.mark.parametrize("body", [b"null", b"[]", b'"x"', b"3"])
def test_a_body_that_is_not_an_object_is_named_as_the_body(server: Server, body: bytes) -> None:
    for path in ("/assistants", "/threads", "/vector_stores"):
        r = httpx.post(f"{server.base_url}{path}", content=body,
                       headers=_headers(server, **{"Content-Type": "application/json"}))
        if body == b"null" and path == "/threads":
            assert r.status_code == 200, r.text  # create-thread's body is optional: null is none
            continue
        assert r.status_code == 400, (path, body, r.text)
        assert r.json()["error"]["param"] is None
        assert "None" not in r.json()["error"]["message"], r.text


def test_sdk_create_without_arguments(client: openai.OpenAI) -> None:
    assert client.vector_stores.create().object == "vector_store"
    assert client.beta.threads.create().object == "thread"


def _deep(n: int) -> dict[str, Any]:
    v: dict[str, Any] = {}
    for _ in range(n - 1):
        v = {"a": v}
    return v


def _fn_tool(parameters: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "f", "parameters": parameters}}


def _raw(server: Server, path: str, body: bytes | dict[str, Any], method: str = "POST") -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.request(method, f"{server.base_url}{path}", content=content,
                         headers=_headers(server, **{"Content-Type": "application/json"}))


# (path template, body, param the 400 names); {a} is an assistant, {t} a thread.
HOSTILE_BODIES = [
    ("/threads/runs", {"assistant_id": "{a}", "max_prompt_tokens": 10**30}, "max_prompt_tokens"),
    ("/threads/{t}/runs", {"assistant_id": "{a}", "max_completion_tokens": 2**64}, "max_completion_tokens"),
    ("/threads/{t}/runs", {"assistant_id": "{a}", "max_prompt_tokens": -(2**70)}, "max_prompt_tokens"),
    ("/assistants", {"model": "m", "tools": [_fn_tool(_deep(500))]}, "tools"),
    ("/assistants", {"model": "m", "tools": [_fn_tool(_deep(250))]}, "tools"),
    ("/assistants", {"model": "m", "tools": [_fn_tool(_deep(70))]}, "tools[0].function.parameters"),
    ("/assistants", {"model": "m", "response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": _deep(65)}}}, "response_format.json_schema.schema"),
    ("/assistants/{a}", {"tools": [_fn_tool(_deep(300))]}, "tools"),
    ("/threads/{t}/messages", b'{"role": "user", "content": "\\ud800"}', "content"),
    ("/threads/{t}/messages", b'{"role": "user", "content": [{"type": "text", "text": "a\\udfffb"}]}',
     "content[0].text"),
    ("/threads", b'{"metadata": {"k": "\\ud83d"}}', "metadata.k"),
    ("/assistants", {"model": "m", "name": "a\x00b"}, "name"),
    ("/assistants", {"model": "m", "instructions": "x\x00"}, "instructions"),
    ("/assistants", {"model": "m\x00"}, "model"),
    ("/assistants", {"model": "m", "metadata": {"k\x00": "v"}}, "metadata"),
    ("/assistants/{a}", {"description": "\x00"}, "description"),
    ("/threads/{t}/messages", {"role": "user", "content": "x\x00y"}, "content"),
    ("/threads", {"messages": [{"role": "user", "content": "\x00"}]}, "messages[0].content"),
    ("/vector_stores", {"name": "\x00"}, "name"),
    ("/assistants", b'{"model": "m", "temperature": 1e999}', "temperature"),
]


@pytest.mark.parametrize(("path", "body", "param"), HOSTILE_BODIES,
                         ids=[f"{i}-{q}" for i, (_p, _b, q) in enumerate(HOSTILE_BODIES)])
def test_hostile_values_are_a_400_naming_the_parameter(server: Server, objects: dict[str, str], path: str,
                                                       body: bytes | dict[str, Any], param: str) -> None:
    ids = {"a": objects["assistant_id"], "t": objects["thread_id"]}
    if isinstance(body, dict):
        body = json.loads(json.dumps(body).replace('"{a}"', f'"{ids["a"]}"'))
    before = _raw(server, "/assistants?limit=100", b"", "GET").json()["data"]
    r = _raw(server, path.format(**ids), body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param, err
    assert f"'{param}'" in err["message"]
    # Nothing was stored, and every list still answers.
    assert _raw(server, "/assistants?limit=100", b"", "GET").json()["data"] == before
    assert _raw(server, f"/threads/{ids['t']}/messages", b"", "GET").status_code == 200
    assert _raw(server, "/vector_stores", b"", "GET").status_code == 200


def test_a_deep_schema_under_the_limit_is_stored_and_listed(server: Server) -> None:
    r = _raw(server, "/assistants", {"model": "m", "tools": [_fn_tool(_deep(64))]})
    assert r.status_code == 200, r.text
    assert r.json()["tools"][0]["function"]["parameters"] == _deep(64)
    listed = _raw(server, "/assistants?limit=100", b"", "GET")
    assert listed.status_code == 200 and r.json()["id"] in [a["id"] for a in listed.json()["data"]]


@pytest.mark.parametrize(("url", "param"), [
    ("/assistants/asst_%00", "assistant_id"), ("/threads/thread_%00/messages", "thread_id"),
    ("/threads/thread_x/runs/run_%00", "run_id"), ("/vector_stores/vs_%00/files", "vector_store_id"),
    ("/files/file-%00", "file_id"), ("/assistants?after=asst_%00", "after"),
    ("/assistants?before=%00", "before"), ("/threads/thread_x/messages?run_id=%00", "run_id"),
    ("/vector_stores/vs_x/files?filter=%00", "filter"),
])
def test_null_in_a_path_or_query_is_a_400_naming_it(server: Server, url: str, param: str) -> None:
    for method in ("GET", "POST", "DELETE"):
        r = httpx.request(method, f"{server.base_url}{url}", headers=_headers(server))
        assert r.status_code < 500, (method, r.text)
        if r.status_code == 400:
            err = r.json()["error"]
            assert "null character" in err["message"], err
            assert err["param"] == param, err
        assert r.status_code != 200, r.text


def test_json_constants_are_not_json(server: Server) -> None:
    for raw in (b'{"model": "m", "temperature": NaN}', b'{"model": "m", "top_p": Infinity}',
                b'{"model": "m", "temperature": -Infinity}'):
        r = _raw(server, "/assistants", raw)
        assert r.status_code == 400, r.text
        assert "could not parse the JSON body" in r.json()["error"]["message"]


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/vector_stores", {"chunking_strategy": {"type": None}}, "chunking_strategy.type"),
    ("/threads/{t}/messages", {"role": None, "content": "x"}, "role"),
    ("/assistants", {"model": "m", "tools": [{"type": None}]}, "tools[0].type"),
    ("/assistants", {"model": "m", "reasoning_effort": False}, "reasoning_effort"),
])
def test_null_values_are_shown_as_json(server: Server, objects: dict[str, str], path: str,
                                       body: dict[str, Any], param: str) -> None:
    r = _raw(server, path.format(t=objects["thread_id"]), body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and "'None'" not in err["message"] and "False" not in err["message"], err
