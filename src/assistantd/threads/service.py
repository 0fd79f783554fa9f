"""Rules and state changes for threads."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import cast

from sqlalchemy import ColumnElement
from sqlalchemy import delete as sql_delete

from assistantd.core.db import UnitOfWork, json_member_text
from assistantd.core.errors import InvalidRequest
from assistantd.core.ids import new_id, next_seq, now_seconds
from assistantd.core.pagination import ListParams
from assistantd.core.resources import tool_resources_object
from assistantd.core.wire import Deleted, ListPage, deleted, list_of
from assistantd.keys.service import Principal
from assistantd.messages import service as messages
from assistantd.messages.models import MessageRow
from assistantd.runs.models import RunRow, RunStepRow
from assistantd.threads.models import ThreadRow
from assistantd.threads.repository import ThreadRepository
from assistantd.threads.schemas import ThreadCreate, ThreadModify
from assistantd.threads.wire import Thread, thread_object
from assistantd.vector_stores import service as vector_stores
from assistantd.vector_stores.references import References
from assistantd.vector_stores.runtime import VectorStoreRuntime


def references(req: ThreadCreate, prefix: str = "") -> References:
    """The files and stores a thread-create body names (its messages' included)."""
    dot = f"{prefix}." if prefix else ""
    return (
        References()
        .tool_resources(req.tool_resources, f"{dot}tool_resources")
        .messages(req.messages, f"{dot}messages")
    )


async def create_object(
    uow: UnitOfWork,
    caller: Principal,
    req: ThreadCreate,
    stores: VectorStoreRuntime,
    *,
    checked: bool = False,
) -> Thread:
    """`checked`: the caller has already checked `references(req)` (create-and-run)."""
    if not checked:
        await references(req).check(uow.session, caller.project_id)
    resources = await vector_stores.resolve_store_helpers(
        uow,
        stores,
        caller.project_id,
        req.tool_resources,
        expires_after_days=vector_stores.THREAD_STORE_EXPIRY_DAYS,
    )
    created = now_seconds()
    body = thread_object(new_id("thread_"), created, req.metadata, tool_resources_object(resources))
    await ThreadRepository(uow.session).insert_values(
        {
            "id": body["id"],
            "project_id": caller.project_id,
            "seq": next_seq(),
            "created_at": created,
            "body": body,
        }
    )
    if req.messages:
        await messages.add_user_messages(uow, caller, body["id"], req.messages, stores)
        body = await retrieve(uow, caller, body["id"])  # attachments may have added a store
    return body


async def retrieve(uow: UnitOfWork, caller: Principal, thread_id: str) -> Thread:
    row = await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
    return cast(Thread, dict(row.body))


async def modify(uow: UnitOfWork, caller: Principal, thread_id: str, req: ThreadModify) -> Thread:
    row = await ThreadRepository(uow.session).require(caller.project_id, thread_id)
    await References().tool_resources(req.tool_resources).check(uow.session, caller.project_id)
    body = cast(Thread, dict(row.body))
    if "metadata" in req.model_fields_set:
        body["metadata"] = req.metadata or {}
    if "tool_resources" in req.model_fields_set:
        body["tool_resources"] = tool_resources_object(
            req.tool_resources, previous=body.get("tool_resources")
        )
    await ThreadRepository(uow.session).save_body(row, body)
    return body


async def delete(uow: UnitOfWork, caller: Principal, thread_id: str) -> Deleted:
    row = await ThreadRepository(uow.session).require(caller.project_id, thread_id)
    repo = ThreadRepository(uow.session)
    for model in (MessageRow, RunStepRow, RunRow):
        await repo.session.execute(sql_delete(model).where(model.thread_id == thread_id))
    await repo.delete(row)
    return deleted(thread_id, "thread.deleted")


_METADATA_PARAM = re.compile(r"metadata\[(.*)\]", re.DOTALL)
#: OpenAI's metadata bounds: at most 16 pairs, keys up to 64 characters, values up to 512.
_MAX_FILTERS, _MAX_KEY, _MAX_VALUE = 16, 64, 512


def metadata_filters(query: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The `metadata[key]=value` pairs of a list query (other parameters are ignored)."""
    filters: dict[str, str] = {}
    for name, value in query:
        if not name.startswith("metadata"):
            continue
        match = _METADATA_PARAM.fullmatch(name)
        if match is None or not match.group(1) or len(match.group(1)) > _MAX_KEY:
            raise InvalidRequest(
                f"Invalid query parameter {name[:80]!r}: expected 'metadata[key]=value' with a key "
                f"of 1 to {_MAX_KEY} characters.",
                param="metadata",
            )
        if len(value) > _MAX_VALUE:
            raise InvalidRequest(
                f"Invalid 'metadata[{match.group(1)}]': string too long. Expected a string with maximum "
                f"length {_MAX_VALUE}, but got a string with length {len(value)} instead.",
                param="metadata",
            )
        filters[match.group(1)] = value
    if len(filters) > _MAX_FILTERS:
        raise InvalidRequest(
            f"Invalid 'metadata': at most {_MAX_FILTERS} filters, got {len(filters)}.",
            param="metadata",
        )
    return filters


async def list_(
    uow: UnitOfWork, caller: Principal, params: ListParams, metadata: dict[str, str]
) -> ListPage[Thread]:
    """Extension: the project's threads, a page at a time, matching every metadata pair."""
    where: list[ColumnElement[bool]] = [
        json_member_text(ThreadRow.body, "metadata", key) == value
        for key, value in metadata.items()
    ]
    rows, more = await ThreadRepository(uow.session).list_page(caller.project_id, params, *where)
    return list_of([cast(Thread, r.body) for r in rows], more)
