"""Slow and idle clients cannot hold connections: raw sockets on loopback against a server
with short header and body timeouts and a small per-address connection bound.

Every loop here is bounded (a few seconds); a connection the server should close is read
until EOF with a deadline, and the time it took is checked against the setting.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from assistantd.core import server as server_module
from assistantd.testing.scripted import ScriptedBackend, text_turn
from assistantd.testing.server import Server, free_port, make_settings, start_server, wait_http

HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 1.0
PER_CLIENT = 6


@pytest.fixture(scope="module", params=["httptools", "h11"])
def slow_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """uvicorn's protocol as `auto` picks it (httptools), and h11 (without httptools)."""
    settings = make_settings(
        Path(tmp_path_factory.mktemp("slow")),
        http_header_timeout_seconds=HEADER_TIMEOUT,
        http_body_timeout_seconds=BODY_TIMEOUT,
        http_max_connections_per_client=PER_CLIENT,
        sandbox_pool_size=0,
    )
    with pytest.MonkeyPatch.context() as mp:
        if request.param == "h11":
            mp.setattr(server_module, "_protocol_class", server_module._h11_class)
        srv, stop = start_server(settings)
        try:
            yield srv
        finally:
            stop()


def _connect(server: Server) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split("/")[0].split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    return s


def _closed_within(s: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Read until the server closes the connection or `seconds` pass; (closed?, bytes read)."""
    got = b""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return True, got
        if not chunk:
            return True, got
        got += chunk
    return False, got


def _response(s: socket.socket, seconds: float) -> bytes:
    """One whole response on a kept-alive connection (head, then `content-length` bytes),
    read for at most `seconds` (a loaded machine may take more than a moment to answer)."""
    got = b""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        head, sep, body = got.partition(b"\r\n\r\n")
        if sep:
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")[1:]
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            if len(body) >= length:
                return got
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        got += chunk
    return got


def _auth(server: Server) -> str:
    return f"Authorization: Bearer {server.keys['alpha']}\r\n"


def test_an_idle_connection_is_closed_after_the_header_timeout(slow_server: Server) -> None:
    start = time.monotonic()
    with _connect(slow_server) as s:
        closed, got = _closed_within(s, HEADER_TIMEOUT + 5)
    took = time.monotonic() - start
    assert closed and got == b""
    assert HEADER_TIMEOUT - 0.2 <= took <= HEADER_TIMEOUT + 2, took


def test_a_slowloris_is_closed_at_the_header_deadline(slow_server: Server) -> None:
    """A header byte a second: every byte is "activity", but the deadline still holds."""
    start = time.monotonic()
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 20
    with _connect(slow_server) as s:
        closed = False
        for byte in head:  # bounded: at most len(head) seconds
            try:
                s.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            closed, _ = _closed_within(s, 1.0)
            if closed:
                break
    took = time.monotonic() - start
    assert closed, "the slowloris connection was kept open"
    assert took <= HEADER_TIMEOUT + 2, took


def test_a_slowloris_after_a_first_request_is_closed_too(slow_server: Server) -> None:
    with _connect(slow_server) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(s, 10).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        closed = False
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaa":
            try:
                s.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            closed, _ = _closed_within(s, 0.5)
            if closed:
                break
        assert closed and time.monotonic() - start <= HEADER_TIMEOUT + 2


def test_huge_headers_are_refused(slow_server: Server) -> None:
    with _connect(slow_server) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(40):  # 40 × 4 KiB, past the 64 KiB bound
                s.sendall(b"X-Big: " + b"b" * 4096 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        closed, got = _closed_within(s, HEADER_TIMEOUT + 2)
        assert closed and not got.startswith(b"HTTP/1.1 200")


def test_a_stalled_body_is_closed_after_the_body_timeout(slow_server: Server) -> None:
    with _connect(slow_server) as s:
        s.sendall(
            (
                "POST /v1/threads HTTP/1.1\r\nHost: x\r\n"
                + _auth(slow_server)
                + 'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"metadata"'
            ).encode()
        )
        start = time.monotonic()
        closed, _ = _closed_within(s, BODY_TIMEOUT + 5)
        took = time.monotonic() - start
    assert closed
    assert BODY_TIMEOUT - 0.2 <= took <= BODY_TIMEOUT + 2, took


def test_a_slow_but_steady_body_is_read(slow_server: Server) -> None:
    body = b'{"metadata": {"k": "v"}}'
    with _connect(slow_server) as s:
        s.sendall(
            (
                "POST /v1/threads HTTP/1.1\r\nHost: x\r\n"
                + _auth(slow_server)
                + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
        )
        for i in range(0, len(body), 4):  # a chunk every BODY_TIMEOUT / 3: 6 chunks, ~3 s
            time.sleep(BODY_TIMEOUT / 3)
            s.sendall(body[i : i + 4])
        _, got = _closed_within(s, 2)
    assert got.startswith(b"HTTP/1.1 200"), got[:200]


def test_connections_per_address_are_bounded(slow_server: Server) -> None:
    refused = (
        REGISTRY.get_sample_value(
            "assistantd_rate_limit_rejections_total", {"limit": "connections_per_client"}
        )
        or 0.0
    )
    held = [_connect(slow_server) for _ in range(PER_CLIENT)]
    try:
        with _connect(slow_server) as extra:
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            closed, got = _closed_within(extra, 3)
        assert closed
        head, _, payload = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 429"), got[:200]
        err = json.loads(payload)["error"]
        assert (
            err["code"] == "rate_limit_exceeded"
            and "ASSISTANTD_HTTP_MAX_CONNECTIONS_PER_CLIENT" in err["message"]
        )
        assert (
            REGISTRY.get_sample_value(
                "assistantd_rate_limit_rejections_total", {"limit": "connections_per_client"}
            )
            == refused + 1
        )
        # The held ones still work, and closing one makes room.
        held[0].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _closed_within(held[0], 0.5)[1].startswith(b"HTTP/1.1 200")
        held.pop().close()
        time.sleep(0.2)
        with _connect(slow_server) as again:
            again.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _closed_within(again, 0.5)[1].startswith(b"HTTP/1.1 200")
    finally:
        for s in held:
            s.close()


def test_streams_and_long_polls_outlive_the_timeouts(slow_server: Server) -> None:
    """A model silent for longer than both timeouts: the SSE stream and a poll-helper wait
    are responses, which no read timeout bounds."""
    pause = max(HEADER_TIMEOUT, BODY_TIMEOUT) + 0.5
    slow_server.models.use(ScriptedBackend(lambda _req: text_turn("late"), delay=pause))
    try:
        c = slow_server.client()
        asst = c.beta.assistants.create(model="m")
        thread = c.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
        start = time.monotonic()
        with c.beta.threads.runs.stream(thread_id=thread.id, assistant_id=asst.id) as stream:
            stream.until_done()
            run = stream.get_final_run()
        assert run.status == "completed" and time.monotonic() - start >= pause
        # The SDK's poll helper long-polls the run with x-stainless-poll-helper.
        run = c.beta.threads.runs.create(thread_id=thread.id, assistant_id=asst.id)
        r = httpx.get(
            f"{slow_server.base_url}/threads/{thread.id}/runs/{run.id}",
            timeout=30,
            headers={
                "Authorization": f"Bearer {slow_server.keys['alpha']}",
                "x-stainless-poll-helper": "true",
            },
        )
        assert r.status_code == 200
        c.beta.threads.runs.poll(run.id, thread_id=thread.id)
    finally:
        slow_server.models.use(ScriptedBackend(lambda _req: text_turn("ok")))


def test_serve_with_workers_applies_the_settings(tmp_path: Path) -> None:
    """`assistantd serve --workers 2`: each worker process gets the guard and its settings."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANTD_")}
    env.update(
        ASSISTANTD_DATA_DIR=str(tmp_path),
        ASSISTANTD_SANDBOX_POOL_SIZE="0",
        ASSISTANTD_WORKER_ENABLED="false",
        ASSISTANTD_HTTP_HEADER_TIMEOUT_SECONDS="1",
        ASSISTANTD_HTTP_MAX_CONNECTIONS_PER_CLIENT="50",
    )
    cli = Path(sys.executable).with_name("assistantd")
    proc = subprocess.Popen(
        [str(cli), "serve", "--port", str(port), "--workers", "2", "--log-level", "warning"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        for _ in range(4):  # the kernel spreads connections over both workers
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                start = time.monotonic()
                s.settimeout(5)
                assert s.recv(1) == b""
                assert time.monotonic() - start < 3
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
