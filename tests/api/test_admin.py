"""The admin API (`/v1/organization/*`) through the official SDK's `client.admin.organization`:
projects, admin keys, service accounts, project keys and the audit log, and how admin keys
and project keys are kept apart."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from assistantd.core.ids import now_seconds
from assistantd.keys.models import AdminApiKey
from assistantd.keys.service import create_key
from assistantd.testing.server import Server, run_db


@pytest.fixture
def admin(server: Server) -> Iterator[openai.OpenAI]:
    with server.admin_client() as c:
        yield c


def _project_client(server: Server, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0)


def _cli_key(server: Server, project_id: str) -> tuple[str, str]:
    """A key as `assistantd keys create --project` makes it: (id, secret)."""

    async def make(uow: Any) -> tuple[str, str]:
        key, secret = await create_key(uow.session, "cli-made", project_id)
        return key.id, secret

    result: tuple[str, str] = run_db(server, make)
    return result


def test_admin_and_project_keys_are_kept_apart(server: Server, admin: openai.OpenAI) -> None:
    # A project key given as the admin key (the SDK sends no other key on admin routes).
    misused = openai.OpenAI(
        base_url=server.base_url, api_key=None, admin_api_key=server.keys["alpha"], max_retries=0
    )
    with pytest.raises(openai.PermissionDeniedError) as denied:
        misused.admin.organization.projects.list()
    assert denied.value.status_code == 403
    assert set(denied.value.body) == {"message", "type", "param", "code"}  # type: ignore[arg-type]
    assert denied.value.type == "invalid_request_error"
    # An admin key is no key at all to the Assistants API.
    as_project = openai.OpenAI(
        base_url=server.base_url, api_key=server.keys["admin"], max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        as_project.beta.assistants.list()
    for headers in ({}, {"Authorization": "Bearer sk-admin-nope"}):
        r = httpx.get(f"{server.base_url}/organization/projects", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_request_error"
    assert admin.admin.organization.projects.list().object == "list"


def test_project_lifecycle(admin: openai.OpenAI) -> None:
    projects = admin.admin.organization.projects
    made = projects.create(name="Team A", external_key_id="ext-1")
    assert made.id.startswith("proj_") and made.object == "organization.project"
    assert (made.name, made.status, made.archived_at) == ("Team A", "active", None)
    assert projects.retrieve(made.id).model_dump() == made.model_dump()
    renamed = projects.update(made.id, name="Team B")
    assert renamed.name == "Team B" and renamed.created_at == made.created_at
    assert made.id in {p.id for p in projects.list(limit=100)}

    archived = projects.archive(made.id)
    assert archived.status == "archived" and archived.archived_at is not None
    assert made.id not in {p.id for p in projects.list(limit=100).data}
    assert made.id in {p.id for p in projects.list(limit=100, include_archived=True).data}
    with pytest.raises(openai.BadRequestError):
        projects.update(made.id, name="again")
    with pytest.raises(openai.NotFoundError) as missing:
        projects.retrieve("proj_missing")
    assert "No project found with id 'proj_missing'." in missing.value.message
    for change in (
        lambda: projects.update("default", name="x"),
        lambda: projects.archive("default"),
    ):
        with pytest.raises(openai.BadRequestError):
            change()
    with pytest.raises(openai.BadRequestError):
        projects.create(name="")


def test_project_list_pages_by_cursor(admin: openai.OpenAI) -> None:
    projects = admin.admin.organization.projects
    made = [projects.create(name=f"paged {i}").id for i in range(3)]
    first = projects.list(limit=2)
    assert len(first.data) == 2 and first.has_more is True
    assert first.first_id == first.data[0].id and first.last_id == first.data[-1].id
    walked = [p.id for p in projects.list(limit=2)]  # the SDK follows `after=last_id`
    assert walked[-3:] == made and len(walked) == len(set(walked))
    with pytest.raises(openai.BadRequestError):
        projects.list(limit=101)


def test_service_account_key_works_and_is_scoped(
    server: Server, admin: openai.OpenAI, other_client: openai.OpenAI
) -> None:
    org = admin.admin.organization
    project = org.projects.create(name="with accounts")
    sa = org.projects.service_accounts.create(project.id, name="Production App")
    assert sa.id.startswith("svc_acct_") and sa.role == "member"
    assert (
        sa.api_key is not None
        and sa.api_key.value.startswith("sk-")
        and sa.api_key.name == "Secret Key"
    )

    with _project_client(server, sa.api_key.value) as tenant:
        asst = tenant.beta.assistants.create(model="m", name="tenant's")
        assert tenant.beta.assistants.retrieve(asst.id).name == "tenant's"
    with pytest.raises(openai.NotFoundError):  # another project never sees it
        other_client.beta.assistants.retrieve(asst.id)

    listed = org.projects.api_keys.list(project.id)
    key = listed.data[0]
    assert [k.id for k in listed.data] == [sa.api_key.id]
    assert key.owner.type == "service_account" and key.owner.service_account is not None
    assert key.owner.service_account.id == sa.id and key.owner_project_access == "active"
    assert sa.api_key.value not in key.redacted_value and key.redacted_value.startswith("sk-ad-")
    assert key.last_used_at is not None  # it was used above
    assert org.projects.api_keys.retrieve(key.id, project_id=project.id).id == key.id
    with pytest.raises(openai.BadRequestError):  # a service account's key goes with the account
        org.projects.api_keys.delete(key.id, project_id=project.id)
    with pytest.raises(openai.NotFoundError):  # keys are looked up within their project
        org.projects.api_keys.retrieve(key.id, project_id="alpha")

    assert (
        org.projects.service_accounts.retrieve(sa.id, project_id=project.id).name
        == "Production App"
    )
    updated = org.projects.service_accounts.update(sa.id, project_id=project.id, role="owner")
    assert updated.role == "owner"
    gone = org.projects.service_accounts.delete(sa.id, project_id=project.id)
    assert (gone.id, gone.deleted, gone.object) == (
        sa.id,
        True,
        "organization.project.service_account.deleted",
    )
    with (
        _project_client(server, sa.api_key.value) as tenant,
        pytest.raises(openai.AuthenticationError),
    ):
        tenant.beta.assistants.list()
    assert org.projects.api_keys.list(project.id).data == []
    with pytest.raises(openai.NotFoundError):
        org.projects.service_accounts.retrieve(sa.id, project_id=project.id)


def test_service_account_extra_keys_and_pages(admin: openai.OpenAI) -> None:
    accounts = admin.admin.organization.projects.service_accounts
    project = admin.admin.organization.projects.create(name="many accounts")
    only = accounts.create(project.id, name="no key", create_service_account_only=True)
    assert only.api_key is None
    extra = accounts.api_keys.create(only.id, project_id=project.id, name="second")
    assert extra.object == "organization.project.service_account.api_key" and extra.name == "second"
    assert extra.value.startswith("sk-")
    made = [only.id, *(accounts.create(project.id, name=f"sa {i}").id for i in range(3))]
    assert [a.id for a in accounts.list(project.id, limit=2)] == made
    page = accounts.list(project.id, limit=3)
    assert page.has_more is True and len(page.data) == 3


def test_archiving_a_project_stops_its_keys_at_once(server: Server, admin: openai.OpenAI) -> None:
    org = admin.admin.organization
    project = org.projects.create(name="to archive")
    sa = org.projects.service_accounts.create(project.id, name="app")
    assert sa.api_key is not None
    _, cli_secret = _cli_key(server, project.id)
    with _project_client(server, sa.api_key.value) as tenant:
        tenant.beta.assistants.list()
        org.projects.archive(project.id)
        with pytest.raises(openai.AuthenticationError) as stopped:
            tenant.beta.assistants.list()
    assert "archived" in stopped.value.message
    with _project_client(server, cli_secret) as cli_made, pytest.raises(openai.AuthenticationError):
        cli_made.beta.threads.create()
    with pytest.raises(openai.BadRequestError):
        org.projects.service_accounts.create(project.id, name="late")
    listed = org.projects.api_keys.list(project.id, owner_project_access="inactive")
    assert {k.owner_project_access for k in listed.data} == {"inactive"} and len(listed.data) == 2
    assert org.projects.api_keys.list(project.id, owner_project_access="active").data == []


def test_cli_keys_are_listed_and_deleted(server: Server, admin: openai.OpenAI) -> None:
    keys = admin.admin.organization.projects.api_keys
    project = admin.admin.organization.projects.create(name="cli keys")
    key_id, secret = _cli_key(server, project.id)
    with _project_client(server, secret) as c:  # used: the server now keeps it as valid
        assert c.beta.assistants.list().object == "list"
    listed = keys.list(project.id, owner_project_access="any")
    assert [k.id for k in listed.data] == [key_id]
    assert listed.data[0].owner.type == "user" and listed.data[0].owner.user is not None
    deleted = keys.delete(key_id, project_id=project.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (
        key_id,
        True,
        "organization.project.api_key.deleted",
    )
    with _project_client(server, secret) as c, pytest.raises(openai.AuthenticationError):
        c.beta.assistants.list()
    with pytest.raises(openai.NotFoundError):
        keys.retrieve(key_id, project_id=project.id)
    with pytest.raises(openai.NotFoundError):
        keys.list("proj_missing")


def test_admin_keys(server: Server, admin: openai.OpenAI) -> None:
    keys = admin.admin.organization.admin_api_keys
    made = keys.create(name="ops", expires_in_seconds=3600)
    assert made.value.startswith("sk-admin-") and made.redacted_value.startswith("sk-admin-")
    assert made.value not in made.redacted_value
    assert made.expires_at == made.created_at + 3600 and made.object == "organization.admin_api_key"
    assert keys.retrieve(made.id).name == "ops"
    asc = [k.id for k in keys.list()]
    assert asc[-1] == made.id and [k.id for k in keys.list(order="desc")] == asc[::-1]
    with openai.OpenAI(
        base_url=server.base_url, admin_api_key=made.value, api_key=None, max_retries=0
    ) as ops:
        assert ops.admin.organization.admin_api_keys.retrieve(made.id).last_used_at is not None
        gone = keys.delete(made.id)
        assert (gone.id, gone.deleted, gone.object) == (
            made.id,
            True,
            "organization.admin_api_key.deleted",
        )
        with pytest.raises(openai.AuthenticationError):
            ops.admin.organization.projects.list()
    with pytest.raises(openai.NotFoundError):
        keys.retrieve(made.id)
    with pytest.raises(openai.BadRequestError):
        keys.create(name="too long", expires_in_seconds=31_536_001)


def test_an_expired_admin_key_stops(server: Server, admin: openai.OpenAI) -> None:
    made = admin.admin.organization.admin_api_keys.create(name="brief", expires_in_seconds=60)
    with openai.OpenAI(
        base_url=server.base_url, admin_api_key=made.value, api_key=None, max_retries=0
    ) as brief:
        assert brief.admin.organization.projects.list().object == "list"

        async def expire(uow: Any) -> None:
            key = await uow.session.get(AdminApiKey, made.id)
            key.expires_at = now_seconds() - 1

        run_db(server, expire)
        with pytest.raises(openai.AuthenticationError):
            brief.admin.organization.projects.list()


def test_audit_log_records_and_filters(admin: openai.OpenAI) -> None:
    org = admin.admin.organization
    project = org.projects.create(name="audited")
    org.projects.update(project.id, name="audited 2")
    sa = org.projects.service_accounts.create(project.id, name="svc")
    assert sa.api_key is not None
    org.projects.service_accounts.delete(sa.id, project_id=project.id)
    org.projects.archive(project.id)

    events = list(
        org.audit_logs.list(project_ids=[project.id], limit=2)
    )  # pages of 2, newest first
    assert [e.type for e in events] == [
        "project.archived",
        "service_account.deleted",
        "api_key.deleted",
        "api_key.created",
        "service_account.created",
        "project.updated",
        "project.created",
    ]
    created = events[-1].model_dump()
    assert created["project.created"] == {
        "id": project.id,
        "data": {"name": "audited", "title": "audited"},
    }
    assert created["project"] == {"id": project.id, "name": "audited"}
    assert created["actor"]["type"] == "api_key" and created["actor"]["api_key"]["type"] == "user"
    assert events[-2].model_dump()["project.updated"]["changes_requested"] == {"title": "audited 2"}

    on_project = org.audit_logs.list(resource_ids=[project.id]).data
    assert [e.type for e in on_project] == [
        "project.archived",
        "project.updated",
        "project.created",
    ]
    typed = org.audit_logs.list(
        project_ids=[project.id], event_types=["api_key.created", "api_key.deleted"]
    )
    assert [e.type for e in typed.data] == ["api_key.deleted", "api_key.created"]
    assert {e.model_dump()[e.type]["id"] for e in typed.data} == {sa.api_key.id}
    actor = created["actor"]["api_key"]["id"]
    assert len(org.audit_logs.list(project_ids=[project.id], actor_ids=[actor]).data) == 7
    assert org.audit_logs.list(project_ids=[project.id], actor_ids=["key_other"]).data == []
    at = events[-1].effective_at
    assert len(org.audit_logs.list(project_ids=[project.id], effective_at={"gte": at}).data) == 7
    assert org.audit_logs.list(project_ids=[project.id], effective_at={"lt": at}).data == []
    first = org.audit_logs.list(project_ids=[project.id], limit=3)
    assert (
        first.has_more is True and first.first_id == events[0].id and first.last_id == events[2].id
    )
    assert org.audit_logs.list(project_ids=[project.id], event_types=["login.succeeded"]).data == []
    with pytest.raises(openai.BadRequestError) as bad:
        org.audit_logs.list(event_types=["project.exploded"])  # type: ignore[list-item]
    assert bad.value.param == "event_types"
    back = org.audit_logs.list(project_ids=[project.id], before=events[3].id, limit=2)
    assert [e.id for e in back.data] == [events[1].id, events[2].id]
