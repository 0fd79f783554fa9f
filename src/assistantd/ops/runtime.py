"""What the operations side adds to a running app, set up and torn down with its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from assistantd.context import AppContext
from assistantd.ops.health import Readiness
from assistantd.ops.shutdown import drain_on_sigterm


@asynccontextmanager
async def operations(app: FastAPI, ctx: AppContext) -> AsyncIterator[None]:
    """Readiness checks for `/readyz` (on `app.state.readiness`); SIGTERM begins the drain."""
    readiness = Readiness(ctx.settings, ctx.engine)
    app.state.readiness = readiness
    if ctx.drainer is not None:
        drain_on_sigterm(ctx.drainer)
    try:
        yield
    finally:
        await readiness.aclose()
