"""The `code_interpreter` tool: the model's code runs in the thread's sandbox session."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from assistantd.files.names import safe_filename
from assistantd.llm.base import ToolSpec
from assistantd.sandbox import (
    CodeSandbox,
    ExecutionResult,
    InputFile,
    LogChunk,
    OutputFile,
    SandboxError,
)
from assistantd.worker.tools.base import (
    JSONStringField,
    ServerTool,
    ToolCallState,
    ToolEnv,
    ToolFailed,
    ToolOutcome,
    parse_arguments,
)
from assistantd.worker.tools.gateways import FileGateway

log = logging.getLogger("assistantd.sandbox")

# What the model reads back of the logs; the step keeps the sandbox's (longer) output.
MODEL_LOG_CHARS = 8000

DESCRIPTION = (
    "Run Python code in a stateful sandbox (variables, imports and files persist between calls "
    "in this conversation). Files the user gave are under /mnt/data; save files to /mnt/data "
    "to give them to the user and mention them as sandbox:/mnt/data/<name>. Figures shown "
    "with matplotlib's plt.show() are displayed to the user. numpy, pandas and matplotlib "
    "are installed; there is no network."
)


class CodeInterpreterTool(ServerTool):
    type = "code_interpreter"

    def __init__(
        self,
        sandbox: CodeSandbox,
        files: FileGateway,
        *,
        output_storage_bytes: int = 1024 * 1024 * 1024,
    ) -> None:
        self.sandbox = sandbox
        self.files = files
        # What a project's stored outputs (assistants_output files) may take in all.
        self.output_storage_bytes = output_storage_bytes

    def spec(self, tool: dict[str, Any]) -> ToolSpec:
        return ToolSpec(
            name="code_interpreter",
            description=DESCRIPTION,
            parameters={
                "type": "object",
                "properties": {
                    "code": {"type": "string", "description": "The Python code to run."}
                },
                "required": ["code"],
            },
        )

    def intro(self, call: ToolCallState, tool: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": call.id,
            "type": "code_interpreter",
            "code_interpreter": {"input": "", "outputs": []},
        }

    async def on_arguments(self, env: ToolEnv, call: ToolCallState, fragment: str) -> None:
        field = call.scratch.setdefault("code", JSONStringField("code"))
        text = field.feed(fragment)
        if text:
            call.scratch["streamed_input"] = call.scratch.get("streamed_input", "") + text
            await env.emit({"type": "code_interpreter", "code_interpreter": {"input": text}})

    async def execute(self, env: ToolEnv, call: ToolCallState, tool: dict[str, Any]) -> ToolOutcome:
        code = await self._code(env, call)
        inputs = await self._inputs(env)
        outputs, streamed_logs, result = await self._run(env, code, inputs)
        files, pngs, refused = await self._within_storage(env.project_id, result)
        logs = result.logs + refused
        await self._final_logs(env, outputs, logs, streamed_logs)
        stored, images = await self._store_outputs(env, call, outputs, files, pngs)
        return ToolOutcome(
            call={
                "id": call.id,
                "type": "code_interpreter",
                "code_interpreter": {"input": code, "outputs": outputs},
            },
            output=_model_output(logs, result, images, stored),
            images=images,
            files=stored,
        )

    @staticmethod
    async def _code(env: ToolEnv, call: ToolCallState) -> str:
        """The code to run; the part of it the arguments' stream has not shown yet is sent."""
        args = parse_arguments(call)
        code = next((args[k] for k in ("code", "input") if isinstance(args.get(k), str)), None)
        if code is None:
            code = call.arguments  # some models send the bare code
        streamed = call.scratch.get("streamed_input", "")
        if code != streamed and code.startswith(streamed) and code[len(streamed) :]:
            await env.emit(
                {"type": "code_interpreter", "code_interpreter": {"input": code[len(streamed) :]}}
            )
        return code

    async def _inputs(self, env: ToolEnv) -> list[InputFile]:
        inputs = []
        for file_id in env.resources.get("code_interpreter", []):
            found = await self.files.read(env.project_id, file_id)
            if found is not None:
                inputs.append(InputFile(name=safe_filename(found[0]), data=found[1]))
        return inputs

    async def _run(
        self, env: ToolEnv, code: str, inputs: list[InputFile]
    ) -> tuple[list[dict[str, Any]], str, ExecutionResult]:
        """Run the code, streaming its logs as they come: (outputs so far, logs streamed, result)."""
        outputs: list[dict[str, Any]] = []
        streamed_logs = ""
        result: ExecutionResult | None = None
        try:
            async for event in self.sandbox.execute_stream(env.run["thread_id"], code, inputs):
                if not isinstance(event, LogChunk):
                    result = event
                    continue
                if not event.text:
                    continue
                if not outputs:
                    outputs.append({"type": "logs", "logs": ""})
                await env.emit(_output_entry(0, {"type": "logs", "logs": event.text}))
                streamed_logs += event.text
        except SandboxError as err:
            # Its text may name the sandbox's paths: the log has it, the client the kind.
            log.warning("code interpreter sandbox failed (%s): %s", env.run["id"], err)
            raise ToolFailed(
                f"The code interpreter sandbox failed ({type(err).__name__}); the server log "
                "has the details."
            ) from err
        if result is None:
            raise ToolFailed("The code interpreter sandbox ended without a result.")
        return outputs, streamed_logs, result

    @staticmethod
    async def _final_logs(
        env: ToolEnv, outputs: list[dict[str, Any]], logs: str, streamed_logs: str
    ) -> None:
        """The logs output as the result has them; what the stream has not shown is sent."""
        if not logs:
            return
        if not outputs:
            outputs.append({"type": "logs", "logs": logs})
            await env.emit(_output_entry(0, {"type": "logs", "logs": logs}))
            return
        outputs[0]["logs"] = logs
        if logs.startswith(streamed_logs) and len(logs) > len(streamed_logs):
            await env.emit(_output_entry(0, {"type": "logs", "logs": logs[len(streamed_logs) :]}))

    async def _store_outputs(
        self,
        env: ToolEnv,
        call: ToolCallState,
        outputs: list[dict[str, Any]],
        files: list[OutputFile],
        pngs: list[bytes],
    ) -> tuple[dict[str, str], list[str]]:
        """Store the files and figures as `assistants_output` files: (sandbox path -> file id,
        the figures' file ids); each figure becomes an image output."""
        stored: dict[str, str] = {}
        by_hash: dict[str, str] = {}
        for out in files:
            file_id = await self.files.store(
                env.project_id, out.name.rsplit("/", 1)[-1], out.data, "assistants_output"
            )
            stored[out.name] = file_id
            by_hash[hashlib.sha256(out.data).hexdigest()] = file_id
        images: list[str] = []
        for n, png in enumerate(pngs):
            file_id = by_hash.get(hashlib.sha256(png).hexdigest()) or await self.files.store(
                env.project_id, f"image_{call.id}_{n}.png", png, "assistants_output"
            )
            images.append(file_id)
            outputs.append({"type": "image", "image": {"file_id": file_id}})
            await env.emit(
                _output_entry(len(outputs) - 1, {"type": "image", "image": {"file_id": file_id}})
            )
        return stored, images

    async def _within_storage(
        self, project_id: str, result: ExecutionResult
    ) -> tuple[list[OutputFile], list[bytes], str]:
        """The files and figures that fit the project's output storage, and a note on the rest.

        Concurrent runs of one project each check against what is stored when they finish,
        so together they may go past the limit by at most one execution's outputs each.
        """
        room = self.output_storage_bytes - await self.files.output_bytes(project_id)
        files: list[OutputFile] = []
        refused: list[str] = []
        file_hashes: set[str] = set()
        for out in result.files:
            if len(out.data) <= room:
                room -= len(out.data)
                files.append(out)
                file_hashes.add(hashlib.sha256(out.data).hexdigest())
            else:
                refused.append(f"{out.name} ({_mb(len(out.data))})")
        pngs: list[bytes] = []
        dropped_figures = 0
        for png in result.images:
            if hashlib.sha256(png).hexdigest() in file_hashes:
                pngs.append(png)  # stored as the file above
            elif len(png) <= room:
                room -= len(png)
                pngs.append(png)
            elif not any(png is out.data for out in result.files):
                dropped_figures += 1
        if not refused and not dropped_figures:
            return files, pngs, ""
        what = ", ".join(refused) if refused else ""
        if dropped_figures:
            what += (", " if what else "") + f"{dropped_figures} figure(s)"
        note = (
            f"\n[Not copied out for the user: {what}: this project's storage for code "
            f"interpreter files ({_mb(self.output_storage_bytes)}) is full. The files are "
            "still in the session's /mnt/data; files the user deletes make room.]\n"
        )
        return files, pngs, note


def _output_entry(index: int, output: dict[str, Any]) -> dict[str, Any]:
    """A step delta's code_interpreter entry that adds to (or starts) output `index`."""
    return {
        "type": "code_interpreter",
        "code_interpreter": {"outputs": [{"index": index, **output}]},
    }


def _model_output(
    logs: str, result: ExecutionResult, images: list[str], stored: dict[str, str]
) -> str:
    """What the model reads back: the logs (middle cut when long) and notes on the rest."""
    model_out = (
        logs
        if len(logs) <= MODEL_LOG_CHARS
        else logs[: MODEL_LOG_CHARS // 2]
        + "\n…[output truncated]…\n"
        + logs[-MODEL_LOG_CHARS // 2 :]
    )
    notes = []
    if result.error:
        notes.append("The code raised an error (traceback above).")
    if result.session_restarted:
        notes.append("The session was restarted: variables and files from before are gone.")
    if images:
        notes.append(f"{len(images)} image(s) were shown to the user.")
    if stored:
        notes.append("Files written: " + ", ".join(f"sandbox:/mnt/data/{n}" for n in stored))
    return (model_out or "(no output)") + ("\n" + "\n".join(notes) if notes else "")


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"
