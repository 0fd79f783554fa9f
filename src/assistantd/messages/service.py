"""Rules and state changes for messages."""

from __future__ import annotations

from typing import Any

from assistantd.core.db import UnitOfWork
from assistantd.core.errors import ActiveRunConflict
from assistantd.core.ids import new_id, next_seq, now_seconds
from assistantd.core.pagination import ListParams, page
from assistantd.keys.service import Principal
from assistantd.messages.models import MessageRow
from assistantd.messages.repository import MessageRepository
from assistantd.messages.schemas import MessageCreate, MessageModify, attachments_wire, content_wire
from assistantd.runs.repository import RunRepository
from assistantd.threads.repository import ThreadRepository
from assistantd.vector_stores import service as vector_stores
from assistantd.vector_stores.references import References
from assistantd.vector_stores.runtime import VectorStoreRuntime


def new_message(thread_id: str, role: str, content: list[dict[str, Any]], *,
                attachments: list[dict[str, Any]] | None = None, metadata: dict[str, str] | None = None,
                assistant_id: str | None = None, run_id: str | None = None,
                status: str = "completed") -> dict[str, Any]:
    """A Message object with every field present."""
    created = now_seconds()
    return {
        "id": new_id("msg_"),
        "object": "thread.message",
        "created_at": created,
        "assistant_id": assistant_id,
        "thread_id": thread_id,
        "run_id": run_id,
        "role": role,
        "content": content,
        "attachments": attachments or [],
        "metadata": metadata or {},
        "status": status,
        "incomplete_details": None,
        "completed_at": created if status == "completed" else None,
        "incomplete_at": None,
    }


async def insert(uow: UnitOfWork, project_id: str, body: dict[str, Any]) -> MessageRow:
    row = MessageRow(id=body["id"], project_id=project_id, seq=next_seq(), created_at=body["created_at"],
                     thread_id=body["thread_id"], run_id=body["run_id"], body=body)
    return await MessageRepository(uow.session).insert_untracked(row)


async def add_user_messages(uow: UnitOfWork, caller: Principal, thread_id: str,
                            reqs: list[MessageCreate], stores: VectorStoreRuntime) -> list[dict[str, Any]]:
    """Append request messages to a thread (creation, `additional_messages`); no lock check.

    The caller has checked the files they name (`References.message`).

    Attachments for file_search go into the thread's vector store (CONTRACT §4);
    code_interpreter attachments are read by the run from the messages themselves.
    """
    out = []
    search_files: list[str] = []
    for req in reqs:
        attachments = attachments_wire(req)
        body = new_message(thread_id, req.role, content_wire(req.content),
                           attachments=attachments, metadata=req.metadata)
        await insert(uow, caller.project_id, body)
        out.append(body)
        search_files += [a["file_id"] for a in attachments
                         if any(t["type"] == "file_search" for t in a["tools"])]
    if search_files:
        await add_search_files(uow, caller, thread_id, list(dict.fromkeys(search_files)), stores)
    return out


async def add_search_files(uow: UnitOfWork, caller: Principal, thread_id: str, file_ids: list[str],
                           stores: VectorStoreRuntime) -> None:
    """Message attachments for file_search: into the thread's store, made if it has none
    (7-day expiry after last use, as OpenAI's thread stores). The files are checked."""
    row = await ThreadRepository(uow.session).require(caller.project_id, thread_id)
    body = dict(row.body)
    resources = dict(body.get("tool_resources") or {})
    ids = list((resources.get("file_search") or {}).get("vector_store_ids") or [])
    if ids:
        await vector_stores.add_files(stores, uow, caller.project_id, ids[0], file_ids)
        return
    store = await vector_stores.create_store_with_files(
        stores, uow, caller.project_id, file_ids,
        expires_after_days=vector_stores.THREAD_STORE_EXPIRY_DAYS)
    resources["file_search"] = {"vector_store_ids": [store["id"]]}
    body["tool_resources"] = resources
    await ThreadRepository(uow.session).save_body(row, body)


async def ensure_unlocked(uow: UnitOfWork, thread_id: str) -> None:
    active = await RunRepository(uow.session).active_for_thread(thread_id)
    if active is not None:
        raise ActiveRunConflict(f"Can't add messages to {thread_id} while a run {active} is active.")


async def create(uow: UnitOfWork, caller: Principal, thread_id: str, req: MessageCreate,
                 stores: VectorStoreRuntime) -> dict[str, Any]:
    await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
    await ensure_unlocked(uow, thread_id)
    await References().message(req).check(uow.session, caller.project_id)
    (body,) = await add_user_messages(uow, caller, thread_id, [req], stores)
    return body


async def retrieve(uow: UnitOfWork, caller: Principal, thread_id: str, message_id: str) -> dict[str, Any]:
    await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
    return (await MessageRepository(uow.session).require(
        caller.project_id, message_id, MessageRow.thread_id == thread_id)).body


async def modify(uow: UnitOfWork, caller: Principal, thread_id: str, message_id: str,
                 req: MessageModify) -> dict[str, Any]:
    await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
    row = await MessageRepository(uow.session).require(
        caller.project_id, message_id, MessageRow.thread_id == thread_id)
    body = dict(row.body)
    if "metadata" in req.model_fields_set:
        body["metadata"] = req.metadata or {}
    await MessageRepository(uow.session).save_body(row, body)
    return body


async def delete(uow: UnitOfWork, caller: Principal, thread_id: str, message_id: str) -> dict[str, Any]:
    await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
    row = await MessageRepository(uow.session).require(
        caller.project_id, message_id, MessageRow.thread_id == thread_id)
    await MessageRepository(uow.session).delete(row)
    return {"id": message_id, "object": "thread.message.deleted", "deleted": True}


async def list_(uow: UnitOfWork, caller: Principal, thread_id: str, params: ListParams,
                run_id: str | None) -> dict[str, Any]:
    await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
    where = [MessageRow.thread_id == thread_id]
    if run_id:
        where.append(MessageRow.run_id == run_id)
    rows, more = await MessageRepository(uow.session).list_page(caller.project_id, params, *where)
    return page([r.body for r in rows], more)
