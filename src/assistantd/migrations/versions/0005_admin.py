"""The admin API: projects, admin keys, service accounts, the audit log.

Revision ID: 0005
Revises: 0004

Every project id that keys already name gets a row (named after its id), and so does
`default`: existing keys keep working, in projects the admin API can see.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _tables() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("archived_at", sa.Integer(), nullable=True),
        sa.Column("external_key_id", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "admin_api_keys",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=True),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("redacted", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=True),
        sa.Column("last_used_at", sa.Integer(), nullable=True),
        sa.Column("revoked_at", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("secret_hash"),
    )
    op.create_table(
        "service_accounts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("deleted_at", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_service_accounts_project_id", "service_accounts", ["project_id"])
    op.create_table(
        "audit_logs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=96), nullable=False),
        sa.Column("effective_at", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=True),
        sa.Column("actor_id", sa.String(length=64), nullable=True),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("body", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_logs_seq", "audit_logs", ["seq"])


def upgrade() -> None:
    _tables()
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("service_account_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.Integer(), nullable=True))
    op.create_index("ix_api_keys_project_id", "api_keys", ["project_id"])
    conn = op.get_bind()
    named = {row[0] for row in conn.execute(sa.text("SELECT DISTINCT project_id FROM api_keys"))}
    now = int(time.time())
    seq = time.time_ns() // 1000
    projects = sa.table(
        "projects",
        sa.column("id", sa.String),
        sa.column("name", sa.String),
        sa.column("seq", sa.BigInteger),
        sa.column("created_at", sa.Integer),
    )
    rows = [
        {"id": pid, "name": pid, "seq": seq + i, "created_at": now}
        for i, pid in enumerate(["default", *sorted(named - {"default"})])
    ]
    op.bulk_insert(projects, rows)


def downgrade() -> None:
    op.drop_index("ix_api_keys_project_id", table_name="api_keys")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("service_account_id")
    op.drop_index("ix_audit_logs_seq", table_name="audit_logs")
    op.drop_table("audit_logs")
    op.drop_index("ix_service_accounts_project_id", table_name="service_accounts")
    op.drop_table("service_accounts")
    op.drop_table("admin_api_keys")
    op.drop_table("projects")
