"""`assistantd backup` while the server runs, `assistantd restore` into an empty place, and
every object read back exactly as it was (SQLite; PostgreSQL with pg_dump and pg_restore)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistantd.testing.server import Server, make_settings, pg_database, start_server


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistantd", *args],
        env={**os.environ, **env},
        text=True,
        capture_output=True,
        timeout=300,
    )


def wait(fn: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            assert value
            return value
        time.sleep(0.1)


def build(srv: Server) -> list[str]:
    """Objects of every kind; returns the paths that read each back."""
    base, h = srv.base_url, {"Authorization": f"Bearer {srv.keys['alpha']}"}
    up = httpx.post(
        f"{base}/files",
        headers=h,
        data={"purpose": "assistants"},
        files={"file": ("notes.txt", b"The backup keeps every file.\n" * 20, "text/plain")},
    ).json()
    up2 = httpx.post(
        f"{base}/files",
        headers=h,
        data={"purpose": "assistants"},
        files={"file": ("more.md", b"# More\nrestored too\n", "text/markdown")},
    ).json()
    vs = httpx.post(
        f"{base}/vector_stores", headers=h, json={"name": "kb", "file_ids": [up["id"]]}
    ).json()
    batch = httpx.post(
        f"{base}/vector_stores/{vs['id']}/file_batches", headers=h, json={"file_ids": [up2["id"]]}
    ).json()
    wait(
        lambda: (
            httpx.get(f"{base}/vector_stores/{vs['id']}", headers=h).json()["file_counts"][
                "completed"
            ]
            == 2
        )
    )
    a = httpx.post(
        f"{base}/assistants",
        headers=h,
        json={
            "model": "m",
            "name": "keeper",
            "tools": [{"type": "file_search"}],
            "tool_resources": {"file_search": {"vector_store_ids": [vs["id"]]}},
            "metadata": {"k": "v"},
        },
    ).json()
    t = httpx.post(
        f"{base}/threads", headers=h, json={"messages": [{"role": "user", "content": "hello"}]}
    ).json()
    run = httpx.post(
        f"{base}/threads/{t['id']}/runs", headers=h, json={"assistant_id": a["id"]}
    ).json()
    wait(
        lambda: (
            httpx.get(f"{base}/threads/{t['id']}/runs/{run['id']}", headers=h).json()["status"]
            == "completed"
        )
    )
    return [
        f"/files/{up['id']}",
        f"/files/{up2['id']}",
        f"/files/{up['id']}/content",
        f"/files/{up2['id']}/content",
        f"/vector_stores/{vs['id']}",
        f"/vector_stores/{vs['id']}/files",
        f"/vector_stores/{vs['id']}/files/{up['id']}",
        f"/vector_stores/{vs['id']}/file_batches/{batch['id']}",
        f"/assistants/{a['id']}",
        f"/threads/{t['id']}",
        f"/threads/{t['id']}/messages",
        f"/threads/{t['id']}/runs/{run['id']}",
        f"/threads/{t['id']}/runs",
        f"/threads/{t['id']}/runs/{run['id']}/steps",
        "/assistants",
        "/files",
    ]


def read(srv: Server, key: str, paths: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in paths:
        r = httpx.get(f"{srv.base_url}{path}", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, (path, r.text)
        out[path] = r.content if path.endswith("/content") else r.json()
    return out


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_backup_while_serving_and_restore(tmp_path: Path, database: str) -> None:
    if database == "postgres" and not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        pytest.skip("pg_dump/pg_restore are not installed")
    urls: list[str | None] = [None, None]
    drops = []
    if database == "postgres":
        for i in range(2):
            url, drop = pg_database()
            urls[i] = url
            drops.append(drop)
    try:
        old, new = tmp_path / "old", tmp_path / "new"
        old.mkdir()
        srv, stop = start_server(make_settings(old, urls[0]))
        try:
            paths = build(srv)
            key = srv.keys["alpha"]
            before = read(srv, key, paths)
            env = {
                "ASSISTANTD_DATA_DIR": str(old),
                **({"ASSISTANTD_DATABASE_URL": urls[0]} if urls[0] else {}),
            }
            made = cli(env, "backup", str(tmp_path / "backup"))  # while the server runs
            assert made.returncode == 0, made.stderr
        finally:
            stop()
        assert (
            tmp_path / "backup" / ("assistantd.db" if database == "sqlite" else "database.dump")
        ).is_file()
        assert cli(env, "backup", str(tmp_path / "backup")).returncode == 1  # never over a backup

        env = {
            "ASSISTANTD_DATA_DIR": str(new),
            **({"ASSISTANTD_DATABASE_URL": urls[1]} if urls[1] else {}),
        }
        restored = cli(env, "restore", str(tmp_path / "backup"))
        assert restored.returncode == 0, restored.stderr
        assert "and 2 files" in restored.stdout, restored.stdout
        srv2, stop2 = start_server(make_settings(new, urls[1]))
        try:
            after = read(srv2, key, paths)  # the old key: keys are restored too
        finally:
            stop2()
        assert after == before
    finally:
        for drop in drops:
            drop()
