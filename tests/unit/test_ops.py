"""The operations plumbing without a server: when tracing turns on, which metric files go,
what a JSON log line holds, how a PostgreSQL URL reaches pg_dump, the route label."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistantd.ops import context, tracing
from assistantd.ops.backup import BackupError, libpq_url, restore
from assistantd.ops.logs import JsonFormatter, log_config
from assistantd.ops.middleware import UNMATCHED, route_of
from assistantd.ops.multiproc import remove_dead
from assistantd.testing.server import make_settings


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_tracing_follows_the_standard_variables(env: dict[str, str], wanted: bool) -> None:
    assert tracing.wanted(env) is wanted


def test_the_files_of_dead_processes_go(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = Path(f"counter_{os.getpid()}.db")
    for name in (alive.name, f"counter_{dead.pid}.db", f"gauge_livesum_{dead.pid}.db", "notes.txt"):
        (tmp_path / name).write_text("x")
    assert remove_dead(tmp_path, prefix="gauge_live") == 1
    assert (tmp_path / f"counter_{dead.pid}.db").exists()  # counters stay while the server lives
    assert remove_dead(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "notes.txt"]


def test_a_json_line_carries_its_context() -> None:
    record = logging.LogRecord(
        "assistantd.engine", logging.WARNING, __file__, 1, "run %s failed", ("run_1",), None
    )
    record.status = 503
    tokens = [
        context.request_id.set("req_1"),
        context.project.set("p"),
        context.run_id.set("run_1"),
    ]
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        for var, token in zip(
            (context.request_id, context.project, context.run_id), tokens, strict=True
        ):
            var.reset(token)
    assert line["message"] == "run run_1 failed" and line["level"] == "warning"
    assert (line["request_id"], line["project"], line["run_id"], line["status"]) == (
        "req_1",
        "p",
        "run_1",
        503,
    )
    assert line["ts"].endswith("Z") and "T" in line["ts"]
    assert log_config("info", "text") is None
    config = log_config("debug", "json")
    assert config is not None and config["root"]["level"] == "WARNING"  # libraries never at DEBUG
    assert config["loggers"]["assistantd"]["level"] == "DEBUG"


def test_pg_dump_gets_a_libpq_url() -> None:
    assert libpq_url("postgresql+asyncpg://u:pw@db:5433/x") == "postgresql://u:pw@db:5433/x"


def test_restore_refuses_what_is_not_a_backup(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="not an assistantd backup"):
        restore(make_settings(tmp_path / "data"), tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "database": "postgresql"}))
    with pytest.raises(BackupError, match="holds a postgresql database"):
        restore(make_settings(tmp_path / "data"), tmp_path)


def test_route_label() -> None:
    class Route:
        path = "/v1/threads/{thread_id}"

    assert route_of({"route": Route()}) == "/v1/threads/{thread_id}"
    assert route_of({}) == UNMATCHED
