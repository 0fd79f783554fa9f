"""Structured logs: with `ASSISTANTD_LOG_FORMAT=json`, one JSON object per line.

Each line has `ts` (UTC, ISO 8601 with milliseconds), `level`, `logger`, `message`, and the
context it was written in: `request_id`, `project` and `run_id` when known (from
`ops.context`), plus `route`, `method`, `status` and `duration_ms` on the access lines the
HTTP middleware writes (one per request, instead of uvicorn's). What is never logged: request
and response bodies (so message content), headers (so API keys), query strings, and the
upstream keys (the model backends log their URL, never their headers). Other libraries log
at WARNING and above only, whatever the level: some (aiosqlite, httpcore) would write SQL
parameters or request details at DEBUG.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from assistantd.ops import context

#: Extra fields a record may carry (`log.info(..., extra={...})`) that the line includes.
FIELDS = ("route", "method", "status", "duration_ms", "project")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, var in (
            ("request_id", context.request_id),
            ("project", context.project),
            ("run_id", context.run_id),
        ):
            value = var.get()
            if value is not None:
                line[name] = value
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def log_config(level: str = "info", fmt: str = "text") -> dict[str, Any] | None:
    """A `logging.config.dictConfig` for `uvicorn.run(log_config=...)` and `assistantd worker`;
    None for `text` with uvicorn's own default."""
    if fmt != "json":
        return None
    level = level.upper()
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "assistantd.ops.logs.JsonFormatter"}},
        "handlers": {"stderr": handler},
        "root": {"handlers": ["stderr"], "level": "WARNING"},
        "loggers": {
            "assistantd": {"level": level},
            "uvicorn": {"level": level},
            "uvicorn.error": {"level": level},
            # The middleware writes one access line per request, with its route template.
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }
