"""Property-based fuzzing of every create and modify endpoint: no input reaches a 5xx.

Each endpoint starts from a body it accepts; Hypothesis then puts hostile values (integers
past 64 bits, NaN and infinities, NUL and lone surrogates, deep nesting, over-long strings,
wrong types) at any place in it, adds hostile keys, or sends bytes that are not JSON. Every
answer must be below 500 and, when an error, OpenAI's envelope without a `'None'` parameter;
every list must still answer afterwards. The examples are derandomized and counted, so the
run is the same each time and takes about half a minute per database.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistantd.llm.base import ChatRequest
from assistantd.testing.scripted import ScriptedBackend, text_turn, tool_call_turn
from assistantd.testing.server import Server, echo

EXAMPLES = 25
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ],
)

# -- hostile values ----------------------------------------------------------------------

HUGE_INTS = (
    st.sampled_from(
        [2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, -(10**40), 2**1000]
    )
    | st.integers()
)
ODD_FLOATS = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324]) | st.floats()
CHARS = st.characters() | st.characters(categories=["Cs"]) | st.sampled_from(["\x00", "\uffff"])
ODD_TEXT = st.sampled_from(
    [
        "\x00",
        "a\x00b",
        "\ud800",
        "x\udfffy",
        "\ud83d",
        "",
        " ",
        "asst_\x00",
        "x" * 257,
        "x" * 513,
        "x" * 256_001,
    ]
) | st.text(CHARS, max_size=12)


def _nest(depth: int, as_list: bool) -> Any:
    v: Any = {}
    for i in range(depth - 1):
        v = [v] if as_list and i % 2 else {"p": v}
    return v


DEEP = st.builds(_nest, st.sampled_from([63, 64, 65, 70, 96, 97, 200, 400]), st.booleans())
SCALARS = st.none() | st.booleans() | HUGE_INTS | ODD_FLOATS | ODD_TEXT
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD_TEXT, inner, max_size=3),
    max_leaves=6,
)
HOSTILE = SCALARS | JSON_VALUES | DEEP | st.lists(SCALARS, min_size=129, max_size=130)
KEYS = ODD_TEXT | st.sampled_from(
    [
        "metadata",
        "tools",
        "tool_resources",
        "model",
        "name",
        "instructions",
        "content",
        "file_ids",
        "max_prompt_tokens",
        "max_completion_tokens",
        "attributes",
        "chunking_strategy",
        "stream",
    ]
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Where a change may go: every node down to the depth of a real body (not into a
    deep value put there by an earlier change)."""
    yield prefix
    if len(prefix) >= 8:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _put(body: Any, path: tuple[Any, ...], value: Any, as_new_key: Any = None) -> Any:
    if not path and as_new_key is None:
        return value
    node = body
    for p in path[:-1] if as_new_key is None else path:
        node = node[p]
    if as_new_key is not None:
        if isinstance(node, dict):
            node[as_new_key] = value
        elif isinstance(node, list):
            node.append(value)
        return body
    node[path[-1]] = value
    return body


@st.composite
def hostile_bodies(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    """`base` with one to three hostile changes, or bytes that are not quite JSON."""
    kind = draw(st.sampled_from(["mutate"] * 8 + ["raw"]))
    if kind == "raw":
        text = json.dumps(base)
        return draw(
            st.sampled_from(
                [
                    text[: draw(st.integers(0, max(0, len(text) - 1)))].encode(),
                    text.replace("}", ", }", 1).encode(),
                    b"\xff\xfe" + text.encode(),
                    text.encode("utf-16"),
                    b'{"a": ' * 100_000,
                    b"[" * 5000 + b"]" * 5000,
                    b'{"model": "m", "temperature": NaN}',
                    b'{"model": "m", "x": 1' + b"0" * 5000 + b"}",
                ]
            )
        )
    body = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(body))
        path = draw(st.sampled_from(paths))
        value = draw(HOSTILE)
        if draw(st.booleans()) and isinstance(_get(body, path), dict | list):
            body = _put(body, path, value, as_new_key=draw(KEYS))
        else:
            body = _put(body, path, value)
    return json.dumps(body, allow_nan=True).encode()


def _get(body: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        body = body[p]
    return body


# -- the endpoints -------------------------------------------------------------------------

FN = {
    "type": "function",
    "function": {
        "name": "f",
        "description": "d",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
MESSAGE = {
    "role": "user",
    "content": [{"type": "text", "text": "hi"}],
    "metadata": {"k": "v"},
    "attachments": [],
}


def _endpoints(o: dict[str, Any]) -> dict[str, tuple[Callable[[], str], dict[str, Any], str]]:
    """name → (path maker, a body the endpoint accepts, the list that must still answer)."""

    def fresh_thread() -> str:  # a run locks its thread: each example gets its own
        thread = httpx.post(f"{o['base_url']}/threads", json={}, headers=o["headers"]).json()
        return f"/threads/{thread['id']}/runs"

    def waiting_run() -> str:  # a run that waits for the output of call_x (see `objects`)
        run = httpx.post(
            f"{o['base_url']}/threads/runs",
            headers=o["headers"],
            json={
                "assistant_id": o["assistant_id"],
                "tools": [FN],
                "thread": {"messages": [MESSAGE]},
            },
        ).json()
        path = f"/threads/{run['thread_id']}/runs/{run['id']}"
        while run["status"] in ("queued", "in_progress"):
            run = httpx.get(f"{o['base_url']}{path}", headers=o["headers"]).json()
        o["call_x"] = run["required_action"]["submit_tool_outputs"]["tool_calls"][0]["id"]
        return f"{path}/submit_tool_outputs"

    assistant = {
        "model": "m",
        "name": "n",
        "description": "d",
        "instructions": "i",
        "tools": [FN],
        "metadata": {"k": "v"},
        "temperature": 1,
        "top_p": 1,
        "tool_resources": {"code_interpreter": {"file_ids": []}},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "s", "schema": {"type": "object"}, "strict": True},
        },
    }
    run = {
        "assistant_id": o["assistant_id"],
        "instructions": "i",
        "tools": [FN],
        "metadata": {"k": "v"},
        "max_prompt_tokens": 1000,
        "max_completion_tokens": 1000,
        "temperature": 1,
        "truncation_strategy": {"type": "last_messages", "last_messages": 2},
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "response_format": "auto",
    }
    t, vs = f"/threads/{o['thread_id']}", f"/vector_stores/{o['vector_store_id']}"
    return {
        "create_assistant": (lambda: "/assistants", assistant, "/assistants"),
        "modify_assistant": (
            lambda: f"/assistants/{o['assistant_id']}",
            {k: v for k, v in assistant.items() if k != "model"},
            "/assistants",
        ),
        "create_thread": (
            lambda: "/threads",
            {
                "messages": [MESSAGE],
                "metadata": {"k": "v"},
                "tool_resources": {"file_search": {"vector_store_ids": []}},
            },
            f"{t}/messages",
        ),
        "modify_thread": (
            lambda: t,
            {"metadata": {"k": "v"}, "tool_resources": {}},
            f"{t}/messages",
        ),
        "create_message": (lambda: f"{t}/messages", MESSAGE, f"{t}/messages"),
        "modify_message": (
            lambda: f"{t}/messages/{o['message_id']}",
            {"metadata": {"k": "v"}},
            f"{t}/messages",
        ),
        "create_thread_and_run": (
            lambda: "/threads/runs",
            {**run, "thread": {"messages": [MESSAGE]}},
            "/assistants",
        ),
        "create_run": (
            fresh_thread,
            {**run, "additional_instructions": "a", "additional_messages": [MESSAGE]},
            f"{t}/runs",
        ),
        "modify_run": (lambda: f"{t}/runs/{o['run_id']}", {"metadata": {"k": "v"}}, f"{t}/runs"),
        "submit_tool_outputs": (
            waiting_run,
            {"tool_outputs": [{"tool_call_id": "call_x", "output": "o"}]},
            f"{t}/runs",
        ),
        "create_vector_store": (
            lambda: "/vector_stores",
            {
                "name": "s",
                "description": "d",
                "metadata": {"k": "v"},
                "expires_after": {"anchor": "last_active_at", "days": 2},
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 10},
                },
            },
            "/vector_stores",
        ),
        "modify_vector_store": (
            lambda: vs,
            {
                "name": "s",
                "metadata": {"k": "v"},
                "expires_after": {"anchor": "last_active_at", "days": 2},
            },
            "/vector_stores",
        ),
        "create_vector_store_file": (
            lambda: f"{vs}/files",
            {"file_id": o["file_id"], "attributes": {"a": 1, "b": "x", "c": True}},
            f"{vs}/files",
        ),
        "update_vector_store_file": (
            lambda: f"{vs}/files/{o['file_id']}",
            {"attributes": {"a": 1.5}},
            f"{vs}/files",
        ),
        "create_file_batch": (
            lambda: f"{vs}/file_batches",
            {"file_ids": [o["file_id"]], "attributes": {"a": "b"}},
            f"{vs}/files",
        ),
        "search_vector_store": (
            lambda: f"{vs}/search",
            {
                "query": "hello",
                "max_num_results": 3,
                "rewrite_query": False,
                "filters": {"type": "eq", "key": "a", "value": 1},
                "ranking_options": {"ranker": "auto", "score_threshold": 0.1},
            },
            f"{vs}/files",
        ),
    }


def _call_f_once(request: ChatRequest) -> Any:
    if request.messages and request.messages[-1].role == "tool":
        return text_turn("done")
    return tool_call_turn("f", {"city": "Paris"})


@pytest.fixture(scope="module")
def objects(server: Server) -> Iterator[dict[str, Any]]:
    server.models.use(ScriptedBackend(_call_f_once))
    c = server.client()
    asst = c.beta.assistants.create(model="m")
    thread = c.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = c.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst.id)
    f = c.files.create(file=("a.txt", b"hello world"), purpose="assistants")
    vs = c.vector_stores.create(name="s", file_ids=[f.id])
    yield {
        "assistant_id": asst.id,
        "thread_id": thread.id,
        "run_id": run.id,
        "message_id": c.beta.threads.messages.list(thread.id).data[0].id,
        "file_id": f.id,
        "vector_store_id": vs.id,
        "base_url": server.base_url,
        "headers": {
            "Authorization": f"Bearer {server.keys['alpha']}",
            "OpenAI-Beta": "assistants=v2",
        },
    }
    server.models.use(ScriptedBackend(echo))


def _check(r: httpx.Response, what: str) -> None:
    assert r.status_code < 500, f"{what}: {r.status_code} {r.text[:500]}"
    if r.status_code >= 400:
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"}, err
        assert "'None'" not in err["message"], err


ENDPOINTS = list(
    _endpoints(
        dict.fromkeys(
            (
                "base_url",
                "headers",
                "assistant_id",
                "thread_id",
                "run_id",
                "message_id",
                "file_id",
                "vector_store_id",
            ),
            "",
        )
    )
)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_no_body_reaches_a_5xx(server: Server, objects: dict[str, Any], endpoint: str) -> None:
    path_of, base, listing = _endpoints(objects)[endpoint]
    with httpx.Client(base_url=server.base_url, headers=objects["headers"], timeout=60) as c:

        def send(body: bytes) -> httpx.Response:
            path = path_of()  # may make the run whose call id the body names as call_x
            body = body.replace(b'"call_x"', json.dumps(objects.get("call_x", "call_x")).encode())
            return c.post(path, content=body, headers={"Content-Type": "application/json"})

        r = send(json.dumps(base).encode())
        assert r.status_code == 200, f"the base body of {endpoint} must be accepted: {r.text}"

        @FUZZ
        @given(body=hostile_bodies(base))
        def fuzz(body: bytes) -> None:
            r = send(body)
            _check(r, f"{endpoint} {body[:300]!r}")

        fuzz()
        _check(c.get(listing), f"{listing} after fuzzing {endpoint}")
        _check(c.get("/assistants"), "/assistants")


ID_TEXT = st.text(CHARS, max_size=10).map(lambda s: quote(s.encode("utf-8", "surrogatepass")))


@settings(FUZZ, max_examples=12)
@given(
    asst=ID_TEXT,
    after=ID_TEXT,
    limit=ID_TEXT,
    order=ID_TEXT,
    beta=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20).map(str.strip),
)
def test_no_path_query_or_header_reaches_a_5xx(
    server: Server, asst: str, after: str, limit: str, order: str, beta: str
) -> None:
    h = {"Authorization": f"Bearer {server.keys['alpha']}", "OpenAI-Beta": beta}
    for method, url in [
        ("GET", f"/assistants/asst_{asst}"),
        ("POST", f"/assistants/asst_{asst}"),
        ("DELETE", f"/threads/thread_{asst}"),
        ("GET", f"/assistants?after={after}&limit={limit}&order={order}"),
        ("GET", f"/vector_stores/vs_{asst}/files?filter={order}&before={after}"),
        ("GET", f"/threads/thread_{asst}/runs/run_{after}/steps?include[]={order}"),
    ]:
        r = httpx.request(method, f"{server.base_url}{url}", headers=h, json={})
        _check(r, f"{method} {url}")
