"""Files, vector stores (files, file batches) and the retrieval engine's chunk index.

Revision ID: 0002
Revises: 0001

The retrieval tables mirror `assistantd.retrieval.tables` as of this revision, full-text
DDL included (SQLite FTS5 external-content table with its triggers; PostgreSQL generated
`tsvector` column with a GIN index). The statements are copied, not imported, so this
migration keeps producing the same schema when the package changes later.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

SQLITE_FULL_TEXT = [
    "CREATE VIRTUAL TABLE retrieval_chunks_fts USING fts5(text, content='retrieval_chunks', "
    "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER retrieval_chunks_fts_ai AFTER INSERT ON retrieval_chunks BEGIN "
    "INSERT INTO retrieval_chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER retrieval_chunks_fts_ad AFTER DELETE ON retrieval_chunks BEGIN "
    "INSERT INTO retrieval_chunks_fts(retrieval_chunks_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER retrieval_chunks_fts_au AFTER UPDATE OF text ON retrieval_chunks BEGIN "
    "INSERT INTO retrieval_chunks_fts(retrieval_chunks_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); "
    "INSERT INTO retrieval_chunks_fts(rowid, text) VALUES (new.id, new.text); END",
]
POSTGRES_FULL_TEXT = [
    "ALTER TABLE retrieval_chunks ADD COLUMN tsv tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED",
    "CREATE INDEX ix_retrieval_chunks_tsv ON retrieval_chunks USING gin (tsv)",
]


def _object_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("body", JSON, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "files",
        *_object_columns(),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_files_project_seq", "files", ["project_id", "seq"])
    op.create_index("ix_files_expires_at", "files", ["expires_at"])

    op.create_table(
        "vector_stores",
        *_object_columns(),
        sa.Column("expires_at", sa.Integer(), nullable=True),
        sa.Column("expired_at", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_vector_stores_project_seq", "vector_stores", ["project_id", "seq"])
    op.create_index("ix_vector_stores_expires_at", "vector_stores", ["expires_at"])

    op.create_table(
        "vector_store_files",
        *_object_columns(),
        sa.Column("vector_store_id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("usage_bytes", sa.BigInteger(), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", "vector_store_id"),
    )
    op.create_index(
        "ix_vector_store_files_store_seq", "vector_store_files", ["vector_store_id", "seq"]
    )
    op.create_index("ix_vector_store_files_file", "vector_store_files", ["id"])
    op.create_index("ix_vector_store_files_batch", "vector_store_files", ["batch_id"])
    op.create_index("ix_vector_store_files_status", "vector_store_files", ["status"])

    op.create_table(
        "vector_store_file_batches",
        *_object_columns(),
        sa.Column("vector_store_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_vector_store_file_batches_store", "vector_store_file_batches", ["vector_store_id"]
    )

    # -- the retrieval engine's chunk index (retrieval/tables.py) --------------------------
    op.create_table(
        "retrieval_stores",
        sa.Column("vector_store_id", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("vector_store_id"),
    )
    op.create_table(
        "retrieval_files",
        sa.Column("vector_store_id", sa.String(length=64), nullable=False),
        sa.Column("file_id", sa.String(length=64), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("embedding_model", sa.String(length=200), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("vector_store_id", "file_id"),
    )
    op.create_table(
        "retrieval_chunks",
        # INTEGER PRIMARY KEY on SQLite: the rowid the FTS5 external-content table points at.
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("vector_store_id", sa.String(length=64), nullable=False),
        sa.Column("file_id", sa.String(length=64), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "vector_store_id", "file_id", "chunk_index", name="uq_retrieval_chunks_pos"
        ),
    )
    op.create_index("ix_retrieval_chunks_file", "retrieval_chunks", ["file_id"])
    dialect = op.get_bind().dialect.name
    for stmt in (
        SQLITE_FULL_TEXT
        if dialect == "sqlite"
        else POSTGRES_FULL_TEXT
        if dialect == "postgresql"
        else []
    ):
        op.execute(stmt)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS retrieval_chunks_fts")
    op.drop_table("retrieval_chunks")
    op.drop_table("retrieval_files")
    op.drop_table("retrieval_stores")
    op.drop_table("vector_store_file_batches")
    op.drop_table("vector_store_files")
    op.drop_table("vector_stores")
    op.drop_table("files")
