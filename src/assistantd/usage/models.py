"""The usage table: one row per model call of a run, written when the call finishes."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from assistantd.core.db import Base


class UsageRecord(Base):
    """What one model call of a run used: its tokens, and the server tools it called
    (`file_search` calls, `code_interpreter` calls; a thread's code session is one per bucket)."""

    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_records_created", "created_at"),
        Index("ix_usage_records_project_created", "project_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[int] = mapped_column(Integer)
    project_id: Mapped[str] = mapped_column(String(64))
    api_key_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model: Mapped[str] = mapped_column(String(256))
    run_id: Mapped[str] = mapped_column(String(64))
    thread_id: Mapped[str] = mapped_column(String(64))
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    file_search_calls: Mapped[int] = mapped_column(Integer, default=0)
    code_interpreter_calls: Mapped[int] = mapped_column(Integer, default=0)
