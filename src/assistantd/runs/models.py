from __future__ import annotations

from typing import Any

from sqlalchemy import Float, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from assistantd.core.db import Base, JSONType, ObjectRow


class RunRow(ObjectRow, Base):
    """A run. `active_thread_id` is the thread id while the run is not terminal, else NULL:
    its unique index is the thread lock, so two concurrent creates cannot both win, on
    SQLite and PostgreSQL alike (NULLs never collide)."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_thread_seq", "thread_id", "seq"),
        Index("ux_runs_active_thread", "active_thread_id", unique=True),
        Index("ix_runs_status", "status"),
    )

    thread_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    active_thread_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The worker that owns the run and until when (heartbeat): a crashed worker's runs are
    # found by their stale lease and recovered.
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: The engine's private state (`runs/state.py::RunState.dump`); never on the wire.
    state: Mapped[dict[str, Any]] = mapped_column(
        JSONType, default=dict, server_default=text("'{}'")
    )


class RunStepRow(ObjectRow, Base):
    __tablename__ = "run_steps"
    __table_args__ = (Index("ix_run_steps_run_seq", "run_id", "seq"),)

    run_id: Mapped[str] = mapped_column(String(64))
    thread_id: Mapped[str] = mapped_column(String(64))
    #: The engine's private state (`runs/state.py::StepState.dump`); never on the wire.
    state: Mapped[dict[str, Any]] = mapped_column(
        JSONType, default=dict, server_default=text("'{}'")
    )


class RunEventRow(Base):
    """Every SSE event a run emitted, in order, for `GET …/runs/{id}/events` replay."""

    __tablename__ = "run_events"
    __table_args__ = (Index("ix_run_events_run_seq", "run_id", "seq", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(64))
    data: Mapped[str] = mapped_column(String)
