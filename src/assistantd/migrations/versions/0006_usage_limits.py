"""Usage records, rate limits per project and model, spend limits.

Revision ID: 0006
Revises: 0005 (0002 on its own branch; chained after admin-core's 0005 so there is one head)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("api_key_id", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("thread_id", sa.String(length=64), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("file_search_calls", sa.Integer(), nullable=False),
        sa.Column("code_interpreter_calls", sa.Integer(), nullable=False),
    )
    op.create_index("ix_usage_records_created", "usage_records", ["created_at"])
    op.create_index(
        "ix_usage_records_project_created", "usage_records", ["project_id", "created_at"]
    )
    op.create_table(
        "project_rate_limits",
        sa.Column("project_id", sa.String(length=64), primary_key=True),
        sa.Column("model", sa.String(length=256), primary_key=True),
        sa.Column("id", sa.String(length=300), nullable=False),
        sa.Column("max_requests_per_1_minute", sa.Integer(), nullable=False),
        sa.Column("max_tokens_per_1_minute", sa.BigInteger(), nullable=False),
        sa.Column("max_concurrent_runs", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
    )
    op.create_table(
        "spend_limits",
        sa.Column("project_id", sa.String(length=64), primary_key=True),
        sa.Column("threshold_amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("interval", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("spend_limits")
    op.drop_table("project_rate_limits")
    op.drop_index("ix_usage_records_project_created", table_name="usage_records")
    op.drop_index("ix_usage_records_created", table_name="usage_records")
    op.drop_table("usage_records")
