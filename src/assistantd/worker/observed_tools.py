"""Server-side tools (file_search, code_interpreter) whose calls are OpenTelemetry spans
(`ops/tracing.py`; nothing when tracing is off)."""

from __future__ import annotations

from typing import Any

from assistantd.llm.base import ToolSpec
from assistantd.ops import tracing
from assistantd.worker.tools.base import ServerTool, ToolCallState, ToolEnv, ToolOutcome


class ObservedTool(ServerTool):
    """A server-side tool (file_search, code_interpreter) whose calls are spans."""

    def __init__(self, inner: ServerTool) -> None:
        self.inner = inner
        self.type = inner.type

    def spec(self, tool: dict[str, Any]) -> ToolSpec:
        return self.inner.spec(tool)

    def intro(self, call: ToolCallState, tool: dict[str, Any]) -> dict[str, Any]:
        return self.inner.intro(call, tool)

    async def on_arguments(self, env: ToolEnv, call: ToolCallState, fragment: str) -> None:
        await self.inner.on_arguments(env, call, fragment)

    async def execute(self, env: ToolEnv, call: ToolCallState, tool: dict[str, Any]) -> ToolOutcome:
        span = tracing.start_span(
            f"tool {self.type}",
            {
                "assistantd.tool.type": self.type,
                "assistantd.tool.call_id": call.id,
                "assistantd.run_id": str(env.run.get("id")),
            },
        )
        try:
            outcome = await self.inner.execute(env, call, tool)
        except Exception as err:
            tracing.end(span, error=type(err).__name__)
            raise
        tracing.end(span)
        return outcome


def observe_tools(tools: dict[str, ServerTool]) -> dict[str, ServerTool]:
    return {name: ObservedTool(tool) for name, tool in tools.items()}
