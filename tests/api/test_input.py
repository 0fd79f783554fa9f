"""Request input at the edge: bodies, paths, queries and headers that must never reach a 5xx."""

from __future__ import annotations

import json
import re
import socket
import time
from typing import Any

import httpx
import openai
import pytest

from assistantd.app import create_app
from assistantd.core.settings import Settings
from assistantd.testing.server import Server


def _post_paths() -> list[str]:
    """Every POST route the app serves, from its own OpenAPI document."""
    paths = create_app(Settings(_env_file=None)).openapi()["paths"]  # type: ignore[call-arg]
    return sorted(p for p, ops in paths.items() if "post" in ops)


def _headers(server: Server, key: str = "alpha", **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.keys[key]}", "OpenAI-Beta": "assistants=v2", **extra}


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
    with server.admin_client() as admin:
        project = admin.admin.organization.projects.create(name="input")
        account = admin.admin.organization.projects.service_accounts.create(
            project.id, name="input"
        )
    return {
        "assistant_id": asst.id,
        "thread_id": thread.id,
        "run_id": run.id,
        "message_id": message.id,
        "file_id": f.id,
        "vector_store_id": vs.id,
        "batch_id": batch.id,
        "project_id": project.id,
        "service_account_id": account.id,
        "rate_limit_id": "rl-m",
    }


def _error(r: httpx.Response) -> Any:
    return r.json().get("error") if r.status_code >= 400 else None


@pytest.mark.parametrize("path", _post_paths())
def test_no_body_is_read_as_an_empty_object(
    server: Server, objects: dict[str, str], path: str
) -> None:
    url = server.base_url.removesuffix("/v1") + path.format(**objects)
    key = "admin" if path.startswith("/v1/organization/") else "alpha"
    bare = httpx.post(url, headers=_headers(server, key))  # no body, no content-type: the Node SDK
    typed = httpx.post(url, headers=_headers(server, key, **{"Content-Type": "application/json"}))
    empty = httpx.post(url, headers=_headers(server, key), json={})
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
    assert r.json()["error"] == {
        "message": "Missing required parameter: 'model'.",
        "type": "invalid_request_error",
        "param": "model",
        "code": None,
    }
    r = httpx.post(f"{server.base_url}/vector_stores", headers=_headers(server))
    assert r.status_code == 200 and r.json()["object"] == "vector_store"


@pytest.mark.parametrize("body", [b"null", b"[]", b'"x"', b"3"])
def test_a_body_that_is_not_an_object_is_named_as_the_body(server: Server, body: bytes) -> None:
    for path in ("/assistants", "/threads", "/vector_stores"):
        r = httpx.post(
            f"{server.base_url}{path}",
            content=body,
            headers=_headers(server, **{"Content-Type": "application/json"}),
        )
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


def _raw(
    server: Server, path: str, body: bytes | dict[str, Any], method: str = "POST"
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.request(
        method,
        f"{server.base_url}{path}",
        content=content,
        headers=_headers(server, **{"Content-Type": "application/json"}),
    )


# (path template, body, param the 400 names); {a} is an assistant, {t} a thread.
HOSTILE_BODIES = [
    ("/threads/runs", {"assistant_id": "{a}", "max_prompt_tokens": 10**30}, "max_prompt_tokens"),
    (
        "/threads/{t}/runs",
        {"assistant_id": "{a}", "max_completion_tokens": 2**64},
        "max_completion_tokens",
    ),
    (
        "/threads/{t}/runs",
        {"assistant_id": "{a}", "max_prompt_tokens": -(2**70)},
        "max_prompt_tokens",
    ),
    ("/assistants", {"model": "m", "tools": [_fn_tool(_deep(500))]}, "tools"),
    ("/assistants", {"model": "m", "tools": [_fn_tool(_deep(250))]}, "tools"),
    ("/assistants", {"model": "m", "tools": [_fn_tool(_deep(70))]}, "tools[0].function.parameters"),
    (
        "/assistants",
        {
            "model": "m",
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": _deep(65)},
            },
        },
        "response_format.json_schema.schema",
    ),
    ("/assistants/{a}", {"tools": [_fn_tool(_deep(300))]}, "tools"),
    ("/threads/{t}/messages", b'{"role": "user", "content": "\\ud800"}', "content"),
    (
        "/threads/{t}/messages",
        b'{"role": "user", "content": [{"type": "text", "text": "a\\udfffb"}]}',
        "content[0].text",
    ),
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


@pytest.mark.parametrize(
    ("path", "body", "param"),
    HOSTILE_BODIES,
    ids=[f"{i}-{q}" for i, (_p, _b, q) in enumerate(HOSTILE_BODIES)],
)
def test_hostile_values_are_a_400_naming_the_parameter(
    server: Server, objects: dict[str, str], path: str, body: bytes | dict[str, Any], param: str
) -> None:
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


@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("/assistants/asst_%00", "assistant_id"),
        ("/threads/thread_%00/messages", "thread_id"),
        ("/threads/thread_x/runs/run_%00", "run_id"),
        ("/vector_stores/vs_%00/files", "vector_store_id"),
        ("/files/file-%00", "file_id"),
        ("/assistants?after=asst_%00", "after"),
        ("/assistants?before=%00", "before"),
        ("/threads/thread_x/messages?run_id=%00", "run_id"),
        ("/vector_stores/vs_x/files?filter=%00", "filter"),
    ],
)
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
    for raw in (
        b'{"model": "m", "temperature": NaN}',
        b'{"model": "m", "top_p": Infinity}',
        b'{"model": "m", "temperature": -Infinity}',
    ):
        r = _raw(server, "/assistants", raw)
        assert r.status_code == 400, r.text
        assert "could not parse the JSON body" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/vector_stores", {"chunking_strategy": {"type": None}}, "chunking_strategy.type"),
        ("/threads/{t}/messages", {"role": None, "content": "x"}, "role"),
        ("/assistants", {"model": "m", "tools": [{"type": None}]}, "tools[0].type"),
        ("/assistants", {"model": "m", "reasoning_effort": False}, "reasoning_effort"),
    ],
)
def test_null_values_are_shown_as_json(
    server: Server, objects: dict[str, str], path: str, body: dict[str, Any], param: str
) -> None:
    r = _raw(server, path.format(t=objects["thread_id"]), body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (
        err["param"] == param and "'None'" not in err["message"] and "False" not in err["message"]
    ), err


# -- size limits, malformed uploads ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/threads/{t}/messages", {"role": "user", "content": "x" * 256_001}, "content"),
        (
            "/threads/{t}/messages",
            {"role": "user", "content": [{"type": "text", "text": "x" * 256_001}]},
            "content[0].text",
        ),
        (
            "/threads",
            {"messages": [{"role": "user", "content": "x" * 256_001}]},
            "messages[0].content",
        ),
        (
            "/threads/runs",
            {
                "assistant_id": "{a}",
                "thread": {"messages": [{"role": "user", "content": "é" * 256_001}]},
            },
            "thread.messages[0].content",
        ),
        (
            "/threads/{t}/runs",
            {
                "assistant_id": "{a}",
                "additional_messages": [{"role": "user", "content": "x" * 256_001}],
            },
            "additional_messages[0].content",
        ),
        ("/assistants", {"model": "m", "instructions": "i" * 256_001}, "instructions"),
        ("/assistants/{a}", {"name": "n" * 257}, "name"),
        ("/assistants/{a}", {"description": "d" * 513}, "description"),
        ("/assistants/{a}", {"tools": [{"type": "code_interpreter"}] * 129}, "tools"),
        ("/vector_stores", {"name": "n" * 257}, "name"),
        ("/vector_stores", {"description": "d" * 513}, "description"),
        ("/assistants", {"model": "m", "tool_resources": "abc"}, "tool_resources"),
        ("/assistants", {"model": "m", "tool_resources": []}, "tool_resources"),
        ("/assistants/{a}", {"tool_resources": 3}, "tool_resources"),
        (
            "/assistants/{a}",
            {"tool_resources": {"code_interpreter": "x"}},
            "tool_resources.code_interpreter",
        ),
        (
            "/assistants/{a}",
            {"tool_resources": {"code_interpreter": {"file_ids": "file-x"}}},
            "tool_resources.code_interpreter.file_ids",
        ),
        ("/threads", {"tool_resources": ["x"]}, "tool_resources"),
        ("/threads/{t}", {"tool_resources": "x"}, "tool_resources"),
        ("/threads/{t}", {"tool_resources": {"file_search": []}}, "tool_resources.file_search"),
        ("/threads/runs", {"assistant_id": "{a}", "tool_resources": True}, "tool_resources"),
        (
            "/threads/runs",
            {"assistant_id": "{a}", "thread": {"tool_resources": "x"}},
            "thread.tool_resources",
        ),
    ],
)
def test_limits_and_types_are_a_400_naming_the_parameter(
    server: Server, objects: dict[str, str], path: str, body: dict[str, Any], param: str
) -> None:
    ids = {"a": objects["assistant_id"], "t": objects["thread_id"]}
    body = json.loads(json.dumps(body).replace('"{a}"', f'"{ids["a"]}"'))
    messages = _raw(server, f"/threads/{ids['t']}/messages?limit=100", b"", "GET").json()["data"]
    r = _raw(server, path.format(**ids), body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param, err
    if "too long" in err["message"]:
        assert "maximum length" in err["message"] and f"Invalid '{param}'" in err["message"], err
    assert (
        _raw(server, f"/threads/{ids['t']}/messages?limit=100", b"", "GET").json()["data"]
        == messages
    )


def test_content_at_the_limit_is_accepted(server: Server, objects: dict[str, str]) -> None:
    t = objects["thread_id"]
    r = _raw(server, f"/threads/{t}/messages", {"role": "user", "content": "x" * 256_000})
    assert r.status_code == 200, r.text
    assert len(r.json()["content"][0]["text"]["value"]) == 256_000
    r = _raw(
        server,
        f"/threads/{t}/messages",
        {"role": "user", "content": [{"type": "text", "text": "é" * 256_000}]},
    )
    assert r.status_code == 200, r.text


def test_a_body_past_the_limit_is_413(server: Server) -> None:
    limit = server.settings.max_json_body_bytes
    before = _raw(server, "/assistants?limit=100", b"", "GET").json()["data"]
    big = json.dumps({"model": "m", "pad": "x" * limit}).encode()
    for body in (big, iter([big[:1000], big[1000:]])):  # with a content-length, and chunked
        r = httpx.post(
            f"{server.base_url}/assistants",
            content=body,
            headers=_headers(server, **{"Content-Type": "application/json"}),
        )
        assert r.status_code == 413, r.text
        err = r.json()["error"]
        assert (
            err["type"] == "invalid_request_error"
            and "ASSISTANTD_MAX_JSON_BODY_BYTES" in err["message"]
        )
    assert _raw(server, "/assistants?limit=100", b"", "GET").json()["data"] == before
    # Under the limit, unknown fields are ignored as always.
    fits = _raw(server, "/assistants", {"model": "m", "pad": "x" * (limit - 100)})
    assert fits.status_code == 200, fits.text[:300]


def _multipart(boundary: str, content: bytes) -> bytes:
    return (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )


def _stored_files(server: Server) -> tuple[list[str], set[str]]:
    from assistantd.files.storage import project_dir

    listed = [f["id"] for f in _raw(server, "/files", b"", "GET").json()["data"]]
    directory = project_dir(server.settings.data_dir, "alpha")
    return listed, {p.name for p in directory.rglob("*")} if directory.exists() else set()


@pytest.mark.parametrize(
    "cut",
    [
        "in the data",
        "before the closing boundary",
        "after a boundary",
        "in the part headers",
        "in the first boundary",
        "no boundary at all",
    ],
)
def test_a_truncated_upload_stores_nothing(server: Server, cut: str) -> None:
    whole = _multipart("XyZ", b"hello world, a file of some length")
    body = {
        "in the data": whole[: whole.index(b"hello") + 3],
        "before the closing boundary": whole[: whole.rindex(b"\r\n--XyZ--")],
        "after a boundary": whole[: whole.rindex(b"--XyZ--") + 5] + b"\r\n",
        "in the part headers": whole[: whole.index(b"filename=") + 4],
        "in the first boundary": whole[:4],
        "no boundary at all": b"hello world",
    }[cut]
    before = _stored_files(server)
    r = httpx.post(
        f"{server.base_url}/files",
        content=body,
        headers=_headers(server, **{"Content-Type": "multipart/form-data; boundary=XyZ"}),
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert _stored_files(server) == before
    # The whole body is a file.
    r = httpx.post(
        f"{server.base_url}/files",
        content=whole,
        headers=_headers(server, **{"Content-Type": "multipart/form-data; boundary=XyZ"}),
    )
    assert r.status_code == 200 and r.json()["bytes"] == len(b"hello world, a file of some length")


def test_an_upload_cut_by_the_client_stores_nothing(server: Server) -> None:
    whole = _multipart("XyZ", b"x" * 100_000)
    before = _stored_files(server)
    host, port = server.base_url.removeprefix("http://").split("/")[0].split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(
            (
                f"POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.keys['alpha']}\r\n"
                "Content-Type: multipart/form-data; boundary=XyZ\r\n"
                f"Content-Length: {len(whole)}\r\n\r\n"
            ).encode()
            + whole[:50_000]
        )
    time.sleep(0.5)  # the server sees the disconnect and cleans up
    assert _stored_files(server) == before


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/cat.png",
        "file:///etc/passwd",
        "data:image/png;base64,iVBORw0KGgo=",
        "gopher://example.com/cat.png",
        "https://",
        "cat.png",
    ],
)
def test_an_image_url_must_be_an_external_http_url(client: openai.OpenAI, url: str) -> None:
    """OpenAI's 400 for an `image_url` that is not an http(s) URL (its words for a `data:`
    URL, "Expected a valid URL"), naming the part, wherever the message comes from; nothing
    is stored."""
    a = client.beta.assistants.create(model="m")
    thread = client.beta.threads.create()
    bad: list[Any] = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    attempts: list[tuple[str, Any]] = [
        (
            "content[1].image_url.url",
            lambda: client.beta.threads.messages.create(thread.id, role="user", content=bad),
        ),
        (
            "messages[0].content[1].image_url.url",
            lambda: client.beta.threads.create(messages=[{"role": "user", "content": bad}]),
        ),
        (
            "additional_messages[0].content[1].image_url.url",
            lambda: client.beta.threads.runs.create(
                thread.id,
                assistant_id=a.id,
                additional_messages=[{"role": "user", "content": bad}],
            ),
        ),
    ]

    def newest_thread() -> str:  # `GET /v1/threads` is an extension the SDK has no method for
        page = client.get("/threads?limit=1", cast_to=httpx.Response)
        return str(page.json()["data"][0]["id"])

    assert newest_thread() == thread.id
    for param, call in attempts:
        with pytest.raises(openai.BadRequestError) as e:
            call()
        assert e.value.body == {
            "message": f"Invalid '{param}'. Expected a valid URL, but got a value with an "
            "invalid format.",
            "type": "invalid_request_error",
            "param": param,
            "code": None,
        }
    assert client.beta.threads.messages.list(thread.id).data == []
    assert client.beta.threads.runs.list(thread.id).data == []
    assert newest_thread() == thread.id  # threads.create stored no thread


def test_an_https_image_url_is_kept_as_given(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    url = "HTTPS://Example.com/cats/a%20cat.png?size=2"
    m = client.beta.threads.messages.create(
        thread.id, role="user", content=[{"type": "image_url", "image_url": {"url": url}}]
    )
    assert m.content[0].image_url.url == url  # type: ignore[union-attr]
