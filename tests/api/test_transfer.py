"""`assistantd import` / `export`: a team's OpenAI dump, driven afterwards by the official SDK.

The dump (`assistantd.testing.dumps`) is in the open exporter's format with every object
kind and edge; it is imported once per database into project `alpha` of the shared server.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from assistantd.core.db import create_engine, session_maker
from assistantd.keys.service import create_key
from assistantd.llm.base import ChatRequest
from assistantd.migrations import upgrade
from assistantd.testing import dumps
from assistantd.testing.scripted import ScriptedBackend, text_turn
from assistantd.testing.server import Server, SwitchRouter, pg_database, run_db
from assistantd.transfer import dump as dump_reader
from assistantd.transfer.export import export_project
from assistantd.transfer.load import Report, Writer, import_dump, plan
from assistantd.transfer.problems import DumpError


def _import(url: str, data_dir: Path, project: str, path: Path, **kw: Any) -> Report:
    async def main() -> Report:
        engine = create_engine(url)
        try:
            return await import_dump(
                session_maker(engine),
                data_dir,
                project,
                dump_reader.read(path),
                kw.pop("files_dir", path / "files"),
                **kw,
            )
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _export(url: str, data_dir: Path, project: str, out: Path) -> None:
    async def main() -> None:
        engine = create_engine(url)
        try:
            await export_project(session_maker(engine), data_dir, project, out)
        finally:
            await engine.dispose()

    asyncio.run(main())


#: The project the dump moves into (the shared server's other projects hold other tests' objects).
PROJECT = "moving"


@pytest.fixture(scope="module")
def imported(
    server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, Report]]:
    path = dumps.write_exporter_dump(tmp_path_factory.mktemp("dump"))
    report = _import(server.settings.resolved_database_url, server.settings.data_dir, PROJECT, path)
    yield path, report


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[openai.OpenAI]:
    """A key of the project the dump was imported into."""
    _, secret = run_db(server, lambda uow: create_key(uow.session, "moving-in", PROJECT))
    with openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0) as c:
        yield c


def _same(got: Any, raw: dict[str, Any]) -> None:
    """Every field of the dump's object is on the SDK's object, with the same value."""
    wire = got.model_dump(mode="json", exclude_unset=True)
    assert {k: wire.get(k) for k in raw} == raw


def test_report_counts_every_kind(imported: tuple[Path, Report]) -> None:
    _, report = imported
    assert dict(report.created) == {
        "assistant": 1,
        "thread": 1,
        "thread.message": 6,
        "thread.run": 3,
        "thread.run.step": 4,
        "file": 3,
        "vector_store": 1,
        "vector_store.file": 1,
    }
    assert report.files_with_bytes == 1
    assert sorted(report.files_without_bytes) == sorted([dumps.FILE_IMG, dumps.FILE_CSV])
    assert report.runs_expired == 1 and report.failed_threads == ["thread_gone"]
    assert report.placeholder_stores == [dumps.VS]


def test_sdk_retrieves_every_object_by_its_original_id(
    imported: tuple[Path, Report], client: openai.OpenAI
) -> None:
    _same(client.beta.assistants.retrieve(dumps.ASST), dumps.assistants()[0])
    _same(client.beta.threads.retrieve(dumps.THREAD), dumps.thread())
    for raw in dumps.messages():
        _same(client.beta.threads.messages.retrieve(raw["id"], thread_id=dumps.THREAD), raw)
    for raw_run in dumps.runs():
        raw_steps = raw_run.pop("steps")
        run = client.beta.threads.runs.retrieve(raw_run["id"], thread_id=dumps.THREAD)
        if raw_run["id"] == dumps.RUN_WAITING:  # not over when exported: it can never go on
            assert (run.status, run.required_action) == ("expired", None)
            raw_run = {k: v for k, v in raw_run.items() if k not in ("status", "required_action")}
        _same(run, raw_run)
        for raw_step in raw_steps:
            step = client.beta.threads.runs.steps.retrieve(
                raw_step["id"], thread_id=dumps.THREAD, run_id=raw_run["id"]
            )
            if raw_step["status"] == "in_progress":
                assert step.status == "expired"
                raw_step = {k: v for k, v in raw_step.items() if k != "status"}
            _same(step, raw_step)
    for raw_file in dumps.files().values():
        _same(client.files.retrieve(raw_file["id"]), raw_file)
    store = client.vector_stores.retrieve(dumps.VS)
    assert store.id == dumps.VS and store.created_at == dumps.T0  # its first mention: the assistant


def test_lists_keep_the_dumps_order(imported: tuple[Path, Report], client: openai.OpenAI) -> None:
    ids = [
        m.id for m in client.beta.threads.messages.list(dumps.THREAD, order="asc", limit=2)
    ]  # auto-paged
    assert ids == [m["id"] for m in dumps.messages()]
    desc = [m.id for m in client.beta.threads.messages.list(dumps.THREAD)]
    assert desc == ids[::-1]
    runs = [r.id for r in client.beta.threads.runs.list(dumps.THREAD, order="asc")]
    assert runs == [dumps.RUN_DONE, dumps.RUN_INCOMPLETE, dumps.RUN_WAITING]
    steps = [
        s.id
        for s in client.beta.threads.runs.steps.list(
            dumps.RUN_DONE, thread_id=dumps.THREAD, order="asc"
        )
    ]
    assert steps == [
        "step_1aaaaaaaaaaaaaaaaaaaaaa",
        "step_2aaaaaaaaaaaaaaaaaaaaaa",
        "step_3aaaaaaaaaaaaaaaaaaaaaa",
    ]


def test_file_bytes_and_missing_content(
    imported: tuple[Path, Report], client: openai.OpenAI
) -> None:
    assert client.files.content(dumps.FILE_DOC).read() == dumps.DOC_TEXT
    with pytest.raises(openai.BadRequestError) as e:
        client.files.content(dumps.FILE_CSV)
    assert "imported without its content" in e.value.body["message"]


def test_vector_store_is_reingested_and_searchable(
    imported: tuple[Path, Report], client: openai.OpenAI
) -> None:
    deadline = time.monotonic() + 120
    while (
        f := client.vector_stores.files.retrieve(dumps.FILE_DOC, vector_store_id=dumps.VS)
    ).status == "in_progress":
        assert time.monotonic() < deadline, "the imported store file was never ingested"
        time.sleep(0.3)
    assert f.status == "completed", f.last_error
    hits = client.vector_stores.search(dumps.VS, query="When is the sheep festival?")
    assert any("Darmstadt" in c.text for h in hits for c in h.content)


def test_a_new_run_sees_the_imported_history(
    imported: tuple[Path, Report], client: openai.OpenAI, models: SwitchRouter
) -> None:
    seen: list[ChatRequest] = []

    def script(request: ChatRequest) -> Any:
        seen.append(request)
        return text_turn("Still May.")

    models.use(ScriptedBackend(script))
    new = client.beta.threads.messages.create(dumps.THREAD, role="user", content="And next year?")
    assert new.id not in {m["id"] for m in dumps.messages()}
    run = client.beta.threads.runs.create_and_poll(
        thread_id=dumps.THREAD, assistant_id=dumps.ASST, tools=[], poll_interval_ms=50
    )
    assert run.status == "completed", run.last_error
    prompt = json.dumps([str(m.content) for m in seen[0].messages])
    assert (
        "When is the festival?" in prompt
        and "Every May in Darmstadt." in prompt
        and "And next year?" in prompt
    )
    listed = [m.id for m in client.beta.threads.messages.list(dumps.THREAD, order="asc")]
    assert (
        listed[:6] == [m["id"] for m in dumps.messages()]
        and listed[6] == new.id
        and len(listed) == 8
    )


def test_importing_again_changes_nothing(
    imported: tuple[Path, Report], server: Server, client: openai.OpenAI
) -> None:
    path, _ = imported
    before = [m.model_dump() for m in client.beta.threads.runs.list(dumps.THREAD)]
    again = _import(server.settings.resolved_database_url, server.settings.data_dir, PROJECT, path)
    assert sum(again.created.values()) == 0
    assert again.skipped["thread.message"] == 6 and again.skipped["assistant"] == 1
    assert [m.model_dump() for m in client.beta.threads.runs.list(dumps.THREAD)] == before


def test_an_id_of_another_project_is_refused_and_nothing_written(
    imported: tuple[Path, Report], server: Server, other_client: openai.OpenAI
) -> None:
    path, _ = imported

    def held() -> tuple[list[str], list[str]]:
        # The server is shared with other modules, which may have made objects in "beta".
        return (
            [a.id for a in other_client.beta.assistants.list(limit=100)],
            [f.id for f in other_client.files.list().data],
        )

    before = held()
    with pytest.raises(DumpError) as e:
        _import(server.settings.resolved_database_url, server.settings.data_dir, "beta", path)
    assert f"{dumps.ASST} already exists in another project" in str(e.value)
    assert held() == before


def _normalized(root: Path) -> dict[str, Any]:
    """Every file of an export, minus what depends on when and where it was made: export
    times, and a store's ingestion progress (the new database ingests again)."""
    out: dict[str, Any] = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = str(p.relative_to(root))
        if not p.name.endswith(".json"):
            out[rel] = p.read_bytes()
            continue
        value = json.loads(p.read_text())
        if isinstance(value, dict):
            value.pop("exported_at", None)
            value.pop("script_version", None)
        if rel == "vector_stores.json":
            for store in value:
                for key in ("status", "file_counts", "usage_bytes", "last_active_at", "expires_at"):
                    store.pop(key)
                for f in store["files"]:
                    f.pop("status"), f.pop("usage_bytes")
        out[rel] = value
    return out


def test_export_then_import_into_an_empty_database_round_trips(
    imported: tuple[Path, Report], server: Server, tmp_path: Path
) -> None:
    src = server.settings
    _export(src.resolved_database_url, src.data_dir, PROJECT, tmp_path / "a")
    # the other database: SQLite to PostgreSQL, PostgreSQL to SQLite
    drop = None
    if server.dialect == "sqlite":
        url, drop = pg_database()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    try:
        upgrade(url)
        report = _import(url, tmp_path / "data", "default", tmp_path / "a")
        assert report.files_without_bytes == [dumps.FILE_IMG, dumps.FILE_CSV] or sorted(
            report.files_without_bytes
        ) == sorted([dumps.FILE_IMG, dumps.FILE_CSV])
        _export(url, tmp_path / "data", "default", tmp_path / "b")
    finally:
        if drop:
            drop()
    a, b = _normalized(tmp_path / "a"), _normalized(tmp_path / "b")
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name
    assert (
        any(name.startswith("threads/") for name in a)
        and a["files/" + dumps.FILE_DOC] == dumps.DOC_TEXT
    )


def test_api_list_pages_read_as_the_exporter_dump(
    imported: tuple[Path, Report], server: Server, tmp_path: Path
) -> None:
    """The same objects as `list()` pages (newest first) import to the same wire objects."""
    src = server.settings
    _export(src.resolved_database_url, src.data_dir, PROJECT, tmp_path / "a")
    url = f"sqlite+aiosqlite:///{tmp_path / 'pages.db'}"
    upgrade(url)
    _import(url, tmp_path / "data", "default", dumps.write_api_pages(tmp_path / "pages"))
    _export(url, tmp_path / "data", "default", tmp_path / "b")
    a, b = _normalized(tmp_path / "a"), _normalized(tmp_path / "b")
    thread_file = f"threads/{dumps.THREAD}.json"
    # the project has since seen a new message and run, if that test ran first
    a_msgs = [
        m for m in a[thread_file]["messages"] if m["id"] in {x["id"] for x in dumps.messages()}
    ]
    assert a_msgs == b[thread_file]["messages"]
    assert a["assistants.json"] == b["assistants.json"]


def test_objects_created_meanwhile_by_another_import(tmp_path: Path) -> None:
    """Two imports of one dump at once: the one that planned first and wrote second says so."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'race.db'}"
    upgrade(url)
    path = dumps.write_exporter_dump(tmp_path / "dump")

    async def main() -> None:
        engine = create_engine(url)
        sessions = session_maker(engine)
        try:
            async with sessions() as s:
                stale = await plan(
                    s, tmp_path / "data", "p", dump_reader.read(path), None, Report()
                )
            await import_dump(sessions, tmp_path / "data", "p", dump_reader.read(path))
            with pytest.raises(DumpError) as e:
                await Writer(sessions, tmp_path / "data", "p", stale, Report()).write()
            assert "run the import again" in str(e.value)
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_reasoning_effort_goes_into_its_column_not_the_body(server: Server, tmp_path: Path) -> None:
    from sqlalchemy import select

    from assistantd.assistants.models import AssistantRow

    raw = {
        **dumps.assistants()[0],
        "id": "asst_effortEFFORTeffort0123456",
        "reasoning_effort": "high",
        "tool_resources": {},
    }
    (tmp_path / "assistants.json").write_text(json.dumps({"object": "list", "data": [raw]}))
    _import(
        server.settings.resolved_database_url,
        server.settings.data_dir,
        "effort",
        tmp_path / "assistants.json",
        files_dir=None,
    )

    async def row(uow: Any) -> Any:
        return (
            await uow.session.execute(select(AssistantRow).where(AssistantRow.id == raw["id"]))
        ).scalar_one()

    stored = run_db(server, row)
    assert stored.reasoning_effort == "high"
    assert not [k for k in stored.body if k.startswith("_")]
