"""Streams that go quiet: keep-alives while the model is silent for longer than the
keep-alive interval, read by the official SDKs (Python and Node), on both event buses."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncAssistantEventHandler
from openai._streaming import SSEDecoder
from typing_extensions import override

from assistantd.llm.base import ChatRequest, ModelEvent
from assistantd.testing.scripted import ScriptedBackend, text_turn, tool_call_turn
from assistantd.testing.server import Server, make_settings, start_server

REDIS = os.environ.get("ASSISTANTD_TEST_REDIS", "redis://127.0.0.1:6379/0")
NODE_DIR = Path(__file__).parents[1] / "node"
KEEPALIVE = 0.2  # seconds; the model below is silent five times as long
PAUSE = 1.0
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


class Pausing(ScriptedBackend):
    """A scripted model that thinks `pause` seconds before its first token."""

    def __init__(self, script: Any, pause: float = PAUSE) -> None:
        super().__init__(script)
        self.pause = pause

    async def stream(self, request: ChatRequest) -> Any:  # type: ignore[override]
        await asyncio.sleep(self.pause)
        async for event in super().stream(request):
            yield event


def turns() -> list[list[ModelEvent]]:
    return [tool_call_turn("get_weather", {"city": "Oslo"}), text_turn("It is sunny after all.")]


@pytest.fixture(scope="module", params=["memory", "redis"])
def quiet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server with a short keep-alive interval, on the in-process bus or on Redis."""
    settings = make_settings(
        tmp_path_factory.mktemp(f"quiet-{request.param}"),
        sandbox_pool_size=0,
        stream_keepalive_seconds=KEEPALIVE,
        redis_url=REDIS if request.param == "redis" else None,
    )
    srv, stop = start_server(settings)
    try:
        yield srv
    finally:
        stop()


def raw_stream(srv: Server) -> bytes:
    h = {"Authorization": f"Bearer {srv.keys['alpha']}"}
    a = httpx.post(f"{srv.base_url}/assistants", json={"model": "m"}, headers=h).json()
    body = {
        "assistant_id": a["id"],
        "stream": True,
        "thread": {"messages": [{"role": "user", "content": "hi"}]},
    }
    with httpx.stream(
        "POST", f"{srv.base_url}/threads/runs", json=body, headers=h, timeout=30
    ) as r:
        return r.read()


def test_silent_model_streams_keepalives_no_sdk_decoder_mistakes_for_events(quiet: Server) -> None:
    quiet.models.use(Pausing([text_turn("It is sunny after all.")]))
    raw = raw_stream(quiet)
    # The silence did carry keep-alives, after frames that had an `id:`.
    assert raw.count(b": ping\n") >= 2, raw
    assert raw.index(b"id: ") < raw.index(b": ping\n")
    # What the Python SDK's own decoder makes of the bytes: only the real events.
    events = list(SSEDecoder().iter_bytes(iter([raw])))
    assert all(e.event for e in events), [e for e in events if not e.event]
    assert [e.event for e in events][-1] == "done"
    assert all(json.loads(e.data) for e in events[:-1])
    # Every blank line ends a frame with data (a lone blank line is what decoders mis-read).
    assert b"\n\n\n" not in raw and not raw.startswith(b"\n")
    for block in raw.split(b"\n\n")[:-1]:
        assert b"\ndata: " in b"\n" + block, block


def test_python_sdk_streams_through_a_silent_model(quiet: Server) -> None:
    backend = quiet.models.use(Pausing([text_turn("It is sunny after all."), *turns()]))
    with quiet.client() as client:
        a = client.beta.assistants.create(model="m", tools=[WEATHER])
        with client.beta.threads.create_and_run_stream(
            assistant_id=a.id, thread={"messages": [{"role": "user", "content": "weather?"}]}
        ) as stream:
            text = "".join(stream.text_deltas)
            run = stream.get_final_run()
        assert text == "It is sunny after all." and run.status == "completed"

        with client.beta.threads.runs.stream(thread_id=run.thread_id, assistant_id=a.id) as stream:
            stream.until_done()
            paused = stream.get_final_run()
        assert paused.status == "requires_action"
        call = paused.required_action.submit_tool_outputs.tool_calls[0]
        with client.beta.threads.runs.submit_tool_outputs_stream(
            thread_id=paused.thread_id,
            run_id=paused.id,
            tool_outputs=[{"tool_call_id": call.id, "output": "sunny"}],
        ) as stream:
            text = "".join(stream.text_deltas)
            final = stream.get_final_run()
        assert text == "It is sunny after all." and final.status == "completed"
    assert len(backend.requests) == 3


async def test_async_python_sdk_streams_through_a_silent_model(quiet: Server) -> None:
    quiet.models.use(Pausing([text_turn("It is sunny after all.")]))
    parts: list[str] = []

    class Handler(AsyncAssistantEventHandler):
        @override
        async def on_text_delta(self, delta: Any, snapshot: Any) -> None:
            parts.append(delta.value)

    async with quiet.async_client() as client:
        a = await client.beta.assistants.create(model="m")
        t = await client.beta.threads.create(messages=[{"role": "user", "content": "go"}])
        async with client.beta.threads.runs.stream(
            thread_id=t.id, assistant_id=a.id, event_handler=Handler()
        ) as stream:
            await stream.until_done()
            run = await stream.get_final_run()
    assert run.status == "completed" and "".join(parts) == "It is sunny after all."


@pytest.mark.node
def test_node_sdk_streams_through_a_silent_model(quiet: Server) -> None:
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "openai").exists():
        pytest.fail("node and tests/node/node_modules/openai are required: run `make install`")
    quiet.models.use(Pausing([text_turn("It is sunny after all."), *turns()]))
    env = dict(os.environ, BASE_URL=quiet.base_url, API_KEY=quiet.keys["alpha"])
    proc = subprocess.run(
        ["node", "silent_stream.mjs"],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["statuses"] == ["completed", "requires_action", "completed"]
    assert out["texts"] == ["It is sunny after all.", "It is sunny after all."]


def test_redis_stream_silent_longer_than_the_socket_timeout_goes_on(tmp_path: Path) -> None:
    # The bus's blocking read must not be cut by the Redis client's socket timeout (here
    # 1 s; redis-py's default is 5 s): the stream outlives it and keeps sending keep-alives.
    settings = make_settings(
        tmp_path,
        sandbox_pool_size=0,
        stream_keepalive_seconds=1.5,
        redis_url=f"{REDIS}?socket_timeout=1",
    )
    srv, stop = start_server(settings)
    try:
        srv.models.use(Pausing([text_turn("It is sunny after all.")] * 2, pause=4.0))
        raw = raw_stream(srv)
        assert raw.count(b": ping\n") >= 2, raw
        assert raw.endswith(b"event: done\ndata: [DONE]\n\n"), raw[-300:]
        with srv.client() as client:
            a = client.beta.assistants.create(model="m")
            with client.beta.threads.create_and_run_stream(
                assistant_id=a.id, thread={"messages": [{"role": "user", "content": "hi"}]}
            ) as stream:
                assert "".join(stream.text_deltas) == "It is sunny after all."
    finally:
        stop()


@pytest.mark.node
def test_both_sdks_through_a_20_second_silence_at_the_default_keepalive(tmp_path: Path) -> None:
    """The issue's own reproduction, unscaled: the default 15 s keep-alive, a model silent for
    20 s before its first token, the Python and the Node SDK at once, on both buses."""
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "openai").exists():
        pytest.fail("node and tests/node/node_modules/openai are required: run `make install`")
    servers: dict[str, tuple[Server, Any]] = {}
    for bus in ("memory", "redis"):
        (tmp_path / bus).mkdir()
        settings = make_settings(
            tmp_path / bus, sandbox_pool_size=0, redis_url=REDIS if bus == "redis" else None
        )
        assert settings.stream_keepalive_seconds == 15
        servers[bus] = start_server(settings)
    results: dict[tuple[str, str], Any] = {}

    def python_sdk(bus: str, srv: Server) -> None:
        with srv.client(timeout=120) as client:
            a = client.beta.assistants.create(model="m")
            with client.beta.threads.create_and_run_stream(
                assistant_id=a.id, thread={"messages": [{"role": "user", "content": "hi"}]}
            ) as stream:
                text = "".join(stream.text_deltas)
                results[(bus, "python")] = (text, stream.get_final_run().status)

    def node_sdk(bus: str, srv: Server) -> None:
        env = dict(os.environ, BASE_URL=srv.base_url, API_KEY=srv.keys["alpha"], FIRST_ONLY="1")
        proc = subprocess.run(
            ["node", "silent_stream.mjs"],
            cwd=NODE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        out = (
            json.loads(proc.stdout.strip().splitlines()[-1])
            if proc.returncode == 0
            else proc.stderr
        )
        results[(bus, "node")] = (
            (out["texts"][0], out["statuses"][0]) if isinstance(out, dict) else out
        )

    try:
        for srv, _ in servers.values():
            srv.models.use(Pausing(lambda r: text_turn("It is sunny after all."), pause=20.0))
        workers = [
            threading.Thread(target=fn, args=(bus, srv))
            for bus, (srv, _) in servers.items()
            for fn in (python_sdk, node_sdk)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=150)
    finally:
        for _, stop in servers.values():
            stop()
    expected = ("It is sunny after all.", "completed")
    assert results == {(bus, sdk): expected for bus in servers for sdk in ("python", "node")}, (
        results
    )
