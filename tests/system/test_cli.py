"""The `assistantd` command, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from assistantd.testing.server import make_settings, start_server


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ASSISTANTD_DATA_DIR=str(data_dir))
    return subprocess.run([sys.executable, "-m", "assistantd", *args], env=env, text=True,
                          capture_output=True, timeout=120)


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

    srv, stop = start_server(make_settings(tmp_path))
    try:
        h = {"Authorization": f"Bearer {secret}"}
        assert httpx.get(f"{srv.base_url}/assistants", headers=h).status_code == 200
        revoked = run_cli(tmp_path, "keys", "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        assert httpx.get(f"{srv.base_url}/assistants", headers=h).status_code == 401
    finally:
        stop()
    assert "revoked" in run_cli(tmp_path, "keys", "list").stdout
    assert run_cli(tmp_path, "keys", "revoke", "key_nope").returncode == 1


def test_migrate(tmp_path: Path) -> None:
    out = run_cli(tmp_path, "migrate")
    assert out.returncode == 0 and "up to date" in out.stdout
