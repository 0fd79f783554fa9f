"""assistantd's Prometheus metrics: every one is defined here, counted where it happens.

Defined on the ground floor so that any package may count (the HTTP edge, the model
backends, ingestion, a rate limiter) without importing the `ops` package that serves them
(`ops/metrics.py`: `/metrics`, the multiprocess directory, the gauges read at scrape time).

With `PROMETHEUS_MULTIPROC_DIR` set before `prometheus_client` is first imported (the
`assistantd serve` and `assistantd worker` commands set it), each process writes its values
to files there and `/metrics` adds up every process's; otherwise they live in this process.
Gauges of things that are live use `livesum`: a process that died stops counting.

Names follow Prometheus conventions: `assistantd_` prefix, `_total` counters, `_seconds`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

#: Seconds, from a fast JSON answer to a long stream or a slow first token.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
ROUND_BUCKETS = (0, 1, 2, 3, 5, 8, 13, 25, 50)

HTTP_REQUESTS = Counter(
    "assistantd_http_requests",
    "HTTP requests answered, by route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "assistantd_http_request_duration_seconds",
    "From the request's arrival to its response's last byte (a stream: until it ends).",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
SSE_STREAMS = Gauge(
    "assistantd_sse_streams_active",
    "Server-sent event streams open right now.",
    multiprocess_mode="livesum",
)

RUNS_FINISHED = Counter(
    "assistantd_runs_finished", "Runs that reached a final status, by that status.", ["status"]
)
RUN_QUEUE_WAIT = Histogram(
    "assistantd_run_queue_wait_seconds",
    "From a run being queued to a worker starting it.",
    buckets=LATENCY_BUCKETS,
)
RUN_FIRST_TOKEN = Histogram(
    "assistantd_run_time_to_first_token_seconds",
    "From a run starting (or resuming) to the first text or tool-call fragment it streams.",
    buckets=LATENCY_BUCKETS,
)
RUN_DURATION = Histogram(
    "assistantd_run_duration_seconds",
    "From a run starting to its final status.",
    buckets=LATENCY_BUCKETS,
)
RUN_TOOL_ROUNDS = Histogram(
    "assistantd_run_tool_rounds",
    "Tool-call rounds (tool_calls steps) of each finished run.",
    buckets=ROUND_BUCKETS,
)

MODEL_CALLS = Counter(
    "assistantd_model_calls", "Model calls, by requested model and project.", ["model", "project"]
)
MODEL_TOKENS = Counter(
    "assistantd_model_tokens",
    "Tokens of model calls, by requested model, project and kind (prompt, completion).",
    ["model", "project", "kind"],
)
MODEL_ERRORS = Counter(
    "assistantd_model_errors",
    "Model calls that failed, by requested model and error code.",
    ["model", "code"],
)
UPSTREAM_RETRIES = Counter(
    "assistantd_upstream_retries",
    "Retries of an upstream model request, by reason (the HTTP status, or `connect`).",
    ["reason"],
)

INGESTION_FAILURES = Counter(
    "assistantd_ingestion_failures",
    "Vector-store files whose ingestion failed, by error code.",
    ["code"],
)

CODE_SESSIONS = Gauge(
    "assistantd_code_interpreter_sessions_live",
    "Code-interpreter sessions alive right now.",
    multiprocess_mode="livesum",
)
CODE_EXECUTION = Histogram(
    "assistantd_code_interpreter_execution_seconds",
    "Wall time of one code execution.",
    buckets=LATENCY_BUCKETS,
)

RATE_LIMIT_REJECTIONS = Counter(
    "assistantd_rate_limit_rejections", "Requests refused by a rate limit, by limit.", ["limit"]
)
