"""A small, real OpenAI-compatible chat-completions server for tests and benchmarks.

It speaks HTTP/1.1 over a real socket (keep-alive, chunked streaming, TCP_NODELAY) and
answers `POST /v1/chat/completions`, streamed or not, from a script: a callable from the
request JSON to a reply. It is written on bare asyncio so that what a benchmark measures
against it is our overhead, not a web framework's.

    with FakeUpstream(script=lambda body: "Hello there!", token_delay=0.01) as up:
        backend = OpenAICompatBackend(up.base_url)

    python -m assistantd.testing.fake_upstream --port 8090 --token-delay 0.02
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from assistantd.llm.base import ChatRequest, ModelEvent
from assistantd.llm.openai_compat import OpenAICompatBackend

_TOKEN_RE = re.compile(r"\s*\S+|\s+")


@dataclass(frozen=True, slots=True)
class FakeToolCall:
    """A tool call the fake model makes; `arguments` is a dict (encoded for you) or JSON text."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass(frozen=True, slots=True)
class FakeReply:
    """A full reply: optional text, then a refusal, then tool calls, then `finish_reason`.

    `refusal` streams as `delta.refusal` fragments, the way OpenAI declines e.g. a strict
    `json_schema` answer (its first chunk then carries `content: null, refusal: ""`).
    """

    text: str = ""
    refusal: str = ""
    tool_calls: Sequence[FakeToolCall] = ()
    finish_reason: str | None = None  # default: "tool_calls" if any, else "stop"
    pause: float = 0.0  # seconds of silence (the model thinking) before the first token


@dataclass(frozen=True, slots=True)
class FakeError:
    """An HTTP error answer, e.g. `FakeError(429, "slow down", retry_after_ms=10)`."""

    status: int
    message: str = "error"
    retry_after_ms: int | None = None
    retry_after: str | None = None


Reply = str | FakeToolCall | Sequence[FakeToolCall] | FakeReply | FakeError
Script = Callable[[dict[str, Any]], Reply]


def echo(body: dict[str, Any]) -> Reply:
    """The default script: repeat the last user message."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return "Hello!"


def sequence(*replies: Reply) -> Script:
    """A script answering with `replies` in order, repeating the last one forever after."""
    if not replies:
        raise ValueError("sequence() needs at least one reply")
    lock = threading.Lock()
    position = 0

    def script(_body: dict[str, Any]) -> Reply:
        nonlocal position
        with lock:
            reply = replies[min(position, len(replies) - 1)]
            position += 1
        return reply

    return script


def _as_reply(reply: Reply) -> FakeReply | FakeError:
    if isinstance(reply, FakeReply | FakeError):
        return reply
    if isinstance(reply, str):
        return FakeReply(text=reply)
    if isinstance(reply, FakeToolCall):
        return FakeReply(tool_calls=(reply,))
    return FakeReply(tool_calls=tuple(reply))


def _fragments(text: str) -> list[str]:
    return _TOKEN_RE.findall(text)


def _arguments_fragments(arguments: str) -> list[str]:
    # Streamed like a real model's: a few characters at a time.
    return [arguments[i : i + 8] for i in range(0, len(arguments), 8)] or [""]


class _Completion:
    """One answer rendered as chat.completion(.chunk) objects."""

    def __init__(self, body: dict[str, Any], reply: FakeReply, counter: int) -> None:
        self.id = f"chatcmpl-fake{counter}"
        self.created = int(time.time())
        self.model = str(body.get("model") or "fake")
        self.reply = reply
        self.prompt_tokens = max(1, len(json.dumps(body.get("messages") or [])) // 4)
        self.completion_tokens = 0
        self.finish_reason = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        self.call_ids = [c.id or f"call_fake{counter}x{i}" for i, c in enumerate(reply.tool_calls)]

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def chunks(self, include_usage: bool) -> Iterator[dict[str, Any]]:
        if self.reply.refusal and not self.reply.text:
            yield self._chunk({"role": "assistant", "content": None, "refusal": ""})
        else:
            yield self._chunk({"role": "assistant", "content": ""})
        for fragment in _fragments(self.reply.text):
            self.completion_tokens += 1
            yield self._chunk({"content": fragment})
        for fragment in _fragments(self.reply.refusal):
            self.completion_tokens += 1
            yield self._chunk({"refusal": fragment})
        for index, call in enumerate(self.reply.tool_calls):
            yield self._chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": self.call_ids[index],
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
            for fragment in _arguments_fragments(call.arguments_json):
                self.completion_tokens += 1
                yield self._chunk(
                    {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}
                )
        yield self._chunk({}, self.finish_reason)
        if include_usage:
            final = self._chunk({})
            final["choices"] = []
            final["usage"] = self.usage()
            yield final

    def whole(self) -> dict[str, Any]:
        self.completion_tokens = (
            len(_fragments(self.reply.text))
            + len(_fragments(self.reply.refusal))
            + sum(len(_arguments_fragments(c.arguments_json)) for c in self.reply.tool_calls)
        )
        message: dict[str, Any] = {
            "role": "assistant",
            "content": self.reply.text or None,
            "refusal": self.reply.refusal or None,
        }
        if self.reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": self.call_ids[i],
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments_json},
                }
                for i, c in enumerate(self.reply.tool_calls)
            ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
            "usage": self.usage(),
        }


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class FakeUpstream:
    """The server; use as a context manager to run it on a free loopback port in a thread."""

    def __init__(
        self,
        script: Script = echo,
        *,
        token_delay: float = 0.0,
        first_token_delay: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.script = script
        self.token_delay = token_delay  # 0 = zero-latency mode: the whole answer in one write
        self.first_token_delay = first_token_delay
        self.host = host
        self.port = port
        #: every request body received, in order
        self.requests: list[dict[str, Any]] = []
        #: streams the client hung up on before they were complete
        self.disconnects = 0
        #: TCP connections accepted
        self.connections = 0
        self._counter = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._stopping: asyncio.Event | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- running ---------------------------------------------------------------------------

    async def serve(self, sock: socket.socket | None = None) -> asyncio.Server:
        """Start serving on the running loop (the port is known once this returns)."""
        if sock is None:
            sock = socket.create_server((self.host, self.port), backlog=1024)
        self._server = await asyncio.start_server(self._handle, sock=sock, limit=2**20)
        self.port = sock.getsockname()[1]
        return self._server

    def start(self) -> FakeUpstream:
        """Run in a background thread; returns once it accepts connections."""
        # Bind here so the port is known (and taken) before the thread starts.
        sock = socket.create_server((self.host, self.port), backlog=1024)
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._run_thread, args=(sock,), name="fake-upstream", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise RuntimeError("fake upstream failed to start") from self._failure
        return self

    def _run_thread(self, sock: socket.socket) -> None:
        asyncio.run(self._run_until_stopped(sock))

    async def _run_until_stopped(self, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            server = await self.serve(sock)
        except BaseException as exc:
            self._failure = exc
            sock.close()
            return
        finally:
            self._ready.set()
        await self._stopping.wait()
        server.close()
        # Open keep-alive connections would hold wait_closed() forever; closing them lets
        # each handler finish by itself (a handler cancelled mid-close logs a traceback).
        for writer in list(self._writers):
            writer.close()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5)
        await server.wait_closed()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            stopping = self._stopping
            assert stopping is not None
            self._loop.call_soon_threadsafe(stopping.set)
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- HTTP ------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Each SSE event must leave at once, not wait for Nagle to batch it.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writers.add(writer)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, _version = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                raw = await reader.readexactly(length) if length else b""
                keep_alive = headers.get("connection", "").lower() != "close"
                await self._respond(method, path, raw, reader, writer)
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(
        self,
        method: str,
        path: str,
        raw: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        path = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and path in ("/v1/models", "/models"):
            await self._send_json(
                writer,
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": "fake", "object": "model", "created": 0, "owned_by": "assistantd"}
                    ],
                },
            )
            return
        if method != "POST" or path not in ("/v1/chat/completions", "/chat/completions"):
            await self._send_error(writer, FakeError(404, f"no route {method} {path}"))
            return
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            await self._send_error(writer, FakeError(400, "request body is not JSON"))
            return
        self.requests.append(body)
        self._counter += 1
        reply = _as_reply(self.script(body))
        if isinstance(reply, FakeError):
            await self._send_error(writer, reply)
            return
        completion = _Completion(body, reply, self._counter)
        if not body.get("stream"):
            await self._send_json(writer, 200, completion.whole())
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = [_sse(c) for c in completion.chunks(include_usage)] + [_sse("[DONE]")]
        if self.token_delay <= 0 and self.first_token_delay <= 0 and reply.pause <= 0:
            payload = b"".join(events)
            writer.write(
                _head(
                    200,
                    {
                        "content-type": "text/event-stream",
                        "content-length": str(len(payload)),
                    },
                )
                + payload
            )
            await writer.drain()
            return
        writer.write(
            _head(
                200,
                {
                    "content-type": "text/event-stream",
                    "transfer-encoding": "chunked",
                    "cache-control": "no-cache",
                },
            )
        )
        if self.first_token_delay + reply.pause > 0:
            await asyncio.sleep(self.first_token_delay + reply.pause)
        for i, event in enumerate(events):
            if reader.at_eof():
                # The client hung up (closed the stream early): stop generating, as a real
                # server would.
                self.disconnects += 1
                raise ConnectionResetError("client closed the stream")
            if i > 1 and self.token_delay > 0:
                await asyncio.sleep(self.token_delay)
            writer.write(_chunked(event))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _send_json(self, writer: asyncio.StreamWriter, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        writer.write(
            _head(
                status,
                {
                    "content-type": "application/json",
                    "content-length": str(len(data)),
                },
            )
            + data
        )
        await writer.drain()

    async def _send_error(self, writer: asyncio.StreamWriter, error: FakeError) -> None:
        data = json.dumps(
            {
                "error": {
                    "message": error.message,
                    "type": "invalid_request_error" if error.status < 500 else "server_error",
                    "param": None,
                    "code": None,
                }
            }
        ).encode()
        headers = {"content-type": "application/json", "content-length": str(len(data))}
        if error.retry_after_ms is not None:
            headers["retry-after-ms"] = str(error.retry_after_ms)
        if error.retry_after is not None:
            headers["retry-after"] = error.retry_after
        writer.write(_head(error.status, headers) + data)
        await writer.drain()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument(
        "--token-delay",
        type=float,
        default=0.0,
        help="seconds between streamed chunks; 0 = whole answer at once",
    )
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument(
        "--reply", default=None, help="answer every request with this text (default: echo the user)"
    )
    args = parser.parse_args(argv)
    reply: str | None = args.reply
    script: Script = echo if reply is None else (lambda _body: reply)
    upstream = FakeUpstream(
        script,
        token_delay=args.token_delay,
        first_token_delay=args.first_token_delay,
        host=args.host,
        port=args.port,
    )

    async def run() -> None:
        server = await upstream.serve()
        print(f"fake upstream listening on {upstream.base_url}", flush=True)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()


class LoopTrackingBackend(OpenAICompatBackend):
    """The real upstream backend, remembering the server loop it ran on so that a test can
    close it there."""

    loop: asyncio.AbstractEventLoop | None = None

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        self.loop = asyncio.get_running_loop()
        async for event in super().stream(request):
            yield event
