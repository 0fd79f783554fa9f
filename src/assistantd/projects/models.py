"""The projects table: one row per project; `archived_at` set once it is archived."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from assistantd.core.db import Base

#: The project of keys made without one, and of the static keys (`ASSISTANTD_API_KEYS`).
DEFAULT_PROJECT = "default"


class Project(Base):
    """A project. Its id is what `project_id` holds in every other table."""

    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(Integer)
    archived_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    external_key_id: Mapped[str | None] = mapped_column(String(256), nullable=True)

    @property
    def active(self) -> bool:
        return self.archived_at is None
