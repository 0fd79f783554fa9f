"""Request models shared by several resources: metadata, tools, tool resources, response formats.

Request models validate and normalize; `tool_wire` and `response_format_wire` give the
dicts stored and returned (the response objects' types are in `core/wire.py` and each
package's `wire.py`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

#: Deepest nesting of a free-form JSON value we store (a function's `parameters`, a response
#: format's `schema`, a chunking strategy), the value itself being level 1. Real JSON Schemas
#: stay far below it; the bound keeps every stored object printable (orjson stops at 255).
MAX_JSON_DEPTH = 64


class Wire(BaseModel):
    """Base of request models: unknown fields are ignored (newer SDKs send newer fields)."""

    model_config = ConfigDict(extra="ignore")


def _check_depth(value: Any) -> Any:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        )
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_JSON_DEPTH:
                    raise PydanticCustomError(
                        "json_too_deep",
                        "nested too deeply. Expected a JSON value at most {max_depth} levels deep",
                        {"max_depth": MAX_JSON_DEPTH},
                    )
                stack.append((child, depth + 1))
    return value


#: A free-form JSON object we store, its nesting bounded by `MAX_JSON_DEPTH`.
JSONObject = Annotated[dict[str, Any], AfterValidator(_check_depth)]


def check_key_values(value: dict[str, Any] | None, param: str) -> dict[str, Any] | None:
    """OpenAI's limits on `metadata` and vector-store file `attributes`: at most 16 keys,
    keys up to 64 characters, string values up to 512."""
    if value is None:
        return None
    if len(value) > 16:
        raise ValueError(
            f"Invalid '{param}': too many properties. Expected an object with at most 16 "
            f"properties, but got an object with {len(value)} properties instead."
        )
    for k, v in value.items():
        if len(k) > 64:
            raise ValueError(
                f"Invalid '{param}': key {k[:20]!r}… is too long. Keys can be at most 64 characters."
            )
        if isinstance(v, str) and len(v) > 512:
            raise ValueError(
                f"Invalid '{param}.{k}': string too long. Values can be at most 512 characters, "
                f"but got {len(v)}."
            )
    return value


def _check_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    return check_key_values(value, "metadata")


Metadata = Annotated[dict[str, str] | None, AfterValidator(_check_metadata)]

_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _check_function_name(name: str) -> str:
    if not _FUNCTION_NAME.match(name):
        raise ValueError(
            f"Invalid 'function.name': {name!r} does not match pattern. Expected a string that "
            "matches the pattern '^[a-zA-Z0-9_-]{1,64}$'."
        )
    return name


class FunctionDefinition(Wire):
    name: Annotated[str, AfterValidator(_check_function_name)]
    description: str | None = None
    parameters: JSONObject | None = None
    strict: bool | None = None


class FunctionTool(Wire):
    type: Literal["function"]
    function: FunctionDefinition


class CodeInterpreterTool(Wire):
    type: Literal["code_interpreter"]


class RankingOptions(Wire):
    ranker: Literal["auto", "default_2024_08_21"] = "auto"
    score_threshold: float = Field(ge=0, le=1)


class FileSearchOptions(Wire):
    max_num_results: int | None = Field(None, ge=1, le=50)
    ranking_options: RankingOptions | None = None


class FileSearchTool(Wire):
    type: Literal["file_search"]
    file_search: FileSearchOptions | None = None


def _v1_retrieval(value: Any) -> Any:
    # v1's `retrieval` tool is v2's `file_search` (CONTRACT §8).
    if isinstance(value, dict) and value.get("type") == "retrieval":
        return {"type": "file_search"}
    return value


Tool = Annotated[
    Annotated[FunctionTool | CodeInterpreterTool | FileSearchTool, Field(discriminator="type")],
    BeforeValidator(_v1_retrieval),
]


def tool_wire(tool: FunctionTool | CodeInterpreterTool | FileSearchTool) -> dict[str, Any]:
    """A tool as the API returns it, defaults filled in as OpenAI does."""
    if isinstance(tool, FunctionTool):
        fn = tool.function
        out: dict[str, Any] = {"name": fn.name}
        if fn.description is not None:
            out["description"] = fn.description
        out["parameters"] = (
            fn.parameters if fn.parameters is not None else {"type": "object", "properties": {}}
        )
        out["strict"] = bool(fn.strict)
        return {"type": "function", "function": out}
    if isinstance(tool, FileSearchTool):
        opts = tool.file_search or FileSearchOptions()
        ranking = opts.ranking_options or RankingOptions(score_threshold=0.0)
        fs: dict[str, Any] = {
            # OpenAI reports the concrete ranker even when `auto` was asked for.
            "ranking_options": {
                "ranker": "default_2024_08_21",
                "score_threshold": ranking.score_threshold,
            },
        }
        if opts.max_num_results is not None:
            fs["max_num_results"] = opts.max_num_results
        return {"type": "file_search", "file_search": fs}
    return {"type": "code_interpreter"}


#: How many files a `tool_resources.code_interpreter.file_ids` list holds (OpenAI's limit).
CODE_FILES_MAX = 20


class CodeInterpreterResources(Wire):
    file_ids: list[str] = Field(default_factory=list, max_length=CODE_FILES_MAX)


class VectorStoreHelper(Wire):
    """`tool_resources.file_search.vector_stores[]`: create a store for the thread/assistant."""

    file_ids: list[str] = Field(default_factory=list, max_length=10_000)
    chunking_strategy: JSONObject | None = None
    metadata: Metadata = None


class FileSearchResources(Wire):
    vector_store_ids: list[str] | None = Field(None, max_length=1)
    vector_stores: list[VectorStoreHelper] | None = Field(None, max_length=1)


class ToolResources(Wire):
    code_interpreter: CodeInterpreterResources | None = None
    file_search: FileSearchResources | None = None


class JSONSchemaFormat(Wire):
    name: str = Field(max_length=64)
    description: str | None = None
    schema_: JSONObject | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormatText(Wire):
    type: Literal["text"]


class ResponseFormatJSONObject(Wire):
    type: Literal["json_object"]


class ResponseFormatJSONSchema(Wire):
    type: Literal["json_schema"]
    json_schema: JSONSchemaFormat


ResponseFormat = (
    Literal["auto"]
    | Annotated[
        ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema,
        Field(discriminator="type"),
    ]
)


def response_format_wire(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, ResponseFormatJSONSchema):
        js: dict[str, Any] = {"name": value.json_schema.name}
        if value.json_schema.description is not None:
            js["description"] = value.json_schema.description
        js["schema"] = value.json_schema.schema_
        js["strict"] = value.json_schema.strict
        return {"type": "json_schema", "json_schema": js}
    return {"type": value.type}


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
