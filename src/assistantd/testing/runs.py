"""Runs without HTTP, for the tests of the lifecycle, the request builder and the engine: a
run body with the API's defaults, a migrated SQLite database, and a queued run row."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from assistantd.core.db import create_engine
from assistantd.core.ids import next_seq
from assistantd.migrations import upgrade
from assistantd.runs.objects import new_run
from assistantd.runs.repository import RUNS


def run_body(**over: Any) -> dict[str, Any]:
    """A queued run's body as the API makes it with every default; `over` replaces fields."""
    run = new_run(
        thread_id="thread_x",
        assistant_id="asst_x",
        model="m",
        instructions="",
        tools=[],
        tool_resources={},
        metadata={},
        temperature=1.0,
        top_p=1.0,
        max_prompt_tokens=None,
        max_completion_tokens=None,
        truncation_strategy={"type": "auto", "last_messages": None},
        tool_choice="auto",
        parallel_tool_calls=True,
        response_format="auto",
        expires_in=600,
    )
    run.update(over)
    return run


async def migrated_sqlite(path: Path) -> AsyncEngine:
    """An engine on a new SQLite database at `path`, migrated to head."""
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(upgrade, url)
    return create_engine(url)


async def insert_queued(
    db: AsyncEngine,
    body: dict[str, Any],
    *,
    lease_owner: str | None,
    lease_expires_at: float | None,
    project_id: str = "proj_x",
) -> None:
    """Write `body` as a queued run row holding its thread's lock, leased as given."""
    async with db.begin() as conn:
        await conn.execute(
            insert(RUNS).values(
                id=body["id"],
                project_id=project_id,
                seq=next_seq(),
                created_at=body["created_at"],
                thread_id=body["thread_id"],
                status="queued",
                active_thread_id=body["thread_id"],
                lease_owner=lease_owner,
                lease_expires_at=lease_expires_at,
                body=body,
            )
        )
