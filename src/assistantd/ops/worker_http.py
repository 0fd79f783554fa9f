"""`/metrics` and `/healthz` of an `assistantd worker` on a host of its own.

A worker on the API's host shares its metrics directory and shows in the API's `/metrics`;
one elsewhere serves its own on `ASSISTANTD_WORKER_METRICS_PORT` (same token, same format),
with a small Starlette app on uvicorn inside the worker's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from assistantd.context import AppContext
from assistantd.core.errors import AuthenticationFailed
from assistantd.core.http import JSONResponse
from assistantd.ops.metrics import CONTENT_TYPE_LATEST, authorize, count_ingestion_queue, render
from assistantd.ops.observe import ObservedSandbox


def worker_app(ctx: AppContext) -> Starlette:
    async def metrics(request: Request) -> Response:
        try:
            authorize(ctx.settings.metrics_token, request.headers.get("authorization"))
        except AuthenticationFailed as exc:
            return JSONResponse(exc.body(), status_code=exc.status_code)
        if isinstance(ctx.sandbox, ObservedSandbox):
            ctx.sandbox.refresh()
        return Response(render(await count_ingestion_queue(ctx)), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", healthz)])


def serve_worker_metrics(
    ctx: AppContext, host: str, port: int
) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = uvicorn.Server(
        uvicorn.Config(worker_app(ctx), host=host, port=port, log_level="warning", lifespan="off")
    )
    # The worker handles SIGTERM itself (it drains, then stops this server with it).
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    return server, asyncio.create_task(server.serve())
