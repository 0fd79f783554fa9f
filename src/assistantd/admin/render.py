"""The wire objects of the admin API, exactly as the spec (`admin-openapi.yaml`) shapes them."""

from __future__ import annotations

from typing import Any

from assistantd.audit.service import OPERATOR
from assistantd.keys.models import AdminApiKey, ApiKey, ServiceAccount
from assistantd.projects.models import Project


def project(p: Project) -> dict[str, Any]:
    return {
        "id": p.id,
        "object": "organization.project",
        "name": p.name,
        "created_at": p.created_at,
        "archived_at": p.archived_at,
        "status": "active" if p.active else "archived",
        "external_key_id": p.external_key_id,
    }


def admin_key(k: AdminApiKey) -> dict[str, Any]:
    return {
        "object": "organization.admin_api_key",
        "id": k.id,
        "name": k.name,
        "redacted_value": k.redacted,
        "created_at": k.created_at,
        "expires_at": k.expires_at,
        "last_used_at": k.last_used_at,
        "owner": {
            "type": "user",
            "object": "organization.user",
            "id": OPERATOR["id"],
            "name": OPERATOR["name"],
            "created_at": k.created_at,
            "role": OPERATOR["role"],
        },
    }


def admin_key_created(k: AdminApiKey, secret: str) -> dict[str, Any]:
    return {**admin_key(k), "value": secret}


def service_account(sa: ServiceAccount) -> dict[str, Any]:
    return {
        "object": "organization.project.service_account",
        "id": sa.id,
        "name": sa.name,
        "role": sa.role,
        "created_at": sa.created_at,
    }


def service_account_key(k: ApiKey, secret: str) -> dict[str, Any]:
    return {
        "object": "organization.project.service_account.api_key",
        "value": secret,
        "name": k.name or "",
        "created_at": k.created_at,
        "id": k.id,
    }


def _owner(k: ApiKey, sa: ServiceAccount | None) -> dict[str, Any]:
    if sa is not None:
        return {
            "type": "service_account",
            "service_account": {
                "id": sa.id,
                "name": sa.name,
                "created_at": sa.created_at,
                "role": sa.role,
            },
        }
    # Keys made with `assistantd keys create` belong to the operator.
    return {"type": "user", "user": {**OPERATOR, "created_at": k.created_at}}


def project_key(k: ApiKey, sa: ServiceAccount | None, project_active: bool) -> dict[str, Any]:
    return {
        "object": "organization.project.api_key",
        "redacted_value": k.redacted,
        "name": k.name or "",
        "created_at": k.created_at,
        "last_used_at": k.last_used_at,
        "id": k.id,
        "owner_project_access": "active" if project_active else "inactive",
        "owner": _owner(k, sa),
    }


def deleted(object_type: str, object_id: str) -> dict[str, Any]:
    return {"object": object_type, "id": object_id, "deleted": True}
