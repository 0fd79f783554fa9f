"""File storage backends end to end over the official SDK.

- S3: a real S3-wire server (moto's threaded server on a free port) and the real SDK
  client (aiobotocore): uploads (one PUT, and multipart past 16 MB), downloads,
  ingestion into a vector store, the bytes the sandbox reads (`read_file_bytes`, what
  the code-interpreter bridge calls), deletion; nothing lands in the local files dir.
- Shared directory: two servers with their own data dirs and one FILES_DIR (and one
  database) serve each other's uploads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from assistantd.core.db import UnitOfWork
from assistantd.core.settings import Settings
from assistantd.files.s3 import S3Store
from assistantd.files.service import read_file_bytes
from assistantd.files.storage import FileMissing, LocalStore, StorageUnavailable, project_key
from assistantd.testing.s3 import ACCESS_KEY, REGION, SECRET_KEY, client, start_s3
from assistantd.testing.server import Server, make_settings, run_db, start_server

BUCKET = "assistantd-files"


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    url, stop = start_s3(BUCKET)
    try:
        yield url
    finally:
        stop()


def _s3_settings(data: Path, s3: str, bucket: str, **more: Any) -> Settings:
    """A server storing its files in `bucket` of the moto server at `s3`."""
    return make_settings(
        data,
        storage="s3",
        s3_bucket=bucket,
        s3_endpoint_url=s3,
        s3_region=REGION,
        s3_access_key_id=ACCESS_KEY,
        s3_secret_access_key=SECRET_KEY,
        **more,
    )


@pytest.fixture(scope="module")
def s3_server(s3: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = _s3_settings(
        Path(tmp_path_factory.mktemp("s3-data")), s3, BUCKET, s3_prefix="tenant1/"
    )
    srv, stop = start_server(settings)
    try:
        yield srv
    finally:
        stop()


def _keys(url: str) -> set[str]:
    listed = client(url).list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {o["Key"] for o in listed}


def _local_files(server: Server) -> list[Path]:
    root = server.settings.data_dir / "files"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_s3_upload_download_ingest_sandbox_read_delete(s3_server: Server, s3: str) -> None:
    big = os.urandom(17 * 1024 * 1024 + 5)  # past the single-PUT threshold: multipart
    with s3_server.client() as c:
        small = c.files.create(
            file=("notes.txt", b"Mount Etna in Sicily is an active volcano."), purpose="assistants"
        )
        large = c.files.create(file=("blob.bin", big), purpose="assistants")
        key = f"tenant1/{project_key('alpha')}/"
        assert {key + small.id, key + large.id} <= _keys(s3)
        assert _local_files(s3_server) == []  # no bytes kept on this host
        assert c.files.content(small.id).read() == b"Mount Etna in Sicily is an active volcano."
        downloaded = c.files.with_raw_response.content(large.id)
        assert downloaded.headers["content-length"] == str(len(big))
        assert 'filename="blob.bin"' in downloaded.headers["content-disposition"]
        assert downloaded.content == big

        vs = c.vector_stores.create(name="s3")
        done = c.vector_stores.files.create_and_poll(file_id=small.id, vector_store_id=vs.id)
        assert done.status == "completed", done.last_error
        hits = list(c.vector_stores.search(vs.id, query="volcano in Sicily"))
        assert hits and hits[0].file_id == small.id

        async def sandbox_read(uow: UnitOfWork) -> bytes:
            return await read_file_bytes(
                uow.session, s3_server.settings.data_dir, "alpha", small.id
            )

        # `run_db` runs in its own process state: the store is the app's, found by data dir.
        assert run_db(s3_server, sandbox_read).startswith(b"Mount Etna")

        assert c.files.delete(large.id).deleted
        deadline = time.monotonic() + 10
        while key + large.id in _keys(s3):
            assert time.monotonic() < deadline, "object not deleted"
            time.sleep(0.05)
        assert key + small.id in _keys(s3)


def test_missing_object_is_a_404_not_a_500(s3_server: Server, s3: str) -> None:
    with s3_server.client() as c:
        f = c.files.create(file=("gone.txt", b"soon gone"), purpose="assistants")
        client(s3).delete_object(Bucket=BUCKET, Key=f"tenant1/{project_key('alpha')}/{f.id}")
        with pytest.raises(openai.NotFoundError):
            c.files.content(f.id).read()


def test_storage_outage_is_a_503_naming_no_bucket_or_endpoint(s3: str, tmp_path: Path) -> None:
    """The bucket goes away under a running server (an outage, or a misconfiguration):
    downloads, uploads and a vector store file's content answer 503 `server_error`, which
    the SDK may retry, and say nothing of where the storage lives."""
    bucket = "assistantd-outage"
    client(s3).create_bucket(Bucket=bucket)
    settings = _s3_settings(tmp_path, s3, bucket)
    srv, stop = start_server(settings)
    try:
        with srv.client() as c:
            f = c.files.create(file=("notes.txt", b"Etna is a volcano."), purpose="assistants")
            vs = c.vector_stores.create(name="outage")
            done = c.vector_stores.files.create_and_poll(file_id=f.id, vector_store_id=vs.id)
            assert done.status == "completed", done.last_error
            boto = client(s3)
            boto.delete_object(Bucket=bucket, Key=f"{project_key('alpha')}/{f.id}")
            boto.delete_bucket(Bucket=bucket)

            calls = {
                "download": lambda: c.files.content(f.id).read(),
                "upload": lambda: c.files.create(file=("b.txt", b"x"), purpose="assistants"),
                "store file content": lambda: list(
                    c.vector_stores.files.content(f.id, vector_store_id=vs.id)
                ),
            }
            for name, call in calls.items():
                with pytest.raises(openai.InternalServerError) as e:
                    call()
                err = e.value
                assert err.status_code == 503, name
                assert err.type == "server_error", name
                assert err.response.headers.get("x-should-retry") != "false", name
                assert "File storage is unavailable" in err.message, name
                for secret in (bucket, s3, "127.0.0.1", "s3://", str(tmp_path)):
                    assert secret not in err.message, (name, secret)
            assert c.files.retrieve(f.id).id == f.id  # the metadata is unaffected
    finally:
        stop()


def test_exists_asks_without_reading(
    s3: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`exists` on both stores: True for stored bytes, False for none, and on S3 a HEAD
    (never a GET of the bytes); reads of nothing are `FileMissing`, and of an unusable
    bucket `StorageUnavailable`. (A HEAD's 404 has no body: a missing bucket reads as a
    missing object there.)"""
    caplog.set_level(logging.INFO, logger="werkzeug")  # moto's server logs each request
    s3_store = S3Store(
        BUCKET,
        prefix="exists/",
        endpoint_url=s3,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )
    gone = S3Store(
        "no-such-bucket",
        endpoint_url=s3,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )

    async def main() -> None:
        for store in (s3_store, LocalStore(tmp_path)):
            await store.put_bytes("alpha", "file-here", b"bytes")
            assert await store.exists("alpha", "file-here")
            assert not await store.exists("alpha", "file-gone")
            assert not await store.exists("beta", "file-here")
            with pytest.raises(FileMissing):
                await store.get_bytes("alpha", "file-gone")
            with pytest.raises(FileMissing):
                await store.stream("alpha", "file-gone")
        with pytest.raises(StorageUnavailable):
            await gone.get_bytes("alpha", "file-here")
        await s3_store.aclose()
        await gone.aclose()

    asyncio.run(main())
    asked = [r.getMessage() for r in caplog.records if "/exists/alpha/file-here " in r.getMessage()]
    assert any('"HEAD /' in m for m in asked), asked
    assert not any('"GET /' in m for m in asked), asked


@pytest.fixture(scope="module")
def shared_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    shared = Path(tmp_path_factory.mktemp("shared-files"))
    db = Path(tmp_path_factory.mktemp("shared-db")) / "assistantd.db"
    url = f"sqlite+aiosqlite:///{db}"
    servers: list[Any] = []
    try:
        for name in ("host-a", "host-b"):
            data = Path(tmp_path_factory.mktemp(name))
            servers.append(start_server(make_settings(data, url, files_dir=shared)))
        yield servers[0][0], servers[1][0]
    finally:
        for _, stop in servers:
            stop()


def test_shared_directory_serves_both_hosts(shared_pair: tuple[Server, Server]) -> None:
    a, b = shared_pair
    with a.client() as ca, b.client() as cb:
        f = ca.files.create(file=("shared.txt", b"written by host a"), purpose="assistants")
        assert cb.files.content(f.id).read() == b"written by host a"
        assert (a.settings.files_dir / project_key("alpha") / f.id).is_file()
        assert not (a.settings.data_dir / "files" / project_key("alpha") / f.id).exists()
