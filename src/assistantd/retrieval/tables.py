"""The retrieval engine's tables (SQLAlchemy Core) and their dialect-specific full-text DDL.

``metadata`` is this package's own; the app's Alembic migration copies these tables and
runs `full_text_ddl(dialect)` after creating them. ``metadata.create_all`` does the same
through DDL events (tests and benchmarks use that).

- ``retrieval_stores``: one row per vector store; ``generation`` is a random token
  rewritten by every write, so any process can tell whether its in-memory vector matrix
  of that store is current with one primary-key read.
- ``retrieval_files``: a file in a store: its ``attributes`` (for filters and results)
  and the embedding model its chunks were embedded with.
- ``retrieval_chunks``: chunk text, its character span in the parsed file, and its vector
  as little-endian float32 bytes (the source of truth for the in-memory matrix).
  Full text: SQLite FTS5 external-content table ``retrieval_chunks_fts`` kept in step by
  triggers; PostgreSQL generated ``tsv tsvector`` column with a GIN index.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.schema import SchemaItem
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.sql.ddl import BaseDDLElement

from .pgvector import available_sync, enable_ddl

metadata = MetaData()

retrieval_stores = Table(
    "retrieval_stores",
    metadata,
    Column("vector_store_id", String(64), primary_key=True),
    Column("generation", String(32), nullable=False),
)

retrieval_files = Table(
    "retrieval_files",
    metadata,
    Column("vector_store_id", String(64), primary_key=True),
    Column("file_id", String(64), primary_key=True),
    Column("attributes", JSON, nullable=False),
    Column("embedding_model", String(200), nullable=False),
    Column("chunk_count", Integer, nullable=False),
)

retrieval_chunks = Table(
    "retrieval_chunks",
    metadata,
    # INTEGER PRIMARY KEY on SQLite is the rowid the FTS5 external-content table points at.
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("vector_store_id", String(64), nullable=False),
    Column("file_id", String(64), nullable=False),
    Column("chunk_index", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("char_start", Integer, nullable=False),
    Column("char_end", Integer, nullable=False),
    Column("token_count", Integer, nullable=False),
    Column("embedding", LargeBinary, nullable=False),
    UniqueConstraint("vector_store_id", "file_id", "chunk_index", name="uq_retrieval_chunks_pos"),
)
Index("ix_retrieval_chunks_file", retrieval_chunks.c.file_id)

SQLITE_FULL_TEXT_DDL = [
    # porter stemming + diacritic folding: "refunds" finds "refund", "café" finds "cafe".
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
SQLITE_FULL_TEXT_DROP = ["DROP TABLE IF EXISTS retrieval_chunks_fts"]

POSTGRES_FULL_TEXT_DDL = [
    "ALTER TABLE retrieval_chunks ADD COLUMN tsv tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED",
    "CREATE INDEX ix_retrieval_chunks_tsv ON retrieval_chunks USING gin (tsv)",
]


def full_text_ddl(dialect_name: str) -> list[str]:
    """Statements to run after creating ``retrieval_chunks`` (for the Alembic migration)."""
    if dialect_name == "sqlite":
        return list(SQLITE_FULL_TEXT_DDL)
    if dialect_name == "postgresql":
        return list(POSTGRES_FULL_TEXT_DDL)
    raise ValueError(f"retrieval supports sqlite and postgresql, not {dialect_name}")


for _stmt in SQLITE_FULL_TEXT_DDL:
    event.listen(retrieval_chunks, "after_create", DDL(_stmt).execute_if(dialect="sqlite"))  # type: ignore[no-untyped-call]
for _stmt in SQLITE_FULL_TEXT_DROP:
    event.listen(retrieval_chunks, "before_drop", DDL(_stmt).execute_if(dialect="sqlite"))  # type: ignore[no-untyped-call]
for _stmt in POSTGRES_FULL_TEXT_DDL:
    event.listen(retrieval_chunks, "after_create", DDL(_stmt).execute_if(dialect="postgresql"))  # type: ignore[no-untyped-call]


def _pgvector_available(
    ddl: BaseDDLElement,
    target: SchemaItem | str,
    bind: Connection | None,
    tables: list[Table] | None = None,
    state: Any | None = None,
    *,
    dialect: Dialect | None = None,
    compiler: DDLCompiler | None = None,
    checkfirst: bool = False,
) -> bool:
    return bind is not None and available_sync(bind)


for _stmt in enable_ddl():
    event.listen(
        retrieval_chunks,
        "after_create",
        DDL(_stmt).execute_if(dialect="postgresql", callable_=_pgvector_available),  # type: ignore[no-untyped-call]
    )
