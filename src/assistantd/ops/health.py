"""`/healthz` (the process answers) and `/readyz` (it can serve: database, Redis, the model
backend, migrations). Neither needs an API key; both answer JSON, 200 or 503."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from assistantd.core.http import JSONResponse
from assistantd.core.settings import Settings
from assistantd.llm.router import load_models_file
from assistantd.migrations import alembic_config

#: Longest a single readiness check may take before it counts as failed.
CHECK_TIMEOUT_SECONDS = 2.0

router = APIRouter(include_in_schema=False)

Check = Callable[[], Awaitable[str]]


class CheckFailed(Exception):
    """A readiness check found its dependency unusable; the message says why."""


def migration_head() -> str | None:
    """The newest revision this code ships."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def check_database(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return "ok"


async def check_migrations(engine: AsyncEngine, head: str | None) -> str:
    async with engine.connect() as conn:
        current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    if current != head:
        raise CheckFailed(
            f"the database is at revision {current}, this code needs {head}; "
            "run `assistantd migrate`"
        )
    return f"at {current}"


async def check_redis(url: str) -> str:
    import redis.asyncio as aioredis  # the optional Redis client, as worker/ and events/ do

    client = aioredis.from_url(
        url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS, socket_timeout=CHECK_TIMEOUT_SECONDS
    )
    try:
        await client.ping()
    finally:
        await client.aclose()
    return "ok"


def model_endpoints(settings: Settings) -> list[str]:
    """The OpenAI-compatible base URLs the configured models go to (none: in-process)."""
    if settings.llm_base_url:
        return [settings.llm_base_url]
    if settings.llm_models_file:
        entries = load_models_file(settings.llm_models_file).models.values()
        return sorted({e.base_url for e in entries if e.backend == "openai"})
    return []


async def check_models(settings: Settings, client: httpx.AsyncClient) -> str:
    """Every upstream answers HTTP at all (any status: a 401 or 404 still means it is
    there; the run reports what it says); the embedded model is in-process."""
    urls = model_endpoints(settings)
    if not urls:
        path = settings.llm_gguf_path
        if path is not None and not path.expanduser().is_file():
            raise CheckFailed(f"the GGUF file {path} does not exist")
        return "in-process"
    for url in urls:
        try:
            await client.get(url.rstrip("/") + "/models")
        except httpx.HTTPError as exc:
            # The URL is the operator's own configuration; no secret is in it.
            raise CheckFailed(f"cannot reach {url}: {type(exc).__name__}") from exc
    return f"{len(urls)} upstream(s) reachable"


async def _run(check: Check) -> tuple[bool, str]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            return True, await check()
    except TimeoutError:
        return False, f"no answer within {CHECK_TIMEOUT_SECONDS:g}s"
    except CheckFailed as exc:
        return False, str(exc)
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"


async def readiness(checks: dict[str, Check]) -> dict[str, Any]:
    """Run the checks at once; `{"status": "ready"|"unready", "checks": {...}, "failed": [...]}`."""
    results = await asyncio.gather(*(_run(c) for c in checks.values()))
    report = {
        name: {"ok": ok, "detail": detail}
        for name, (ok, detail) in zip(checks, results, strict=True)
    }
    failed = [name for name, r in report.items() if not r["ok"]]
    return {"status": "unready" if failed else "ready", "checks": report, "failed": failed}


class Readiness:
    """The checks of one app, with what they keep between calls (an HTTP client, the head)."""

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.head = migration_head()
        self.http = httpx.AsyncClient(timeout=CHECK_TIMEOUT_SECONDS)

    def checks(self) -> dict[str, Check]:
        checks: dict[str, Check] = {
            "database": lambda: check_database(self.engine),
            "migrations": lambda: check_migrations(self.engine, self.head),
            "model_backend": lambda: check_models(self.settings, self.http),
        }
        if self.settings.redis_url:
            url = self.settings.redis_url
            checks["redis"] = lambda: check_redis(url)
        return checks

    async def report(self) -> dict[str, Any]:
        return await readiness(self.checks())

    async def aclose(self) -> None:
        await self.http.aclose()


@router.get("/healthz")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok", "time": int(time.time())})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    readiness: Readiness = request.app.state.readiness
    report = await readiness.report()
    return JSONResponse(report, status_code=200 if report["status"] == "ready" else 503)
