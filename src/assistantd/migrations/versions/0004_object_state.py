"""Private state out of the public bodies: typed columns beside `body`.

Revision ID: 0004
Revises: 0002

Until this revision three objects kept server-side state inside their stored wire object
under `_`-prefixed keys, which every read stripped again:
- `assistants.body._reasoning_effort` → `assistants.reasoning_effort`;
- `vector_stores.body._embedding_model` → `vector_stores.embedding_model`;
- `vector_store_file_batches.body._cancelled` → `vector_store_file_batches.cancelled`.

Existing rows move over in the same transaction: the value goes to the column and the
key leaves the body (SQLite's `json_remove` and PostgreSQL's `-` keep the other keys, and
on SQLite their order). The downgrade writes the keys back.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

#: (table, column, the body key it replaces, how a PostgreSQL jsonb value becomes the column's)
MOVES = [
    ("assistants", "reasoning_effort", "_reasoning_effort", "body->>'{key}'"),
    ("vector_stores", "embedding_model", "_embedding_model", "body->>'{key}'"),
    (
        "vector_store_file_batches",
        "cancelled",
        "_cancelled",
        "COALESCE((body->>'{key}')::boolean, false)",
    ),
]

SQLITE_VALUE = {
    "reasoning_effort": "json_extract(body, '$.{key}')",
    "embedding_model": "json_extract(body, '$.{key}')",
    "cancelled": "CASE WHEN json_extract(body, '$.{key}') THEN 1 ELSE 0 END",
}


def _upgrade_sql(dialect: str, table: str, column: str, key: str, pg_value: str) -> str:
    if dialect == "postgresql":
        # `body -> key` is SQL NULL only when the key is absent (a JSON null is 'null').
        return (
            f"UPDATE {table} SET {column} = {pg_value.format(key=key)}, body = body - '{key}' "
            f"WHERE body -> '{key}' IS NOT NULL"
        )
    value = SQLITE_VALUE[column].format(key=key)
    return (
        f"UPDATE {table} SET {column} = {value}, body = json_remove(body, '$.{key}') "
        f"WHERE json_type(body, '$.{key}') IS NOT NULL"
    )


def _downgrade_sql(dialect: str, table: str, column: str, key: str) -> str:
    where = column if column == "cancelled" else f"{column} IS NOT NULL"
    if dialect == "postgresql":
        return (
            f"UPDATE {table} SET body = body || jsonb_build_object('{key}', {column}) WHERE {where}"
        )
    value = "json('true')" if column == "cancelled" else column
    return f"UPDATE {table} SET body = json_set(body, '$.{key}', {value}) WHERE {where}"


def upgrade() -> None:
    op.add_column("assistants", sa.Column("reasoning_effort", sa.String(16), nullable=True))
    op.add_column("vector_stores", sa.Column("embedding_model", sa.String(256), nullable=True))
    op.add_column(
        "vector_store_file_batches",
        sa.Column("cancelled", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    dialect = op.get_bind().dialect.name
    for table, column, key, pg_value in MOVES:
        op.execute(_upgrade_sql(dialect, table, column, key, pg_value))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, column, key, _ in MOVES:
        op.execute(_downgrade_sql(dialect, table, column, key))
    op.drop_column("vector_store_file_batches", "cancelled")
    op.drop_column("vector_stores", "embedding_model")
    op.drop_column("assistants", "reasoning_effort")
