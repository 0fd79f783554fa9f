from __future__ import annotations

from typing import Any

from pydantic import model_validator

from assistantd.core.schemas import Metadata, ToolResources, Wire
from assistantd.messages.schemas import MessageCreate


class ThreadCreate(Wire):
    messages: list[MessageCreate] | None = None
    tool_resources: ToolResources | None = None
    metadata: Metadata = None

    @model_validator(mode="before")
    @classmethod
    def _object_body(cls, data: Any) -> Any:
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ValueError("The request body must be a JSON object.")
        return data

    @model_validator(mode="after")
    def _one_store(self) -> ThreadCreate:
        fs = self.tool_resources.file_search if self.tool_resources else None
        if fs and fs.vector_store_ids and fs.vector_stores:
            raise ValueError(
                "Invalid 'tool_resources.file_search': give either 'vector_store_ids' or "
                "'vector_stores', not both."
            )
        return self


class ThreadModify(Wire):
    tool_resources: ToolResources | None = None
    metadata: Metadata = None
