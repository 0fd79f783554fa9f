from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from assistantd.core.schemas import (
    Metadata,
    ReasoningEffort,
    ResponseFormat,
    Tool,
    ToolResources,
    Wire,
)


class AssistantFields(Wire):
    name: str | None = Field(None, max_length=256)
    description: str | None = Field(None, max_length=512)
    instructions: str | None = Field(None, max_length=256_000)
    reasoning_effort: ReasoningEffort | None = None
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_resources: ToolResources | None = None
    metadata: Metadata = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    response_format: ResponseFormat | None = None
    # v1: files for code_interpreter / retrieval, mapped onto tool_resources by the service.
    file_ids: list[str] | None = Field(None, max_length=20)

    @model_validator(mode="before")
    @classmethod
    def _object_body(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("The request body must be a JSON object.")
        return data


class AssistantCreate(AssistantFields):
    model: str = Field(min_length=1, max_length=256)


class AssistantModify(AssistantFields):
    model: str | None = Field(None, min_length=1, max_length=256)
