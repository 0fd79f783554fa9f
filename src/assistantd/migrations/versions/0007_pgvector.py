"""pgvector: a vector column (and per-dimension HNSW index) on PostgreSQL that has it.

Revision ID: 0007
Revises: 0006

Only on PostgreSQL whose server offers the ``vector`` extension (and lets this role
create it); everywhere else this revision changes nothing and search stays on the
exact in-process matrix. Existing chunks are backfilled from their float32 bytes, and
an HNSW index is built for each dimension present (new dimensions get theirs from the
app on first write, `assistantd.retrieval.pgvector.ensure_index`). The statements are
copied, not imported, so this revision keeps producing the same schema.
"""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BATCH = 1000


def _extension_ready(bind: sa.Connection) -> bool:
    offered = bind.execute(
        sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
    ).scalar()
    if not offered:
        return False
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
    except sa.exc.DBAPIError:
        return False  # e.g. not allowed to create extensions: stay on the exact matrix
    return True


def _backfill(bind: sa.Connection) -> set[int]:
    dims_seen: set[int] = set()
    last = 0
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT id, embedding FROM retrieval_chunks WHERE id > :last ORDER BY id LIMIT :n"
            ),
            {"last": last, "n": _BATCH},
        ).all()
        if not rows:
            return dims_seen
        params = []
        for row_id, blob in rows:
            vec = np.frombuffer(bytes(blob), dtype="<f4")
            dims_seen.add(len(vec))
            params.append({"id": row_id, "v": "[" + ",".join(map(repr, vec.tolist())) + "]"})
        bind.execute(
            sa.text(
                "UPDATE retrieval_chunks SET embedding_vec = CAST(:v AS vector) WHERE id = :id"
            ),
            params,
        )
        last = rows[-1][0]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not _extension_ready(bind):
        return
    op.execute("ALTER TABLE retrieval_chunks ADD COLUMN IF NOT EXISTS embedding_vec vector")
    op.execute("ALTER TABLE retrieval_chunks ALTER COLUMN embedding_vec SET STORAGE MAIN")
    for d in sorted(_backfill(bind)):
        op.execute(
            f"CREATE INDEX IF NOT EXISTS ix_retrieval_chunks_vec_{d} ON retrieval_chunks "
            f"USING hnsw ((embedding_vec::vector({d})) vector_ip_ops) "
            "WITH (m = 16, ef_construction = 128) "
            f"WHERE vector_dims(embedding_vec) = {d}"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE retrieval_chunks DROP COLUMN IF EXISTS embedding_vec")
