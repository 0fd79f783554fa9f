"""Request input at the edge: bodies, paths, queries and headers that must never reach a 5xx."""

from __future__ import annotations

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
