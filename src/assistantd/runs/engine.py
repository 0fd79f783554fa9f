"""The run engine: executes one run — prompt, model, tools, messages — and emits its events.

It is called by the worker with the run's id and a cancel signal. Every state change is
written in its own short transaction and published on the event bus in the order of
CONTRACT.md §5, so a stream shows exactly what a poll would find.
"""

from __future__ import annotations

import asyncio
import logging
import time
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
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallStarted,
)
from assistantd.messages.service import new_message
from assistantd.runs import prompt as prompts
from assistantd.runs.objects import TERMINAL, new_step, usage_dict
from assistantd.runs.store import RunStore, wire

log = logging.getLogger("assistantd.engine")

# Tokens kept free for the answer when `truncation_strategy: auto` fits a prompt.
COMPLETION_RESERVE = 1024


@dataclass
class _Call:
    """A tool call as it streams in."""

    index: int
    id: str
    name: str
    arguments: str = ""


@dataclass
class _Exec:
    """A run in flight: what is open right now, so any ending can close it properly."""

    run: dict[str, Any]
    project_id: str
    message: dict[str, Any] | None = None
    message_step: dict[str, Any] | None = None
    tool_step: dict[str, Any] | None = None
    text: list[str] = field(default_factory=list)


class RunOutcome(Exception):
    """Ends the loop with a terminal status other than `completed`."""

    def __init__(self, status: str, **fields: Any) -> None:
        super().__init__(status)
        self.status = status
        self.fields = fields


class RunEngine:
    def __init__(self, store: RunStore, bus: EventBus, models: ModelRouter, settings: Settings) -> None:
        self.store = store
        self.bus = bus
        self.models = models
        self.settings = settings

    # -- entry points ------------------------------------------------------------------

    async def execute(self, run_id: str, cancel: asyncio.Event) -> None:
        """Run `run_id` until it pauses (requires_action) or ends."""
        row = await self.store.load_run(run_id)
        if row is None:
            return
        run = dict(row.body)
        if run["status"] == "cancelling":
            await self.finalize(run_id, "cancelled")
            return
        if run["status"] not in ("queued", "in_progress"):
            return
        ex = _Exec(run=run, project_id=row.project_id)
        if run["expires_at"] and now_seconds() >= run["expires_at"]:
            await self.finalize(run_id, "expired")
            return
        if run["status"] == "in_progress":
            # Picked up after a crash: whatever step was in flight is lost; close it as
            # failed and go on from the thread's state.
            await self._close_interrupted(run_id)
        run.update(status="in_progress", started_at=now_seconds())
        await self.store.save_run(run)
        await self.bus.publish(run_id, "thread.run.in_progress", wire(run))

        deadline = (run["expires_at"] - time.time()) if run["expires_at"] else None
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
        if loop in done:
            try:
                loop.result()
            except RunOutcome as end:
                await self._end(ex, end.status, **end.fields)
            except ModelError as err:
                await self._end(ex, "failed", last_error={"code": err.code, "message": err.message})
            except Exception as err:  # a fault of ours: say so, never leave the run stuck
                log.exception("run %s crashed", run_id)
                await self._end(ex, "failed", last_error={
                    "code": "server_error", "message": f"assistantd failed while running: {type(err).__name__}: {err}"})
            return
        loop.cancel()
        try:
            await loop
        except (asyncio.CancelledError, Exception):
            pass
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
            paused = await self._model_call(ex)
            if paused:
                return
            if ex.tool_step is None:
                raise RunOutcome("completed")

    async def _model_call(self, ex: _Exec) -> bool:
        """One model call and what follows from it; True when the run now waits for outputs."""
        run = ex.run
        backend, model_name = self.models.resolve(run["model"])
        history, steps, own_messages, _thread = await self.store.thread_state(run)
        used_prompt, used_completion = self._used(run)

        system_text = run.get("instructions") or ""
        system = [ChatMessage(role="system", content=system_text)] if system_text else []
        current = prompts.run_turns(steps, own_messages)
        limit = backend.context_window - COMPLETION_RESERVE
        if run.get("max_prompt_tokens"):
            limit = min(limit, run["max_prompt_tokens"] - used_prompt)
        fitted = prompts.fit(backend, system, prompts.history_messages(history), current,
                             run.get("truncation_strategy") or {"type": "auto"}, limit)
        if run.get("max_prompt_tokens") and used_prompt + fitted.prompt_tokens > run["max_prompt_tokens"]:
            raise RunOutcome("incomplete", incomplete_details={"reason": "max_prompt_tokens"})

        max_tokens = None
        if run.get("max_completion_tokens"):
            max_tokens = run["max_completion_tokens"] - used_completion
            if max_tokens <= 0:
                raise RunOutcome("incomplete", incomplete_details={"reason": "max_completion_tokens"})

        tool_choice = run.get("tool_choice") or "auto"
        if isinstance(tool_choice, dict):
            tool_choice = tool_choice.get("function", {}).get("name") or tool_choice["type"]
        specs = prompts.function_specs(run.get("tools") or [])
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
        async for event in backend.stream(request):
            if isinstance(event, TextDelta):
                if not event.text:
                    continue
                if calls:  # text after tool calls: keep it out of the call's step
                    continue
                await self._text(ex, event.text)
            elif isinstance(event, ToolCallStarted):
                if not run.get("parallel_tool_calls", True) and calls:
                    continue
                await self._tool_call_started(ex, calls, event)
            elif isinstance(event, ToolCallArgumentsDelta):
                call = next((c for c in calls if c.index == event.index), None)
                if call is not None and event.arguments:
                    call.arguments += event.arguments
                    await self._publish_step_delta(ex, {"index": calls.index(call), "type": "function",
                                                        "function": {"arguments": event.arguments}})
            elif isinstance(event, Finished):
                finished = event
        if finished is None:
            raise ModelError("The model stream ended without finishing.")

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
            return await self._tool_calls_done(ex, calls, step_usage)

        out_of_tokens = finished.reason == "length" and (
            run.get("max_completion_tokens") and run["_usage"][1] >= run["max_completion_tokens"])
        if ex.message is None:
            await self._open_message(ex)  # the model said nothing: still one (empty) message
        if out_of_tokens:
            await self._close_message(ex, "incomplete", step_usage, reason="max_tokens")
            raise RunOutcome("incomplete", incomplete_details={"reason": "max_completion_tokens"})
        await self._close_message(ex, "completed", step_usage)
        ex.tool_step = None
        return False

    # -- text --------------------------------------------------------------------------

    async def _open_message(self, ex: _Exec) -> None:
        run = ex.run
        message = new_message(run["thread_id"], "assistant", [], assistant_id=run["assistant_id"],
                              run_id=run["id"], status="in_progress")
        step = new_step(run, "message_creation",
                        {"type": "message_creation", "message_creation": {"message_id": message["id"]}})
        await self.store.insert_step(ex.project_id, step)
        await self.store.insert_message(ex.project_id, message)
        ex.message, ex.message_step, ex.text = message, step, []
        await self.bus.publish(run["id"], "thread.run.step.created", wire(step))
        await self.bus.publish(run["id"], "thread.run.step.in_progress", wire(step))
        await self.bus.publish(run["id"], "thread.message.created", message)
        await self.bus.publish(run["id"], "thread.message.in_progress", message)

    async def _text(self, ex: _Exec, fragment: str) -> None:
        first = ex.message is None
        if first:
            await self._open_message(ex)
        assert ex.message is not None
        text: dict[str, Any] = {"value": fragment}
        if not ex.text:
            text["annotations"] = []
        ex.text.append(fragment)
        await self.bus.publish(ex.run["id"], "thread.message.delta", {
            "id": ex.message["id"], "object": "thread.message.delta",
            "delta": {"content": [{"index": 0, "type": "text", "text": text}]},
        })

    async def _close_message(self, ex: _Exec, status: str, usage: dict[str, int] | None,
                             reason: str | None = None) -> None:
        if ex.message is None or ex.message_step is None:
            return
        now = now_seconds()
        message = dict(ex.message)
        if ex.text:
            message["content"] = [{"type": "text", "text": {"value": "".join(ex.text), "annotations": []}}]
        message["status"] = status
        if status == "completed":
            message["completed_at"] = now
        else:
            message["incomplete_at"] = now
            message["incomplete_details"] = {"reason": reason}
        await self.store.save_message(message)
        await self.bus.publish(ex.run["id"], f"thread.message.{status}", message)
        step = dict(ex.message_step)
        step_status = {"completed": "completed", "incomplete": "completed"}.get(status, status)
        if reason in ("run_cancelled",):
            step_status = "cancelled"
        elif reason == "run_failed":
            step_status = "failed"
        elif reason == "run_expired":
            step_status = "expired"
        await self._finish_step(ex, step, step_status, usage)
        ex.message, ex.message_step, ex.text = None, None, []

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
            await self.bus.publish(run["id"], "thread.run.step.created", wire(step))
            await self.bus.publish(run["id"], "thread.run.step.in_progress", wire(step))
        call = _Call(index=event.index, id=event.id, name=event.name)
        calls.append(call)
        await self._publish_step_delta(ex, {"index": len(calls) - 1, "id": call.id, "type": "function",
                                            "function": {"name": call.name, "arguments": "", "output": None}})

    async def _publish_step_delta(self, ex: _Exec, tool_call: dict[str, Any]) -> None:
        assert ex.tool_step is not None
        await self.bus.publish(ex.run["id"], "thread.run.step.delta", {
            "id": ex.tool_step["id"], "object": "thread.run.step.delta",
            "delta": {"step_details": {"type": "tool_calls", "tool_calls": [tool_call]}},
        })

    async def _tool_calls_done(self, ex: _Exec, calls: list[_Call], usage: dict[str, int]) -> bool:
        run = ex.run
        assert ex.tool_step is not None
        known = {t["function"]["name"] for t in run.get("tools") or [] if t["type"] == "function"}
        unknown = [c.name for c in calls if c.name not in known]
        if unknown:
            raise ModelError(f"The model called {unknown[0]!r}, which is not one of the run's tools.")
        step = dict(ex.tool_step)
        step["step_details"] = {"type": "tool_calls", "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments, "output": None}}
            for c in calls]}
        step["_usage"] = usage
        await self.store.save_step(step)
        ex.tool_step = None
        run.update(
            status="requires_action",
            required_action={"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in calls]}},
            _pending_step_id=step["id"],
        )
        await self.store.save_run(run)
        await self.bus.publish(run["id"], "thread.run.requires_action", wire(run))
        await self.bus.finish(run["id"])
        return True

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
        await self.store.save_step(step)
        await self.bus.publish(ex.run["id"], f"thread.run.step.{status}", wire(step))

    async def _end(self, ex: _Exec, status: str, **fields: Any) -> None:
        """Close what is open, then give the run its terminal status and announce it."""
        run = ex.run
        reason = {"cancelled": "run_cancelled", "failed": "run_failed", "expired": "run_expired"}.get(status)
        if ex.message is not None:
            await self._close_message(ex, "incomplete", None, reason=reason or "max_tokens")
        open_steps, open_messages = await self.store.open_parts(run["id"])
        for message in open_messages:
            message = dict(message, status="incomplete", incomplete_at=now_seconds(),
                           incomplete_details={"reason": reason or "max_tokens"})
            await self.store.save_message(message)
            await self.bus.publish(run["id"], "thread.message.incomplete", message)
        step_status = {"cancelled": "cancelled", "failed": "failed", "expired": "expired"}.get(status, "completed")
        for step in open_steps:
            await self._finish_step(ex, dict(step), step_status, None, fields.get("last_error"))
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
        await self.store.save_run(run)
        await self.bus.publish(run["id"], f"thread.run.{status}", wire(run))
        await self.bus.finish(run["id"])

    async def _close_interrupted(self, run_id: str) -> None:
        open_steps, open_messages = await self.store.open_parts(run_id)
        row = await self.store.load_run(run_id)
        if row is None:
            return
        ex = _Exec(run=dict(row.body), project_id=row.project_id)
        error = {"code": "server_error", "message": "assistantd restarted while this step ran; the run resumed."}
        for message in open_messages:
            message = dict(message, status="incomplete", incomplete_at=now_seconds(),
                           incomplete_details={"reason": "run_failed"})
            await self.store.save_message(message)
        for step in open_steps:
            await self._finish_step(ex, dict(step), "failed", None, error)

    @staticmethod
    def _used(run: dict[str, Any]) -> tuple[int, int]:
        used = run.get("_usage") or [0, 0]
        return int(used[0]), int(used[1])


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
