"""Private state out of run, step and file bodies: a `state` column beside `body`.

Revision ID: 0008
Revises: 0007

Until this revision runs and run steps kept the engine's state in their stored wire object
under `_`-prefixed keys, which every read stripped again, and `assistantd import` marked
a file without bytes in its body. Now (`runs/state.py`):
- `runs.body._include_content`, `_api_key_id`, `_usage`, `_pending_step_id`,
  `_model_calls` and `_exported_status` → `runs.state` (a JSON object, the same names
  without the `_`); `_project_id`, written and never read, goes (the column has it);
- `run_steps.body._usage` and `_joins_previous` → `run_steps.state`, and each server tool
  call's `_output`, `_model_call`, `_citations` and `_files` (inside
  `step_details.tool_calls`) → `run_steps.state.calls[<call id>]`;
- `files.body._content_missing` → `files.content_missing`.

Existing rows move over in the same transaction (SQLite's JSON functions keep the other
keys in their order); the downgrade writes the keys back.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: (table, a body key, the state field it becomes)
SCALARS = [
    ("runs", "_include_content", "include_content"),
    ("runs", "_api_key_id", "api_key_id"),
    ("runs", "_usage", "usage"),
    ("runs", "_pending_step_id", "pending_step_id"),
    ("runs", "_model_calls", "model_calls"),
    ("runs", "_exported_status", "exported_status"),
    ("run_steps", "_usage", "usage"),
    ("run_steps", "_joins_previous", "joins_previous"),
]
#: A tool call's body key → its field in `state.calls[<call id>]`.
CALL_KEYS = {
    "_output": "output",
    "_model_call": "model_call",
    "_citations": "citations",
    "_files": "files",
}


def _scalar_up(pg: bool, table: str, key: str, name: str) -> str:
    if pg:
        return (
            f"UPDATE {table} SET state = state || jsonb_build_object('{name}', body -> '{key}'), "
            f"body = body - '{key}' WHERE body -> '{key}' IS NOT NULL"
        )
    return (
        f"UPDATE {table} SET state = json_set(state, '$.{name}', json(body -> '$.{key}')), "
        f"body = json_remove(body, '$.{key}') WHERE json_type(body, '$.{key}') IS NOT NULL"
    )


def _scalar_down(pg: bool, table: str, key: str, name: str) -> str:
    if pg:
        return (
            f"UPDATE {table} SET body = body || jsonb_build_object('{key}', state -> '{name}'), "
            f"state = state - '{name}' WHERE state -> '{name}' IS NOT NULL"
        )
    return (
        f"UPDATE {table} SET body = json_set(body, '$.{key}', json(state -> '$.{name}')), "
        f"state = json_remove(state, '$.{name}') WHERE json_type(state, '$.{name}') IS NOT NULL"
    )


def _calls_up(pg: bool) -> str:
    if pg:
        fields = ", ".join(f"'{name}', c -> '{key}'" for key, name in CALL_KEYS.items())
        bare = " - ".join(["c", *(f"'{key}'" for key in CALL_KEYS)])
        has = " OR ".join(f"c -> '{key}' IS NOT NULL" for key in CALL_KEYS)
        calls = "jsonb_array_elements(body -> 'step_details' -> 'tool_calls')"
        return (
            "UPDATE run_steps SET state = state || jsonb_build_object('calls', ("
            f"SELECT jsonb_object_agg(c ->> 'id', jsonb_strip_nulls(jsonb_build_object({fields}))) "
            f"FROM {calls} AS c WHERE {has})), "
            "body = jsonb_set(body, '{step_details,tool_calls}', ("
            f"SELECT jsonb_agg({bare} ORDER BY n) FROM {calls} WITH ORDINALITY AS t(c, n))) "
            f"WHERE body -> 'step_details' ->> 'type' = 'tool_calls' "
            f"AND EXISTS (SELECT 1 FROM {calls} AS c WHERE {has})"
        )
    fields = ", ".join(f"'{name}', json(c.value -> '$.{key}')" for key, name in CALL_KEYS.items())
    paths = ", ".join(f"'$.{key}'" for key in CALL_KEYS)
    has = " OR ".join(f"json_type(c.value, '$.{key}') IS NOT NULL" for key in CALL_KEYS)
    calls = "(SELECT key, value FROM json_each(body, '$.step_details.tool_calls') ORDER BY key)"
    return (
        "UPDATE run_steps SET state = json_set(state, '$.calls', json(("
        "SELECT json_group_object(json_extract(c.value, '$.id'), "
        f"json_patch('{{}}', json_object({fields}))) FROM {calls} AS c WHERE {has}))), "
        "body = json_set(body, '$.step_details.tool_calls', json(("
        f"SELECT json_group_array(json_remove(c.value, {paths})) FROM {calls} AS c))) "
        "WHERE json_extract(body, '$.step_details.type') = 'tool_calls' "
        f"AND EXISTS (SELECT 1 FROM {calls} AS c WHERE {has})"
    )


def _calls_down(pg: bool) -> str:
    if pg:
        fields = ", ".join(
            f"'{key}', state -> 'calls' -> (c ->> 'id') -> '{name}'"
            for key, name in CALL_KEYS.items()
        )
        return (
            "UPDATE run_steps SET body = jsonb_set(body, '{step_details,tool_calls}', ("
            f"SELECT jsonb_agg(c || jsonb_strip_nulls(jsonb_build_object({fields})) ORDER BY n) "
            "FROM jsonb_array_elements(body -> 'step_details' -> 'tool_calls') "
            "WITH ORDINALITY AS t(c, n))), "
            "state = state - 'calls' WHERE state -> 'calls' IS NOT NULL"
        )
    kept = "state -> ('$.calls.\"' || json_extract(c.value, '$.id') || '\"')"
    fields = ", ".join(f"'{key}', json({kept} -> '$.{name}')" for key, name in CALL_KEYS.items())
    return (
        "UPDATE run_steps SET body = json_set(body, '$.step_details.tool_calls', json(("
        f"SELECT json_group_array(json_patch(c.value, json_object({fields}))) FROM "
        "(SELECT key, value FROM json_each(body, '$.step_details.tool_calls') ORDER BY key) AS c))), "
        "state = json_remove(state, '$.calls') WHERE json_type(state, '$.calls') IS NOT NULL"
    )


def _files_up(pg: bool) -> str:
    if pg:
        return (
            "UPDATE files SET content_missing = COALESCE((body ->> '_content_missing')::boolean, "
            "false), body = body - '_content_missing' WHERE body -> '_content_missing' IS NOT NULL"
        )
    return (
        "UPDATE files SET content_missing = CASE WHEN json_extract(body, '$._content_missing') "
        "THEN 1 ELSE 0 END, body = json_remove(body, '$._content_missing') "
        "WHERE json_type(body, '$._content_missing') IS NOT NULL"
    )


def _files_down(pg: bool) -> str:
    if pg:
        return (
            "UPDATE files SET body = body || jsonb_build_object('_content_missing', true) "
            "WHERE content_missing"
        )
    return (
        "UPDATE files SET body = json_set(body, '$._content_missing', json('true')) "
        "WHERE content_missing"
    )


def upgrade() -> None:
    state = sa.JSON().with_variant(JSONB(), "postgresql")
    for table in ("runs", "run_steps"):
        op.add_column(
            table, sa.Column("state", state, nullable=False, server_default=sa.text("'{}'"))
        )
    op.add_column(
        "files",
        sa.Column("content_missing", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    pg = op.get_bind().dialect.name == "postgresql"
    for table, key, name in SCALARS:
        op.execute(_scalar_up(pg, table, key, name))
    op.execute(_calls_up(pg))
    op.execute(
        "UPDATE runs SET body = body - '_project_id' WHERE body -> '_project_id' IS NOT NULL"
        if pg
        else "UPDATE runs SET body = json_remove(body, '$._project_id') "
        "WHERE json_type(body, '$._project_id') IS NOT NULL"
    )
    op.execute(_files_up(pg))


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    op.execute(_files_down(pg))
    op.execute(
        "UPDATE runs SET body = body || jsonb_build_object('_project_id', project_id)"
        if pg
        else "UPDATE runs SET body = json_set(body, '$._project_id', project_id)"
    )
    op.execute(_calls_down(pg))
    for table, key, name in SCALARS:
        op.execute(_scalar_down(pg, table, key, name))
    op.drop_column("files", "content_missing")
    op.drop_column("run_steps", "state")
    op.drop_column("runs", "state")
