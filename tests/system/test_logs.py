"""JSON logs of `assistantd serve` through full runs (streamed, polled, failed upstream):
every line is a JSON object with its context, and the API key, the upstream key and the
message content appear nowhere in what the server wrote, at DEBUG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from assistantd.testing.fake_upstream import FakeError, FakeUpstream
from assistantd.testing.server import free_port, wait_http

API_KEY = "sk-api-key-7f3a9c1e55"
UPSTREAM_KEY = "sk-upstream-key-b81d22aa09"
CONTENT = "the launch code is tangerine-4471"
WRONG_KEY = "sk-wrong-key-0c0ffee"


def script(body: dict[str, Any]) -> Any:
    text = str(body["messages"][-1].get("content") or "")
    if "fail" in text:
        return FakeError(500, "the upstream fell over")
    return f"you said: {text}"


def test_json_logs_carry_context_and_no_secret(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "server.log"
    with FakeUpstream(script) as up, log_path.open("wb") as out:
        env = dict(
            os.environ,
            ASSISTANTD_DATA_DIR=str(tmp_path / "data"),
            ASSISTANTD_LLM_BASE_URL=up.base_url,
            ASSISTANTD_LLM_API_KEY=UPSTREAM_KEY,
            ASSISTANTD_API_KEYS=API_KEY,
            ASSISTANTD_LOG_FORMAT="json",
            ASSISTANTD_LLM_MAX_RETRIES="1",
            ASSISTANTD_SANDBOX_POOL_SIZE="0",
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "assistantd",
                "serve",
                "--port",
                str(port),
                "--log-level",
                "debug",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        root = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{root}/health", proc)
            run_ids = workload(f"{root}/v1")
            assert len(up.requests) >= 3
        finally:
            proc.terminate()
            proc.wait(30)
    raw = log_path.read_text()
    for secret in (API_KEY, UPSTREAM_KEY, CONTENT, "tangerine", WRONG_KEY):
        assert secret not in raw, f"{secret!r} was logged"
    lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    access = [line for line in lines if line["logger"] == "assistantd.access"]
    assert access and all(
        {"request_id", "route", "method", "status", "duration_ms"} <= set(a) for a in access
    )
    assert all(a["request_id"].startswith("req_") for a in access)
    assert {a["route"] for a in access} >= {
        "/v1/assistants",
        "/v1/threads",
        "/v1/threads/{thread_id}/runs",
    }
    assert any(a["status"] == 401 for a in access)
    assert all(
        a.get("project") == "default"
        for a in access
        if a["status"] == 200 and a["route"].startswith("/v1")
    )
    failed = [
        line for line in lines if line.get("run_id") == run_ids[-1] and line["level"] == "warning"
    ]
    assert failed and failed[0]["project"] == "default"  # the failed run's log line names it


def workload(base: str) -> list[str]:
    h = {"Authorization": f"Bearer {API_KEY}"}
    assert (
        httpx.get(
            f"{base}/assistants", headers={"Authorization": f"Bearer {WRONG_KEY}"}
        ).status_code
        == 401
    )
    a = httpx.post(
        f"{base}/assistants", json={"model": "m", "instructions": CONTENT}, headers=h
    ).json()
    t = httpx.post(
        f"{base}/threads", json={"messages": [{"role": "user", "content": CONTENT}]}, headers=h
    ).json()
    with httpx.stream(
        "POST",
        f"{base}/threads/{t['id']}/runs",
        json={"assistant_id": a["id"], "stream": True},
        headers=h,
        timeout=60,
    ) as r:
        body = "".join(r.iter_text())
    assert CONTENT in body and "event: done" in body  # the content really went through
    runs = []
    for text in (CONTENT + " again", "please fail"):
        httpx.post(
            f"{base}/threads/{t['id']}/messages", json={"role": "user", "content": text}, headers=h
        )
        run = httpx.post(
            f"{base}/threads/{t['id']}/runs", json={"assistant_id": a["id"]}, headers=h
        ).json()
        deadline = time.monotonic() + 60
        while run["status"] in ("queued", "in_progress"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
            run = httpx.get(f"{base}/threads/{t['id']}/runs/{run['id']}", headers=h).json()
        runs.append(run["id"])
    assert run["status"] == "failed"
    messages = httpx.get(f"{base}/threads/{t['id']}/messages", headers=h).json()
    assert any(
        CONTENT in m["content"][0]["text"]["value"] for m in messages["data"] if m["content"]
    )
    return runs
