"""Traces exported by the standard OTEL_* variables to a real OTLP/HTTP receiver: the request
span (continuing the client's `traceparent`), the run under it, its model calls with their
token counts and its code_interpreter call (the real sandbox); nothing when unset."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from assistantd.llm.base import Finished, TextDelta, Usage
from assistantd.testing.otlp import OtlpReceiver, ReceivedSpan
from assistantd.testing.prom import delta, key, scrape
from assistantd.testing.scripted import ScriptedBackend, tool_call_turn
from assistantd.testing.server import SwitchRouter, make_settings, start_server

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def test_spans_of_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with OtlpReceiver() as otlp:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        models = SwitchRouter()
        models.use(
            ScriptedBackend(
                [
                    [
                        *tool_call_turn("code_interpreter", {"code": "print(6 * 7)"}),
                        Finished("tool_calls", Usage(21, 8)),
                    ],
                    [TextDelta("It is 42."), Finished("stop", Usage(30, 6))],
                ]
            )
        )
        srv, stop = start_server(make_settings(tmp_path), models)
        try:
            root = srv.base_url.removesuffix("/v1")
            before, _ = scrape(root)
            h = {"Authorization": f"Bearer {srv.keys['alpha']}"}
            a = httpx.post(
                f"{srv.base_url}/assistants",
                headers=h,
                json={"model": "m", "tools": [{"type": "code_interpreter"}]},
            ).json()
            t = httpx.post(f"{srv.base_url}/threads", headers=h, json={}).json()
            run = httpx.post(
                f"{srv.base_url}/threads/{t['id']}/runs",
                json={"assistant_id": a["id"]},
                headers={**h, "traceparent": f"00-{TRACE}-{PARENT}-01"},
            ).json()
            deadline = time.monotonic() + 120
            while run["status"] in ("queued", "in_progress"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
                run = httpx.get(
                    f"{srv.base_url}/threads/{t['id']}/runs/{run['id']}", headers=h
                ).json()
            assert run["status"] == "completed", run
            after, _ = scrape(root)
        finally:
            stop()  # the lifespan's end flushes the exporter
        spans = otlp.wait_for(lambda s: any(x.name == "run" for x in s))

    got = delta(after, before, "assistantd_code_interpreter")
    assert got[key("assistantd_code_interpreter_execution_seconds_count")] == 1
    assert after[key("assistantd_code_interpreter_sessions_live")] >= 1

    request = one(spans, "POST /v1/threads/{thread_id}/runs")
    assert (request.trace_id, request.parent_span_id) == (TRACE, PARENT)
    assert request.attributes["http.route"] == "/v1/threads/{thread_id}/runs"
    assert request.attributes["http.response.status_code"] == 200
    assert request.kind == 2  # SERVER
    assert request.service == "assistantd"
    run_span = one(spans, "run")
    assert run_span.trace_id == TRACE and run_span.parent_span_id == request.span_id
    assert run_span.attributes["assistantd.run_id"] == run["id"]
    assert run_span.attributes["assistantd.project"] == "alpha"
    assert run_span.attributes["assistantd.run.status"] == "completed"
    calls = [s for s in spans if s.name == "chat m"]
    assert [
        (c.attributes["gen_ai.usage.input_tokens"], c.attributes["gen_ai.usage.output_tokens"])
        for c in calls
    ] == [(21, 8), (30, 6)]
    assert all(
        c.parent_span_id == run_span.span_id and c.attributes["assistantd.project"] == "alpha"
        for c in calls
    )
    tool = one(spans, "tool code_interpreter")
    assert (
        tool.parent_span_id == run_span.span_id
        and tool.attributes["assistantd.run_id"] == run["id"]
    )
    assert any(s.name == "GET /v1/threads/{thread_id}/runs/{run_id}" for s in spans)


def test_no_otel_variables_no_sdk(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom assistantd.app import create_app\nfrom assistantd.ops import tracing\n"
        "create_app()\nassert not tracing.configure({})\nassert not tracing.enabled()\n"
        "print('opentelemetry.sdk.trace' in sys.modules)"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
