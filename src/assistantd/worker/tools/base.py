"""Server-side tools: what the model calls that assistantd itself executes.

A `ServerTool` is offered to the model as a function (`file_search`, `code_interpreter`),
streams its own step deltas while the call arrives and runs, and returns the finished tool
call object for the run step plus the text the model reads as the call's output.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from assistantd.llm.base import ToolSpec

Emit = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class ToolCallState:
    """One server tool call as it streams in and runs."""

    index: int  # position in the step's tool_calls
    id: str
    name: str
    arguments: str = ""
    scratch: dict[str, Any] = field(default_factory=dict)  # the tool's own streaming state


@dataclass
class ToolEnv:
    """What a tool may use: the run, its project, and a way to stream step deltas."""

    run: dict[str, Any]
    project_id: str
    emit: Emit  # publishes {"index", "type", ...} as a thread.run.step.delta entry
    # {"code_interpreter": [file ids], "file_search": [vector store ids]} the run may use
    resources: dict[str, list[str]] = field(default_factory=dict)
    thread_stores: list[str] = field(default_factory=list)  # the thread's own (waited for)
    last_user_text: str = ""
    file_search_ordinal: int = 0  # which file_search call of the run this is (for 【n:m†…】)


@dataclass
class ToolOutcome:
    """A finished call: `call` is the step's tool call object (wire shape); `output` is what
    the model reads; `images`/`files` are file ids the message should show or cite;
    `citations` maps result number → (file_id, filename) for 【n:m†…】 markers."""

    call: dict[str, Any]
    output: str
    images: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # sandbox path name → file id
    citations: dict[int, tuple[str, str]] = field(default_factory=dict)


class ServerTool(abc.ABC):
    type: str  # the Assistants tool type: "file_search" | "code_interpreter"

    @abc.abstractmethod
    def spec(self, tool: dict[str, Any]) -> ToolSpec:
        """The function the model is offered for this run tool."""

    @abc.abstractmethod
    def intro(self, call: ToolCallState, tool: dict[str, Any]) -> dict[str, Any]:
        """The step-delta entry that introduces the call (id and type, sent once)."""

    async def on_arguments(self, env: ToolEnv, call: ToolCallState, fragment: str) -> None:
        """A fragment of the call's arguments arrived (already appended to `call.arguments`)."""
        return None

    @abc.abstractmethod
    async def execute(self, env: ToolEnv, call: ToolCallState, tool: dict[str, Any]) -> ToolOutcome:
        """Run the call; raise `ToolFailed` for a failure the run should report."""


class ToolFailed(Exception):
    """A server tool could not do its work; the run fails with this message."""


def parse_arguments(call: ToolCallState) -> dict[str, Any]:
    try:
        value = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class JSONStringField:
    """Decodes one string field of a JSON object while its text streams in.

    Code interpreter input arrives as `{"code": "import math\\nprint(…"`: the user's stream
    must show the code itself, fragment by fragment, not the JSON around it.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self.raw = ""
        self.pos: int | None = None  # index in raw of the first char of the value
        self.done = False

    def feed(self, fragment: str) -> str:
        """Append `fragment`; return the newly decoded characters of the field."""
        self.raw += fragment
        if self.done:
            return ""
        if self.pos is None:
            marker = f'"{self.key}"'
            at = self.raw.find(marker)
            if at < 0:
                return ""
            rest = self.raw[at + len(marker) :]
            stripped = rest.lstrip()
            if not stripped.startswith(":"):
                return ""
            after_colon = stripped[1:].lstrip()
            if not after_colon.startswith('"'):
                return ""
            self.pos = len(self.raw) - len(after_colon) + 1
        out = []
        i = self.pos
        while i < len(self.raw):
            ch = self.raw[i]
            if ch == '"':
                self.done = True
                i += 1
                break
            if ch == "\\":
                if i + 1 >= len(self.raw):
                    break
                esc = self.raw[i + 1]
                if esc == "u":
                    if i + 6 > len(self.raw):
                        break
                    try:
                        out.append(chr(int(self.raw[i + 2 : i + 6], 16)))
                    except ValueError:
                        out.append("?")
                    i += 6
                    continue
                out.append({"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}.get(esc, esc))
                i += 2
                continue
            out.append(ch)
            i += 1
        self.pos = i
        return "".join(out)
