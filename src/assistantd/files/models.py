from __future__ import annotations

from sqlalchemy import Boolean, Index, Integer, String, false
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
    #: `assistantd import` found no bytes for the file: it is listed, its content is not there.
    content_missing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
