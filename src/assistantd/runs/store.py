"""The engine's reads and writes: short transactions of their own, outside any request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistantd.core.ids import next_seq
from assistantd.core.resources import public
from assistantd.messages.models import MessageRow
from assistantd.runs.models import RunEventRow, RunRow, RunStepRow
from assistantd.runs.objects import TERMINAL


class RunStore:
    """Persistence for runs in flight: the run, its steps and messages, its event log."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def load_run(self, run_id: str) -> RunRow | None:
        async with self.sessions() as s:
            return await s.get(RunRow, run_id)

    async def assistant(self, assistant_id: str) -> dict[str, Any] | None:
        from assistantd.assistants.models import AssistantRow

        async with self.sessions() as s:
            row = await s.get(AssistantRow, assistant_id)
            return dict(row.body) if row is not None else None

    async def save_run(self, run: dict[str, Any]) -> None:
        """Write the run body. A terminal status releases the thread lock and the lease; a
        pause (`requires_action`) releases the lease, in the same write, so whichever
        process receives the tool outputs can take the run at once."""
        status = run["status"]
        values: dict[str, Any] = {"status": status, "body": run}
        if status in TERMINAL:
            values.update(active_thread_id=None, lease_owner=None, lease_expires_at=None)
        elif status == "requires_action":
            values.update(lease_owner=None, lease_expires_at=None)
        async with self.sessions() as s:
            await s.execute(update(RunRow).where(RunRow.id == run["id"]).values(**values))
            await s.commit()

    async def insert_step(self, project_id: str, step: dict[str, Any],
                          message: dict[str, Any] | None = None) -> None:
        """Insert a step (and the message it creates, in the same transaction)."""
        async with self.sessions() as s:
            s.add(RunStepRow(id=step["id"], project_id=project_id, seq=next_seq(), created_at=step["created_at"],
                             run_id=step["run_id"], thread_id=step["thread_id"], body=step))
            if message is not None:
                s.add(MessageRow(id=message["id"], project_id=project_id, seq=next_seq(),
                                 created_at=message["created_at"], thread_id=message["thread_id"],
                                 run_id=message["run_id"], body=message))
            await s.commit()

    async def save_step(self, step: dict[str, Any]) -> None:
        async with self.sessions() as s:
            await s.execute(update(RunStepRow).where(RunStepRow.id == step["id"]).values(body=step))
            await s.commit()

    async def insert_message(self, project_id: str, message: dict[str, Any]) -> None:
        async with self.sessions() as s:
            s.add(MessageRow(id=message["id"], project_id=project_id, seq=next_seq(),
                             created_at=message["created_at"], thread_id=message["thread_id"],
                             run_id=message["run_id"], body=message))
            await s.commit()

    async def save_message(self, message: dict[str, Any]) -> None:
        async with self.sessions() as s:
            await s.execute(update(MessageRow).where(MessageRow.id == message["id"]).values(body=message))
            await s.commit()

    async def thread_state(self, run: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                              dict[str, dict[str, Any]], dict[str, Any] | None]:
        """(messages before this run, this run's steps, this run's messages by id, the thread)."""
        from assistantd.threads.models import ThreadRow

        async with self.sessions() as s:
            thread = await s.get(ThreadRow, run["thread_id"])
            msgs = (await s.execute(select(MessageRow).where(MessageRow.thread_id == run["thread_id"])
                                    .order_by(MessageRow.seq, MessageRow.id))).scalars().all()
            steps = (await s.execute(select(RunStepRow).where(RunStepRow.run_id == run["id"])
                                     .order_by(RunStepRow.seq, RunStepRow.id))).scalars().all()
        history = [m.body for m in msgs if m.run_id != run["id"]]
        own = {m.id: m.body for m in msgs if m.run_id == run["id"]}
        return history, [st.body for st in steps], own, (thread.body if thread else None)

    async def open_parts(self, run_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The run's steps and messages still `in_progress`."""
        async with self.sessions() as s:
            steps = (await s.execute(select(RunStepRow).where(RunStepRow.run_id == run_id)
                                     .order_by(RunStepRow.seq))).scalars().all()
            msgs = (await s.execute(select(MessageRow).where(MessageRow.run_id == run_id)
                                    .order_by(MessageRow.seq))).scalars().all()
        return ([st.body for st in steps if st.body["status"] == "in_progress"],
                [m.body for m in msgs if m.body["status"] == "in_progress"])

    async def claim(self, run_id: str, owner: str, now: float, lease: float,
                    steal_from: str | None = None) -> bool:
        """Take the run's lease if it is free, expired, already ours, or held by `steal_from`
        (a process known to be dead)."""
        free = (RunRow.lease_owner.is_(None)) | (RunRow.lease_owner == owner) | (RunRow.lease_expires_at < now)
        if steal_from is not None:
            free = free | (RunRow.lease_owner == steal_from)
        async with self.sessions() as s:
            res = await s.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.active_thread_id.is_not(None), free)
                .values(lease_owner=owner, lease_expires_at=now + lease)
            )
            await s.commit()
            return bool(res.rowcount)  # type: ignore[attr-defined]

    async def renew(self, run_ids: Sequence[str], owner: str, until: float) -> None:
        if not run_ids:
            return
        async with self.sessions() as s:
            await s.execute(update(RunRow).where(RunRow.id.in_(run_ids), RunRow.lease_owner == owner)
                            .values(lease_expires_at=until))
            await s.commit()

    async def release(self, run_id: str, owner: str) -> None:
        async with self.sessions() as s:
            await s.execute(update(RunRow).where(RunRow.id == run_id, RunRow.lease_owner == owner)
                            .values(lease_owner=None, lease_expires_at=None))
            await s.commit()

    async def candidates(self) -> list[tuple[str, str, str | None, float | None, int | None]]:
        """Non-terminal runs: (id, status, lease owner, lease expiry, expires_at)."""
        async with self.sessions() as s:
            rows = (await s.execute(select(RunRow.id, RunRow.status, RunRow.lease_owner,
                                           RunRow.lease_expires_at, RunRow.body)
                                    .where(RunRow.active_thread_id.is_not(None)))).all()
        return [(r[0], r[1], r[2], r[3], (r[4] or {}).get("expires_at")) for r in rows]

    async def persist_events(self, run_id: str, events: Sequence[Any]) -> None:
        if not events:
            return
        async with self.sessions() as s:
            s.add_all([RunEventRow(run_id=run_id, seq=e.seq, event=e.event, data=e.data.decode())
                       for e in events])
            await s.commit()

    async def load_events(self, run_id: str) -> list[Any]:
        from assistantd.events.bus import RunEvent

        async with self.sessions() as s:
            rows = (await s.execute(select(RunEventRow).where(RunEventRow.run_id == run_id)
                                    .order_by(RunEventRow.seq))).scalars().all()
        return [RunEvent(r.seq, r.event, r.data.encode()) for r in rows]


def wire(body: dict[str, Any]) -> dict[str, Any]:
    return public(body)
