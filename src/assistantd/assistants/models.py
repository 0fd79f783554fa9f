"""Assistants: a model, instructions and tools that runs use."""

from __future__ import annotations

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from assistantd.core.db import Base, ObjectRow


class AssistantRow(ObjectRow, Base):
    """An assistant; `body` is the wire object, private state sits in the columns beside it."""

    __tablename__ = "assistants"
    __table_args__ = (Index("ix_assistants_project_seq", "project_id", "seq"),)

    # Accepted and kept, but not part of the v2 Assistant object the API returns.
    reasoning_effort: Mapped[str | None] = mapped_column(String(16), nullable=True)
