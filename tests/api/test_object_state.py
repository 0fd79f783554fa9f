"""Private state lives in typed columns, never in the stored wire object (migrations 0004
and 0008).

Assistants, vector stores and file batches keep what the API does not show (an
assistant's `reasoning_effort`, a store's embedding model, a batch's cancellation) in
columns beside `body`, as files keep `content_missing` and runs and steps the engine's
state (`state`), so a body is exactly what clients receive. Rows written before, with
those values under `_` keys in the body, are moved over by the migrations.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from alembic import command
from sqlalchemy import select, text

from assistantd.assistants.models import AssistantRow
from assistantd.core.db import UnitOfWork, create_engine
from assistantd.migrations import alembic_config, upgrade
from assistantd.runs.models import RunRow, RunStepRow
from assistantd.runs.state import RunState, StepState
from assistantd.testing.scripted import ScriptedBackend, text_turn, tool_call_turn
from assistantd.testing.server import Server, SwitchRouter, pg_database, run_db
from assistantd.vector_stores.models import VectorStoreFileBatchRow, VectorStoreRow

OLD_ROWS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "assistants",
        "asst_old",
        {
            "id": "asst_old",
            "object": "assistant",
            "name": None,
            "model": "m",
            "metadata": {},
            "_reasoning_effort": "low",
        },
    ),
    ("assistants", "asst_plain", {"id": "asst_plain", "object": "assistant", "model": "m"}),
    (
        "vector_stores",
        "vs_old",
        {
            "id": "vs_old",
            "object": "vector_store",
            "name": "n",
            "last_active_at": 1,
            "_embedding_model": "minilm",
        },
    ),
    (
        "vector_store_file_batches",
        "vsfb_cancelled",
        {
            "id": "vsfb_cancelled",
            "object": "vector_store.files_batch",
            "vector_store_id": "vs_old",
            "_cancelled": True,
        },
    ),
    (
        "vector_store_file_batches",
        "vsfb_running",
        {"id": "vsfb_running", "object": "vector_store.files_batch", "vector_store_id": "vs_old"},
    ),
]


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    url, drop = pg_database("assistantd_migration")
    try:
        yield url
    finally:
        drop()


async def _insert_old_rows(url: str) -> None:
    engine = create_engine(url)
    body = "CAST(:body AS jsonb)" if url.startswith("postgresql") else ":body"
    try:
        async with engine.begin() as conn:
            for seq, (table, row_id, row_body) in enumerate(OLD_ROWS):
                extra = ", vector_store_id" if table == "vector_store_file_batches" else ""
                extra_value = ", 'vs_old'" if extra else ""
                await conn.execute(
                    text(
                        f"INSERT INTO {table} (id, project_id, seq, created_at, body{extra}) "
                        f"VALUES (:id, 'p', :seq, 1, {body}{extra_value})"
                    ),
                    {"id": row_id, "seq": seq, "body": json.dumps(row_body)},
                )
    finally:
        await engine.dispose()


async def _read(url: str) -> dict[str, tuple[Any, dict[str, Any]]]:
    """id → (the state column, the body) of every old row."""
    engine = create_engine(url)
    columns = {
        "assistants": "reasoning_effort",
        "vector_stores": "embedding_model",
        "vector_store_file_batches": "cancelled",
    }
    out: dict[str, tuple[Any, dict[str, Any]]] = {}
    try:
        async with engine.connect() as conn:
            for table, column in columns.items():
                for row_id, value, body in await conn.execute(
                    text(f"SELECT id, {column}, body FROM {table}")
                ):
                    out[row_id] = (value, body if isinstance(body, dict) else json.loads(body))
    finally:
        await engine.dispose()
    return out


def test_migration_moves_private_keys_into_columns(database: str) -> None:
    upgrade(database, "0002")
    asyncio.run(_insert_old_rows(database))
    upgrade(database, "0004")
    rows = asyncio.run(_read(database))
    assert rows["asst_old"] == (
        "low",
        {"id": "asst_old", "object": "assistant", "name": None, "model": "m", "metadata": {}},
    )
    assert rows["asst_plain"] == (None, {"id": "asst_plain", "object": "assistant", "model": "m"})
    assert rows["vs_old"] == (
        "minilm",
        {"id": "vs_old", "object": "vector_store", "name": "n", "last_active_at": 1},
    )
    assert rows["vsfb_cancelled"][0] is True or rows["vsfb_cancelled"][0] == 1
    assert rows["vsfb_running"][0] is False or rows["vsfb_running"][0] == 0
    assert not any(k.startswith("_") for _, body in rows.values() for k in body)
    if database.startswith("sqlite"):  # SQLite keeps a JSON text's key order; jsonb has its own
        assert list(rows["asst_old"][1]) == ["id", "object", "name", "model", "metadata"]

    command.downgrade(alembic_config(database), "0002")
    back = asyncio.run(_read_bodies(database))
    assert (
        back["asst_old"]["_reasoning_effort"] == "low"
        and "_reasoning_effort" not in back["asst_plain"]
    )
    assert back["vs_old"]["_embedding_model"] == "minilm"
    assert back["vsfb_cancelled"]["_cancelled"] is True and "_cancelled" not in back["vsfb_running"]


async def _read_bodies(url: str) -> dict[str, dict[str, Any]]:
    engine = create_engine(url)
    out: dict[str, dict[str, Any]] = {}
    try:
        async with engine.connect() as conn:
            for table in ("assistants", "vector_stores", "vector_store_file_batches"):
                for row_id, body in await conn.execute(text(f"SELECT id, body FROM {table}")):
                    out[row_id] = body if isinstance(body, dict) else json.loads(body)
    finally:
        await engine.dispose()
    return out


def test_private_state_is_kept_in_columns(client: openai.OpenAI, server: Server) -> None:
    a = client.beta.assistants.create(model="m", reasoning_effort="low")
    client.beta.assistants.update(a.id, reasoning_effort="high", name="n")
    f = client.files.create(file=("a.txt", b"alpha beta gamma"), purpose="assistants")
    vs = client.vector_stores.create(name="state")
    batch = client.vector_stores.file_batches.create(vector_store_id=vs.id, file_ids=[f.id])
    cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=vs.id)

    async def read(uow: UnitOfWork) -> tuple[Any, ...]:
        s = uow.session
        assistant = (
            await s.execute(select(AssistantRow).where(AssistantRow.id == a.id))
        ).scalar_one()
        store = (
            await s.execute(select(VectorStoreRow).where(VectorStoreRow.id == vs.id))
        ).scalar_one()
        row = (
            await s.execute(
                select(VectorStoreFileBatchRow).where(VectorStoreFileBatchRow.id == batch.id)
            )
        ).scalar_one()
        return assistant, store, row

    assistant, store, row = run_db(server, read)
    assert assistant.reasoning_effort == "high"
    assert store.embedding_model == server.ctx.stores.embedder.model_id
    # The cancel may come after the one file finished: then nothing was cancelled.
    assert row.cancelled == (cancelled.status == "cancelled")
    for body in (assistant.body, store.body, row.body):
        assert not [k for k in body if k.startswith("_")]


# -- 0008: runs, run steps and files -------------------------------------------------------

CALL_FS = {"name": "file_search", "arguments": '{"query": "x"}'}
CALL_CI = {"name": "code_interpreter", "arguments": '{"code": "print(1)"}'}
STEP_USAGE = {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
#: The public part of the old tool step's calls, in order.
PUBLIC_CALLS: list[dict[str, Any]] = [
    {
        "id": "call_f",
        "type": "function",
        "function": {"name": "f", "arguments": "{}", "output": None},
    },
    {"id": "call_fs", "type": "file_search", "file_search": {"results": []}},
    {
        "id": "call_ci",
        "type": "code_interpreter",
        "code_interpreter": {"input": "print(1)", "outputs": []},
    },
]
RUN_ROWS: dict[str, dict[str, Any]] = {
    "run_old": {
        "id": "run_old",
        "object": "thread.run",
        "status": "requires_action",
        "usage": None,
        "_include_content": True,
        "_project_id": "p",
        "_api_key_id": "key_1",
        "_usage": [12, 3],
        "_model_calls": 2,
        "_pending_step_id": "step_tools",
    },
    "run_plain": {"id": "run_plain", "object": "thread.run", "status": "completed"},
    "run_imported": {
        "id": "run_imported",
        "object": "thread.run",
        "status": "expired",
        "_exported_status": "in_progress",
    },
}
STEP_ROWS: dict[str, dict[str, Any]] = {
    "step_tools": {
        "id": "step_tools",
        "object": "thread.run.step",
        "status": "in_progress",
        "step_details": {
            "type": "tool_calls",
            "tool_calls": [
                PUBLIC_CALLS[0],
                {
                    **PUBLIC_CALLS[1],
                    "_output": "found",
                    "_model_call": CALL_FS,
                    "_citations": [["file_a", "a.txt"]],
                },
                {
                    **PUBLIC_CALLS[2],
                    "_output": "1",
                    "_model_call": CALL_CI,
                    "_files": {"/mnt/data/o.csv": "file_o"},
                },
            ],
        },
        "usage": None,
        "_usage": STEP_USAGE,
        "_joins_previous": True,
    },
    "step_msg": {
        "id": "step_msg",
        "object": "thread.run.step",
        "status": "completed",
        "step_details": {"type": "message_creation", "message_creation": {"message_id": "msg_1"}},
        "usage": STEP_USAGE,
    },
}
FILE_ROWS: dict[str, dict[str, Any]] = {
    "file_gone": {
        "id": "file_gone",
        "object": "file",
        "purpose": "assistants",
        "_content_missing": True,
    },
    "file_ok": {"id": "file_ok", "object": "file", "purpose": "assistants"},
}


async def _insert_0007_rows(url: str) -> None:
    engine = create_engine(url)
    body = "CAST(:body AS jsonb)" if url.startswith("postgresql") else ":body"
    rows = [
        *(("runs", b, "thread_id, status", "'thread_1', :status") for b in RUN_ROWS.values()),
        *(
            ("run_steps", b, "run_id, thread_id", "'run_old', 'thread_1'")
            for b in STEP_ROWS.values()
        ),
        *(("files", b, "purpose", "'assistants'") for b in FILE_ROWS.values()),
    ]
    try:
        async with engine.begin() as conn:
            for seq, (table, row_body, columns, values) in enumerate(rows):
                await conn.execute(
                    text(
                        f"INSERT INTO {table} (id, project_id, seq, created_at, body, {columns}) "
                        f"VALUES (:id, 'p', :seq, 1, {body}, {values})"
                    ),
                    {
                        "id": row_body["id"],
                        "seq": seq,
                        "body": json.dumps(row_body),
                        "status": row_body.get("status"),
                    },
                )
    finally:
        await engine.dispose()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def _read_0008(url: str, state: bool = True) -> dict[str, tuple[Any, dict[str, Any]]]:
    """id → (its `state` or `content_missing`, its body), of every row `_insert_0007_rows` wrote."""
    engine = create_engine(url)
    out: dict[str, tuple[Any, dict[str, Any]]] = {}
    columns = {"runs": "state", "run_steps": "state", "files": "content_missing"}
    try:
        async with engine.connect() as conn:
            for table, column in columns.items():
                picked = column if state else "NULL"
                for row_id, value, body in await conn.execute(
                    text(f"SELECT id, {picked}, body FROM {table}")
                ):
                    out[row_id] = (_json(value), _json(body))
    finally:
        await engine.dispose()
    return out


def test_migration_0008_moves_run_step_and_file_state_beside_the_body(database: str) -> None:
    upgrade(database, "0007")
    asyncio.run(_insert_0007_rows(database))
    upgrade(database, "0008")
    rows = asyncio.run(_read_0008(database))
    assert not any(k.startswith("_") for _, body in rows.values() for k in body)
    for call in rows["step_tools"][1]["step_details"]["tool_calls"]:
        assert not [k for k in call if k.startswith("_")]

    state, body = rows["run_old"]
    assert body == {
        "id": "run_old",
        "object": "thread.run",
        "status": "requires_action",
        "usage": None,
    }
    assert RunState.load(state) == RunState(
        include_content=True,
        api_key_id="key_1",
        usage=(12, 3),
        pending_step_id="step_tools",
        model_calls=2,
    )
    assert rows["run_plain"] == ({}, RUN_ROWS["run_plain"])
    assert RunState.load(rows["run_imported"][0]).exported_status == "in_progress"

    state, body = rows["step_tools"]
    assert body["step_details"]["tool_calls"] == PUBLIC_CALLS and body["usage"] is None
    assert StepState.load(state) == StepState(
        usage=STEP_USAGE,
        joins_previous=True,
        calls={
            "call_fs": {
                "output": "found",
                "model_call": CALL_FS,
                "citations": [["file_a", "a.txt"]],
            },
            "call_ci": {
                "output": "1",
                "model_call": CALL_CI,
                "files": {"/mnt/data/o.csv": "file_o"},
            },
        },
    )
    assert rows["step_msg"] == ({}, STEP_ROWS["step_msg"])
    assert rows["file_gone"][0] in (True, 1) and rows["file_ok"][0] in (False, 0)
    assert rows["file_gone"][1] == FILE_ROWS["file_ok"] | {"id": "file_gone"}
    if database.startswith("sqlite"):  # SQLite keeps a JSON text's key order; jsonb has its own
        assert list(rows["step_tools"][1]) == [k for k in STEP_ROWS["step_tools"] if k[0] != "_"]
        assert [list(c) for c in rows["step_tools"][1]["step_details"]["tool_calls"]] == [
            list(c) for c in PUBLIC_CALLS
        ]

    command.downgrade(alembic_config(database), "0007")
    back = {row_id: body for row_id, (_, body) in asyncio.run(_read_0008(database, False)).items()}
    # Every key back where it was; `_project_id` (never read) now on every run.
    assert back == {
        **RUN_ROWS,
        "run_plain": RUN_ROWS["run_plain"] | {"_project_id": "p"},
        "run_imported": RUN_ROWS["run_imported"] | {"_project_id": "p"},
        **STEP_ROWS,
        **FILE_ROWS,
    }


WEATHER_TOOL: Any = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


def _raw(response: Any) -> Any:
    return json.loads(response.text)


def test_a_run_and_its_steps_are_stored_exactly_as_the_wire_shows_them(
    client: openai.OpenAI, server: Server, models: SwitchRouter
) -> None:
    models.use(
        ScriptedBackend(
            [
                tool_call_turn("code_interpreter", {"code": "print(6 * 7)"}),
                tool_call_turn("get_weather", {"city": "Paris"}),
                text_turn("Sunny."),
            ]
        )
    )
    a = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}, WEATHER_TOOL])
    t = client.beta.threads.create(messages=[{"role": "user", "content": "go"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    assert run.status == "requires_action"

    async def rows(uow: UnitOfWork) -> tuple[Any, list[Any]]:
        s = uow.session
        run_row = (await s.execute(select(RunRow).where(RunRow.id == run.id))).scalar_one()
        steps = (
            (await s.execute(select(RunStepRow).where(RunStepRow.run_id == run.id))).scalars().all()
        )
        return run_row, sorted(steps, key=lambda r: r.seq)

    paused, (code_step, function_step) = run_db(server, rows)
    state = RunState.load(paused.state)
    assert state.pending_step_id == function_step.id and state.model_calls == 2
    assert state.usage[0] > 0
    kept = StepState.load(code_step.state)
    (call_id,) = kept.calls
    assert "42" in kept.calls[call_id]["output"]
    assert kept.calls[call_id]["model_call"]["name"] == "code_interpreter"
    assert StepState.load(function_step.state).usage is not None  # until the outputs come
    wire_run = _raw(client.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=t.id))
    assert paused.body == wire_run and not [k for k in wire_run if k.startswith("_")]

    call = run.required_action.submit_tool_outputs.tool_calls[0]
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=t.id, tool_outputs=[{"tool_call_id": call.id, "output": "sun"}]
    )
    assert done.status == "completed"
    ended, steps = run_db(server, rows)
    assert "pending_step_id" not in ended.state and ended.state["model_calls"] == 3
    assert ended.body == _raw(
        client.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=t.id)
    )
    listed = _raw(
        client.beta.threads.runs.steps.with_raw_response.list(run.id, thread_id=t.id, order="asc")
    )["data"]
    assert [r.body for r in steps] == listed
    assert "usage" not in steps[1].state and steps[1].body["usage"]["total_tokens"] > 0
