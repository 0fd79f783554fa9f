"""The run engine's hottest statements, prebuilt: the SQL of a run's start, its steps' and
messages' inserts, the changes of their bodies and its event log's rows, run on the
driver's connection (`core/db.py::DriverTransaction`).

A run makes about ten of these; through SQLAlchemy each cost more in its per-statement
machinery (cache key, execution context, parameter and result processing) than the SQL
itself. Every one is the same text on SQLite and PostgreSQL. The columns a run's status
sets beside its body are `runs/lifecycle.py::held_columns`, as for
`runs/repository.py::body_update`, the API's statement for the same change.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from assistantd.core.db import DriverTransaction, Prebuilt, json_param
from assistantd.core.ids import next_seq
from assistantd.runs.lifecycle import held_columns
from assistantd.runs.state import RunState, StepState, StoredStep

_TABLES = {"run": "runs", "step": "run_steps", "message": "messages"}

THREAD_AND_ASSISTANT = Prebuilt(
    "SELECT (SELECT body FROM threads WHERE id = ?), (SELECT body FROM assistants WHERE id = ?)"
)
THREAD_MESSAGES = Prebuilt(
    "SELECT id, run_id, body FROM messages WHERE thread_id = ? ORDER BY seq, id"
)
RUN_STEPS = Prebuilt("SELECT body, state FROM run_steps WHERE run_id = ? ORDER BY seq, id")
INSERT_STEP = Prebuilt(
    "INSERT INTO run_steps (id, project_id, seq, created_at, run_id, thread_id, body, state) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_MESSAGE = Prebuilt(
    "INSERT INTO messages (id, project_id, seq, created_at, thread_id, run_id, body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
INSERT_EVENT = Prebuilt(
    "INSERT INTO run_events (run_id, seq, event, data) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (run_id, seq) DO NOTHING"
)
#: The run row, if `lease_owner` still names the holder (locked to the commit on PostgreSQL).
HELD = Prebuilt("SELECT id FROM runs WHERE id = ? AND lease_owner = ?")
HELD_LOCKED = Prebuilt("SELECT id FROM runs WHERE id = ? AND lease_owner = ? FOR UPDATE")


@functools.cache
def _update(kind: str, columns: tuple[str, ...], fenced: bool) -> Prebuilt:
    sets = ", ".join(f"{c} = ?" for c in columns)
    fence = " AND lease_owner = ?" if fenced else ""
    return Prebuilt(f"UPDATE {_TABLES[kind]} SET {sets} WHERE id = ?{fence}")


async def update_body(
    tx: DriverTransaction,
    kind: str,
    body: dict[str, Any],
    state: RunState | StepState | None = None,
    held_by: str | None = None,
) -> int:
    """Store a run's, a step's or a message's changed body, and the run's or step's
    private `state` when one is given (else it is kept); a run's status, thread lock and
    lease columns with it. With `held_by` (runs only), only while `lease_owner` names it.
    Returns the rows changed."""
    values: dict[str, Any] = {"body": json_param(body)}
    if kind == "run":
        values = {"status": body["status"], **values}
    if state is not None and kind != "message":
        values["state"] = json_param(state.dump())
    if kind == "run":
        values.update(held_columns(body["status"]))
    fenced = kind == "run" and held_by is not None
    params = [*values.values(), body["id"], *((held_by,) if fenced else ())]
    return await tx.execute(_update(kind, tuple(values), fenced), params)


async def held(tx: DriverTransaction, run_id: str, held_by: str, *, lock: bool) -> bool:
    """Whether `held_by` holds the run's lease; `lock`: keep the row locked to the commit
    (PostgreSQL's `FOR UPDATE`; SQLite's transactions hold the write lock from BEGIN)."""
    return bool(await tx.fetch(HELD_LOCKED if lock else HELD, (run_id, held_by)))


async def insert_step(
    tx: DriverTransaction, project_id: str, step: StoredStep, message: dict[str, Any] | None
) -> None:
    """Insert a step, and the message it creates."""
    body = step.body
    await tx.execute(
        INSERT_STEP,
        (
            body["id"],
            project_id,
            next_seq(),
            body["created_at"],
            body["run_id"],
            body["thread_id"],
            json_param(body),
            json_param(step.state.dump()),
        ),
    )
    if message is not None:
        await tx.execute(
            INSERT_MESSAGE,
            (
                message["id"],
                project_id,
                next_seq(),
                message["created_at"],
                message["thread_id"],
                message["run_id"],
                json_param(message),
            ),
        )


async def thread_and_assistant(
    tx: DriverTransaction, thread_id: str, assistant_id: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The thread's and the assistant's bodies, in one statement (each None when gone)."""
    thread, assistant = (await tx.fetch(THREAD_AND_ASSISTANT, (thread_id, assistant_id)))[0]
    return tx.json(thread), tx.json(assistant)


async def thread_messages(
    tx: DriverTransaction, thread_id: str
) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(id, run_id, body) of the thread's messages, in order."""
    rows = await tx.fetch(THREAD_MESSAGES, (thread_id,))
    return [(row[0], row[1], tx.json(row[2])) for row in rows]


async def run_steps(tx: DriverTransaction, run_id: str) -> list[StoredStep]:
    """The run's steps, in order, with their private state."""
    rows = await tx.fetch(RUN_STEPS, (run_id,))
    return [StoredStep(tx.json(row[0]), StepState.load(tx.json(row[1]))) for row in rows]


async def insert_events(tx: DriverTransaction, rows: Sequence[tuple[str, int, str, str]]) -> None:
    """Append (run_id, seq, event, data) rows to the event log; a seq already stored is kept."""
    await tx.executemany(INSERT_EVENT, rows)
