"""Migration 0005 on a database with keys from before projects existed: they keep working,
in projects the admin API lists."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from assistantd.core.db import create_engine
from assistantd.keys.service import hash_secret
from assistantd.migrations import upgrade
from assistantd.testing.server import make_settings, pg_database, start_server

SECRET = "sk-ad-from-before-projects"


async def _old_key(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO api_keys (id, name, project_id, secret_hash, redacted, created_at) "
                    "VALUES ('key_old', 'old', 'legacy', :h, 'sk-ad-fr…ects', 1)"
                ),
                {"h": hash_secret(SECRET)},
            )
    finally:
        await engine.dispose()


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_existing_keys_get_projects(tmp_path: Path, dialect: str) -> None:
    url, drop = pg_database() if dialect == "postgres" else (None, None)
    settings = make_settings(tmp_path, url)
    try:
        upgrade(settings.resolved_database_url, "0002")
        asyncio.run(_old_key(settings.resolved_database_url))
        upgrade(settings.resolved_database_url)
        srv, stop = start_server(settings)
        try:
            r = httpx.get(
                f"{srv.base_url}/assistants", headers={"Authorization": f"Bearer {SECRET}"}
            )
            assert r.status_code == 200
            with srv.admin_client() as admin:
                projects = {p.id: p for p in admin.admin.organization.projects.list()}
                assert {"default", "legacy", "alpha", "beta"} <= set(projects)
                assert projects["legacy"].name == "legacy" and projects["legacy"].status == "active"
                keys = admin.admin.organization.projects.api_keys.list("legacy").data
                assert [k.id for k in keys] == ["key_old"] and keys[0].last_used_at is not None
        finally:
            stop()
    finally:
        if drop:
            drop()
