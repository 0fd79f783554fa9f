"""Rules and state changes for assistants."""

from __future__ import annotations

from typing import cast

from assistantd.assistants.models import AssistantRow
from assistantd.assistants.repository import AssistantRepository
from assistantd.assistants.schemas import AssistantCreate, AssistantModify
from assistantd.assistants.wire import Assistant, assistant_object
from assistantd.core.db import UnitOfWork
from assistantd.core.ids import new_id, next_seq, now_seconds
from assistantd.core.pagination import ListParams
from assistantd.core.resources import tool_resources_object
from assistantd.core.schemas import ToolResources, response_format_wire, tool_wire
from assistantd.core.wire import Deleted, ListPage, deleted, list_of
from assistantd.keys.service import Principal
from assistantd.vector_stores import service as vector_stores
from assistantd.vector_stores.references import References
from assistantd.vector_stores.runtime import VectorStoreRuntime


def _apply(body: Assistant, req: AssistantCreate | AssistantModify) -> None:
    """Write the fields the request set over `body` (every key exists, so the order stays)."""
    fields = req.model_fields_set
    if "model" in fields:
        body["model"] = req.model  # type: ignore[typeddict-item]  # `null` is stored as sent
    if "name" in fields:
        body["name"] = req.name
    if "description" in fields:
        body["description"] = req.description
    if "instructions" in fields:
        body["instructions"] = req.instructions
    if "tools" in fields:
        body["tools"] = [tool_wire(t) for t in (req.tools or [])]
    if "metadata" in fields:
        body["metadata"] = req.metadata or {}
    if "temperature" in fields:
        body["temperature"] = req.temperature
    if "top_p" in fields:
        body["top_p"] = req.top_p
    if "response_format" in fields:
        body["response_format"] = response_format_wire(req.response_format) or "auto"
    if "tool_resources" in fields or "file_ids" in fields:
        body["tool_resources"] = tool_resources_object(
            req.tool_resources,
            previous=body.get("tool_resources"),
            v1_file_ids=req.file_ids,
            tool_types={t["type"] for t in body.get("tools", [])},
        )


async def _stores_for(
    uow: UnitOfWork,
    caller: Principal,
    req: AssistantCreate | AssistantModify,
    stores: VectorStoreRuntime,
) -> AssistantCreate | AssistantModify:
    """Check the files and stores the request names, then create stores for
    `vector_stores` helpers and for v1 `file_ids` with `retrieval`."""
    await (
        References()
        .tool_resources(req.tool_resources)
        .files("file_ids", req.file_ids)
        .check(uow.session, caller.project_id)
    )
    resources = await vector_stores.resolve_store_helpers(
        uow, stores, caller.project_id, req.tool_resources, expires_after_days=None
    )
    tools = {t.type for t in req.tools or []}
    if (
        req.file_ids
        and "file_search" in tools
        and not (resources and resources.file_search and resources.file_search.vector_store_ids)
    ):
        store = await vector_stores.create_store_with_files(
            stores, uow, caller.project_id, req.file_ids, expires_after_days=None
        )
        resources = ToolResources.model_validate(
            {
                **(resources.model_dump(exclude_none=True) if resources else {}),
                "file_search": {"vector_store_ids": [store["id"]]},
            }
        )
    if resources is req.tool_resources:
        return req
    return req.model_copy(update={"tool_resources": resources})


async def create(
    uow: UnitOfWork, caller: Principal, req: AssistantCreate, stores: VectorStoreRuntime
) -> Assistant:
    req = await _stores_for(uow, caller, req, stores)  # type: ignore[assignment]
    created = now_seconds()
    body = assistant_object(new_id("asst_"), created, req.model)
    _apply(body, req)
    row = AssistantRow(
        id=body["id"],
        project_id=caller.project_id,
        seq=next_seq(),
        created_at=created,
        body=body,
        reasoning_effort=req.reasoning_effort,
    )
    await AssistantRepository(uow.session).insert(row)
    return body


async def retrieve_object(uow: UnitOfWork, caller: Principal, assistant_id: str) -> Assistant:
    row = await AssistantRepository(uow.session).require_read(caller.project_id, assistant_id)
    return cast(Assistant, row.body)


async def modify(
    uow: UnitOfWork,
    caller: Principal,
    assistant_id: str,
    req: AssistantModify,
    stores: VectorStoreRuntime,
) -> Assistant:
    row = await AssistantRepository(uow.session).require(caller.project_id, assistant_id)
    req = await _stores_for(uow, caller, req, stores)  # type: ignore[assignment]
    body = cast(Assistant, dict(row.body))
    _apply(body, req)
    if "reasoning_effort" in req.model_fields_set:
        row.reasoning_effort = req.reasoning_effort
    await AssistantRepository(uow.session).save_body(row, body)
    return body


async def delete(uow: UnitOfWork, caller: Principal, assistant_id: str) -> Deleted:
    row = await AssistantRepository(uow.session).require(caller.project_id, assistant_id)
    await AssistantRepository(uow.session).delete(row)
    return deleted(assistant_id, "assistant.deleted")


async def list_(uow: UnitOfWork, caller: Principal, params: ListParams) -> ListPage[Assistant]:
    rows, more = await AssistantRepository(uow.session).list_page(caller.project_id, params)
    return list_of([cast(Assistant, r.body) for r in rows], more)
