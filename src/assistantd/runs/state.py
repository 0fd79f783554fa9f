"""What the engine keeps about a run and its steps that the wire never shows.

A run's and a step's `body` is exactly its wire object; this state sits beside it, in the
`state` JSON column of `runs` and `run_steps` (migration 0008), and is read and written
with the body in the same statements (`runs/repository.py::body_update`, and its twin
`worker/statements.py::update_body`).

One JSON column per table rather than a column per field: a step's state is per tool
call (keyed by call id), which has no fixed set of columns; a run's is six small values
that are never queried, only read and written whole with the body. The JSON holds only
what differs from the defaults, under these field names (0008 moved the old `_`-prefixed
body keys here under the same names without the `_`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from assistantd.runs.objects import Usage


class ModelCall(TypedDict):
    """A server tool's call as the model made it (the wire shows the tool's own shape)."""

    name: str
    arguments: str


class CallState(TypedDict):
    """A server tool call's private state: what the next model call's prompt shows as the
    tool's result, and what its results let later text cite or link."""

    output: str
    model_call: ModelCall
    #: file_search: each result's (file id, file name), in result order.
    citations: NotRequired[list[list[str]]]
    #: code_interpreter: a path under /mnt/data → the id of the file the code wrote there.
    files: NotRequired[dict[str, str]]


@dataclass
class RunState:
    """A run's private state."""

    #: `include[]` asked for file_search result content on the run's step events.
    include_content: bool = False
    #: The API key that created the run (usage rows name it).
    api_key_id: str | None = None
    #: (prompt, completion) tokens of the run's model calls so far.
    usage: tuple[int, int] = (0, 0)
    #: While `requires_action`: the tool step waiting for the client's outputs.
    pending_step_id: str | None = None
    #: Model calls made so far (bounded by ASSISTANTD_RUN_MAX_STEPS).
    model_calls: int = 0
    #: An imported run that was still active in the export: its status there.
    exported_status: str | None = None

    @classmethod
    def load(cls, data: Mapping[str, Any] | None) -> RunState:
        data = data or {}
        usage = data.get("usage") or (0, 0)
        return cls(
            include_content=bool(data.get("include_content", False)),
            api_key_id=data.get("api_key_id"),
            usage=(int(usage[0]), int(usage[1])),
            pending_step_id=data.get("pending_step_id"),
            model_calls=int(data.get("model_calls", 0)),
            exported_status=data.get("exported_status"),
        )

    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.include_content:
            out["include_content"] = True
        if self.api_key_id is not None:
            out["api_key_id"] = self.api_key_id
        if self.usage != (0, 0):
            out["usage"] = list(self.usage)
        if self.pending_step_id is not None:
            out["pending_step_id"] = self.pending_step_id
        if self.model_calls:
            out["model_calls"] = self.model_calls
        if self.exported_status is not None:
            out["exported_status"] = self.exported_status
        return out


@dataclass
class StepState:
    """A run step's private state."""

    #: A paused tool step: its model call's usage, for when the step closes.
    usage: Usage | None = None
    #: The tool calls followed text in the same model response (one assistant turn).
    joins_previous: bool = False
    #: Server tool calls by call id.
    calls: dict[str, CallState] = field(default_factory=dict)

    @classmethod
    def load(cls, data: Mapping[str, Any] | None) -> StepState:
        data = data or {}
        return cls(
            usage=data.get("usage"),
            joins_previous=bool(data.get("joins_previous", False)),
            calls=dict(data.get("calls") or {}),
        )

    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.usage is not None:
            out["usage"] = self.usage
        if self.joins_previous:
            out["joins_previous"] = True
        if self.calls:
            out["calls"] = self.calls
        return out


@dataclass
class StoredStep:
    """A step as stored: its wire object and its private state."""

    body: dict[str, Any]
    state: StepState = field(default_factory=StepState)
