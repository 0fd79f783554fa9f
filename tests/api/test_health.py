"""`/healthz` and `/readyz`: no key needed; readiness names the dependency that is down and
comes back when it does (a private redis-server stopped and restarted; PostgreSQL cut off
behind a TCP forwarder)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistantd.testing.server import free_port, make_settings, pg_database, start_server
from assistantd.testing.tcp_proxy import TcpProxy


def ready(base: str) -> tuple[int, dict[str, Any]]:
    r = httpx.get(base.removesuffix("/v1") + "/readyz", timeout=10)
    return r.status_code, r.json()


def eventually(base: str, status: int, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        code, body = ready(base)
        if code == status or time.monotonic() > deadline:
            assert code == status, body
            return body
        time.sleep(0.1)


class RedisServer:
    """A private redis-server on a port of its own, which the test may stop and restart."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_healthz_and_readyz_need_no_key(tmp_path: Path) -> None:
    srv, stop = start_server(make_settings(tmp_path))
    try:
        root = srv.base_url.removesuffix("/v1")
        r = httpx.get(root + "/healthz")
        assert r.status_code == 200 and r.json()["status"] == "ok"
        code, body = ready(srv.base_url)
        assert code == 200, body
        assert body["status"] == "ready" and body["failed"] == []
        assert set(body["checks"]) == {
            "database",
            "migrations",
            "model_backend",
        }  # no Redis configured
        assert body["checks"]["migrations"]["ok"]
    finally:
        stop()


def test_readiness_follows_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    srv, stop = start_server(make_settings(tmp_path, redis_url=url))
    try:
        assert eventually(srv.base_url, 200)["checks"]["redis"]["ok"]
        redis_server.stop()
        body = eventually(srv.base_url, 503)
        assert body["failed"] == ["redis"] and body["status"] == "unready"
        assert not body["checks"]["redis"]["ok"] and body["checks"]["redis"]["detail"]
        assert body["checks"]["database"]["ok"]
        redis_server.start()
        assert eventually(srv.base_url, 200)["failed"] == []
    finally:
        stop()


def test_readiness_fails_on_a_closed_redis_port(tmp_path: Path) -> None:
    srv, stop = start_server(
        make_settings(
            tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0", worker_enabled=False
        )
    )
    try:
        assert eventually(srv.base_url, 503)["failed"] == ["redis"]
    finally:
        stop()


def test_readiness_follows_postgresql(tmp_path: Path) -> None:
    url, drop = pg_database()
    proxy = TcpProxy("127.0.0.1", 5432).start()
    try:
        srv, stop = start_server(
            make_settings(tmp_path, url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"))
        )
        try:
            assert eventually(srv.base_url, 200)["failed"] == []
            proxy.stop()
            body = eventually(srv.base_url, 503)
            assert "database" in body["failed"] and not body["checks"]["database"]["ok"]
            proxy.start()
            assert eventually(srv.base_url, 200, timeout=20)["failed"] == []
        finally:
            proxy.start()
            stop()
    finally:
        proxy.close()
        drop()


def test_readiness_fails_when_the_model_upstream_is_down(tmp_path: Path) -> None:
    srv, stop = start_server(
        make_settings(tmp_path, llm_base_url=f"http://127.0.0.1:{free_port()}/v1")
    )
    try:
        body = eventually(srv.base_url, 503)
        assert body["failed"] == ["model_backend"]
        assert "cannot reach" in body["checks"]["model_backend"]["detail"]
    finally:
        stop()
