"""A real assistantd for tests and benchmarks: uvicorn on loopback, with a swappable model.

`start_server(make_settings(tmp, url))` runs the app in a thread and returns a `Server` (its
URL, settings, one API key per project and an admin key, official SDK clients) and a stop function. Its
model router is a `SwitchRouter`: every model name goes to one backend a test may swap
(the default is `echo`, a `ScriptedBackend`). `pg_database()` makes a fresh database on the
local PostgreSQL (``ASSISTANTD_TEST_PG`` overrides the admin URL).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import uvicorn

from assistantd.app import create_app
from assistantd.context import Overrides
from assistantd.core.db import UnitOfWork, create_engine, session_maker
from assistantd.core.server import uvicorn_options
from assistantd.core.settings import Settings
from assistantd.keys.service import create_admin_key, create_key
from assistantd.llm.base import ChatRequest, ModelBackend, ModelRouter
from assistantd.migrations import upgrade
from assistantd.testing.scripted import ScriptedBackend, text_turn

PG_ADMIN_URL = os.environ.get("ASSISTANTD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def echo(request: ChatRequest) -> Any:
    last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    return text_turn(f"You said: {last}")


class SwitchRouter(ModelRouter):
    """Routes every model to one backend that a test may swap (tests run one at a time)."""

    def __init__(self) -> None:
        self.backend: ModelBackend = ScriptedBackend(echo)
        self.requested: list[str] = []

    def use(self, backend: ModelBackend) -> ModelBackend:
        self.backend = backend
        return backend

    def resolve(self, requested_model: str) -> tuple[ModelBackend, str]:
        self.requested.append(requested_model)
        return self.backend, requested_model


@dataclass
class Server:
    """A running assistantd: its URL, settings, and one API key per project."""

    base_url: str
    settings: Settings
    app: Any
    keys: dict[str, str] = field(default_factory=dict)
    dialect: str = "sqlite"
    models: ModelRouter = field(
        default_factory=SwitchRouter
    )  # a SwitchRouter unless a test passed its own

    def client(self, project: str = "alpha", **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.base_url, api_key=self.keys[project], max_retries=0, **kw
        )

    def admin_client(self, **kw: Any) -> openai.OpenAI:
        """The official SDK with the server's admin key (`keys["admin"]`), for `client.admin.*`."""
        return openai.OpenAI(
            base_url=self.base_url,
            api_key=None,
            admin_api_key=self.keys["admin"],
            max_retries=0,
            **kw,
        )

    def async_client(self, project: str = "alpha", **kw: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self.keys[project], max_retries=0, **kw
        )

    @property
    def ctx(self) -> Any:
        return self.app.state.ctx


async def _create_keys(settings: Settings) -> dict[str, str]:
    await asyncio.to_thread(upgrade, settings.resolved_database_url)
    engine = create_engine(settings.resolved_database_url)
    keys = {}
    async with session_maker(engine)() as session:
        for project in ("alpha", "beta"):
            _, secret = await create_key(session, f"test-{project}", project)
            keys[project] = secret
        _, keys["admin"] = await create_admin_key(session, "test-admin")
        await session.commit()
    await engine.dispose()
    return keys


def pg_database(prefix: str = "assistantd_test") -> tuple[str, Any]:
    """Create a fresh database on the local PostgreSQL; returns (async URL, dropper).

    The admin statements run on their own loop in a thread, so this works from inside a
    running event loop (async fixtures) as well as from plain code.
    """
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def run(sql: str) -> None:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, admin(sql)).result()

    run(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}", lambda: run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Wait until a started `assistantd serve` answers `url` (its /health)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, "assistantd serve exited"
        assert time.monotonic() < deadline, "assistantd serve did not start"
        time.sleep(0.1)


def start_server(settings: Settings, models: ModelRouter | None = None) -> tuple[Server, Any]:
    """Start uvicorn in a thread; returns the Server and a stop function."""
    keys = asyncio.run(_create_keys(settings))
    models = models or SwitchRouter()
    app = create_app(settings, overrides=Overrides(models=models))
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        **uvicorn_options(settings),
    )  # as `assistantd serve` runs it
    userver = uvicorn.Server(config)
    thread = threading.Thread(target=userver.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not userver.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("assistantd test server did not start")
        time.sleep(0.02)

    def stop() -> None:
        userver.should_exit = True
        thread.join(timeout=30)

    dialect = "postgresql" if settings.resolved_database_url.startswith("postgresql") else "sqlite"
    return Server(f"http://127.0.0.1:{port}/v1", settings, app, keys, dialect, models), stop


def make_settings(data_dir: Path, database_url: str | None = None, **kw: Any) -> Settings:
    kw.setdefault("shutdown_drain_seconds", 5)  # a test server stops with little to wait for
    kw.setdefault("sandbox_pool_size", 1)  # many test servers: one warm kernel each is plenty
    # The installed sandbox, wherever ASSISTANTD_SANDBOX_DIR (or .env) put it.
    kw.setdefault("sandbox_dir", Settings().sandbox_dir)
    return Settings(data_dir=data_dir, database_url=database_url, _env_file=None, **kw)


def run_db(server: Server, fn: Any) -> Any:
    """Run `fn(session)` in a transaction of the server's database, from the test thread."""

    async def main() -> Any:
        engine = create_engine(server.settings.resolved_database_url)
        try:
            async with session_maker(engine)() as session:
                uow = UnitOfWork(session)
                result = await fn(uow)
                await uow.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(main())


def auth(server: Server, project: str = "alpha") -> dict[str, str]:
    """The headers of a raw HTTP request with a project's key."""
    return {"Authorization": f"Bearer {server.keys[project]}"}


def make(server: Server, tools: list[Any] | None = None) -> tuple[str, str]:
    """An assistant (model `m`, `tools`) and a thread with one user message, over raw HTTP."""
    h = auth(server)
    a = httpx.post(
        f"{server.base_url}/assistants", json={"model": "m", "tools": tools or []}, headers=h
    ).json()
    t = httpx.post(
        f"{server.base_url}/threads",
        headers=h,
        json={"messages": [{"role": "user", "content": "hi"}]},
    ).json()
    return a["id"], t["id"]
