"""Files over the official SDK: upload, wait_for_processing, list, content, delete, limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import update

from assistantd.core.db import UnitOfWork
from assistantd.files.models import FileRow
from assistantd.files.names import safe_filename
from assistantd.files.service import create_file_from_bytes
from assistantd.files.storage import project_dir
from assistantd.testing.server import Server, auth, run_db


def test_upload_wait_retrieve_content_delete(client: openai.OpenAI, server: Server) -> None:
    data = b"The quick brown fox.\n" * 10
    f = client.files.create(file=("notes.txt", data), purpose="assistants")
    assert f.id.startswith("file-") and len(f.id) == len("file-") + 24 and f.id[5:].isalnum()
    assert (f.object, f.bytes, f.filename, f.purpose, f.status) == (
        "file",
        len(data),
        "notes.txt",
        "assistants",
        "processed",
    )
    assert isinstance(f.created_at, int) and f.expires_at is None
    assert client.files.wait_for_processing(f.id).status == "processed"
    assert client.files.retrieve(f.id) == f
    assert client.files.content(f.id).read() == data
    on_disk = project_dir(server.settings.data_dir, "alpha") / f.id
    assert on_disk.read_bytes() == data

    deleted = client.files.delete(f.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (f.id, "file", True)
    assert not on_disk.exists()
    with pytest.raises(openai.NotFoundError) as e:
        client.files.retrieve(f.id)
    assert e.value.body["message"] == f"No file found with id '{f.id}'."
    with pytest.raises(openai.NotFoundError):
        client.files.content(f.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(f.id)


def test_upload_from_path_keeps_base_name(client: openai.OpenAI, tmp_path: Path) -> None:
    path = tmp_path / "report.md"
    path.write_text("# Report\nAll good.\n")
    f = client.files.create(file=path, purpose="user_data")
    assert (f.filename, f.purpose, f.bytes) == ("report.md", "user_data", path.stat().st_size)
    empty = client.files.create(file=("empty.txt", b""), purpose="assistants")
    assert empty.bytes == 0 and client.files.content(empty.id).read() == b""


def test_list_purpose_filter_order_and_pagination(client: openai.OpenAI) -> None:
    ids = [client.files.create(file=(f"p{i}.txt", b"x"), purpose="batch").id for i in range(3)]
    vision = client.files.create(file=("img.txt", b"x"), purpose="vision")

    batch = client.files.list(purpose="batch")
    listed = [f.id for f in batch.data]
    assert set(ids) <= set(listed) and vision.id not in listed
    assert all(f.purpose == "batch" for f in batch.data)
    # Newest first by default; asc reverses.
    assert [i for i in listed if i in ids] == ids[::-1]
    asc = [f.id for f in client.files.list(purpose="batch", order="asc").data]
    assert [i for i in asc if i in ids] == ids

    first = client.files.list(purpose="batch", limit=2)
    assert len(first.data) == 2 and first.has_more
    walked = [f.id for f in client.files.list(purpose="batch", limit=1)]  # SDK auto-pagination
    assert walked == listed


def test_expires_after_and_expired_files_behave_as_deleted(
    client: openai.OpenAI, server: Server
) -> None:
    f = client.files.create(
        file=("tmp.txt", b"short lived"),
        purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert f.expires_at == f.created_at + 3600

    run_db(
        server,
        lambda uow: uow.session.execute(
            update(FileRow).where(FileRow.id == f.id).values(expires_at=int(time.time()) - 1)
        ),
    )
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(f.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(f.id)
    assert f.id not in [x.id for x in client.files.list(purpose="batch")]


def test_create_file_from_bytes_for_other_packages(client: openai.OpenAI, server: Server) -> None:
    async def make(uow: UnitOfWork) -> dict[str, Any]:
        return await create_file_from_bytes(
            uow,
            server.settings.data_dir,
            "alpha",
            "sub/dir/out.csv",
            b"a,b\n1,2\n",
            "assistants_output",
        )

    made = run_db(server, make)
    got = client.files.retrieve(made["id"])
    assert (got.filename, got.purpose, got.bytes, got.status) == (
        "out.csv",
        "assistants_output",
        8,
        "processed",
    )
    assert client.files.content(made["id"]).read() == b"a,b\n1,2\n"


@pytest.fixture
def small_uploads(server: Server) -> Iterator[int]:
    """Lower the server's upload limit for one test (the running app reads it per request)."""
    settings = server.ctx.settings
    before = settings.max_upload_bytes
    settings.max_upload_bytes = 1000
    try:
        yield 1000
    finally:
        settings.max_upload_bytes = before


def test_oversize_upload_is_413_and_leaves_nothing(
    client: openai.OpenAI, server: Server, small_uploads: int
) -> None:
    directory = project_dir(server.settings.data_dir, "alpha")
    directory.mkdir(parents=True, exist_ok=True)
    before = set(directory.iterdir())
    count = len(client.files.list().data)
    with pytest.raises(openai.APIStatusError) as e:
        client.files.create(file=("big.txt", b"x" * (small_uploads + 1)), purpose="assistants")
    assert e.value.status_code == 413
    assert e.value.body["type"] == "invalid_request_error"
    assert f"limit of {small_uploads} bytes" in e.value.body["message"]
    assert set(directory.iterdir()) == before  # no part file, no final file
    assert len(client.files.list().data) == count
    # Exactly at the limit is fine.
    ok = client.files.create(file=("fits.txt", b"y" * small_uploads), purpose="assistants")
    assert ok.bytes == small_uploads


@pytest.mark.parametrize(
    ("files", "data", "param", "fragment"),
    [
        ({"file": ("a.txt", b"x")}, {}, "purpose", "Missing required parameter: 'purpose'"),
        ({"file": ("a.txt", b"x")}, {"purpose": "nope"}, "purpose", "Supported values are"),
        (None, {"purpose": "assistants"}, "file", "Missing required parameter: 'file'"),
        (
            {"file": ("a.txt", b"x")},
            {
                "purpose": "batch",
                "expires_after[anchor]": "created_at",
                "expires_after[seconds]": "60",
            },
            "expires_after.seconds",
            "between 3600",
        ),
        (
            {"file": ("a.txt", b"x")},
            {"purpose": "batch", "expires_after[anchor]": "now", "expires_after[seconds]": "3600"},
            "expires_after.anchor",
            "created_at",
        ),
    ],
)
def test_bad_uploads_are_400(
    server: Server, files: Any, data: dict[str, str], param: str, fragment: str
) -> None:
    if files is None:
        files = {"other": ("x.txt", b"x")}
    r = httpx.post(f"{server.base_url}/files", files=files, data=data, headers=auth(server))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (
        err["param"] == param
        and fragment in err["message"]
        and err["type"] == "invalid_request_error"
    )


def test_non_multipart_upload_is_400(server: Server) -> None:
    r = httpx.post(f"{server.base_url}/files", json={"purpose": "assistants"}, headers=auth(server))
    assert r.status_code == 400
    assert "multipart/form-data" in r.json()["error"]["message"]


def test_ids_and_projects(client: openai.OpenAI, other_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.files.retrieve("vs_abc")
    assert (
        e.value.body["message"]
        == "Invalid 'file_id': 'vs_abc'. Expected an ID that begins with 'file'."
    )
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-doesnotexist")
    mine = client.files.create(file=("mine.txt", b"secret"), purpose="assistants")
    for call in (
        other_client.files.retrieve,
        other_client.files.content,
        other_client.files.delete,
    ):
        with pytest.raises(openai.NotFoundError):
            call(mine.id)
    assert mine.id not in [f.id for f in other_client.files.list()]
    assert client.files.retrieve(mine.id).id == mine.id


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("..", "upload"),
        ("../x", "x"),
        ("a/b.csv", "b.csv"),
        (".", "upload"),
        ("dir/..", "upload"),
        ("..\\evil.txt", "evil.txt"),
        ("  notes .txt ", "notes .txt"),
    ],
)
def test_upload_stores_a_safe_bare_filename(client: openai.OpenAI, sent: str, stored: str) -> None:
    f = client.files.create(file=(sent, b"x"), purpose="assistants")
    assert f.filename == stored
    assert client.files.retrieve(f.id).filename == stored


def test_the_filename_rule() -> None:
    assert safe_filename(None) == "upload"
    assert safe_filename("a\x00b\x07\x1b[31m.csv") == "ab[31m.csv"
    assert safe_filename("\ud800report.csv") == "report.csv"  # lone surrogate dropped
    assert safe_filename("a/") == "a"
    long = safe_filename("é" * 300 + ".csv")
    assert long.endswith(".csv") and len(long.encode()) <= 255 and long.startswith("é")
    assert safe_filename("données 2024.xlsx") == "données 2024.xlsx"
