"""One run in flight: its model calls, the message and steps they open, the tools they
call, and how it ends.

A `RunExecution` owns the state of one run while it executes — what is open right now,
so any ending can close it properly. `RunEngine` (`worker/engine.py`) makes one per run
and drives it against cancels, the run's deadline and shutdown. Every write and event goes
through the run's `RunJournal`; every status change follows `runs/lifecycle.py`; every
model call's request comes from `worker/request.py::build_chat_request`.

Two points where more can hang off a run, named so: `model_call_finished` (a model call
ended with its usage) and `ended` (the run reached its terminal status, committed and
announced).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from assistantd.core.ids import now_seconds
from assistantd.core.settings import Settings
from assistantd.llm.base import (
    ChatRequest,
    Finished,
    ModelBackend,
    ModelError,
    ModelRouter,
    RefusalDelta,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallStarted,
    Usage,
)
from assistantd.messages.service import new_message
from assistantd.runs import lifecycle
from assistantd.runs.objects import Usage as StepUsage
from assistantd.runs.objects import new_step, step_view, usage_object
from assistantd.runs.state import CallState, RunState, StepState, StoredStep
from assistantd.usage.meter import ModelCall, UsageMeter
from assistantd.worker import prompt as prompts
from assistantd.worker import wire as events
from assistantd.worker.annotations import Annotator
from assistantd.worker.journal import RunJournal
from assistantd.worker.request import OverBudget, ToolView, build_chat_request, tool_view
from assistantd.worker.store import Opened, Opening, RunContext, RunStore
from assistantd.worker.tools.base import ServerTool, ToolCallState, ToolEnv, ToolFailed

#: How the answer's message closes when the run ends: (status, its step's usage, reason).
CloseAs = tuple[str, StepUsage | None, str | None]


class RunOutcome(Exception):
    """Ends the loop with a terminal status other than `completed`."""

    def __init__(self, status: str, **fields: Any) -> None:
        super().__init__(status)
        self.status = status
        self.fields = fields


@dataclass(frozen=True)
class Collaborators:
    """What every execution uses: the store, the models, the server tools, the files."""

    store: RunStore
    models: ModelRouter
    settings: Settings
    tools: dict[str, ServerTool]
    files: prompts.ImageFiles | None  # image_file parts shown to the model
    #: Told of every model call's usage once its row is committed (spend, TPM windows).
    meter: UsageMeter | None = None


@dataclass
class _Call:
    """A tool call as it streams in; `tool` is set for server-side tools."""

    index: int  # the backend's index
    state: ToolCallState
    tool: ServerTool | None = None
    run_tool: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return self.state.id

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def arguments(self) -> str:
        return self.state.arguments


@dataclass
class _FirstCall:
    """The first model call as the run's start prepared it (`RunExecution._opening`)."""

    backend: ModelBackend
    model_name: str
    request: ChatRequest | None = None  # None: building it failed; the call tries again


@dataclass
class _OpenMessage:
    """The answer's message while it streams, with the step that creates it."""

    body: dict[str, Any]
    step: dict[str, Any]
    images: list[str]  # figures that lead it (content parts 0 … n-1)
    text: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    # Its text and refusal parts, in the order they began: the part `kind` has content
    # index `len(images) + parts.index(kind)`.
    parts: list[str] = field(default_factory=list)

    def part_index(self, kind: str) -> int:
        if kind not in self.parts:
            self.parts.append(kind)
        return len(self.images) + self.parts.index(kind)


class RunExecution:
    def __init__(
        self,
        deps: Collaborators,
        journal: RunJournal,
        run: dict[str, Any],
        state: RunState,
        project_id: str,
        *,
        cancel: asyncio.Event | None = None,
        tracked: bool = False,
    ) -> None:
        self.deps = deps
        self.journal = journal
        self.run = run  # the wire object, as stored
        self.state = state  # what the engine keeps beside it
        self.project_id = project_id
        self.cancel = cancel
        #: This execution opened every step and message still open (nothing was left by a
        #: crash or a pause), so a completed run has none to look up.
        self.tracked = tracked
        self.message: _OpenMessage | None = None
        self.tool_step: StoredStep | None = None
        self.calls: list[_Call] = []  # the current model call's tool calls
        self.view = ToolView(resources={}, thread_stores=[], last_user_text="")
        self.pending_images: list[str] = []  # shown in the next message
        self.stopping = False  # cancel or expiry asked the loop to stop
        self.context: RunContext | None = (
            None  # read with the run's start, for its first model call
        )
        self.close_as: CloseAs | None = None  # how `end` closes the message
        #: The first model call's backend and request, as the run's start prepared them.
        self.first: _FirstCall | None = None

    @property
    def annotator(self) -> Annotator:
        return self.view.annotator

    # -- start and loop ----------------------------------------------------------------

    async def start(self) -> None:
        """The run is in progress: written with the context its first model call reads,
        and with the answer's message when that call has no tools (one transaction)."""
        # Queued with no model call counted: it has no steps yet. (A run resumed with tool
        # outputs is queued again, but its pause stored its calls; one taken over after a
        # crash is `in_progress`.)
        fresh = self.run["status"] == "queued" and self.state.model_calls == 0
        self.run.update(status="in_progress", started_at=now_seconds())
        self.context, opened = await self.journal.start(
            self.run,
            self.state,
            "thread.run.in_progress",
            dict(self.run),
            fresh=fresh,
            opening=await self._opening(),
        )
        if opened is not None:
            _, step, body = opened
            assert body is not None
            await self._message_opened(body, step.body)

    async def _opening(self) -> Opening | None:
        """What the run's start inserts for its first model call (`RunStore.start`): when
        that call has no tools, the answer's message and its step, which `model_call`
        would otherwise open in a transaction of their own while the request is on its way
        to the model. The call's request is built here and kept for it (`self.first`).
        None when the call may not happen as built here: it meets the same error again,
        in the loop, which ends the run as it would have."""
        if self.state.model_calls >= self.deps.settings.run_max_steps:
            return None
        try:
            backend, model_name = self.deps.models.resolve(self.run["model"])
            await backend.load()
        except Exception:
            return None

        def opening(context: RunContext) -> Opened | None:
            first = _FirstCall(backend, model_name)
            self.first = first
            try:
                first.request = build_chat_request(
                    context, self.run, backend, model_name, self.deps.tools, used=self.state.usage
                )
            except Exception:
                return None
            if first.request.tools:
                return None
            body, step = self._new_message()
            return self.project_id, StoredStep(step), body

        return opening

    async def loop(self) -> None:
        """Model calls (and the server tools they call) until the run pauses or is done."""
        state, limit = self.state, self.deps.settings.run_max_steps
        while True:
            calls_made = state.model_calls
            if calls_made >= limit:
                raise RunOutcome(
                    "failed",
                    last_error={
                        "code": "server_error",
                        "message": f"The run made {calls_made} model calls without finishing; the limit is "
                        f"{limit} (ASSISTANTD_RUN_MAX_STEPS).",
                    },
                )
            state.model_calls = calls_made + 1
            after = await self.model_call()
            if after == "pause":
                return
            if after == "done":
                raise RunOutcome("completed")

    # -- one model call ----------------------------------------------------------------

    async def model_call(self) -> str:
        """One model call and what follows: "done", "more" (server tools ran), or "pause"."""
        run = self.run
        first, self.first = self.first, None  # resolved and built with the run's start
        if first is not None:
            backend, model_name = first.backend, first.model_name
        else:
            backend, model_name = self.deps.models.resolve(run["model"])
            await backend.load()  # e.g. the embedded model's weights, in a thread
        context, self.context = self.context or await self.deps.store.context(run), None
        self.view = tool_view(context, run)
        try:
            request = (
                first.request
                if first is not None and first.request is not None
                else build_chat_request(
                    context, run, backend, model_name, self.deps.tools, used=self.state.usage
                )
            )
        except OverBudget as over:
            raise RunOutcome("incomplete", incomplete_details={"reason": over.reason}) from None
        if backend.supports_images:
            await prompts.load_images(
                request.messages,
                self.deps.files,
                self.project_id,
                self.deps.settings.image_max_bytes,
            )

        self.calls = []
        finished: Finished | None = None
        opening: asyncio.Task[None] | None = None
        if not request.tools and self.message is None:
            # No tools: the answer is a message whatever the model says (an empty one if it
            # says nothing). Open it while the request is on its way to the model, rather
            # than after its first token.
            opening = asyncio.create_task(self.open_message())
        try:
            async for event in backend.stream(request):
                if opening is not None:
                    await opening
                    opening = None
                await self.on_event(event)
                if isinstance(event, Finished):
                    finished = event
        finally:
            if opening is not None:
                await opening
        if finished is None:
            raise ModelError("The model stream ended without finishing.")
        step_usage = self.model_call_finished(finished.usage)
        self.metered(finished.usage)
        return await self.after_model(finished, step_usage)

    def model_call_finished(self, usage: Usage) -> StepUsage:
        """A model call ended with `usage`: the run counts it; returns the step's usage."""
        lifecycle.add_usage(self.state, usage.prompt_tokens, usage.completion_tokens)
        return usage_object(usage.prompt_tokens, usage.completion_tokens)

    def metered(self, usage: Usage) -> None:
        """Tell the usage meter (usage rows, token limits) what this model call used: its
        row is written with the step or run change that reports this usage."""
        server_tools = [c.run_tool["type"] for c in self.calls if c.run_tool is not None]
        self.journal.meter(
            ModelCall(
                project_id=self.project_id,
                api_key_id=self.state.api_key_id,
                run_id=self.run["id"],
                thread_id=self.run["thread_id"],
                model=self.run["model"],
                input_tokens=usage.prompt_tokens,
                output_tokens=usage.completion_tokens,
                file_search_calls=server_tools.count("file_search"),
                code_interpreter_calls=server_tools.count("code_interpreter"),
            )
        )

    async def on_event(self, event: Any) -> None:
        """One event of the model's stream: text, a tool call starting, arguments."""
        if self.stopping or (self.cancel is not None and self.cancel.is_set()):
            # Checked here too, not only by cancelling this task: a cancellation can be
            # lost inside a client library, and this closes the stream at the next token.
            raise asyncio.CancelledError
        if isinstance(event, TextDelta):
            if (
                event.text and not self.calls
            ):  # text after tool calls: keep it out of the call's step
                await self.text(event.text)
        elif isinstance(event, RefusalDelta):
            if event.text and not self.calls:
                await self.refusal(event.text)
        elif isinstance(event, ToolCallStarted):
            if self.run.get("parallel_tool_calls", True) or not self.calls:
                await self.tool_call_started(event)
        elif isinstance(event, ToolCallArgumentsDelta):
            await self.tool_call_arguments(event)

    async def after_model(self, finished: Finished, step_usage: StepUsage) -> str:
        """What follows a finished model call: tool calls, or the answer's end."""
        run = self.run
        if self.calls and finished.reason == "length":
            # Arguments cut off mid-JSON cannot be handed to the client as a call.
            if (
                run.get("max_completion_tokens")
                and lifecycle.used_tokens(self.state)[1] >= run["max_completion_tokens"]
            ):
                raise RunOutcome(
                    "incomplete", incomplete_details={"reason": "max_completion_tokens"}
                )
            raise ModelError(
                "The model's output was cut off in the middle of a tool call "
                "(finish_reason 'length'); its arguments are incomplete."
            )
        if self.calls:
            if self.message is not None:
                await self.close_message("completed", usage_object(0, 0))
            return await self.tool_round(step_usage)

        # Cut off by a token limit: the run's budget, or the backend's own bound on one
        # response (the embedded model's ASSISTANTD_LLM_MAX_RESPONSE_TOKENS, an upstream's
        # output limit). Either way the answer is unfinished: the contract's length stop.
        if self.message is None:
            await self.open_message()  # the model said nothing: still one (empty) message
        # `end` closes the message, in the same transaction as the run.
        self.tool_step = None
        if finished.reason == "length":
            self.close_as = ("incomplete", step_usage, "max_tokens")
            raise RunOutcome("incomplete", incomplete_details={"reason": "max_completion_tokens"})
        if finished.reason == "content_filter":
            # The upstream's filter stopped the answer: the message says so, and the run
            # completes (its incomplete_details can only name a token limit).
            self.close_as = ("incomplete", step_usage, "content_filter")
            return "done"
        self.close_as = ("completed", step_usage, None)
        return "done"

    # -- the answer's message ----------------------------------------------------------

    async def open_message(self) -> None:
        body, step = self._new_message()
        await self.journal.insert(self.project_id, StoredStep(step), body)
        await self._message_opened(body, step)

    def _new_message(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """A new answer message (`in_progress`) and the step that creates it."""
        run = self.run
        body = new_message(
            run["thread_id"],
            "assistant",
            [],
            assistant_id=run["assistant_id"],
            run_id=run["id"],
            status="in_progress",
        )
        step = new_step(
            run,
            "message_creation",
            {"type": "message_creation", "message_creation": {"message_id": body["id"]}},
        )
        return body, step

    async def _message_opened(self, body: dict[str, Any], step: dict[str, Any]) -> None:
        """The answer's message and its step are inserted: announce them, then the figures
        that lead the message."""
        # Figures from code run earlier in this run lead the message, as OpenAI showed them.
        images, self.pending_images = self.pending_images, []
        self.message = _OpenMessage(body=body, step=step, images=images)
        await self.journal.publish("thread.run.step.created", step_view(step, False))
        await self.journal.publish("thread.run.step.in_progress", step_view(step, False))
        await self.journal.publish("thread.message.created", body)
        await self.journal.publish("thread.message.in_progress", body)
        for k, file_id in enumerate(images):
            await self.journal.delta(
                "thread.message.delta",
                events.message_delta(body["id"], {"index": k, **events.image_file(file_id)}),
            )

    async def text(self, fragment: str) -> None:
        if self.message is None:
            await self.open_message()
        assert self.message is not None
        message = self.message
        text: dict[str, Any] = {"value": fragment}
        if not message.text:
            text["annotations"] = []
        message.text.append(fragment)
        # Rescanning the whole text at each token is quadratic; skip it when nothing can match.
        found = self.annotator.scan("".join(message.text)) if self.annotator.active else []
        if found:
            text["annotations"] = [*text.get("annotations", []), *found]
        await self.journal.delta(
            "thread.message.delta",
            events.message_delta(
                message.body["id"],
                {"index": message.part_index("text"), "type": "text", "text": text},
            ),
        )

    async def refusal(self, fragment: str) -> None:
        """A fragment of the model's refusal: a `refusal` part of the message, after its text."""
        if self.message is None:
            await self.open_message()
        assert self.message is not None
        message = self.message
        message.refusal.append(fragment)
        await self.journal.delta(
            "thread.message.delta",
            events.message_delta(
                message.body["id"],
                {"index": message.part_index("refusal"), "type": "refusal", "refusal": fragment},
            ),
        )

    def _content(self, message: _OpenMessage) -> list[dict[str, Any]]:
        content = [events.image_file(fid) for fid in message.images]
        for kind in message.parts:
            if kind == "text":
                value = "".join(message.text)
                self.annotator.scan(value, final=True)
                content.append(
                    {"type": "text", "text": {"value": value, "annotations": self.annotator.all()}}
                )
            else:
                content.append({"type": "refusal", "refusal": "".join(message.refusal)})
        return content

    async def close_message(
        self,
        status: str,
        usage: StepUsage | None,
        reason: str | None = None,
        last_error: dict[str, str] | None = None,
    ) -> None:
        if self.message is None:
            return
        open_message = self.message
        body = dict(open_message.body)
        body["content"] = self._content(open_message)
        lifecycle.end_message(body, status, now_seconds(), reason)
        await self.journal.record("message", body, f"thread.message.{status}")
        step_status = lifecycle.step_status_for_message(status, reason)
        await self.finish_step(
            dict(open_message.step),
            step_status,
            usage,
            last_error if step_status == "failed" else None,
        )
        self.message = None

    # -- tool calls --------------------------------------------------------------------

    async def tool_call_started(self, event: ToolCallStarted) -> None:
        run, tools = self.run, self.deps.tools
        joins = self.message is not None
        if joins:
            # The model wrote text, then called tools: the text is a finished message.
            await self.close_message("completed", usage_object(0, 0))
        if self.tool_step is None:
            step = StoredStep(
                new_step(run, "tool_calls", {"type": "tool_calls", "tool_calls": []}),
                StepState(joins_previous=joins),
            )
            await self.journal.insert(self.project_id, step)
            self.tool_step = step
            await self.journal.publish("thread.run.step.created", step_view(step.body, False))
            await self.journal.publish("thread.run.step.in_progress", step_view(step.body, False))
        state = ToolCallState(index=len(self.calls), id=event.id, name=event.name)
        run_tool = next(
            (
                t
                for t in run.get("tools") or []
                if t["type"] in tools and tools[t["type"]].spec(t).name == event.name
            ),
            None,
        )
        tool = tools[run_tool["type"]] if run_tool is not None else None
        call = _Call(index=event.index, state=state, tool=tool, run_tool=run_tool)
        self.calls.append(call)
        if tool is not None and run_tool is not None:
            await self._step_delta({"index": state.index, **tool.intro(state, run_tool)})
        else:
            await self._step_delta(
                {
                    "index": state.index,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": "", "output": None},
                }
            )

    async def tool_call_arguments(self, event: ToolCallArgumentsDelta) -> None:
        call = next((c for c in self.calls if c.index == event.index), None)
        if call is None or not event.arguments:
            return
        call.state.arguments += event.arguments
        if call.tool is not None:
            await call.tool.on_arguments(self._env(call), call.state, event.arguments)
        else:
            await self._step_delta(
                {
                    "index": call.state.index,
                    "type": "function",
                    "function": {"arguments": event.arguments},
                }
            )

    def _env(self, call: _Call) -> ToolEnv:
        async def emit(entry: dict[str, Any]) -> None:
            await self._step_delta({"index": call.state.index, **entry})

        view = self.view
        return ToolEnv(
            run=self.run,
            project_id=self.project_id,
            emit=emit,
            resources=view.resources,
            thread_stores=view.thread_stores,
            last_user_text=view.last_user_text,
            file_search_ordinal=view.file_search_calls,
        )

    async def _step_delta(self, tool_call: dict[str, Any]) -> None:
        assert self.tool_step is not None
        await self.journal.delta(
            "thread.run.step.delta", events.step_delta(self.tool_step.body["id"], tool_call)
        )

    async def tool_round(self, usage: StepUsage) -> str:
        """Run the server-side calls; then either pause for function outputs ("pause") or
        go on to the next model call ("more")."""
        run = self.run
        assert self.tool_step is not None
        known = {t["function"]["name"] for t in run.get("tools") or [] if t["type"] == "function"}
        unknown = [c.name for c in self.calls if c.tool is None and c.name not in known]
        if unknown:
            raise ModelError(
                f"The model called {unknown[0]!r}, which is not one of the run's tools."
            )
        step_state = self.tool_step.state
        entries = [await self._execute(call, step_state) for call in self.calls]
        step = dict(self.tool_step.body)
        step["step_details"] = {"type": "tool_calls", "tool_calls": entries}
        self.tool_step = None
        functions = [c for c in self.calls if c.tool is None]
        if not functions:
            await self.finish_step(step, "completed", usage, state=step_state)
            return "more"
        lifecycle.pause_for_outputs(
            run,
            self.state,
            step,
            step_state,
            usage,
            [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in functions
            ],
        )
        async with self.journal.batch():
            await self.journal.record("step", step, state=step_state)
            await self.journal.record(
                "run", run, "thread.run.requires_action", dict(run), state=self.state
            )
        await self.journal.finish()
        return "pause"

    async def _execute(self, call: _Call, step_state: StepState) -> dict[str, Any]:
        """The step's entry for one call: a function call as the model made it (its output
        comes from the client), or a server tool's call after it ran (what the engine
        keeps of it goes to `step_state.calls`)."""
        if call.tool is None or call.run_tool is None:
            return {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments, "output": None},
            }
        try:
            outcome = await call.tool.execute(self._env(call), call.state, call.run_tool)
        except ToolFailed as err:
            raise ModelError(str(err)) from err
        entry = dict(outcome.call)
        # Kept for the next model call's prompt and for citations; never shown on the wire.
        kept: CallState = {
            "output": outcome.output,
            "model_call": {"name": call.name, "arguments": call.arguments},
        }
        if call.tool.type == "file_search":
            kept["citations"] = [list(v) for _, v in sorted(outcome.citations.items())]
            for k, (fid, _name) in outcome.citations.items():
                self.annotator.citations[(self.view.file_search_calls, k)] = fid
            self.view.file_search_calls += 1
        if outcome.files:
            kept["files"] = outcome.files
            self.annotator.sandbox_files.update(outcome.files)
        step_state.calls[call.id] = kept
        self.pending_images.extend(outcome.images)
        return entry

    # -- endings -----------------------------------------------------------------------

    async def finish_step(
        self,
        step: dict[str, Any],
        status: str,
        usage: StepUsage | None,
        last_error: dict[str, str] | None = None,
        *,
        state: StepState | None = None,
    ) -> None:
        state = state or StepState()
        lifecycle.end_step(step, state, status, usage, now_seconds(), last_error)
        await self.journal.record(
            "step",
            step,
            f"thread.run.step.{status}",
            step_view(step, self.state.include_content),
            state=state,
        )

    async def end(self, status: str, **fields: Any) -> None:
        """Close what is open, then give the run its terminal status and announce it: one
        transaction, its events published after the commit."""
        run = self.run
        async with self.journal.batch():
            reason = lifecycle.message_reason(status)
            error = lifecycle.step_error(fields.get("last_error")) if status == "failed" else None
            if self.message is not None:
                how = (
                    self.close_as
                    if status in ("completed", "incomplete") and self.close_as
                    else None
                )
                if how is not None:
                    await self.close_message(how[0], how[1], reason=how[2])
                else:
                    await self.close_message(
                        "incomplete", None, reason=reason or "max_tokens", last_error=error
                    )
            if not (self.tracked and status == "completed"):
                await self._close_untracked(status, reason, error)
            lifecycle.end_run(run, self.state, status, now_seconds(), **fields)
            await self.journal.record(
                "run", run, f"thread.run.{status}", dict(run), state=self.state
            )
        await self.journal.finish()
        await self.ended()

    async def _close_untracked(
        self, status: str, reason: str | None, error: dict[str, str] | None
    ) -> None:
        """Close the steps and messages this execution did not open (a paused run's tool
        step, a crash's leftovers) or may have lost track of on an error path."""
        open_steps, open_messages = await self.deps.store.open_parts(self.run["id"])
        closed = self.journal.batched_ids()
        for message in open_messages:
            if message["id"] not in closed:
                message = lifecycle.left_open_message(
                    message, reason or "max_tokens", now_seconds()
                )
                await self.journal.record("message", message, "thread.message.incomplete")
        step_status = lifecycle.step_status_for_run(status)
        for step in open_steps:
            if step.body["id"] not in closed:
                await self.finish_step(dict(step.body), step_status, None, error, state=step.state)

    async def ended(self) -> None:
        """The run has reached its terminal status (`self.run["status"]`), committed and
        announced. Nothing more happens here yet."""
        return None
