from __future__ import annotations

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from assistantd.core.db import Base, ObjectRow


class FileRow(ObjectRow, Base):
    """An uploaded file; its bytes live at `storage.file_path(data_dir, project_id, id)`."""

    __tablename__ = "files"
    __table_args__ = (
        Index("ix_files_project_seq", "project_id", "seq"),
        Index("ix_files_expires_at", "expires_at"),
    )

    # Queried columns beside the body: the list's `purpose` filter and the expiry sweep.
    purpose: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
