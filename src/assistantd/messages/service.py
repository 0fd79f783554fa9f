"""Rules and state changes for messages."""

from __future__ import annotations

from typing import Any, Literal, cast

from assistantd.core.db import UnitOfWork
from assistantd.core.errors import ActiveRunConflict
from assistantd.core.ids import next_seq
from assistantd.core.pagination import ListParams
from assistantd.core.schemas import CODE_FILES_MAX
from assistantd.core.wire import Deleted, ListPage, ToolResourcesWire, deleted, list_of
from assistantd.keys.service import Principal
from assistantd.messages.repository import MessageRepository
from assistantd.messages.schemas import MessageCreate, MessageModify, attachments_wire, content_wire
from assistantd.messages.wire import (
    Attachment,
    Message,
    MessageContent,
    MessageStatus,
    message_object,
)
from assistantd.runs.repository import RunRepository
from assistantd.threads.repository import ThreadRepository
from assistantd.threads.wire import Thread
from assistantd.vector_stores import service as vector_stores
from assistantd.vector_stores.references import References
from assistantd.vector_stores.runtime import VectorStoreRuntime

Role = Literal["user", "assistant"]


def new_message(
    thread_id: str,
    role: str,
    content: list[dict[str, Any]],
    *,
    attachments: list[dict[str, Any]] | None = None,
    metadata: dict[str, str] | None = None,
    assistant_id: str | None = None,
    run_id: str | None = None,
    status: str = "completed",
) -> dict[str, Any]:
    """`wire.message_object` for the run engine, which still builds messages as untyped dicts."""
    return cast(
        dict[str, Any],
        message_object(
            thread_id,
            cast(Role, role),
            cast("list[MessageContent]", content),
            attachments=cast("list[Attachment] | None", attachments),
            metadata=metadata,
            assistant_id=assistant_id,
            run_id=run_id,
            status=cast(MessageStatus, status),
        ),
    )


async def insert(uow: UnitOfWork, project_id: str, body: Message) -> None:
    """Store a new message (its row's columns; no ORM object is built for it)."""
    await MessageRepository(uow.session).insert_values(
        {
            "id": body["id"],
            "project_id": project_id,
            "seq": next_seq(),
            "created_at": body["created_at"],
            "thread_id": body["thread_id"],
            "run_id": body["run_id"],
            "body": body,
        }
    )


async def add_user_messages(
    uow: UnitOfWork,
    caller: Principal,
    thread_id: str,
    reqs: list[MessageCreate],
    stores: VectorStoreRuntime,
) -> list[Message]:
    """Append request messages to a thread (creation, `additional_messages`); no lock check.

    The caller has checked the files they name (`References.message`).

    Attachments add their files to the thread's `tool_resources` (CONTRACT §4):
    code_interpreter ones to its `code_interpreter.file_ids`, file_search ones to its
    vector store.
    """
    out: list[Message] = []
    search_files: list[str] = []
    code_files: list[str] = []
    for req in reqs:
        attachments = attachments_wire(req)
        body = message_object(
            thread_id,
            req.role,
            content_wire(req.content),
            attachments=attachments,
            metadata=req.metadata,
        )
        await insert(uow, caller.project_id, body)
        out.append(body)
        search_files += [
            a["file_id"] for a in attachments if any(t["type"] == "file_search" for t in a["tools"])
        ]
        code_files += [
            a["file_id"]
            for a in attachments
            if any(t["type"] == "code_interpreter" for t in a["tools"])
        ]
    if code_files or search_files:
        await attach_files(
            uow, caller, thread_id, code_files, list(dict.fromkeys(search_files)), stores
        )
    return out


async def attach_files(
    uow: UnitOfWork,
    caller: Principal,
    thread_id: str,
    code_files: list[str],
    search_files: list[str],
    stores: VectorStoreRuntime,
) -> None:
    """Message attachments into the thread's `tool_resources`, with one read and at most
    one write of the thread (the files are checked).

    code_interpreter: into `code_interpreter.file_ids`, each once, up to that list's limit
    of `CODE_FILES_MAX`; past it the file still reaches the sandbox, since a run also reads
    the attachments of the thread's messages. file_search: into the thread's store, made if
    it has none (7-day expiry after last use, as OpenAI's thread stores).
    """
    row = await ThreadRepository(uow.session).require(caller.project_id, thread_id)
    body = cast(Thread, dict(row.body))
    resources = cast(ToolResourcesWire, dict(body.get("tool_resources") or {}))
    changed = False
    ci = resources.get("code_interpreter")
    have = list(ci.get("file_ids") or []) if ci else []
    merged = list(dict.fromkeys(have + code_files))[: max(len(have), CODE_FILES_MAX)]
    if merged != have:
        resources["code_interpreter"] = {"file_ids": merged}
        changed = True
    if search_files:
        fs = resources.get("file_search")
        ids = list(fs.get("vector_store_ids") or []) if fs else []
        if ids:
            await vector_stores.add_files(stores, uow, caller.project_id, ids[0], search_files)
        else:
            store = await vector_stores.create_store_with_files(
                stores,
                uow,
                caller.project_id,
                search_files,
                expires_after_days=vector_stores.THREAD_STORE_EXPIRY_DAYS,
            )
            resources["file_search"] = {"vector_store_ids": [store["id"]]}
            changed = True
    if changed:
        body["tool_resources"] = resources
        await ThreadRepository(uow.session).save_body(row, body)


async def ensure_unlocked(uow: UnitOfWork, thread_id: str) -> None:
    active = await RunRepository(uow.session).active_for_thread(thread_id)
    if active is not None:
        raise ActiveRunConflict(
            f"Can't add messages to {thread_id} while a run {active} is active."
        )


async def create(
    uow: UnitOfWork,
    caller: Principal,
    thread_id: str,
    req: MessageCreate,
    stores: VectorStoreRuntime,
) -> Message:
    await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
    await ensure_unlocked(uow, thread_id)
    await References().message(req).check(uow.session, caller.project_id)
    (body,) = await add_user_messages(uow, caller, thread_id, [req], stores)
    return body


async def retrieve(uow: UnitOfWork, caller: Principal, thread_id: str, message_id: str) -> Message:
    await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
    return cast(
        Message,
        (
            await MessageRepository(uow.session).require(
                caller.project_id, message_id, thread_id=thread_id
            )
        ).body,
    )


async def modify(
    uow: UnitOfWork, caller: Principal, thread_id: str, message_id: str, req: MessageModify
) -> Message:
    await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
    row = await MessageRepository(uow.session).require(
        caller.project_id, message_id, thread_id=thread_id
    )
    body = cast(Message, dict(row.body))
    if "metadata" in req.model_fields_set:
        body["metadata"] = req.metadata or {}
    await MessageRepository(uow.session).save_body(row, body)
    return body


async def delete(uow: UnitOfWork, caller: Principal, thread_id: str, message_id: str) -> Deleted:
    await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
    row = await MessageRepository(uow.session).require(
        caller.project_id, message_id, thread_id=thread_id
    )
    await MessageRepository(uow.session).delete(row)
    return deleted(message_id, "thread.message.deleted")


async def list_(
    uow: UnitOfWork, caller: Principal, thread_id: str, params: ListParams, run_id: str | None
) -> ListPage[Message]:
    await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
    scope = {"thread_id": thread_id}
    if run_id:
        scope["run_id"] = run_id
    rows, more = await MessageRepository(uow.session).list_page(caller.project_id, params, **scope)
    return list_of([cast(Message, r.body) for r in rows], more)
