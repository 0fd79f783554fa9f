"""Fixtures: a real assistantd server (uvicorn on loopback) per database, and SDK clients.

Every test that takes `server` runs twice: on a SQLite file and on the PostgreSQL at
127.0.0.1:5432 (a fresh database per session, built by running the migrations). The
helpers behind these fixtures are in `assistantd.testing`.

`--sqlite-only` (`make test-fast`) deselects every test parameter that needs PostgreSQL or
Redis (a `postgres` or `redis` param of any fixture), so what remains runs without either.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from assistantd.testing.pgvector import start_pgvector
from assistantd.testing.scripted import ScriptedBackend
from assistantd.testing.server import (
    Server,
    SwitchRouter,
    echo,
    make_settings,
    pg_database,
    start_server,
)

#: Fixture params that need a service `--sqlite-only` does without.
SERVICE_PARAMS = {"postgres", "redis", "pgvector"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--sqlite-only",
        action="store_true",
        help="deselect tests parametrized on PostgreSQL or Redis (make test-fast)",
    )
    parser.addoption(
        "--record-wire",
        action="store_true",
        help="rewrite the recordings tests/api/test_recorded_wire.py compares with",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--sqlite-only"):
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        values = callspec.params.values() if callspec else ()
        needs = any(isinstance(v, str) and v in SERVICE_PARAMS for v in values)
        (dropped if needs else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp(f"data-{request.param}")
    drop = None
    url = None
    if request.param == "postgres":
        url, drop = pg_database()
    srv, stop = start_server(make_settings(data_dir, url))
    try:
        yield srv
    finally:
        stop()
        # Next test module may swap the backend; the default is the echo script.
        srv.models.use(ScriptedBackend(echo))
        if drop:
            drop()


@pytest.fixture(scope="session")
def pgvector_admin() -> Iterator[str]:
    """Admin URL of a PostgreSQL with pgvector (`assistantd.testing.pgvector`), started once per session.

    Its data directory is its own, outside pytest's numbered temporary directories: another
    pytest session on the machine prunes those, and a pruned data directory (its socket and
    lock file) stops the server under the tests that use it."""
    where = Path(tempfile.mkdtemp(prefix="assistantd-pgvector-"))
    url, stop = start_pgvector(where)
    try:
        yield url
    finally:
        stop()
        shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def models(server: Server) -> Iterator[SwitchRouter]:
    """The server's model router; each test starts from the echo script."""
    server.models.use(ScriptedBackend(echo))
    yield server.models
    server.models.use(ScriptedBackend(echo))


@pytest.fixture
def client(server: Server) -> Iterator[openai.OpenAI]:
    with server.client("alpha") as c:
        yield c


@pytest.fixture
def other_client(server: Server) -> Iterator[openai.OpenAI]:
    """A key of another project."""
    with server.client("beta") as c:
        yield c
