"""Alembic migrations, run by `assistantd migrate` and on every `serve`."""

from __future__ import annotations

import fcntl
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

HERE = Path(__file__).parent


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` up to `revision` (blocking; call from a thread in async code).

    Safe when several processes start at once: PostgreSQL serializes them with an advisory
    lock (env.py), SQLite with a lock file beside the database.
    """
    path = make_url(url).database if url.startswith("sqlite") else None
    if not path or path == ":memory:":
        command.upgrade(alembic_config(url), revision)
        return
    with open(f"{path}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            command.upgrade(alembic_config(url), revision)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
