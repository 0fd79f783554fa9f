"""Vector stores over the official SDK: ingestion in the background, poll helpers, search,
files and batches, failures, expiry, isolation; the real MiniLM embedder throughout."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import inspect, update

from assistantd.core.db import UnitOfWork, create_engine, session_maker
from assistantd.files.expiry import FileExpiry
from assistantd.files.models import FileRow
from assistantd.files.storage import project_dir
from assistantd.retrieval.tables import metadata as retrieval_metadata
from assistantd.testing.documents import make_docx, make_pdf
from assistantd.testing.server import Server, auth, run_db
from assistantd.vector_stores import service
from assistantd.vector_stores.models import VectorStoreFileRow, VectorStoreRow
from assistantd.vector_stores.runtime import start_ingestion
from assistantd.vector_stores.service import VectorStoreDependents

ZEPHYR = [
    [
        "Zephyr X2 headphones: warranty terms.",
        "The Zephyr X2 carries a 24 month warranty.",
        "Refunds are accepted within 30 days of delivery.",
    ],
    ["Battery life of the Zephyr X2 is 41 hours with noise cancelling off."],
]
GARDEN = (
    "Orchid care",
    [
        "Water orchids once a week with lukewarm water.",
        "Orchids prefer bright indirect light and humid air.",
    ],
    [["Plant", "Water"], ["Orchid", "weekly"], ["Cactus", "monthly"]],
)
VOLCANO = "# Volcanoes\n\nMount Etna in Sicily is one of the most active volcanoes on Earth.\n"
TRAINS = "The night train from Vienna to Venice departs at 21:10 from platform 7.\n"


def wait(predicate: Any, seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def corpus(server: Server) -> dict[str, Any]:
    """One store built with `file_batches.upload_and_poll` from a PDF, a DOCX, Markdown and text."""
    with server.client("alpha") as client:
        vs = client.vector_stores.create(name="Mixed", metadata={"kind": "test"})
        started = time.monotonic()
        batch = client.vector_stores.file_batches.upload_and_poll(
            vs.id,
            files=[
                ("zephyr.pdf", make_pdf(ZEPHYR)),
                ("garden.docx", make_docx(*GARDEN)),
                ("volcano.md", VOLCANO.encode()),
                ("trains.txt", TRAINS.encode()),
            ],
        )
        elapsed = time.monotonic() - started
        files = {f.id: f for f in client.vector_stores.files.list(vs.id)}
        names = {client.files.retrieve(fid).filename: fid for fid in files}
        return {"vs": vs, "batch": batch, "elapsed": elapsed, "names": names}


def test_upload_and_poll_mixed_batch(
    client: openai.OpenAI, corpus: dict[str, Any], server: Server
) -> None:
    batch = corpus["batch"]
    assert batch.object == "vector_store.files_batch" and batch.id.startswith("vsfb_")
    assert batch.status == "completed" and batch.vector_store_id == corpus["vs"].id
    counts = batch.file_counts
    assert (
        counts.in_progress,
        counts.completed,
        counts.failed,
        counts.cancelled,
        counts.total,
    ) == (0, 4, 0, 0, 4)
    print(
        f"\n[{server.dialect}] ingested 4-file batch (pdf, docx, md, txt) in {corpus['elapsed']:.2f}s"
    )

    vs = client.vector_stores.retrieve(corpus["vs"].id)
    assert (vs.object, vs.status, vs.name, vs.metadata) == (
        "vector_store",
        "completed",
        "Mixed",
        {"kind": "test"},
    )
    assert vs.file_counts.completed == 4 and vs.file_counts.total == 4 and vs.usage_bytes > 0
    assert vs.expires_after is None and vs.expires_at is None and vs.last_active_at >= vs.created_at

    for f in client.vector_stores.file_batches.list_files(batch.id, vector_store_id=vs.id):
        assert (f.object, f.status, f.vector_store_id, f.last_error) == (
            "vector_store.file",
            "completed",
            vs.id,
            None,
        )
        assert f.usage_bytes > 0 and f.attributes == {}
        assert f.chunking_strategy.type == "static"
        assert f.chunking_strategy.static.max_chunk_size_tokens == 800
        assert f.chunking_strategy.static.chunk_overlap_tokens == 400
    assert sum(f.usage_bytes for f in client.vector_stores.files.list(vs.id)) == vs.usage_bytes


@pytest.mark.parametrize(
    ("query", "filename"),
    [
        ("How long is the Zephyr X2 warranty?", "zephyr.pdf"),
        ("how often should I water an orchid", "garden.docx"),
        ("active volcano in Sicily", "volcano.md"),
        ("When does the night train to Venice leave?", "trains.txt"),
    ],
)
def test_search_finds_the_right_file(
    client: openai.OpenAI, corpus: dict[str, Any], query: str, filename: str
) -> None:
    page = client.vector_stores.search(corpus["vs"].id, query=query)
    assert page.data, query
    top = page.data[0]
    assert (top.filename, top.file_id) == (filename, corpus["names"][filename])
    assert 0 < top.score <= 1 and top.content[0].type == "text" and top.content[0].text


def test_search_response_shape_limits_and_threshold(server: Server, corpus: dict[str, Any]) -> None:
    url = f"{server.base_url}/vector_stores/{corpus['vs'].id}/search"
    r = httpx.post(
        url, json={"query": "Zephyr warranty", "max_num_results": 2}, headers=auth(server)
    )
    body = r.json()
    assert r.status_code == 200
    assert set(body) == {"object", "search_query", "data", "has_more", "next_page"}
    assert body["object"] == "vector_store.search_results.page" and body["search_query"] == [
        "Zephyr warranty"
    ]
    assert body["has_more"] is False and body["next_page"] is None and 1 <= len(body["data"]) <= 2
    assert set(body["data"][0]) == {"file_id", "filename", "score", "attributes", "content"}
    scores = [d["score"] for d in body["data"]]
    assert scores == sorted(scores, reverse=True)

    one = httpx.post(
        url, json={"query": "orchid", "max_num_results": 1}, headers=auth(server)
    ).json()
    assert len(one["data"]) == 1
    none = httpx.post(
        url,
        json={"query": "orchid", "ranking_options": {"score_threshold": 1.0}},
        headers=auth(server),
    ).json()
    assert none["data"] == []
    high = httpx.post(
        url,
        json={"query": "orchid water", "ranking_options": {"score_threshold": 0.3}},
        headers=auth(server),
    ).json()
    assert high["data"] and all(d["score"] >= 0.3 for d in high["data"])
    many = httpx.post(
        url, json={"query": ["orchid", "volcano"], "rewrite_query": True}, headers=auth(server)
    ).json()
    assert len(many["search_query"]) == 2
    assert {"garden.docx", "volcano.md"} <= {d["filename"] for d in many["data"]}


def test_files_attributes_filters_content_detach(
    client: openai.OpenAI, corpus: dict[str, Any]
) -> None:
    vs = client.vector_stores.create(name="Attrs")
    a = client.vector_stores.files.upload_and_poll(
        vector_store_id=vs.id,
        file=("volcano.md", VOLCANO.encode()),
        attributes={"team": "geo", "year": 2024, "public": True},
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 50},
        },
    )
    assert a.status == "completed" and a.attributes == {"team": "geo", "year": 2024, "public": True}
    assert a.chunking_strategy.static.max_chunk_size_tokens == 100
    trains = client.files.create(file=("trains.txt", TRAINS.encode()), purpose="assistants")
    b = client.vector_stores.files.create_and_poll(
        trains.id, vector_store_id=vs.id, attributes={"team": "rail"}
    )
    assert b.status == "completed" and b.id == trains.id

    def hits(**filters: Any) -> set[str]:
        page = client.vector_stores.search(vs.id, query="volcano train", filters=filters or None)  # type: ignore[arg-type]
        return {d.filename for d in page.data}

    assert hits() == {"volcano.md", "trains.txt"}
    assert hits(type="eq", key="team", value="geo") == {"volcano.md"}
    assert hits(type="gte", key="year", value=2024) == {"volcano.md"}
    assert hits(type="in", key="team", value=["rail", "x"]) == {"trains.txt"}
    assert hits(
        type="or",
        filters=[
            {"type": "eq", "key": "team", "value": "rail"},
            {"type": "eq", "key": "public", "value": True},
        ],
    ) == {"volcano.md", "trains.txt"}

    updated = client.vector_stores.files.update(
        trains.id, vector_store_id=vs.id, attributes={"team": "geo"}
    )
    assert updated.attributes == {"team": "geo"}
    assert client.vector_stores.files.retrieve(trains.id, vector_store_id=vs.id).attributes == {
        "team": "geo"
    }
    assert hits(type="eq", key="team", value="geo") == {"volcano.md", "trains.txt"}

    content = client.vector_stores.files.content(trains.id, vector_store_id=vs.id)
    texts = [part.text for part in content]
    assert texts == [TRAINS.strip()] or texts == [TRAINS]

    listed = client.vector_stores.files.list(vs.id, filter="completed")
    assert {f.id for f in listed} == {a.id, b.id}
    assert list(client.vector_stores.files.list(vs.id, filter="failed")) == []

    gone = client.vector_stores.files.delete(trains.id, vector_store_id=vs.id)
    assert (gone.id, gone.object, gone.deleted) == (trains.id, "vector_store.file.deleted", True)
    assert client.files.retrieve(trains.id).id == trains.id  # detaching keeps the file
    after = client.vector_stores.retrieve(vs.id)
    assert after.file_counts.total == 1 and after.usage_bytes == a.usage_bytes
    assert hits() == {"volcano.md"}
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(trains.id, vector_store_id=vs.id)


def test_bad_and_unsupported_files_fail_alone(client: openai.OpenAI) -> None:
    good = client.files.create(file=("trains.txt", TRAINS.encode()), purpose="assistants")
    bad = client.files.create(
        file=("broken.pdf", b"%PDF-1.4\nthis is not really a pdf"), purpose="assistants"
    )
    odd = client.files.create(file=("tool.exe", b"MZ\x90\x00\x03binary"), purpose="assistants")
    vs = client.vector_stores.create(name="Failures")
    batch = client.vector_stores.file_batches.create_and_poll(
        vs.id, file_ids=[good.id, bad.id, odd.id]
    )
    assert batch.status == "completed"
    assert (
        batch.file_counts.completed,
        batch.file_counts.failed,
        batch.file_counts.in_progress,
    ) == (1, 2, 0)

    by_id = {f.id: f for f in client.vector_stores.files.list(vs.id)}
    assert by_id[good.id].status == "completed" and by_id[good.id].last_error is None
    assert by_id[bad.id].status == "failed" and by_id[bad.id].last_error.code == "invalid_file"
    assert by_id[odd.id].status == "failed" and by_id[odd.id].last_error.code == "unsupported_file"
    assert by_id[bad.id].usage_bytes == 0 and by_id[bad.id].last_error.message
    assert {f.id for f in client.vector_stores.files.list(vs.id, filter="failed")} == {
        bad.id,
        odd.id,
    }

    store = client.vector_stores.retrieve(vs.id)
    assert (
        store.status == "completed"
        and store.file_counts.failed == 2
        and store.file_counts.completed == 1
    )
    page = client.vector_stores.search(vs.id, query="night train to Venice")
    assert [d.file_id for d in page.data][:1] == [good.id]
    assert list(client.vector_stores.files.content(bad.id, vector_store_id=vs.id)) == []

    # A batch whose every file fails is `failed`.
    all_bad = client.vector_stores.file_batches.create_and_poll(vs.id, file_ids=[odd.id])
    assert all_bad.status == "failed"


def test_deleting_a_file_detaches_it_everywhere(client: openai.OpenAI) -> None:
    f = client.files.create(file=("volcano.md", VOLCANO.encode()), purpose="assistants")
    keep = client.files.create(file=("trains.txt", TRAINS.encode()), purpose="assistants")
    one = client.vector_stores.create(name="one", file_ids=[f.id, keep.id])
    two = client.vector_stores.create(name="two", file_ids=[f.id])
    for vs in (one, two):
        wait(lambda vs=vs: client.vector_stores.retrieve(vs.id).file_counts.in_progress == 0)
    assert client.vector_stores.retrieve(one.id).file_counts.completed == 2

    client.files.delete(f.id)
    s1, s2 = client.vector_stores.retrieve(one.id), client.vector_stores.retrieve(two.id)
    assert (s1.file_counts.total, s1.file_counts.completed) == (1, 1)
    assert (s2.file_counts.total, s2.usage_bytes) == (0, 0)
    assert [x.id for x in client.vector_stores.files.list(one.id)] == [keep.id]
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(f.id, vector_store_id=two.id)
    assert all(
        d.file_id != f.id
        for d in client.vector_stores.search(one.id, query="Etna volcano Sicily").data
    )
    assert client.vector_stores.search(two.id, query="Etna volcano").data == []


def test_create_with_file_ids_and_poll_helpers(client: openai.OpenAI) -> None:
    f = client.files.create(file=("garden.docx", make_docx(*GARDEN)), purpose="assistants")
    vs = client.vector_stores.create(
        name="helpers",
        file_ids=[f.id],
        expires_after={"anchor": "last_active_at", "days": 3},
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 0},
        },
    )
    assert vs.file_counts.total == 1 and vs.status in ("in_progress", "completed")
    assert vs.expires_after.days == 3 and vs.expires_at == vs.last_active_at + 3 * 86400
    done = client.vector_stores.files.poll(f.id, vector_store_id=vs.id)
    assert done.status == "completed" and done.chunking_strategy.static.chunk_overlap_tokens == 0
    assert client.vector_stores.retrieve(vs.id).status == "completed"

    modified = client.vector_stores.update(
        vs.id, name="renamed", metadata={"a": "b"}, expires_after=None
    )
    assert (modified.name, modified.metadata, modified.expires_at) == ("renamed", {"a": "b"}, None)
    deleted = client.vector_stores.delete(vs.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (vs.id, "vector_store.deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(vs.id)
    assert client.files.retrieve(f.id).id == f.id


def test_cancel_batch(client: openai.OpenAI) -> None:
    text = " ".join(f"Paragraph {i} talks about river boats, canals and locks." for i in range(150))
    ids = [
        client.files.create(file=(f"c{i}.txt", text.encode()), purpose="assistants").id
        for i in range(5)
    ]
    vs = client.vector_stores.create(name="cancel")
    batch = client.vector_stores.file_batches.create(vs.id, file_ids=ids)
    assert batch.status == "in_progress" and batch.file_counts.in_progress >= 1
    cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=vs.id)
    assert cancelled.status == "cancelled" and cancelled.file_counts.in_progress == 0
    assert cancelled.file_counts.cancelled >= 1
    assert cancelled.file_counts.cancelled + cancelled.file_counts.completed == 5
    time.sleep(1.0)  # a worker busy with a cancelled file must drop its result
    again = client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=vs.id)
    assert again.file_counts == cancelled.file_counts and again.status == "cancelled"
    listed = client.vector_stores.file_batches.list_files(
        batch.id, vector_store_id=vs.id, filter="cancelled"
    )
    assert len(listed.data) == cancelled.file_counts.cancelled


def test_batch_with_per_file_settings(client: openai.OpenAI) -> None:
    a = client.files.create(file=("volcano.md", VOLCANO.encode()), purpose="assistants")
    b = client.files.create(file=("trains.txt", TRAINS.encode()), purpose="assistants")
    vs = client.vector_stores.create(name="per-file")
    batch = client.vector_stores.file_batches.create_and_poll(
        vs.id,
        files=[
            {"file_id": a.id, "attributes": {"k": "a"}},
            {
                "file_id": b.id,
                "attributes": {"k": "b"},
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 300, "chunk_overlap_tokens": 10},
                },
            },
        ],
    )
    assert batch.file_counts.completed == 2
    fb = client.vector_stores.files.retrieve(b.id, vector_store_id=vs.id)
    assert fb.attributes == {"k": "b"} and fb.chunking_strategy.static.max_chunk_size_tokens == 300
    assert client.vector_stores.files.retrieve(a.id, vector_store_id=vs.id).attributes == {"k": "a"}


def test_expired_store(client: openai.OpenAI, server: Server) -> None:
    f = client.files.create(file=("trains.txt", TRAINS.encode()), purpose="assistants")
    vs = client.vector_stores.create(
        name="short", file_ids=[f.id], expires_after={"anchor": "last_active_at", "days": 1}
    )
    client.vector_stores.files.poll(f.id, vector_store_id=vs.id)
    run_db(
        server,
        lambda uow: uow.session.execute(
            update(VectorStoreRow)
            .where(VectorStoreRow.id == vs.id)
            .values(expires_at=int(time.time()) - 5)
        ),
    )
    got = client.vector_stores.retrieve(vs.id)
    assert got.status == "expired"
    with pytest.raises(openai.BadRequestError) as e:
        client.vector_stores.search(vs.id, query="train")
    assert "has expired" in e.value.body["message"] and e.value.body["param"] == "vector_store_id"
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.files.create(vector_store_id=vs.id, file_id=f.id)
    assert client.vector_stores.retrieve(vs.id).status == "expired"


def test_embedding_model_mixing_refused(client: openai.OpenAI, server: Server) -> None:
    f = client.files.create(file=("trains.txt", TRAINS.encode()), purpose="assistants")
    vs = client.vector_stores.create(name="model", file_ids=[f.id])
    client.vector_stores.files.poll(f.id, vector_store_id=vs.id)

    async def pretend_other_model(uow: UnitOfWork) -> None:
        row = await uow.session.get(VectorStoreRow, vs.id)
        assert row is not None
        row.embedding_model = "text-embedding-3-large"

    run_db(server, pretend_other_model)
    g = client.files.create(file=("volcano.md", VOLCANO.encode()), purpose="assistants")
    with pytest.raises(openai.BadRequestError) as e:
        client.vector_stores.files.create(vector_store_id=vs.id, file_id=g.id)
    assert (
        "text-embedding-3-large" in e.value.body["message"] and "Mixing" in e.value.body["message"]
    )
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.search(vs.id, query="train")


def test_list_and_pagination(client: openai.OpenAI) -> None:
    made = [client.vector_stores.create(name=f"page-{i}").id for i in range(3)]
    first = client.vector_stores.list(limit=2)
    assert len(first.data) == 2 and first.has_more and first.data[0].id == made[-1]
    walked = [v.id for v in client.vector_stores.list(limit=2)]
    assert walked[:3] == made[::-1] and len(walked) == len(set(walked))
    asc = [v.id for v in client.vector_stores.list(order="asc", limit=100)]
    assert asc.index(made[0]) < asc.index(made[1]) < asc.index(made[2])

    ids = [
        client.files.create(file=(f"p{i}.txt", b"pagination words"), purpose="assistants").id
        for i in range(3)
    ]
    vs = client.vector_stores.create(name="files-page", file_ids=ids)
    files = [f.id for f in client.vector_stores.files.list(vs.id, limit=1)]
    assert sorted(files) == sorted(ids)


def test_wrong_ids_and_other_projects(
    client: openai.OpenAI, other_client: openai.OpenAI, corpus: dict[str, Any]
) -> None:
    vs_id = corpus["vs"].id
    batch_id = corpus["batch"].id
    file_id = next(iter(corpus["names"].values()))
    with pytest.raises(openai.BadRequestError) as e:
        client.vector_stores.retrieve("asst_x")
    assert "Expected an ID that begins with 'vs'" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.file_batches.retrieve("batch_x", vector_store_id=vs_id)
    with pytest.raises(openai.NotFoundError) as e:
        client.vector_stores.retrieve("vs_missing")
    assert e.value.body["message"] == "No vector store found with id 'vs_missing'."
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.create(vector_store_id=vs_id, file_id="file-missing")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.create(file_ids=["file-missing"])
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.file_batches.retrieve("vsfb_missing", vector_store_id=vs_id)

    for call in (
        lambda: other_client.vector_stores.retrieve(vs_id),
        lambda: other_client.vector_stores.update(vs_id, name="x"),
        lambda: other_client.vector_stores.delete(vs_id),
        lambda: other_client.vector_stores.search(vs_id, query="x"),
        lambda: other_client.vector_stores.files.list(vs_id),
        lambda: other_client.vector_stores.files.retrieve(file_id, vector_store_id=vs_id),
        lambda: other_client.vector_stores.files.delete(file_id, vector_store_id=vs_id),
        lambda: other_client.vector_stores.file_batches.retrieve(batch_id, vector_store_id=vs_id),
        lambda: other_client.vector_stores.file_batches.cancel(batch_id, vector_store_id=vs_id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    theirs = other_client.vector_stores.create(name="theirs")
    with pytest.raises(openai.NotFoundError):  # a file of another project cannot be attached
        other_client.vector_stores.files.create(vector_store_id=theirs.id, file_id=file_id)
    assert vs_id not in [v.id for v in other_client.vector_stores.list()]
    assert client.vector_stores.retrieve(vs_id).file_counts.total == 4


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (
            "",
            {
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150},
                },
                "file_ids": [],
            },
            "chunking_strategy.static",
        ),
        (
            "",
            {
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0},
                }
            },
            "chunking_strategy.static.max_chunk_size_tokens",
        ),
        ("", {"chunking_strategy": {"type": "semantic"}}, "chunking_strategy.type"),
        ("", {"expires_after": {"anchor": "last_active_at", "days": 0}}, "expires_after.days"),
        ("", {"expires_after": {"anchor": "created_at", "days": 3}}, "expires_after.anchor"),
        ("", {"file_ids": [f"file-{i}" for i in range(501)]}, "file_ids"),
        ("", {"metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        (
            "/files",
            {"file_id": "file-x", "attributes": {str(i): 1 for i in range(17)}},
            "attributes",
        ),
        ("/files", {"file_id": "file-x", "attributes": {"k": "v" * 513}}, "attributes"),
        ("/files", {"file_id": "file-x", "attributes": {"k": [1]}}, "attributes.k"),
        ("/files", {}, "file_id"),
        ("/file_batches", {}, None),
        ("/file_batches", {"file_ids": []}, "file_ids"),
        ("/search", {}, "query"),
        ("/search", {"query": "x", "max_num_results": 51}, "max_num_results"),
        (
            "/search",
            {"query": "x", "ranking_options": {"score_threshold": 2}},
            "ranking_options.score_threshold",
        ),
        (
            "/search",
            {"query": "x", "ranking_options": {"ranker": "best"}},
            "ranking_options.ranker",
        ),
        ("/search", {"query": "x", "filters": {"type": "like", "key": "a", "value": 1}}, "filters"),
        ("/search", {"query": "   "}, "query"),
    ],
)
def test_bad_requests_are_400(
    server: Server, corpus: dict[str, Any], path: str, body: dict[str, Any], param: str | None
) -> None:
    base = f"{server.base_url}/vector_stores"
    url = base if path == "" else f"{base}/{corpus['vs'].id}{path}"
    r = httpx.post(url, json=body, headers={**auth(server), "OpenAI-Beta": "assistants=v2"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["message"]
    if param is not None:
        assert err["param"] is not None and err["param"].startswith(param), err


def test_bad_list_filter_is_400(server: Server, corpus: dict[str, Any]) -> None:
    r = httpx.get(
        f"{server.base_url}/vector_stores/{corpus['vs'].id}/files",
        params={"filter": "done"},
        headers=auth(server),
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "filter"


def test_schema_comes_from_migrations(server: Server) -> None:
    async def tables(uow: UnitOfWork) -> dict[str, set[str]]:
        conn = await uow.session.connection()
        return await conn.run_sync(
            lambda c: {
                t: {col["name"] for col in inspect(c).get_columns(t)}
                for t in inspect(c).get_table_names()
            }
        )

    found = run_db(server, tables)
    for table in retrieval_metadata.sorted_tables:
        assert {c.name for c in table.columns} <= found[table.name]
    if server.dialect == "sqlite":
        assert "retrieval_chunks_fts" in found
    else:
        assert "tsv" in found["retrieval_chunks"]


def test_service_functions_for_the_run_engine(client: openai.OpenAI, server: Server) -> None:
    """`create_store_with_files`, `wait_ready`, `search_stores`, `add_files` as a run uses them."""
    a = client.files.create(file=("trains.txt", TRAINS.encode()), purpose="assistants")
    b = client.files.create(file=("volcano.md", VOLCANO.encode()), purpose="assistants")
    project = "alpha"

    async def main() -> tuple[
        dict[str, Any], bool, list[service.StoreHit], bool, list[service.StoreHit]
    ]:
        engine = create_engine(server.settings.resolved_database_url)
        rt = await start_ingestion(server.settings, session_maker(engine))
        try:
            async with rt.sessions() as s:
                uow = UnitOfWork(s)
                store = await service.create_store_with_files(
                    rt, uow, project, [a.id], name="thread store"
                )
                await uow.commit()
            ready = await service.wait_ready(rt, project, [store["id"]])
            async with rt.sessions() as s:
                hits = await service.search_stores(
                    rt, s, project, [store["id"]], "night train Venice", 5, 0.0
                )
                await s.commit()
            async with rt.sessions() as s:
                uow = UnitOfWork(s)
                await service.add_files(rt, uow, project, store["id"], [b.id, a.id])
                await uow.commit()
            ready2 = await service.wait_ready(rt, project, [store["id"]])
            async with rt.sessions() as s:
                hits2 = await service.search_stores(
                    rt, s, project, [store["id"]], "Etna volcano", 5, 0.0
                )
                await s.commit()
            return store, ready, hits, ready2, hits2
        finally:
            await rt.aclose()
            await engine.dispose()

    store, ready, hits, ready2, hits2 = asyncio.run(main())
    assert store["expires_after"] == {"anchor": "last_active_at", "days": 7}
    assert store["file_counts"]["total"] == 1
    assert ready and hits and hits[0].file_id == a.id and hits[0].filename == "trains.txt"
    assert hits[0].text and 0 < hits[0].score <= 1 and hits[0].char_end > hits[0].char_start
    assert ready2 and hits2[0].file_id == b.id
    assert client.vector_stores.retrieve(store["id"]).file_counts.completed == 2


def test_crash_recovery_and_expiry_sweep(client: openai.OpenAI, server: Server) -> None:
    """A file left `in_progress` under the lease of a dead process is re-ingested by the next
    worker to start; the sweep marks expired stores and deletes expired files."""
    f = client.files.create(file=("trains.txt", TRAINS.encode()), purpose="assistants")
    vs = client.vector_stores.create(
        name="crash", file_ids=[f.id], expires_after={"anchor": "last_active_at", "days": 2}
    )
    client.vector_stores.files.poll(f.id, vector_store_id=vs.id)
    short = client.files.create(
        file=("volcano.md", VOLCANO.encode()),
        purpose="assistants",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    client.vector_stores.files.create_and_poll(short.id, vector_store_id=vs.id)
    dead = f"{socket.gethostname()}:999999999:gone"

    async def crash_state(uow: UnitOfWork) -> None:
        # As a crash mid-ingestion leaves it: in progress, leased for a while yet, by a dead pid.
        await uow.session.execute(
            update(VectorStoreFileRow)
            .where(VectorStoreFileRow.id == f.id)
            .values(
                status="in_progress",
                usage_bytes=0,
                lease_owner=dead,
                lease_expires_at=time.time() + 600,
            )
        )

    run_db(server, crash_state)
    assert client.vector_stores.retrieve(vs.id).file_counts.in_progress == 1

    async def restart() -> bool:
        engine = create_engine(server.settings.resolved_database_url)
        rt = await start_ingestion(server.settings, session_maker(engine))
        try:
            ready = await service.wait_ready(rt, "alpha", [vs.id])
            async with rt.sessions() as s, s.begin():
                await s.execute(
                    update(VectorStoreRow)
                    .where(VectorStoreRow.id == vs.id)
                    .values(expires_at=int(time.time()) - 1)
                )
                await s.execute(
                    update(FileRow)
                    .where(FileRow.id == short.id)
                    .values(expires_at=int(time.time()) - 1)
                )
            await rt.ingestion.expire()
            await FileExpiry(
                rt.sessions, server.settings.data_dir, VectorStoreDependents(rt)
            ).sweep()
            return ready
        finally:
            await rt.aclose()
            await engine.dispose()

    assert asyncio.run(restart())
    recovered = client.vector_stores.files.retrieve(f.id, vector_store_id=vs.id)
    assert recovered.status == "completed" and recovered.usage_bytes > 0
    store = client.vector_stores.retrieve(vs.id)
    assert (
        store.status == "expired" and store.file_counts.total == 1
    )  # the expired file was detached

    async def expired_at(uow: UnitOfWork) -> int | None:
        row = await uow.session.get(VectorStoreRow, vs.id)
        return None if row is None else row.expired_at

    assert run_db(server, expired_at) is not None
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(short.id)
    assert not (project_dir(server.settings.data_dir, "alpha") / short.id).exists()
