"""`GET /metrics`: Prometheus text, every process of the server added up.

With `PROMETHEUS_MULTIPROC_DIR` set (`ops/multiproc.py`), each scrape reads every process's
value files; otherwise it reads this process's registry. Two gauges are read at scrape time
in the scraping process: the vector-store files waiting for ingestion (from the database,
so every worker's queue counts) and this process's live code-interpreter sessions.
Protected by `ASSISTANTD_METRICS_TOKEN` when set (a bearer token), open otherwise.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "authorize", "count_ingestion_queue", "render", "router"]
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import text
from starlette.responses import Response

from assistantd.core.errors import AuthenticationFailed
from assistantd.ops.multiproc import ENV, remove_dead
from assistantd.ops.observe import ObservedSandbox

router = APIRouter(include_in_schema=False)


def authorize(token: str | None, authorization: str | None) -> None:
    if token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise AuthenticationFailed(
            "The metrics need `Authorization: Bearer <ASSISTANTD_METRICS_TOKEN>`."
        )


def render(ingestion_queue: int | None) -> bytes:
    """The exposition of every process's metrics, then the scrape-time gauges."""
    directory = os.environ.get(ENV)
    if directory and Path(directory).is_dir():
        remove_dead(Path(directory), prefix="gauge_live")  # a dead process's live gauges
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    extra = CollectorRegistry()
    if ingestion_queue is not None:
        extra.register(_ScrapeTime(ingestion_queue))
    return body + generate_latest(extra)


class _ScrapeTime(Collector):
    """Gauges computed for this scrape (no value files: nothing to add up)."""

    def __init__(self, ingestion_queue: int) -> None:
        self.ingestion_queue = ingestion_queue

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "assistantd_ingestion_queue_files",
            "Vector-store files waiting for or "
            "in ingestion (status in_progress), in the whole database.",
            value=self.ingestion_queue,
        )


async def count_ingestion_queue(ctx: Any) -> int:
    """Vector-store files `in_progress` in the whole database."""
    async with ctx.engine.connect() as conn:
        count = (
            await conn.execute(
                text("SELECT count(*) FROM vector_store_files WHERE status = 'in_progress'")
            )
        ).scalar()
    return int(count or 0)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    ctx = request.app.state.ctx
    authorize(ctx.settings.metrics_token, request.headers.get("authorization"))
    if isinstance(ctx.sandbox, ObservedSandbox):
        ctx.sandbox.refresh()
    queue = await count_ingestion_queue(ctx)
    return Response(render(queue), media_type=CONTENT_TYPE_LATEST)
