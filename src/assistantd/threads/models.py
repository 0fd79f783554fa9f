from __future__ import annotations

from sqlalchemy import Index

from assistantd.core.db import Base, ObjectRow


class ThreadRow(ObjectRow, Base):
    __tablename__ = "threads"
    __table_args__ = (Index("ix_threads_project_seq", "project_id", "seq"),)
