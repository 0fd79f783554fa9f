from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from assistantd.core.db import Base, ObjectRow


class VectorStoreRow(ObjectRow, Base):
    """A vector store; `file_counts`, `usage_bytes` and `status` are derived from its files."""

    __tablename__ = "vector_stores"
    __table_args__ = (
        Index("ix_vector_stores_project_seq", "project_id", "seq"),
        Index("ix_vector_stores_expires_at", "expires_at"),
    )

    # `last_active_at + expires_after.days`, kept as a column for the expiry sweep.
    expires_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Set once by the sweep (or a read that finds it past due); an expired store stays so.
    expired_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The embedder that built the store's vectors (`Embedder.model_id`); vectors of two
    # models never mix. NULL only on stores made before the embedder was recorded.
    embedding_model: Mapped[str | None] = mapped_column(String(256), nullable=True)


class VectorStoreFileRow(ObjectRow, Base):
    """A file attached to a store; `id` is the file id, so the key is (vector_store_id, id).

    `status` and `usage_bytes` are columns because stores and batches aggregate them;
    `lease_*` name the ingestion worker processing it, so only one process ever does.
    """

    __tablename__ = "vector_store_files"
    __table_args__ = (
        Index("ix_vector_store_files_store_seq", "vector_store_id", "seq"),
        Index("ix_vector_store_files_file", "id"),
        Index("ix_vector_store_files_batch", "batch_id"),
        Index("ix_vector_store_files_status", "status"),
    )

    vector_store_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    usage_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class VectorStoreFileBatchRow(ObjectRow, Base):
    """A file batch; its counts are those of the store files that carry its `batch_id`."""

    __tablename__ = "vector_store_file_batches"
    __table_args__ = (Index("ix_vector_store_file_batches_store", "vector_store_id"),)

    vector_store_id: Mapped[str] = mapped_column(String(64))
    # Set by `cancel`: the batch then reads `cancelled` whatever its files' counts say.
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
