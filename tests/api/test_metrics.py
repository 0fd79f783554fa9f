"""`/metrics` after a scripted workload: read by Prometheus' own text parser, every counter
changed by exactly what the workload did (HTTP requests by route template and status, runs
by final status, model calls and tokens by model and project, model errors, the run
histograms' counts), and the open-stream gauge up while a stream is open."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistantd.llm.base import (
    Finished,
    ModelError,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallStarted,
    Usage,
)
from assistantd.testing.fake_upstream import FakeError, FakeUpstream, LoopTrackingBackend
from assistantd.testing.prom import Key, delta, key, scrape
from assistantd.testing.scripted import ScriptedBackend
from assistantd.testing.server import Server, make_settings, start_server
from assistantd.testing.sse import frames_of

R = "/v1/threads/{thread_id}/runs/{run_id}"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server, stop = start_server(make_settings(tmp_path_factory.mktemp("metrics")))
    try:
        yield server
    finally:
        stop()


class Client:
    """Raw HTTP that remembers each request's (method, route template, status)."""

    def __init__(self, server: Server) -> None:
        self.root = server.base_url.removesuffix("/v1")
        self.http = httpx.Client(
            base_url=self.root,
            headers={"Authorization": f"Bearer {server.keys['alpha']}"},
            timeout=30,
        )
        self.sent: Counter[tuple[str, str, str]] = Counter()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def call(self, method: str, template: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        self.sent[(method, template, str(r.status_code))] += 1
        return r.json()

    def run(self, thread: str, assistant: str) -> dict[str, Any]:
        run = self.call(
            "POST",
            "/v1/threads/{thread_id}/runs",
            f"/v1/threads/{thread}/runs",
            json={"assistant_id": assistant},
        )
        return self.wait(thread, run["id"])

    def wait(self, thread: str, run_id: str) -> dict[str, Any]:
        while True:
            run = self.call("GET", R, f"/v1/threads/{thread}/runs/{run_id}")
            if run["status"] not in ("queued", "in_progress"):
                return dict(run)
            time.sleep(0.02)


def turn(text: str, prompt: int, completion: int) -> list[Any]:
    return [TextDelta(text), Finished("stop", Usage(prompt, completion))]


def test_counters_match_a_scripted_workload(srv: Server) -> None:
    with Client(srv) as c:
        workload(srv, c)


def workload(srv: Server, c: Client) -> None:
    srv.models.use(
        ScriptedBackend(
            [  # type: ignore[attr-defined]
                turn("Hello.", 11, 3),
                [
                    ToolCallStarted(0, "call_w1", "get_weather"),
                    ToolCallArgumentsDelta(0, '{"city": "Oslo"}'),
                    Finished("tool_calls", Usage(13, 5)),
                ],
                turn("Cold.", 17, 2),
                ModelError("the scripted model broke"),
            ]
        )
    )
    before, _ = scrape(c.root)
    scrapes = 1

    a = c.call(
        "POST",
        "/v1/assistants",
        "/v1/assistants",
        json={
            "model": "m",
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "get_weather", "parameters": {"type": "object"}},
                }
            ],
        },
    )
    t = c.call(
        "POST", "/v1/threads", "/v1/threads", json={"messages": [{"role": "user", "content": "hi"}]}
    )
    assert c.run(t["id"], a["id"])["status"] == "completed"
    paused = c.run(t["id"], a["id"])
    assert paused["status"] == "requires_action"
    call_id = paused["required_action"]["submit_tool_outputs"]["tool_calls"][0]["id"]
    c.call(
        "POST",
        R + "/submit_tool_outputs",
        f"/v1/threads/{t['id']}/runs/{paused['id']}/submit_tool_outputs",
        json={"tool_outputs": [{"tool_call_id": call_id, "output": "-5"}]},
    )
    assert c.wait(t["id"], paused["id"])["status"] == "completed"
    assert c.run(t["id"], a["id"])["status"] == "failed"
    c.call("GET", "/v1/assistants/{assistant_id}", "/v1/assistants/asst_nope")  # a 404
    c.call("GET", "unmatched", "/v1/no/such/path")

    # A stream: the gauge counts it while it is open.
    srv.models.use(ScriptedBackend([turn("one two three", 7, 3)], delay=0.3))  # type: ignore[attr-defined]
    with c.http.stream(
        "POST", f"/v1/threads/{t['id']}/runs", json={"assistant_id": a["id"], "stream": True}
    ) as r:
        frames = frames_of(r)
        first = next(frames)
        during, _ = scrape(c.root)
        scrapes += 1
        assert during[key("assistantd_sse_streams_active")] == 1
        names = [first[0], *(f[0] for f in frames)]
        c.sent[("POST", "/v1/threads/{thread_id}/runs", str(r.status_code))] += 1
    assert names[-1] == "done"

    expected: Counter[Key] = Counter(
        {
            key("assistantd_runs_finished_total", status="completed"): 3,
            key("assistantd_runs_finished_total", status="failed"): 1,
            key("assistantd_model_calls_total", model="m", project="alpha"): 5,
            key("assistantd_model_tokens_total", model="m", project="alpha", kind="prompt"): 11
            + 13
            + 17
            + 7,
            key("assistantd_model_tokens_total", model="m", project="alpha", kind="completion"): 3
            + 5
            + 2
            + 3,
            key("assistantd_model_errors_total", model="m", code="server_error"): 1,
            key("assistantd_run_duration_seconds_count"): 4,
            key("assistantd_run_tool_rounds_count"): 4,
            key("assistantd_run_tool_rounds_sum"): 1,
            # in_progress segments: one per run, and the resumed one after the tool outputs
            key("assistantd_run_queue_wait_seconds_count"): 5,
            # segments that streamed a fragment: all but the failed run's
            key("assistantd_run_time_to_first_token_seconds_count"): 4,
        }
    )
    deadline = time.monotonic() + 5
    while True:
        after, families = scrape(c.root)
        got = delta(after, before, "assistantd_")
        sent = Counter(c.sent)
        sent[("GET", "/metrics", "200")] += scrapes
        http = Counter({k: v for k, v in got.items() if k[0] == "assistantd_http_requests_total"})
        want_http = Counter(
            {
                key("assistantd_http_requests_total", method=m, route=r, status=s): n
                for (m, r, s), n in sent.items()
            }
        )
        others = Counter({k: v for k, v in got.items() if k in expected})
        if (http == want_http and others == expected) or time.monotonic() > deadline:
            break
        scrapes += 1
        time.sleep(0.1)
    assert http == want_http
    assert others == expected
    assert after[key("assistantd_sse_streams_active")] == 0
    assert after[key("assistantd_ingestion_queue_files")] == 0
    # every request's latency observed under its route
    latency = {k for k in got if k[0] == "assistantd_http_request_duration_seconds_count"}
    assert {dict(k[1])["route"] for k in latency} == {r for _, r, _ in sent}
    # defined, though nothing here rate-limits yet
    assert {
        "assistantd_rate_limit_rejections",
        "assistantd_upstream_retries",
        "assistantd_ingestion_failures",
        "assistantd_code_interpreter_execution_seconds",
        "assistantd_code_interpreter_sessions_live",
    } <= families


def test_metrics_behind_a_token(tmp_path: Path) -> None:
    server, stop = start_server(make_settings(tmp_path, metrics_token="scrape-secret"))
    try:
        root = server.base_url.removesuffix("/v1")
        r = httpx.get(f"{root}/metrics")
        assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_request_error"
        assert (
            httpx.get(f"{root}/metrics", headers={"Authorization": "Bearer wrong"}).status_code
            == 401
        )
        # an API key is not the metrics token
        assert (
            httpx.get(
                f"{root}/metrics", headers={"Authorization": f"Bearer {server.keys['alpha']}"}
            ).status_code
            == 401
        )
        samples, _ = scrape(root, token="scrape-secret")
        assert (
            key("assistantd_http_requests_total", method="GET", route="/metrics", status="401")
            in samples
        )
    finally:
        stop()


def test_upstream_retries_and_ingestion_failures_are_counted(srv: Server) -> None:
    """A 503 then a 429 then an answer: two retries, by status; an empty file: one failed
    ingestion, by its code."""
    answers = iter([FakeError(503, "busy"), FakeError(429, "slow down", retry_after_ms=1), "fine"])
    root, h = srv.base_url.removesuffix("/v1"), {"Authorization": f"Bearer {srv.keys['alpha']}"}
    with FakeUpstream(lambda body: next(answers)) as up:
        backend = LoopTrackingBackend(up.base_url, max_retries=3, initial_backoff=0.01)
        srv.models.use(backend)  # type: ignore[attr-defined]
        try:
            before, _ = scrape(root)
            a = httpx.post(f"{srv.base_url}/assistants", json={"model": "m"}, headers=h).json()
            t = httpx.post(
                f"{srv.base_url}/threads",
                json={"messages": [{"role": "user", "content": "x"}]},
                headers=h,
            ).json()
            run = httpx.post(
                f"{srv.base_url}/threads/{t['id']}/runs", json={"assistant_id": a["id"]}, headers=h
            ).json()
            with Client(srv) as c:
                assert c.wait(t["id"], run["id"])["status"] == "completed"
            empty = httpx.post(
                f"{srv.base_url}/files",
                headers=h,
                data={"purpose": "assistants"},
                files={"file": ("empty.txt", b"   \n", "text/plain")},
            ).json()
            vs = httpx.post(
                f"{srv.base_url}/vector_stores", json={"file_ids": [empty["id"]]}, headers=h
            ).json()
            deadline = time.monotonic() + 60
            while (
                httpx.get(f"{srv.base_url}/vector_stores/{vs['id']}", headers=h).json()[
                    "file_counts"
                ]["failed"]
                != 1
            ):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            after, _ = scrape(root)
        finally:
            if backend.loop is not None:
                asyncio.run_coroutine_threadsafe(backend.aclose(), backend.loop).result(10)
    got = delta(after, before, "assistantd_")
    assert {k: v for k, v in got.items() if k[0] == "assistantd_upstream_retries_total"} == {
        key("assistantd_upstream_retries_total", reason="503"): 1,
        key("assistantd_upstream_retries_total", reason="429"): 1,
    }
    assert {k: v for k, v in got.items() if k[0] == "assistantd_ingestion_failures_total"} == {
        key("assistantd_ingestion_failures_total", code="invalid_file"): 1
    }
    assert got[key("assistantd_model_calls_total", model="m", project="alpha")] == 1
