"""Recording events, and the actor they name.

Every change made through the admin API is recorded with its admin key as the actor
(`{"type": "api_key", "api_key": {"id": …, "type": "user", "user": OPERATOR}}`); changes
made with the `assistantd` CLI have `actor: null`. assistantd has no users: the one
"user" an admin key or project key is owned by is the operator, `OPERATOR` below.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from assistantd.audit.event_types import RECORDED_TYPES
from assistantd.audit.models import AuditLog
from assistantd.audit.repository import AuditLogRepository
from assistantd.core.ids import new_id, next_seq, now_seconds

#: The organization's one user: whoever holds the admin keys and runs the CLI.
OPERATOR: dict[str, Any] = {
    "id": "user-operator",
    "name": "operator",
    "email": "operator@localhost",
    "role": "owner",
}


def actor(admin_key_id: str | None) -> dict[str, Any] | None:
    """The `actor` of an event made with this admin key (None: made with the CLI)."""
    if admin_key_id is None:
        return None
    return {
        "type": "api_key",
        "api_key": {
            "id": admin_key_id,
            "type": "user",
            "user": {"id": OPERATOR["id"], "email": OPERATOR["email"]},
        },
    }


async def record(
    session: AsyncSession,
    event_type: str,
    *,
    resource_id: str,
    admin_key_id: str | None,
    details: dict[str, Any] | None = None,
    project: tuple[str, str] | None = None,
) -> AuditLog:
    """Add one event in the caller's transaction: it commits (or not) with the change.

    `event_type` is one of the spec's `AuditLogEventType` values (`project.created` …);
    `details` is the event's own object (`{"id": …}` is added), served under the key
    named like the type; `project` is `(id, name)` for project-scoped events.
    """
    if event_type not in RECORDED_TYPES:
        raise ValueError(
            f"{event_type!r} is not an audit log event type (the spec's or an extension)"
        )
    now = now_seconds()
    body: dict[str, Any] = {"id": new_id("audit_log-"), "type": event_type, "effective_at": now}
    if project is not None:
        body["project"] = {"id": project[0], "name": project[1]}
    body["actor"] = actor(admin_key_id)
    body[event_type] = {"id": resource_id, **(details or {})}
    row = AuditLog(
        id=body["id"],
        seq=next_seq(),
        type=event_type,
        effective_at=now,
        project_id=project[0] if project else None,
        actor_id=admin_key_id,
        resource_id=resource_id,
        body=body,
    )
    return await AuditLogRepository(session).insert(row)
