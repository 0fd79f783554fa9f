"""`tool_resources` as stored and returned by assistants, threads and runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from assistantd.core.schemas import ToolResources
from assistantd.core.wire import ToolResourcesWire


def tool_resources_object(
    resources: ToolResources | None,
    *,
    previous: Mapping[str, Any] | None = None,
    v1_file_ids: list[str] | None = None,
    tool_types: set[str] | None = None,
) -> ToolResourcesWire:
    """Merge a request's `tool_resources` over what was stored (modify replaces per tool).

    `vector_stores` helpers are turned into ids by the vector-store service before this
    is called; here they are only ignored. v1 `file_ids` go to code_interpreter when that
    tool is enabled (file_search/retrieval files need a vector store: see the service).
    """
    out = cast(ToolResourcesWire, dict(previous or {}))
    if resources is not None:
        if resources.code_interpreter is not None:
            out["code_interpreter"] = {"file_ids": list(resources.code_interpreter.file_ids)}
        if resources.file_search is not None:
            ids = list(resources.file_search.vector_store_ids or [])
            out["file_search"] = {"vector_store_ids": ids}
    if v1_file_ids is not None and tool_types is not None and "code_interpreter" in tool_types:
        out["code_interpreter"] = {"file_ids": list(v1_file_ids)}
    return out
