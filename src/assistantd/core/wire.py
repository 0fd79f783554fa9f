"""Wire shapes every package shares: list pages, deleted objects, the error envelope,
`tool_resources`.

Each API object is a `TypedDict` in its package's `wire.py` (`assistants/wire.py`,
`messages/wire.py` …, and `runs/objects.py` for runs, steps and stream events). A
`TypedDict` is a plain `dict` at run time, so objects still go to orjson and to the JSON
columns as they are; mypy checks every key. Key order is the wire's: a constructor
writes the keys in the order clients have always received them.
`tests/unit/test_wire_types.py` checks every `TypedDict` against the OpenAPI schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, Literal, TypedDict, TypeVar

T = TypeVar("T", bound=Mapping[str, Any])

#: What the wire carries in places this server passes through as given (tool
#: definitions, `response_format`, `tool_choice`, a function's JSON-schema parameters).
JSONValue = Any
Metadata = dict[str, str]


class ListPage(TypedDict, Generic[T]):
    """`{"object": "list", …}`: the page every list endpoint answers with."""

    object: Literal["list"]
    data: list[T]
    first_id: str | None
    last_id: str | None
    has_more: bool


def list_of(data: list[T], has_more: bool) -> ListPage[T]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


class Deleted(TypedDict):
    """`{"id", "object": "<kind>.deleted", "deleted": true}` (files say `"object": "file"`)."""

    id: str
    object: str
    deleted: bool


def deleted(object_id: str, kind: str) -> Deleted:
    return {"id": object_id, "object": kind, "deleted": True}


class ErrorDetail(TypedDict):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorEnvelope(TypedDict):
    """Every failure's body: `{"error": {"message", "type", "param", "code"}}`."""

    error: ErrorDetail


def error_envelope(message: str, type_: str, param: str | None, code: str | None) -> ErrorEnvelope:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class CodeInterpreterResourcesWire(TypedDict):
    file_ids: list[str]


class FileSearchResourcesWire(TypedDict):
    vector_store_ids: list[str]


class ToolResourcesWire(TypedDict, total=False):
    """`tool_resources` of an assistant, thread or run: only the tools it names."""

    code_interpreter: CodeInterpreterResourcesWire
    file_search: FileSearchResourcesWire


class LastError(TypedDict):
    """`last_error` of a run, step or vector-store file."""

    code: str
    message: str
