"""What the current request or run is, for logs, metric labels and spans.

Context variables: set by the HTTP middleware (request id, route) and by the run engine when
it starts a run (`bind_run`), read by the log formatter and the observers. A task started
inside a request or a run inherits them.
"""

from __future__ import annotations

import contextvars

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "assistantd_request_id", default=None
)
route: contextvars.ContextVar[str | None] = contextvars.ContextVar("assistantd_route", default=None)
project: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "assistantd_project", default=None
)
run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "assistantd_run_id", default=None
)


def bind_run(run: str, project_id: str) -> None:
    """The current task executes run `run` of project `project_id` (the engine calls it once
    per execution; model calls, tools and log lines made from there on carry both)."""
    run_id.set(run)
    project.set(project_id)
