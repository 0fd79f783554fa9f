"""`tool_resources` as stored and returned by assistants and threads."""

from __future__ import annotations

from typing import Any

from assistantd.core.schemas import ToolResources


def public(body: dict[str, Any]) -> dict[str, Any]:
    """The wire object: stored bodies keep internal fields under `_`-prefixed keys."""
    return {k: v for k, v in body.items() if not k.startswith("_")}


def tool_resources_wire(
    resources: ToolResources | None,
    *,
    previous: dict[str, Any] | None = None,
    v1_file_ids: list[str] | None = None,
    tool_types: set[str] | None = None,
) -> dict[str, Any]:
    """Merge a request's `tool_resources` over what was stored (modify replaces per tool).

    `vector_stores` helpers are turned into ids by the vector-store service before this
    is called; here they are only ignored. v1 `file_ids` go to code_interpreter when that
    tool is enabled (file_search/retrieval files need a vector store: see the service).
    """
    out: dict[str, Any] = dict(previous or {})
    if resources is not None:
        if resources.code_interpreter is not None:
            out["code_interpreter"] = {"file_ids": list(resources.code_interpreter.file_ids)}
        if resources.file_search is not None:
            ids = list(resources.file_search.vector_store_ids or [])
            out["file_search"] = {"vector_store_ids": ids}
    if v1_file_ids is not None and tool_types is not None and "code_interpreter" in tool_types:
        out["code_interpreter"] = {"file_ids": list(v1_file_ids)}
    return out


async def resolve_store_helpers(uow: Any, stores: Any, project_id: str, resources: ToolResources | None,
                                *, expires_after_days: int | None) -> ToolResources | None:
    """Turn `tool_resources.file_search.vector_stores` helpers into real stores (ids)."""
    fs = resources.file_search if resources else None
    if resources is None or fs is None or not fs.vector_stores:
        return resources
    from assistantd.vector_stores import service as vector_stores

    ids = list(fs.vector_store_ids or [])
    for helper in fs.vector_stores:
        store = await vector_stores.create_store_with_files(
            stores, uow, project_id, helper.file_ids, metadata=helper.metadata,
            chunking_strategy=helper.chunking_strategy, expires_after_days=expires_after_days)
        ids.append(store["id"])
    new_fs = fs.model_copy(update={"vector_store_ids": ids, "vector_stores": None})
    return resources.model_copy(update={"file_search": new_fs})
