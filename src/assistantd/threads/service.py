"""Rules and state changes for threads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete as sql_delete

from assistantd.core.db import UnitOfWork
from assistantd.core.errors import not_found
from assistantd.core.ids import new_id, next_seq, now_seconds
from assistantd.core.references import References
from assistantd.core.resources import resolve_store_helpers, tool_resources_wire
from assistantd.keys.service import Principal
from assistantd.threads.models import ThreadRow
from assistantd.threads.repository import ThreadRepository
from assistantd.threads.schemas import ThreadCreate, ThreadModify

# Stores made for a thread (helpers, attachments) expire this many days after last use.
THREAD_STORE_DAYS = 7


def references(req: ThreadCreate, prefix: str = "") -> References:
    """The files and stores a thread-create body names (its messages' included)."""
    dot = f"{prefix}." if prefix else ""
    return References().tool_resources(req.tool_resources, f"{dot}tool_resources").messages(
        req.messages, f"{dot}messages")


async def create(uow: UnitOfWork, caller: Principal, req: ThreadCreate, stores: Any = None, *,
                 checked: bool = False) -> dict[str, Any]:
    """`checked`: the caller has already checked `references(req)` (create-and-run)."""
    # Imported here: messages depend on threads for their existence checks.
    from assistantd.messages import service as messages

    if not checked:
        await references(req).check(uow.session, caller.project_id)
    resources = await resolve_store_helpers(uow, stores, caller.project_id, req.tool_resources,
                                            expires_after_days=THREAD_STORE_DAYS)
    created = now_seconds()
    body: dict[str, Any] = {
        "id": new_id("thread_"),
        "object": "thread",
        "created_at": created,
        "metadata": req.metadata or {},
        "tool_resources": tool_resources_wire(resources),
    }
    row = ThreadRow(id=body["id"], project_id=caller.project_id, seq=next_seq(), created_at=created, body=body)
    await ThreadRepository(uow.session).insert_untracked(row)
    if req.messages:
        await messages.add_user_messages(uow, caller, body["id"], req.messages, stores)
        body = await retrieve(uow, caller, body["id"])  # attachments may have added a store
    return body


async def get_row(uow: UnitOfWork, caller: Principal, thread_id: str) -> ThreadRow:
    row = await ThreadRepository(uow.session).get(caller.project_id, thread_id)
    if row is None:
        raise not_found("thread", thread_id)
    return row


async def retrieve(uow: UnitOfWork, caller: Principal, thread_id: str) -> dict[str, Any]:
    row = await ThreadRepository(uow.session).read(caller.project_id, thread_id)
    if row is None:
        raise not_found("thread", thread_id)
    return dict(row.body)


async def require(uow: UnitOfWork, caller: Principal, thread_id: str) -> None:
    """404 unless the thread exists (in the caller's project)."""
    await retrieve(uow, caller, thread_id)


async def add_search_files(uow: UnitOfWork, caller: Principal, thread_id: str, file_ids: list[str],
                           stores: Any) -> None:
    """Message attachments for file_search: into the thread's store, made if it has none
    (7-day expiry after last use, as OpenAI's thread stores). The files are checked."""
    from assistantd.vector_stores import service as vector_stores

    row = await get_row(uow, caller, thread_id)
    body = dict(row.body)
    resources = dict(body.get("tool_resources") or {})
    ids = list((resources.get("file_search") or {}).get("vector_store_ids") or [])
    if ids:
        await vector_stores.add_files(stores, uow, caller.project_id, ids[0], file_ids)
        return
    store = await vector_stores.create_store_with_files(stores, uow, caller.project_id, file_ids,
                                                        expires_after_days=THREAD_STORE_DAYS)
    resources["file_search"] = {"vector_store_ids": [store["id"]]}
    body["tool_resources"] = resources
    await ThreadRepository(uow.session).save_body(row, body)


async def modify(uow: UnitOfWork, caller: Principal, thread_id: str, req: ThreadModify) -> dict[str, Any]:
    row = await get_row(uow, caller, thread_id)
    await References().tool_resources(req.tool_resources).check(uow.session, caller.project_id)
    body = dict(row.body)
    if "metadata" in req.model_fields_set:
        body["metadata"] = req.metadata or {}
    if "tool_resources" in req.model_fields_set:
        body["tool_resources"] = tool_resources_wire(req.tool_resources, previous=body.get("tool_resources"))
    await ThreadRepository(uow.session).save_body(row, body)
    return body


async def delete(uow: UnitOfWork, caller: Principal, thread_id: str) -> dict[str, Any]:
    from assistantd.messages.models import MessageRow
    from assistantd.runs.models import RunRow, RunStepRow

    row = await get_row(uow, caller, thread_id)
    repo = ThreadRepository(uow.session)
    for model in (MessageRow, RunStepRow, RunRow):
        await repo.session.execute(sql_delete(model).where(model.thread_id == thread_id))
    await repo.delete(row)
    return {"id": thread_id, "object": "thread.deleted", "deleted": True}
