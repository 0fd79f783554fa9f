from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from assistantd.core.schemas import (
    Metadata,
    ReasoningEffort,
    ResponseFormat,
    Tool,
    ToolResources,
    Wire,
)
from assistantd.messages.schemas import MessageCreate
from assistantd.threads.schemas import ThreadCreate


class TruncationStrategy(Wire):
    type: Literal["auto", "last_messages"]
    last_messages: int | None = Field(None, ge=1)


class NamedFunction(Wire):
    name: str


class NamedToolChoice(Wire):
    type: Literal["function", "code_interpreter", "file_search"]
    function: NamedFunction | None = None

    @model_validator(mode="after")
    def _function_named(self) -> NamedToolChoice:
        if self.type == "function" and self.function is None:
            raise ValueError("Invalid 'tool_choice': a function tool choice needs 'function.name'.")
        return self


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class RunOptions(Wire):
    """What create-run and create-thread-and-run share."""

    assistant_id: str
    model: str | None = Field(None, max_length=256)
    instructions: str | None = Field(None, max_length=256_000)
    tools: list[Tool] | None = Field(None, max_length=20)
    metadata: Metadata = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stream: bool | None = None
    max_prompt_tokens: int | None = Field(None, ge=256)
    max_completion_tokens: int | None = Field(None, ge=256)
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None

    @field_validator("assistant_id")
    @classmethod
    def _asst_prefix(cls, v: str) -> str:
        if not v.startswith("asst_"):
            raise ValueError(
                f"Invalid 'assistant_id': '{v}'. Expected an ID that begins with 'asst'."
            )
        return v


class RunCreate(RunOptions):
    reasoning_effort: ReasoningEffort | None = None
    additional_instructions: str | None = None
    additional_messages: list[MessageCreate] | None = None


class ThreadAndRunCreate(RunOptions):
    thread: ThreadCreate | None = None
    tool_resources: ToolResources | None = None


class RunModify(Wire):
    metadata: Metadata = None


class ToolOutput(Wire):
    tool_call_id: str
    output: str = ""


class SubmitToolOutputs(Wire):
    tool_outputs: Annotated[list[ToolOutput], Field(min_length=0)]
    stream: bool | None = None


def tool_choice_wire(value: Any) -> Any:
    if value is None:
        return "auto"
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True)
    return value
