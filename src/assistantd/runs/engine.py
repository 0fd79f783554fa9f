"""The run engine: executes one run — prompt, model, tools, messages — and emits its events.

It is called by the worker with the run's id and a cancel signal. Every state change is
written before it is published on the event bus, in the order of CONTRACT.md §5, so a
stream shows exactly what a poll would find. Changes that happen together share one
transaction: the start (run in progress + the context it reads), and the end (message,
step and run closed at once, their events published after the commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from assistantd.core.ids import now_seconds
from assistantd.core.settings import Settings
from assistantd.events.bus import EventBus
from assistantd.llm.base import (
    ChatMessage,
    ChatRequest,
    Finished,
    ModelError,
    ModelRouter,
    RefusalDelta,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallStarted,
)
from assistantd.messages.service import new_message
from assistantd.ops.context import bind_run
from assistantd.runs import prompt as prompts
from assistantd.runs.annotations import Annotator
from assistantd.runs.gateways import merged_resources
from assistantd.runs.objects import TERMINAL, new_step, step_view, usage_dict
from assistantd.runs.store import RunContext, RunStore, wire
from assistantd.runs.tools import ServerTool, ToolCallState, ToolEnv, ToolFailed

log = logging.getLogger("assistantd.engine")

# Tokens kept free for the answer when `truncation_strategy: auto` fits a prompt.
COMPLETION_RESERVE = 1024
# The codes a run step's `last_error` may carry (a run's may also say `invalid_prompt`).
STEP_ERROR_CODES = ("server_error", "rate_limit_exceeded")


def step_error(error: dict[str, str] | None) -> dict[str, str] | None:
    """The run's `last_error` as the step that was open when it failed carries it."""
    if error is None:
        return None
    code = error.get("code")
    return {"code": code if code in STEP_ERROR_CODES else "server_error", "message": error.get("message", "")}


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
class _Exec:
    """A run in flight: what is open right now, so any ending can close it properly."""

    run: dict[str, Any]
    project_id: str
    message: dict[str, Any] | None = None
    message_step: dict[str, Any] | None = None
    tool_step: dict[str, Any] | None = None
    text: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    # The open message's text and refusal parts, in the order they began: the part `kind`
    # has content index `len(images) + parts.index(kind)`.
    parts: list[str] = field(default_factory=list)
    annotator: Annotator = field(default_factory=Annotator)
    pending_images: list[str] = field(default_factory=list)  # shown in the next message
    resources: dict[str, list[str]] = field(default_factory=dict)
    thread_stores: list[str] = field(default_factory=list)
    last_user_text: str = ""
    file_search_calls: int = 0
    stopping: bool = False  # cancel or expiry asked the loop to stop
    cancel: asyncio.Event | None = None
    context: RunContext | None = None  # read with the run's start, for its first model call
    close_as: tuple[str, dict[str, int] | None, str | None] | None = None  # how `_end` closes the message
    tracked: bool = False  # this engine opened every open step and message itself
    # While set, writes and events wait here; `_batched` commits the writes in one
    # transaction, then publishes the events.
    batch: tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, Any]]] | None = None


class RunOutcome(Exception):
    """Ends the loop with a terminal status other than `completed`."""

    def __init__(self, status: str, **fields: Any) -> None:
        super().__init__(status)
        self.status = status
        self.fields = fields


class RunEngine:
    def __init__(self, store: RunStore, bus: EventBus, models: ModelRouter, settings: Settings,
                 tools: dict[str, ServerTool] | None = None, files: prompts.ImageFiles | None = None) -> None:
        self.store = store
        self.bus = bus
        self.models = models
        self.settings = settings
        self.tools = tools or {}
        self.files = files  # image_file parts shown to the model

    # -- entry points ------------------------------------------------------------------

    async def execute(self, run_id: str, cancel: asyncio.Event,
                      created: tuple[str, dict[str, Any]] | None = None) -> None:
        """Run `run_id` until it pauses (requires_action) or ends.

        `created`: (project id, body) of a run this process has just created, instead of
        reading it back; a cancel since then arrives through `cancel`.
        """
        if created is not None:
            project_id, run = created[0], dict(created[1])
        else:
            row = await self.store.load_run(run_id)
            if row is None:
                return
            project_id, run = row.project_id, dict(row.body)
        bind_run(run_id, project_id)  # ops: this task's logs, metrics and spans name the run
        if run["status"] == "cancelling":
            await self.finalize(run_id, "cancelled")
            return
        if run["status"] not in ("queued", "in_progress"):
            return
        ex = _Exec(run=run, project_id=project_id)
        if run["expires_at"] and now_seconds() >= run["expires_at"]:
            await self.finalize(run_id, "expired")
            return
        ex.tracked = run["status"] == "queued"
        if run["status"] == "in_progress":
            # Picked up after a crash: whatever step was in flight is lost; close it as
            # failed and go on from the thread's state.
            await self._close_interrupted(run_id)
        run.update(status="in_progress", started_at=now_seconds())
        ex.context = await self.store.start(run)
        await self.bus.publish(run_id, "thread.run.in_progress", wire(run))

        deadline = (run["expires_at"] - time.time()) if run["expires_at"] else None
        ex.cancel = cancel
        loop = asyncio.create_task(self._loop(ex))
        stop = asyncio.create_task(cancel.wait())
        try:
            done, _ = await asyncio.wait({loop, stop}, timeout=deadline, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # The worker is shutting down: stop generating, leave the run for recovery.
            loop.cancel()
            stop.cancel()
            raise
        stop.cancel()
        if loop in done and not (cancel.is_set() and (loop.cancelled() or isinstance(
                loop.exception(), asyncio.CancelledError))):
            try:
                loop.result()
            except RunOutcome as end:
                await self._end(ex, end.status, **end.fields)
            except ModelError as err:
                # The client sees `message`; the log gets `detail` (e.g. the upstream's URL).
                log.warning("run %s failed (%s): %s", run_id, err.code, err.detail)
                await self._end(ex, "failed", last_error={"code": err.code, "message": err.message})
            except Exception as err:  # a fault of ours: say so, never leave the run stuck
                log.exception("run %s crashed", run_id)
                await self._end(ex, "failed", last_error={
                    "code": "server_error", "message": f"assistantd failed while running: {type(err).__name__}: {err}"})
            return
        ex.stopping = True  # the stream loop checks this between fragments
        # Some client libraries (redis-py's asyncio client among them) can swallow a
        # CancelledError; cancel again until the loop has really stopped.
        while not loop.done():
            loop.cancel()
            await asyncio.wait({loop}, timeout=0.05)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            loop.result()
        await self._end(ex, "cancelled" if cancel.is_set() else "expired")

    async def finalize(self, run_id: str, status: str, **fields: Any) -> None:
        """End a run that is not executing here (queued, requires_action, orphaned)."""
        row = await self.store.load_run(run_id)
        if row is None or row.status in TERMINAL:
            return
        await self._end(_Exec(run=dict(row.body), project_id=row.project_id), status, **fields)

    # -- the loop ----------------------------------------------------------------------

    async def _loop(self, ex: _Exec) -> None:
        run = ex.run
        while True:
            calls_made = int(run.get("_model_calls", 0))
            if calls_made >= self.settings.run_max_steps:
                raise RunOutcome("failed", last_error={
                    "code": "server_error",
                    "message": f"The run made {calls_made} model calls without finishing; the limit is "
                               f"{self.settings.run_max_steps} (ASSISTANTD_RUN_MAX_STEPS).",
                })
            run["_model_calls"] = calls_made + 1
            after = await self._model_call(ex)
            if after == "pause":
                return
            if after == "done":
                raise RunOutcome("completed")

    async def _model_call(self, ex: _Exec) -> str:
        """One model call and what follows: "done", "more" (server tools ran), or "pause"."""
        run = ex.run
        backend, model_name = self.models.resolve(run["model"])
        await backend.load()  # e.g. the embedded model's weights, in a thread
        context, ex.context = ex.context or await self.store.context(run), None
        history, steps, own_messages = context.history, context.steps, context.own_messages
        thread, assistant = context.thread, context.assistant
        used_prompt, used_completion = self._used(run)
        ex.resources = merged_resources(assistant, thread, history, run)
        # The thread's and the run's own stores may still be ingesting (helpers just made them).
        ex.thread_stores = [vs for owner in (thread, run)
                            for vs in (((owner or {}).get("tool_resources") or {}).get("file_search") or {})
                            .get("vector_store_ids") or []]
        ex.last_user_text = next((prompts.message_text(m["content"]) for m in reversed(history)
                                  if m["role"] == "user"), "")
        ex.file_search_calls = 0
        ex.annotator = Annotator()
        for step in steps:
            for call in (step["step_details"].get("tool_calls") or []):
                if call["type"] == "file_search":
                    for k, (fid, name) in enumerate(call.get("_citations") or []):
                        ex.annotator.citations[(ex.file_search_calls, k)] = fid
                        del name
                    ex.file_search_calls += 1
                elif call["type"] == "code_interpreter":
                    ex.annotator.sandbox_files.update(call.get("_files") or {})

        system_text = run.get("instructions") or ""
        system = [ChatMessage(role="system", content=system_text)] if system_text else []
        images = backend.supports_images
        current = prompts.run_turns(steps, own_messages, images=images)
        limit = backend.context_window - COMPLETION_RESERVE
        if run.get("max_prompt_tokens"):
            limit = min(limit, run["max_prompt_tokens"] - used_prompt)
        fitted = prompts.fit(backend, system, prompts.history_messages(history, images=images), current,
                             run.get("truncation_strategy") or {"type": "auto"}, limit)
        if run.get("max_prompt_tokens") and used_prompt + fitted.prompt_tokens > run["max_prompt_tokens"]:
            raise RunOutcome("incomplete", incomplete_details={"reason": "max_prompt_tokens"})
        if images:
            await prompts.load_images(fitted.messages, self.files, ex.project_id, self.settings.image_max_bytes)

        max_tokens = None
        if run.get("max_completion_tokens"):
            max_tokens = run["max_completion_tokens"] - used_completion
            if max_tokens <= 0:
                raise RunOutcome("incomplete", incomplete_details={"reason": "max_completion_tokens"})

        tool_choice = run.get("tool_choice") or "auto"
        if isinstance(tool_choice, dict):
            tool_choice = tool_choice.get("function", {}).get("name") or tool_choice["type"]
        specs = prompts.function_specs(run.get("tools") or [])
        for tool in run.get("tools") or []:
            server = self.tools.get(tool["type"])
            if server is not None:
                specs.append(server.spec(tool))
        rf = run.get("response_format")
        request = ChatRequest(
            model=model_name,
            messages=fitted.messages,
            tools=specs,
            tool_choice=tool_choice if specs else "none",
            parallel_tool_calls=bool(run.get("parallel_tool_calls", True)),
            response_format=rf if isinstance(rf, dict) else None,
            temperature=run.get("temperature"),
            top_p=run.get("top_p"),
            max_tokens=max_tokens,
        )

        calls: list[_Call] = []
        finished: Finished | None = None
        opening: asyncio.Task[None] | None = None
        if not specs and ex.message is None:
            # No tools: the answer is a message whatever the model says (an empty one if it
            # says nothing). Open it while the request is on its way to the model, rather
            # than after its first token.
            opening = asyncio.create_task(self._open_message(ex))
        try:
            async for event in backend.stream(request):
                if opening is not None:
                    await opening
                    opening = None
                await self._on_model_event(ex, run, calls, event)
                if isinstance(event, Finished):
                    finished = event
        finally:
            if opening is not None:
                await opening
        if finished is None:
            raise ModelError("The model stream ended without finishing.")
        return await self._after_model(ex, run, calls, finished, used_prompt, used_completion)

    async def _on_model_event(self, ex: _Exec, run: dict[str, Any], calls: list[_Call], event: Any) -> None:
        """One event of the model's stream: text, a tool call starting, arguments."""
        if ex.stopping or (ex.cancel is not None and ex.cancel.is_set()):
            # Checked here too, not only by cancelling this task: a cancellation can be
            # lost inside a client library, and this closes the stream at the next token.
            raise asyncio.CancelledError
        if isinstance(event, TextDelta):
            if not event.text:
                return
            if calls:  # text after tool calls: keep it out of the call's step
                return
            await self._text(ex, event.text)
        elif isinstance(event, RefusalDelta):
            if event.text and not calls:
                await self._refusal(ex, event.text)
        elif isinstance(event, ToolCallStarted):
            if not run.get("parallel_tool_calls", True) and calls:
                return
            await self._tool_call_started(ex, calls, event)
        elif isinstance(event, ToolCallArgumentsDelta):
            call = next((c for c in calls if c.index == event.index), None)
            if call is not None and event.arguments:
                call.state.arguments += event.arguments
                if call.tool is not None:
                    await call.tool.on_arguments(self._env(ex, call), call.state, event.arguments)
                else:
                    await self._publish_step_delta(ex, {"index": call.state.index, "type": "function",
                                                        "function": {"arguments": event.arguments}})

    async def _after_model(self, ex: _Exec, run: dict[str, Any], calls: list[_Call], finished: Finished,
                           used_prompt: int, used_completion: int) -> str:
        """What follows a finished model call: tool calls, or the answer's end."""
        run["_usage"] = [used_prompt + finished.usage.prompt_tokens,
                         used_completion + finished.usage.completion_tokens]
        step_usage = usage_dict(finished.usage.prompt_tokens, finished.usage.completion_tokens)

        if calls and finished.reason == "length":
            # Arguments cut off mid-JSON cannot be handed to the client as a call.
            if run.get("max_completion_tokens") and run["_usage"][1] >= run["max_completion_tokens"]:
                raise RunOutcome("incomplete", incomplete_details={"reason": "max_completion_tokens"})
            raise ModelError("The model's output was cut off in the middle of a tool call "
                             "(finish_reason 'length'); its arguments are incomplete.")
        if calls:
            if ex.message is not None:
                await self._close_message(ex, "completed", usage_dict(0, 0))
            return await self._tool_calls_done(ex, calls, step_usage)

        # Cut off by a token limit: the run's budget, or the backend's own bound on one
        # response (the embedded model's ASSISTANTD_LLM_MAX_RESPONSE_TOKENS, an upstream's
        # output limit). Either way the answer is unfinished: the contract's length stop.
        out_of_tokens = finished.reason == "length"
        if ex.message is None:
            await self._open_message(ex)  # the model said nothing: still one (empty) message
        # `_end` closes the message, in the same transaction as the run.
        ex.tool_step = None
        if out_of_tokens:
            ex.close_as = ("incomplete", step_usage, "max_tokens")
            raise RunOutcome("incomplete", incomplete_details={"reason": "max_completion_tokens"})
        if finished.reason == "content_filter":
            # The upstream's filter stopped the answer: the message says so, and the run
            # completes (its incomplete_details can only name a token limit).
            ex.close_as = ("incomplete", step_usage, "content_filter")
            return "done"
        ex.close_as = ("completed", step_usage, None)
        return "done"

    # -- text --------------------------------------------------------------------------

    async def _open_message(self, ex: _Exec) -> None:
        run = ex.run
        message = new_message(run["thread_id"], "assistant", [], assistant_id=run["assistant_id"],
                              run_id=run["id"], status="in_progress")
        step = new_step(run, "message_creation",
                        {"type": "message_creation", "message_creation": {"message_id": message["id"]}})
        await self.store.insert_step(ex.project_id, step, message)
        ex.message, ex.message_step, ex.text, ex.refusal, ex.parts = message, step, [], [], []
        await self.bus.publish(run["id"], "thread.run.step.created", step_view(step, False))
        await self.bus.publish(run["id"], "thread.run.step.in_progress", step_view(step, False))
        await self.bus.publish(run["id"], "thread.message.created", message)
        await self.bus.publish(run["id"], "thread.message.in_progress", message)
        # Figures from code run earlier in this run lead the message, as OpenAI showed them.
        images, ex.pending_images = ex.pending_images, []
        ex.message["_images"] = images
        for k, file_id in enumerate(images):
            await self.bus.publish(run["id"], "thread.message.delta", {
                "id": message["id"], "object": "thread.message.delta",
                "delta": {"content": [{"index": k, "type": "image_file",
                                       "image_file": {"file_id": file_id, "detail": "auto"}}]},
            })

    async def _text(self, ex: _Exec, fragment: str) -> None:
        first = ex.message is None
        if first:
            await self._open_message(ex)
        assert ex.message is not None
        text: dict[str, Any] = {"value": fragment}
        if not ex.text:
            text["annotations"] = []
        ex.text.append(fragment)
        # Rescanning the whole text at each token is quadratic; skip it when nothing can match.
        found = ex.annotator.scan("".join(ex.text)) if ex.annotator.active else []
        if found:
            text["annotations"] = [*text.get("annotations", []), *found]
        await self.bus.publish(ex.run["id"], "thread.message.delta", {
            "id": ex.message["id"], "object": "thread.message.delta",
            "delta": {"content": [{"index": self._part_index(ex, "text"), "type": "text", "text": text}]},
        })

    async def _refusal(self, ex: _Exec, fragment: str) -> None:
        """A fragment of the model's refusal: a `refusal` part of the message, after its text."""
        if ex.message is None:
            await self._open_message(ex)
        assert ex.message is not None
        ex.refusal.append(fragment)
        await self.bus.publish(ex.run["id"], "thread.message.delta", {
            "id": ex.message["id"], "object": "thread.message.delta",
            "delta": {"content": [{"index": self._part_index(ex, "refusal"), "type": "refusal",
                                   "refusal": fragment}]},
        })

    @staticmethod
    def _part_index(ex: _Exec, kind: str) -> int:
        assert ex.message is not None
        if kind not in ex.parts:
            ex.parts.append(kind)
        return len(ex.message["_images"]) + ex.parts.index(kind)

    async def _close_message(self, ex: _Exec, status: str, usage: dict[str, int] | None,
                             reason: str | None = None, last_error: dict[str, str] | None = None) -> None:
        if ex.message is None or ex.message_step is None:
            return
        now = now_seconds()
        message = dict(ex.message)
        content: list[dict[str, Any]] = [
            {"type": "image_file", "image_file": {"file_id": fid, "detail": "auto"}}
            for fid in message.pop("_images", [])]
        for kind in ex.parts:
            if kind == "text":
                value = "".join(ex.text)
                ex.annotator.scan(value, final=True)
                content.append({"type": "text", "text": {"value": value, "annotations": ex.annotator.all()}})
            else:
                content.append({"type": "refusal", "refusal": "".join(ex.refusal)})
        message["content"] = content
        message["status"] = status
        if status == "completed":
            message["completed_at"] = now
        else:
            message["incomplete_at"] = now
            message["incomplete_details"] = {"reason": reason}
        await self._save(ex, "message", message)
        await self._emit(ex, f"thread.message.{status}", message)
        step = dict(ex.message_step)
        step_status = {"completed": "completed", "incomplete": "completed"}.get(status, status)
        if reason in ("run_cancelled",):
            step_status = "cancelled"
        elif reason == "run_failed":
            step_status = "failed"
        elif reason == "run_expired":
            step_status = "expired"
        await self._finish_step(ex, step, step_status, usage, last_error if step_status == "failed" else None)
        ex.message, ex.message_step, ex.text, ex.refusal, ex.parts = None, None, [], [], []

    # -- tool calls --------------------------------------------------------------------

    async def _tool_call_started(self, ex: _Exec, calls: list[_Call], event: ToolCallStarted) -> None:
        run = ex.run
        if ex.message is not None:
            # The model wrote text, then called tools: the text is a finished message.
            await self._close_message(ex, "completed", usage_dict(0, 0))
            joins = True
        else:
            joins = False
        if ex.tool_step is None:
            step = new_step(run, "tool_calls", {"type": "tool_calls", "tool_calls": []})
            step["_joins_previous"] = joins
            await self.store.insert_step(ex.project_id, step)
            ex.tool_step = step
            await self.bus.publish(run["id"], "thread.run.step.created", step_view(step, False))
            await self.bus.publish(run["id"], "thread.run.step.in_progress", step_view(step, False))
        state = ToolCallState(index=len(calls), id=event.id, name=event.name)
        run_tool = next((t for t in run.get("tools") or []
                         if t["type"] in self.tools and self.tools[t["type"]].spec(t).name == event.name), None)
        tool = self.tools[run_tool["type"]] if run_tool is not None else None
        call = _Call(index=event.index, state=state, tool=tool, run_tool=run_tool)
        calls.append(call)
        if tool is not None and run_tool is not None:
            await self._publish_step_delta(ex, {"index": state.index, **tool.intro(state, run_tool)})
        else:
            await self._publish_step_delta(ex, {"index": state.index, "id": call.id, "type": "function",
                                                "function": {"name": call.name, "arguments": "", "output": None}})

    def _env(self, ex: _Exec, call: _Call) -> ToolEnv:
        async def emit(entry: dict[str, Any]) -> None:
            await self._publish_step_delta(ex, {"index": call.state.index, **entry})

        return ToolEnv(run=ex.run, project_id=ex.project_id, emit=emit, resources=ex.resources,
                       thread_stores=ex.thread_stores, last_user_text=ex.last_user_text,
                       file_search_ordinal=ex.file_search_calls)

    async def _publish_step_delta(self, ex: _Exec, tool_call: dict[str, Any]) -> None:
        assert ex.tool_step is not None
        await self.bus.publish(ex.run["id"], "thread.run.step.delta", {
            "id": ex.tool_step["id"], "object": "thread.run.step.delta",
            "delta": {"step_details": {"type": "tool_calls", "tool_calls": [tool_call]}},
        })

    async def _tool_calls_done(self, ex: _Exec, calls: list[_Call], usage: dict[str, int]) -> str:
        """Run the server-side calls; then either pause for function outputs or go on."""
        run = ex.run
        assert ex.tool_step is not None
        known = {t["function"]["name"] for t in run.get("tools") or [] if t["type"] == "function"}
        unknown = [c.name for c in calls if c.tool is None and c.name not in known]
        if unknown:
            raise ModelError(f"The model called {unknown[0]!r}, which is not one of the run's tools.")
        entries: list[dict[str, Any]] = []
        for call in calls:
            if call.tool is None or call.run_tool is None:
                entries.append({"id": call.id, "type": "function",
                                "function": {"name": call.name, "arguments": call.arguments, "output": None}})
                continue
            try:
                outcome = await call.tool.execute(self._env(ex, call), call.state, call.run_tool)
            except ToolFailed as err:
                raise ModelError(str(err)) from err
            entry = dict(outcome.call)
            # Kept for the next model call's prompt and for citations; never shown on the wire.
            entry["_output"] = outcome.output
            entry["_model_call"] = {"name": call.name, "arguments": call.arguments}
            if call.tool.type == "file_search":
                entry["_citations"] = [list(v) for _, v in sorted(outcome.citations.items())]
                for k, (fid, _name) in outcome.citations.items():
                    ex.annotator.citations[(ex.file_search_calls, k)] = fid
                ex.file_search_calls += 1
            if outcome.files:
                entry["_files"] = outcome.files
                ex.annotator.sandbox_files.update(outcome.files)
            ex.pending_images.extend(outcome.images)
            entries.append(entry)

        step = dict(ex.tool_step)
        step["step_details"] = {"type": "tool_calls", "tool_calls": entries}
        ex.tool_step = None
        functions = [c for c in calls if c.tool is None]
        if not functions:
            await self._finish_step(ex, step, "completed", usage)
            return "more"
        step["_usage"] = usage
        run.update(
            status="requires_action",
            required_action={"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in functions]}},
            _pending_step_id=step["id"],
        )
        async with self._batched(ex):
            await self._save(ex, "step", step)
            await self._save(ex, "run", run)
            await self._emit(ex, "thread.run.requires_action", wire(run))
        await self.bus.finish(run["id"])
        return "pause"

    # -- endings -----------------------------------------------------------------------

    async def _finish_step(self, ex: _Exec, step: dict[str, Any], status: str,
                           usage: dict[str, int] | None, last_error: dict[str, str] | None = None) -> None:
        now = now_seconds()
        step["status"] = status
        stamp = {"completed": "completed_at", "cancelled": "cancelled_at", "failed": "failed_at",
                 "expired": "expired_at"}[status]
        step[stamp] = now
        step["usage"] = usage if usage is not None else step.pop("_usage", None) or usage_dict(0, 0)
        step.pop("_usage", None)
        if last_error is not None:
            step["last_error"] = last_error
        await self._save(ex, "step", step)
        await self._emit(ex, f"thread.run.step.{status}", step_view(step, bool(ex.run.get("_include_content"))))

    async def _end(self, ex: _Exec, status: str, **fields: Any) -> None:
        """Close what is open, then give the run its terminal status and announce it."""
        run = ex.run
        async with self._batched(ex):
            reason = {"cancelled": "run_cancelled", "failed": "run_failed", "expired": "run_expired"}.get(status)
            error = step_error(fields.get("last_error")) if status == "failed" else None
            if ex.message is not None:
                how = ex.close_as if status in ("completed", "incomplete") and ex.close_as else None
                if how is not None:
                    await self._close_message(ex, how[0], how[1], reason=how[2])
                else:
                    await self._close_message(ex, "incomplete", None, reason=reason or "max_tokens",
                                              last_error=error)
            if not (ex.tracked and status == "completed"):
                # Steps and messages this engine did not open (a paused run's tool step, a
                # crash's leftovers) or may have lost track of on an error path.
                open_steps, open_messages = await self.store.open_parts(run["id"])
                closed = {body["id"] for _, body in ex.batch[0]} if ex.batch else set()
                open_steps = [st for st in open_steps if st["id"] not in closed]
                open_messages = [m for m in open_messages if m["id"] not in closed]
                for message in open_messages:
                    message = dict(message, status="incomplete", incomplete_at=now_seconds(),
                                   incomplete_details={"reason": reason or "max_tokens"})
                    await self._save(ex, "message", message)
                    await self._emit(ex, "thread.message.incomplete", message)
                step_status = {"cancelled": "cancelled", "failed": "failed", "expired": "expired"}.get(
                    status, "completed")
                for step in open_steps:
                    await self._finish_step(ex, dict(step), step_status, None, error)
            now = now_seconds()
            run.update(status=status, required_action=None, **fields)
            run.pop("_pending_step_id", None)
            stamp = {"completed": "completed_at", "cancelled": "cancelled_at", "failed": "failed_at"}.get(status)
            if stamp:
                run[stamp] = now
            if status != "expired":
                run["expires_at"] = None
            prompt_used, completion_used = self._used(run)
            run["usage"] = usage_dict(prompt_used, completion_used)
            await self._save(ex, "run", run)
            await self._emit(ex, f"thread.run.{status}", wire(run))
        await self.bus.finish(run["id"])

    # -- writes and events -------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _batched(self, ex: _Exec) -> AsyncIterator[None]:
        """Collect the writes and events of the block; commit the writes in one transaction,
        then publish the events in order (also when the block fails part-way)."""
        if ex.batch is not None:
            yield
            return
        ex.batch = ([], [])
        try:
            yield
        finally:
            writes, events = ex.batch
            ex.batch = None
            await self.store.write(writes)
            for event, data in events:
                await self.bus.publish(ex.run["id"], event, data)

    async def _save(self, ex: _Exec, kind: str, body: dict[str, Any]) -> None:
        if ex.batch is not None:
            ex.batch[0].append((kind, body))
        else:
            await self.store.write([(kind, body)])

    async def _emit(self, ex: _Exec, event: str, data: Any) -> None:
        if ex.batch is not None:
            ex.batch[1].append((event, data))
        else:
            await self.bus.publish(ex.run["id"], event, data)

    async def _close_interrupted(self, run_id: str) -> None:
        """Close what a dead process left open: its message keeps the content its stream
        had sent (as far as the event log reached the database or Redis)."""
        open_steps, open_messages = await self.store.open_parts(run_id)
        row = await self.store.load_run(run_id)
        if row is None:
            return
        ex = _Exec(run=dict(row.body), project_id=row.project_id)
        error = {"code": "server_error", "message": "assistantd restarted while this step ran; the run resumed."}
        streamed = streamed_content(await self.bus.history(run_id), {m["id"] for m in open_messages}) \
            if open_messages else {}
        async with self._batched(ex):
            for message in open_messages:
                message = dict(message, status="incomplete", incomplete_at=now_seconds(),
                               incomplete_details={"reason": "run_failed"},
                               content=streamed.get(message["id"]) or message["content"])
                await self._save(ex, "message", message)
                await self._emit(ex, "thread.message.incomplete", message)
            for step in open_steps:
                await self._finish_step(ex, dict(step), "failed", None, error)

    @staticmethod
    def _used(run: dict[str, Any]) -> tuple[int, int]:
        used = run.get("_usage") or [0, 0]
        return int(used[0]), int(used[1])


def streamed_content(events: list[Any], message_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    """The content that `thread.message.delta` events sent for each of `message_ids`."""
    parts: dict[str, dict[int, dict[str, Any]]] = {}
    texts: dict[tuple[str, int], list[str]] = {}
    refusals: dict[tuple[str, int], list[str]] = {}
    for ev in events:
        if ev.event != "thread.message.delta":
            continue
        delta = orjson.loads(ev.data)
        if delta.get("id") not in message_ids:
            continue
        slots = parts.setdefault(delta["id"], {})
        for entry in delta["delta"].get("content") or []:
            if entry["type"] == "text":
                slot = slots.setdefault(entry["index"], {"type": "text", "text": {"value": "", "annotations": []}})
                texts.setdefault((delta["id"], entry["index"]), []).append(entry["text"].get("value") or "")
                slot["text"]["annotations"] += [{k: v for k, v in a.items() if k != "index"}
                                                for a in entry["text"].get("annotations") or []]
            elif entry["type"] == "refusal":
                slots.setdefault(entry["index"], {"type": "refusal", "refusal": ""})
                refusals.setdefault((delta["id"], entry["index"]), []).append(entry.get("refusal") or "")
            else:
                slots[entry["index"]] = {k: v for k, v in entry.items() if k != "index"}
    for (message_id, index), values in texts.items():
        parts[message_id][index]["text"]["value"] = "".join(values)
    for (message_id, index), values in refusals.items():
        parts[message_id][index]["refusal"] = "".join(values)
    return {mid: [slots[k] for k in sorted(slots)] for mid, slots in parts.items()}


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
