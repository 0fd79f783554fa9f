"""Ids of files and vector stores in request bodies are checked in the caller's project.

Project beta names project alpha's file or store, or an id that exists nowhere, in every
field that can hold one: the request is a 404 in OpenAI's words, `param` names the field,
and nothing is stored (the database's row counts do not move; a modified object is as it was).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from assistantd.testing.server import Server

TABLES = (
    "assistants",
    "threads",
    "messages",
    "runs",
    "run_steps",
    "vector_stores",
    "vector_store_files",
    "vector_store_file_batches",
)


def table_counts(server: Server) -> dict[str, int]:
    """Rows per table, read beside the server through the database's own driver."""
    url = server.settings.resolved_database_url
    if server.dialect == "sqlite":
        path = url.split(":///", 1)[1]
        with sqlite3.connect(path) as conn:
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    import asyncpg

    async def pg() -> dict[str, int]:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}
        finally:
            await conn.close()

    return asyncio.run(pg())


@dataclass
class World:
    """alpha's file and store (foreign to beta); beta's own objects to modify and add to."""

    http: httpx.Client
    alpha_file: str
    alpha_store: str
    beta_file: str
    beta_assistant: str
    beta_thread: str
    beta_store: str


@pytest.fixture(scope="module")
def world(server: Server) -> Iterator[World]:
    base = server.base_url
    alpha = {"Authorization": f"Bearer {server.keys['alpha']}"}
    beta = {"Authorization": f"Bearer {server.keys['beta']}"}
    with httpx.Client(base_url=base, headers=beta, timeout=30) as http:

        def upload(headers: dict[str, str]) -> str:
            r = httpx.post(
                f"{base}/files",
                headers=headers,
                data={"purpose": "assistants"},
                files={"file": ("a.txt", b"alpha's secret notes")},
            )
            assert r.status_code == 200, r.text
            return str(r.json()["id"])

        def ok(r: httpx.Response) -> str:
            assert r.status_code == 200, r.text
            return str(r.json()["id"])

        yield World(
            http=http,
            alpha_file=upload(alpha),
            alpha_store=ok(
                httpx.post(f"{base}/vector_stores", headers=alpha, json={"name": "alpha"})
            ),
            beta_file=upload(beta),
            beta_assistant=ok(http.post("/assistants", json={"model": "m"})),
            beta_thread=ok(http.post("/threads", json={})),
            beta_store=ok(http.post("/vector_stores", json={"name": "beta"})),
        )


@dataclass(frozen=True)
class Case:
    """One field that holds a file or store id, in one kind of request."""

    name: str
    kind: str  # "file" or "vector store"
    path: str  # may name {assistant}, {thread}, {store} of beta's
    body: Callable[[str], dict[str, Any]]
    param: str
    unchanged: str | None = None  # GET path of a modified object that must stay as it was


def tr_store(x: str) -> dict[str, Any]:
    return {"file_search": {"vector_store_ids": [x]}}


def tr_code(x: str) -> dict[str, Any]:
    return {"code_interpreter": {"file_ids": [x]}}


def tr_helper(x: str) -> dict[str, Any]:
    return {"file_search": {"vector_stores": [{"file_ids": [x]}]}}


def msg(**kw: Any) -> dict[str, Any]:
    return {"role": "user", "content": "hi", **kw}


def image(x: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": "look"}, {"type": "image_file", "image_file": {"file_id": x}}]


def code_att(x: str) -> list[dict[str, Any]]:
    return [{"file_id": x, "tools": [{"type": "code_interpreter"}]}]


def search_att(x: str) -> list[dict[str, Any]]:
    return [{"file_id": x, "tools": [{"type": "file_search"}]}]


FS = [{"type": "file_search"}]
CI = [{"type": "code_interpreter"}]
STORE, FILE = "vector store", "file"

CASES = [
    # assistants: create and modify
    Case(
        "assistant-store",
        STORE,
        "/assistants",
        lambda x: {"model": "m", "tools": FS, "tool_resources": tr_store(x)},
        "tool_resources.file_search.vector_store_ids",
    ),
    Case(
        "assistant-code-files",
        FILE,
        "/assistants",
        lambda x: {"model": "m", "tools": CI, "tool_resources": tr_code(x)},
        "tool_resources.code_interpreter.file_ids",
    ),
    Case(
        "assistant-v1-file_ids-code",
        FILE,
        "/assistants",
        lambda x: {"model": "m", "tools": CI, "file_ids": [x]},
        "file_ids",
    ),
    Case(
        "assistant-v1-file_ids-retrieval",
        FILE,
        "/assistants",
        lambda x: {"model": "m", "tools": [{"type": "retrieval"}], "file_ids": [x]},
        "file_ids",
    ),
    Case(
        "assistant-store-helper",
        FILE,
        "/assistants",
        lambda x: {"model": "m", "tools": FS, "tool_resources": tr_helper(x)},
        "tool_resources.file_search.vector_stores[0].file_ids",
    ),
    Case(
        "assistant-modify-store",
        STORE,
        "/assistants/{assistant}",
        lambda x: {"tools": FS, "tool_resources": tr_store(x)},
        "tool_resources.file_search.vector_store_ids",
        "/assistants/{assistant}",
    ),
    Case(
        "assistant-modify-code-files",
        FILE,
        "/assistants/{assistant}",
        lambda x: {"tools": CI, "tool_resources": tr_code(x)},
        "tool_resources.code_interpreter.file_ids",
        "/assistants/{assistant}",
    ),
    Case(
        "assistant-modify-v1-file_ids",
        FILE,
        "/assistants/{assistant}",
        lambda x: {"tools": CI, "file_ids": [x]},
        "file_ids",
        "/assistants/{assistant}",
    ),
    Case(
        "assistant-modify-store-helper",
        FILE,
        "/assistants/{assistant}",
        lambda x: {"tools": FS, "tool_resources": tr_helper(x)},
        "tool_resources.file_search.vector_stores[0].file_ids",
        "/assistants/{assistant}",
    ),
    # threads: create (with messages) and modify
    Case(
        "thread-store",
        STORE,
        "/threads",
        lambda x: {"tool_resources": tr_store(x)},
        "tool_resources.file_search.vector_store_ids",
    ),
    Case(
        "thread-code-files",
        FILE,
        "/threads",
        lambda x: {"tool_resources": tr_code(x)},
        "tool_resources.code_interpreter.file_ids",
    ),
    Case(
        "thread-store-helper",
        FILE,
        "/threads",
        lambda x: {"tool_resources": tr_helper(x)},
        "tool_resources.file_search.vector_stores[0].file_ids",
    ),
    Case(
        "thread-message-code-attachment",
        FILE,
        "/threads",
        lambda x: {"messages": [msg(), msg(attachments=code_att(x))]},
        "messages[1].attachments[0].file_id",
    ),
    Case(
        "thread-message-search-attachment",
        FILE,
        "/threads",
        lambda x: {"messages": [msg(attachments=search_att(x))]},
        "messages[0].attachments[0].file_id",
    ),
    Case(
        "thread-message-image",
        FILE,
        "/threads",
        lambda x: {"messages": [msg(content=image(x))]},
        "messages[0].content[1].image_file.file_id",
    ),
    Case(
        "thread-message-v1-file_ids",
        FILE,
        "/threads",
        lambda x: {"messages": [msg(file_ids=[x])]},
        "messages[0].file_ids",
    ),
    Case(
        "thread-modify-store",
        STORE,
        "/threads/{thread}",
        lambda x: {"tool_resources": tr_store(x)},
        "tool_resources.file_search.vector_store_ids",
        "/threads/{thread}",
    ),
    Case(
        "thread-modify-code-files",
        FILE,
        "/threads/{thread}",
        lambda x: {"tool_resources": tr_code(x)},
        "tool_resources.code_interpreter.file_ids",
        "/threads/{thread}",
    ),
    # messages
    Case(
        "message-code-attachment",
        FILE,
        "/threads/{thread}/messages",
        lambda x: msg(attachments=code_att(x)),
        "attachments[0].file_id",
    ),
    Case(
        "message-search-attachment",
        FILE,
        "/threads/{thread}/messages",
        lambda x: msg(attachments=search_att(x)),
        "attachments[0].file_id",
    ),
    Case(
        "message-attachment-no-tools",
        FILE,
        "/threads/{thread}/messages",
        lambda x: msg(attachments=[{"file_id": x}]),
        "attachments[0].file_id",
    ),
    Case(
        "message-image",
        FILE,
        "/threads/{thread}/messages",
        lambda x: msg(content=image(x)),
        "content[1].image_file.file_id",
    ),
    Case(
        "message-v1-file_ids",
        FILE,
        "/threads/{thread}/messages",
        lambda x: msg(file_ids=[x]),
        "file_ids",
    ),
    # runs: additional_messages; create-and-run: thread, its messages, tool_resources
    Case(
        "run-additional-attachment",
        FILE,
        "/threads/{thread}/runs",
        lambda x: {
            "assistant_id": "{assistant}",
            "additional_messages": [msg(attachments=search_att(x))],
        },
        "additional_messages[0].attachments[0].file_id",
    ),
    Case(
        "run-additional-image",
        FILE,
        "/threads/{thread}/runs",
        lambda x: {"assistant_id": "{assistant}", "additional_messages": [msg(content=image(x))]},
        "additional_messages[0].content[1].image_file.file_id",
    ),
    Case(
        "thread-run-thread-store",
        STORE,
        "/threads/runs",
        lambda x: {"assistant_id": "{assistant}", "thread": {"tool_resources": tr_store(x)}},
        "thread.tool_resources.file_search.vector_store_ids",
    ),
    Case(
        "thread-run-thread-code-files",
        FILE,
        "/threads/runs",
        lambda x: {"assistant_id": "{assistant}", "thread": {"tool_resources": tr_code(x)}},
        "thread.tool_resources.code_interpreter.file_ids",
    ),
    Case(
        "thread-run-thread-store-helper",
        FILE,
        "/threads/runs",
        lambda x: {"assistant_id": "{assistant}", "thread": {"tool_resources": tr_helper(x)}},
        "thread.tool_resources.file_search.vector_stores[0].file_ids",
    ),
    Case(
        "thread-run-message-attachment",
        FILE,
        "/threads/runs",
        lambda x: {
            "assistant_id": "{assistant}",
            "thread": {"messages": [msg(attachments=code_att(x))]},
        },
        "thread.messages[0].attachments[0].file_id",
    ),
    Case(
        "thread-run-message-image",
        FILE,
        "/threads/runs",
        lambda x: {"assistant_id": "{assistant}", "thread": {"messages": [msg(content=image(x))]}},
        "thread.messages[0].content[1].image_file.file_id",
    ),
    Case(
        "thread-run-store",
        STORE,
        "/threads/runs",
        lambda x: {"assistant_id": "{assistant}", "tool_resources": tr_store(x)},
        "tool_resources.file_search.vector_store_ids",
    ),
    Case(
        "thread-run-code-files",
        FILE,
        "/threads/runs",
        lambda x: {"assistant_id": "{assistant}", "tool_resources": tr_code(x)},
        "tool_resources.code_interpreter.file_ids",
    ),
    # vector stores, their files and file batches
    Case("vector-store-file_ids", FILE, "/vector_stores", lambda x: {"file_ids": [x]}, "file_ids"),
    Case(
        "vector-store-file",
        FILE,
        "/vector_stores/{store}/files",
        lambda x: {"file_id": x},
        "file_id",
    ),
    Case(
        "file-batch-file_ids",
        FILE,
        "/vector_stores/{store}/file_batches",
        lambda x: {"file_ids": [x]},
        "file_ids",
    ),
    Case(
        "file-batch-files",
        FILE,
        "/vector_stores/{store}/file_batches",
        lambda x: {"files": [{"file_id": x}]},
        "files[0].file_id",
    ),
]


def fill(value: Any, w: World) -> Any:
    """Put beta's ids into `{assistant}` / `{thread}` / `{store}` placeholders."""
    if isinstance(value, str):
        return value.format(assistant=w.beta_assistant, thread=w.beta_thread, store=w.beta_store)
    if isinstance(value, list):
        return [fill(v, w) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, w) for k, v in value.items()}
    return value


@pytest.mark.parametrize("origin", ["foreign", "missing"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_unknown_reference_is_404_and_stores_nothing(
    server: Server, world: World, case: Case, origin: str
) -> None:
    if case.kind == FILE:
        ref = world.alpha_file if origin == "foreign" else "file-doesnotexist"
    else:
        ref = world.alpha_store if origin == "foreign" else "vs_doesnotexist"
    before_obj = world.http.get(fill(case.unchanged, world)).json() if case.unchanged else None
    before = table_counts(server)

    r = world.http.post(fill(case.path, world), json=fill(case.body(ref), world))

    assert r.status_code == 404, r.text
    assert r.json() == {
        "error": {
            "message": f"No {case.kind} found with id '{ref}'.",
            "type": "invalid_request_error",
            "param": case.param,
            "code": None,
        }
    }
    assert table_counts(server) == before
    if case.unchanged:
        assert world.http.get(fill(case.unchanged, world)).json() == before_obj


def test_own_references_are_accepted(world: World) -> None:
    """The same fields with beta's own file and store: stored as given."""
    a = world.http.post(
        "/assistants",
        json={
            "model": "m",
            "tools": [*FS, *CI],
            "tool_resources": {**tr_store(world.beta_store), **tr_code(world.beta_file)},
        },
    )
    assert a.status_code == 200, a.text
    assert a.json()["tool_resources"] == {
        "file_search": {"vector_store_ids": [world.beta_store]},
        "code_interpreter": {"file_ids": [world.beta_file]},
    }
    m = world.http.post(
        f"/threads/{world.beta_thread}/messages",
        json=msg(content=image(world.beta_file), attachments=code_att(world.beta_file)),
    )
    assert m.status_code == 200, m.text
    assert m.json()["attachments"] == code_att(world.beta_file)


def test_first_unknown_id_in_request_order_is_named(world: World) -> None:
    """Good ids beside a bad one: the bad one is named, wherever it sits."""
    r = world.http.post(
        "/threads",
        json={
            "tool_resources": {**tr_store(world.beta_store), **tr_code(world.beta_file)},
            "messages": [
                msg(content=image(world.beta_file)),
                msg(attachments=[*code_att(world.beta_file), *code_att(world.alpha_file)]),
            ],
        },
    )
    assert r.status_code == 404
    assert r.json()["error"]["param"] == "messages[1].attachments[1].file_id"
    assert r.json()["error"]["message"] == f"No file found with id '{world.alpha_file}'."


def test_one_query_per_kind_of_id(server: Server, world: World) -> None:
    """Many ids over many fields: one lookup of files and one of stores, however many."""
    statements: list[str] = []
    lock = threading.Lock()

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        with lock:
            statements.append(statement)

    engine = server.ctx.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        r = world.http.post(
            "/threads",
            json={
                "tool_resources": {**tr_store(world.beta_store), **tr_code(world.beta_file)},
                "messages": [
                    msg(content=image(world.beta_file), attachments=code_att(world.beta_file))
                    for _ in range(5)
                ],
            },
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert r.status_code == 200, r.text

    def lookups(table: str) -> list[str]:
        return [
            s
            for s in statements
            if s.lstrip().upper().startswith("SELECT")
            and f"FROM {table}" in s
            and " IN " in s.upper()
        ]

    assert len(lookups("files")) == 1, lookups("files")
    assert len(lookups("vector_stores")) == 1, lookups("vector_stores")
