"""Rules and state changes for assistants."""

from __future__ import annotations

from typing import Any

from assistantd.assistants.models import AssistantRow
from assistantd.assistants.repository import AssistantRepository
from assistantd.assistants.schemas import AssistantCreate, AssistantModify
from assistantd.core.db import UnitOfWork
from assistantd.core.ids import new_id, next_seq, now_seconds
from assistantd.core.pagination import ListParams, page
from assistantd.core.resources import public, tool_resources_wire
from assistantd.core.schemas import ToolResources, response_format_wire, tool_wire
from assistantd.keys.service import Principal
from assistantd.vector_stores import service as vector_stores
from assistantd.vector_stores.references import References
from assistantd.vector_stores.runtime import VectorStoreRuntime


def _apply(body: dict[str, Any], req: AssistantCreate | AssistantModify) -> None:
    fields = req.model_fields_set
    for name in ("model", "name", "description", "instructions"):
        if name in fields:
            body[name] = getattr(req, name)
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
    if "reasoning_effort" in fields:
        body["_reasoning_effort"] = req.reasoning_effort
    if "tool_resources" in fields or "file_ids" in fields:
        body["tool_resources"] = tool_resources_wire(
            req.tool_resources,
            previous=body.get("tool_resources"),
            v1_file_ids=req.file_ids,
            tool_types={t["type"] for t in body.get("tools", [])},
        )


async def _stores_for(uow: UnitOfWork, caller: Principal, req: AssistantCreate | AssistantModify,
                      stores: VectorStoreRuntime) -> AssistantCreate | AssistantModify:
    """Check the files and stores the request names, then create stores for
    `vector_stores` helpers and for v1 `file_ids` with `retrieval`."""
    await References().tool_resources(req.tool_resources).files("file_ids", req.file_ids).check(
        uow.session, caller.project_id)
    resources = await vector_stores.resolve_store_helpers(
        uow, stores, caller.project_id, req.tool_resources, expires_after_days=None)
    tools = {t.type for t in req.tools or []}
    if req.file_ids and "file_search" in tools and not (
            resources and resources.file_search and resources.file_search.vector_store_ids):
        store = await vector_stores.create_store_with_files(stores, uow, caller.project_id, req.file_ids,
                                                            expires_after_days=None)
        resources = ToolResources.model_validate({
            **(resources.model_dump(exclude_none=True) if resources else {}),
            "file_search": {"vector_store_ids": [store["id"]]}})
    if resources is req.tool_resources:
        return req
    return req.model_copy(update={"tool_resources": resources})


async def create(uow: UnitOfWork, caller: Principal, req: AssistantCreate,
                 stores: VectorStoreRuntime) -> dict[str, Any]:
    req = await _stores_for(uow, caller, req, stores)  # type: ignore[assignment]
    created = now_seconds()
    body: dict[str, Any] = {
        "id": new_id("asst_"),
        "object": "assistant",
        "created_at": created,
        "name": None,
        "description": None,
        "model": req.model,
        "instructions": None,
        "tools": [],
        "tool_resources": {},
        "metadata": {},
        "top_p": 1.0,
        "temperature": 1.0,
        "response_format": "auto",
    }
    _apply(body, req)
    row = AssistantRow(id=body["id"], project_id=caller.project_id, seq=next_seq(), created_at=created, body=body)
    await AssistantRepository(uow.session).insert(row)
    return public(body)


async def retrieve(uow: UnitOfWork, caller: Principal, assistant_id: str) -> dict[str, Any]:
    row = await AssistantRepository(uow.session).require_read(caller.project_id, assistant_id)
    return public(row.body)


async def modify(uow: UnitOfWork, caller: Principal, assistant_id: str, req: AssistantModify,
                 stores: VectorStoreRuntime) -> dict[str, Any]:
    row = await AssistantRepository(uow.session).require(caller.project_id, assistant_id)
    req = await _stores_for(uow, caller, req, stores)  # type: ignore[assignment]
    body = dict(row.body)
    _apply(body, req)
    await AssistantRepository(uow.session).save_body(row, body)
    return public(body)


async def delete(uow: UnitOfWork, caller: Principal, assistant_id: str) -> dict[str, Any]:
    row = await AssistantRepository(uow.session).require(caller.project_id, assistant_id)
    await AssistantRepository(uow.session).delete(row)
    return {"id": assistant_id, "object": "assistant.deleted", "deleted": True}


async def list_(uow: UnitOfWork, caller: Principal, params: ListParams) -> dict[str, Any]:
    rows, more = await AssistantRepository(uow.session).list_page(caller.project_id, params)
    return page([public(r.body) for r in rows], more)
