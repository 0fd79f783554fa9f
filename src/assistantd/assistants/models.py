from __future__ import annotations

from sqlalchemy import Index

from assistantd.core.db import Base, ObjectRow


class AssistantRow(ObjectRow, Base):
    __tablename__ = "assistants"
    __table_args__ = (Index("ix_assistants_project_seq", "project_id", "seq"),)
