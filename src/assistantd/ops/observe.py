"""Observers: the event bus, the model router and the sandbox, wrapped so that what passes
through them is counted (and traced, when tracing is on) without the run engine knowing.

- `ObservedBus` reads a run's life off the events it publishes: queued, in progress, the
  first text or tool-call fragment, tool rounds, and the final status.
- `ObservedModels` hands out backends that count each call, its tokens and its failure.
- `ObservedSandbox` times code executions and keeps the live-session gauge.

Server-side tool calls are spans through `worker/observed_tools.py` (execution's side).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from assistantd.core import metrics as m
from assistantd.events.bus import EventBus, RunEvent
from assistantd.llm.base import (
    ChatRequest,
    Finished,
    ModelBackend,
    ModelError,
    ModelEvent,
    ModelRouter,
)
from assistantd.ops import context, tracing
from assistantd.sandbox.base import CodeSandbox, ExecutionEvent, ExecutionResult, InputFile

#: Final statuses of a run (each counted once, by the process that ends it).
FINAL = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})
#: Runs followed at once; past it the oldest (a run handed to another process) is forgotten.
MAX_FOLLOWED = 100_000
_FRAGMENTS = frozenset({"thread.message.delta", "thread.run.step.delta"})


@dataclass(slots=True)
class _RunClock:
    queued: float | None = None  # monotonic: when it was (re)queued in this process
    started: float | None = None  # when it first went in_progress here
    segment: float | None = None  # when the current in_progress segment began
    waiting_first_token: bool = False
    tool_rounds: int = 0
    span: Any = None


class ObservedBus(EventBus):
    """The event bus, with each run's milestones counted as they are published."""

    def __init__(self, inner: EventBus) -> None:
        self.inner = inner
        self._runs: dict[str, _RunClock] = {}

    def __getattr__(self, name: str) -> Any:  # what a particular bus offers besides EventBus
        return getattr(self.inner, name)

    async def open(self, run_id: str) -> None:
        await self.inner.open(run_id)

    async def publish(
        self, run_id: str, event: str, data: dict[str, Any], fence: float | None = None
    ) -> int:
        seq = await self.inner.publish(run_id, event, data, fence)
        if event in _FRAGMENTS:
            clock = self._runs.get(run_id)
            if clock is not None and clock.waiting_first_token:
                clock.waiting_first_token = False
                if clock.segment is not None:
                    m.RUN_FIRST_TOKEN.observe(time.monotonic() - clock.segment)
        elif event.startswith("thread.run."):
            self._milestone(run_id, event[11:], data)
        return seq

    def _clock(self, run_id: str) -> _RunClock:
        clock = self._runs.get(run_id)
        if clock is None:
            if len(self._runs) >= MAX_FOLLOWED:
                del self._runs[next(iter(self._runs))]
            clock = self._runs[run_id] = _RunClock()
        return clock

    def _milestone(self, run_id: str, what: str, data: dict[str, Any]) -> None:
        now = time.monotonic()
        if what == "queued":
            self._clock(run_id).queued = now
        elif what == "in_progress":
            self._started(run_id, data, now)
        elif what == "step.created":
            if data.get("type") == "tool_calls":
                self._clock(run_id).tool_rounds += 1
        elif what == "requires_action":
            clock = self._clock(run_id)
            clock.waiting_first_token = False
            tracing.end_run(clock.span, "requires_action")
            clock.span = None
        elif what in FINAL:
            self._finished(run_id, what, data, now)

    def _started(self, run_id: str, data: dict[str, Any], now: float) -> None:
        clock = self._clock(run_id)
        if clock.queued is not None:
            m.RUN_QUEUE_WAIT.observe(now - clock.queued)
        elif clock.started is None and data.get("created_at"):
            # Queued by another process: to the second, from the run's creation.
            m.RUN_QUEUE_WAIT.observe(max(0.0, time.time() - float(data["created_at"])))
        clock.queued = None
        clock.segment = now
        clock.waiting_first_token = True
        if clock.started is None:
            clock.started = now
        clock.span = tracing.start_run(run_id, data)

    def _finished(self, run_id: str, status: str, data: dict[str, Any], now: float) -> None:
        clock = self._runs.pop(run_id, None) or _RunClock()
        m.RUNS_FINISHED.labels(status).inc()
        if clock.started is not None:
            m.RUN_DURATION.observe(now - clock.started)
        elif data.get("started_at"):
            m.RUN_DURATION.observe(max(0.0, time.time() - float(data["started_at"])))
        m.RUN_TOOL_ROUNDS.observe(clock.tool_rounds)
        tracing.end_run(clock.span, status)

    async def finish(self, run_id: str) -> None:
        await self.inner.finish(run_id)

    def subscribe(
        self, run_id: str, after: int = 0, idle: float | None = None
    ) -> AsyncGenerator[RunEvent | None, None]:
        return self.inner.subscribe(run_id, after, idle)

    async def position(self, run_id: str) -> int:
        return await self.inner.position(run_id)

    async def history(self, run_id: str) -> list[RunEvent]:
        return await self.inner.history(run_id)

    async def aclose(self) -> None:
        await self.inner.aclose()


class ObservedBackend(ModelBackend):
    """A backend whose calls are counted under the model the client asked for."""

    def __init__(self, inner: ModelBackend, model: str) -> None:
        self.inner = inner
        self.model = model
        self.context_window = inner.context_window
        self.supports_images = inner.supports_images

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        project = context.project.get() or "none"
        m.MODEL_CALLS.labels(self.model, project).inc()
        span = tracing.start_model_call(self.model, request.model, project)
        events = self.inner.stream(request)
        try:
            async for event in events:
                if isinstance(event, Finished):
                    m.MODEL_TOKENS.labels(self.model, project, "prompt").inc(
                        event.usage.prompt_tokens
                    )
                    m.MODEL_TOKENS.labels(self.model, project, "completion").inc(
                        event.usage.completion_tokens
                    )
                    tracing.model_usage(span, event)
                yield event
        except ModelError as err:
            m.MODEL_ERRORS.labels(self.model, err.code).inc()
            tracing.end(span, error=err.code)
            span = None
            raise
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
            tracing.end(span)

    async def load(self) -> None:
        await self.inner.load()

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    async def aclose(self) -> None:
        await self.inner.aclose()


class ObservedModels(ModelRouter):
    """The model router, handing out observed backends."""

    def __init__(self, inner: ModelRouter) -> None:
        self.inner = inner
        self._wrapped: dict[tuple[int, str], ObservedBackend] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def resolve(self, requested_model: str) -> tuple[ModelBackend, str]:
        backend, name = self.inner.resolve(requested_model)
        key = (id(backend), requested_model)
        wrapped = self._wrapped.get(key)
        if wrapped is None or wrapped.inner is not backend:
            if len(self._wrapped) >= 1024:
                self._wrapped.clear()
            wrapped = self._wrapped[key] = ObservedBackend(backend, requested_model)
        return wrapped, name

    async def aclose(self) -> None:
        await self.inner.aclose()


class ObservedSandbox(CodeSandbox):
    """The code sandbox, with each execution timed and the live sessions counted."""

    def __init__(self, inner: CodeSandbox) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def refresh(self) -> None:
        m.CODE_SESSIONS.set(self.inner.live_sessions())

    async def execute_stream(
        self, session_key: str, code: str, files: Sequence[InputFile] = ()
    ) -> AsyncIterator[ExecutionEvent]:
        began = time.monotonic()
        span = tracing.start_span("code_interpreter.execute")
        events = self.inner.execute_stream(session_key, code, files)
        try:
            async for event in events:
                if isinstance(event, ExecutionResult):
                    m.CODE_EXECUTION.observe(time.monotonic() - began)
                    tracing.set_attribute(span, "code.error", event.error)
                yield event
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
            tracing.end(span)
            self.refresh()

    async def start(self) -> None:
        await self.inner.start()

    def live_sessions(self) -> int:
        return self.inner.live_sessions()

    async def reset(self, session_key: str) -> None:
        await self.inner.reset(session_key)
        self.refresh()

    async def close(self) -> None:
        await self.inner.close()
        m.CODE_SESSIONS.set(0)
