"""The `assistantd` command, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from assistantd.testing.server import make_settings, start_server


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ASSISTANTD_DATA_DIR=str(data_dir))
    return subprocess.run(
        [sys.executable, "-m", "assistantd", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
    )


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    created = run_cli(tmp_path, "keys", "create", "--name", "ci", "--project", "proj1")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("sk-ad-") and " " not in secret

    listed = run_cli(tmp_path, "keys", "list")
    assert "proj1" in listed.stdout and "ci" in listed.stdout
    assert secret not in listed.stdout  # never shown again
    key_id = next(line.split()[0] for line in listed.stdout.splitlines() if "proj1" in line)

    db = (tmp_path / "assistantd.db").read_bytes()
    assert secret.encode() not in db  # stored only as a hash

    # Another process revokes it: the server refuses it within ASSISTANTD_AUTH_CACHE_SECONDS.
    srv, stop = start_server(make_settings(tmp_path, auth_cache_seconds=1.0))
    try:
        h = {"Authorization": f"Bearer {secret}"}
        assert httpx.get(f"{srv.base_url}/assistants", headers=h).status_code == 200
        revoked = run_cli(tmp_path, "keys", "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        deadline = time.monotonic() + 1.0 + 2.0  # the bound, and slack for a loaded host
        status = 200
        while status != 401 and time.monotonic() < deadline:
            time.sleep(0.1)
            status = httpx.get(f"{srv.base_url}/assistants", headers=h).status_code
        assert status == 401
    finally:
        stop()
    assert "revoked" in run_cli(tmp_path, "keys", "list").stdout
    assert run_cli(tmp_path, "keys", "revoke", "key_nope").returncode == 1


def test_migrate(tmp_path: Path) -> None:
    out = run_cli(tmp_path, "migrate")
    assert out.returncode == 0 and "up to date" in out.stdout


def test_keys_create_admin(tmp_path: Path) -> None:
    made = run_cli(tmp_path, "keys", "create", "--project", "team")
    assert made.returncode == 0, made.stderr
    project_secret = made.stdout.strip().splitlines()[-1]
    created = run_cli(tmp_path, "keys", "create", "--admin", "--name", "ops")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("sk-admin-") and " " not in secret
    listed = run_cli(tmp_path, "keys", "list")
    admin_line = next(line for line in listed.stdout.splitlines() if "(admin)" in line)
    assert "ops" in admin_line and secret not in listed.stdout

    srv, stop = start_server(make_settings(tmp_path))
    try:
        org = openai.OpenAI(
            base_url=srv.base_url, api_key=None, admin_api_key=secret, max_retries=0
        )
        assert {"default", "team"} <= {p.id for p in org.admin.organization.projects.list()}
        h = {"Authorization": f"Bearer {secret}"}
        assert httpx.get(f"{srv.base_url}/assistants", headers=h).status_code == 401
        h = {"Authorization": f"Bearer {project_secret}"}
        assert httpx.get(f"{srv.base_url}/organization/projects", headers=h).status_code == 403
        org.admin.organization.projects.archive("team")
        assert httpx.get(f"{srv.base_url}/assistants", headers=h).status_code == 401
        assert run_cli(tmp_path, "keys", "revoke", admin_line.split()[0]).returncode == 0
        with pytest.raises(openai.AuthenticationError):
            org.admin.organization.projects.list()
    finally:
        stop()
    archived = run_cli(tmp_path, "keys", "create", "--project", "team")
    assert archived.returncode == 1 and "archived" in archived.stderr
