"""Writing a checked dump into a project, keeping every id and timestamp.

First a plan, read-only: which objects already exist (in this project they are skipped, so a
second import changes nothing; in another project the import is refused), which parents
not in the dump must already be in the project, which files have bytes in the files
directory, which vector stores are only named (recreated from the files the dump attaches
to them). Any problem stops the import before anything is written.

Then the writes, through each package's repository: files (bytes first), vector stores
and their files, assistants in one transaction; then threads in batches, each thread in the
same transaction as its messages, runs and run steps. Lists order by `seq`, so an imported
object's `seq` is its `created_at` in microseconds (plus its place among objects of the
same second, in the dump's order): imported history sorts before anything created later.
Store files with bytes are left `in_progress`, so the ingestion worker of `assistantd
serve` (or `worker`) re-indexes them.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistantd.assistants.models import AssistantRow
from assistantd.assistants.repository import AssistantRepository
from assistantd.core.db import ObjectRow
from assistantd.core.ids import now_seconds
from assistantd.files import storage
from assistantd.files.models import FileRow
from assistantd.files.repository import FileRepository
from assistantd.messages.models import MessageRow
from assistantd.messages.repository import MessageRepository
from assistantd.runs.models import RunRow, RunStepRow
from assistantd.runs.repository import RunRepository, RunStepRepository
from assistantd.runs.state import RunState
from assistantd.threads.models import ThreadRow
from assistantd.threads.repository import ThreadRepository
from assistantd.transfer.dump import Dump, missing_parents
from assistantd.transfer.objects import EXPORTED_STATUS, REASONING_EFFORT
from assistantd.transfer.problems import DumpError
from assistantd.transfer.repository import TransferRepository
from assistantd.vector_stores.models import VectorStoreFileRow, VectorStoreRow
from assistantd.vector_stores.repository import VectorStoreFileRepository, VectorStoreRepository

Body = dict[str, Any]
DAY = 86_400
#: Threads written per transaction (each with all its messages, runs and steps).
THREAD_BATCH = 200
#: What a store file whose file has no bytes says.
NO_CONTENT = (
    "The file was imported without its content (OpenAI does not release the bytes of files "
    "with purpose 'assistants'); upload it again and attach the new file."
)

#: Each kind: its table, what the report calls it, and the field naming its thread.
MODELS: dict[str, type[ObjectRow]] = {
    "assistant": AssistantRow,
    "thread": ThreadRow,
    "thread.message": MessageRow,
    "thread.run": RunRow,
    "thread.run.step": RunStepRow,
    "file": FileRow,
    "vector_store": VectorStoreRow,
}
NAMES = {
    "assistant": "assistants",
    "thread": "threads",
    "thread.message": "messages",
    "thread.run": "runs",
    "thread.run.step": "run steps",
    "file": "files",
    "vector_store": "vector stores",
    "vector_store.file": "vector store files",
}


@dataclass
class Report:
    """What an import did (or, dry, would do), per kind of object."""

    created: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    files_with_bytes: int = 0
    files_without_bytes: list[str] = field(default_factory=list)
    runs_expired: int = 0
    placeholder_stores: list[str] = field(default_factory=list)
    failed_threads: list[str] = field(default_factory=list)
    export_warnings: int = 0
    dry_run: bool = False

    def lines(self) -> list[str]:
        verb = "would import" if self.dry_run else "imported"
        out = [f"{'kind':<20} {verb:>14} {'skipped':>10}"]
        for kind, name in NAMES.items():
            out.append(f"{name:<20} {self.created[kind]:>14} {self.skipped[kind]:>10}")
        out.append(
            f"file bytes: {self.files_with_bytes} found; {len(self.files_without_bytes)} missing "
            "(their content cannot be read and their store files are failed)"
        )
        if self.runs_expired:
            out.append(
                f"{self.runs_expired} run(s) were not over when exported: imported as expired"
            )
        if self.placeholder_stores:
            out.append(
                f"{len(self.placeholder_stores)} vector store(s) only named by the dump were "
                "recreated from the files attached to them"
            )
        if self.failed_threads:
            out.append(
                f"{len(self.failed_threads)} thread(s) the exporter could not fetch were not imported"
            )
        if self.export_warnings:
            out.append(
                f"{self.export_warnings} warning(s) recorded by the exporter (see its thread files)"
            )
        return out


@dataclass
class Plan:
    new: dict[str, list[Body]]
    file_sources: dict[str, Path]
    #: vector store id -> file ids, for stores the dump only names
    placeholders: dict[str, tuple[int, list[str]]]
    #: files of the project that have bytes on disk (dump's or already there)
    has_bytes: set[str]


class Planner:
    def __init__(self, s: AsyncSession, project_id: str, dump: Dump, report: Report) -> None:
        self.s, self.project_id, self.dump, self.report = s, project_id, dump, report
        self.repo = TransferRepository(s)
        self.problems: list[str] = []
        self.owners: dict[str, dict[str, str]] = {}

    async def new_objects(self) -> dict[str, list[Body]]:
        new: dict[str, list[Body]] = {}
        for kind, model in MODELS.items():
            bodies = self.dump.of(kind)
            owners = await self.repo.owners(model, bodies)
            self.owners[kind] = owners
            new[kind] = []
            for object_id, body in bodies.items():
                owner = owners.get(object_id)
                if owner is None:
                    new[kind].append(body)
                elif owner == self.project_id:
                    self.report.skipped[kind] += 1
                else:
                    self.problems.append(
                        f"{self.dump.where[(kind, object_id)]}: {object_id} already exists "
                        f"in another project ({owner}); ids are unique across projects"
                    )
        store_files = self.dump.of("vector_store.file")
        existing = await self.repo.store_file_keys({vs for vs, _ in store_files})
        new["vector_store.file"] = [b for k, b in store_files.items() if k not in existing]
        self.report.skipped["vector_store.file"] = len(store_files) - len(new["vector_store.file"])
        return new

    async def check_parents(self) -> None:
        for kind, ids in missing_parents(self.dump).items():
            model = MODELS[kind]
            owners = await self.repo.owners(model, ids)
            for parent_id in sorted(ids):
                if owners.get(parent_id) != self.project_id:
                    self.problems.append(
                        f"{NAMES[kind][:-1]} {parent_id} is named by the dump but is "
                        f"neither in it nor in project {self.project_id}"
                    )

    async def placeholders(self, new: dict[str, list[Body]]) -> dict[str, tuple[int, list[str]]]:
        """Vector stores named by `tool_resources` that neither the dump nor the project holds:
        recreated, a thread's store holding its messages' file_search attachments."""
        named: dict[str, tuple[int, list[str]]] = {}
        attached = _search_attachments(new["thread.message"])
        for body in (*new["assistant"], *new["thread"]):
            fs = (body.get("tool_resources") or {}).get("file_search") or {}
            for vs_id in fs.get("vector_store_ids") or []:
                created, files = named.get(vs_id, (body["created_at"], []))
                files += [f for f in attached.get(body["id"], []) if f not in files]
                named[vs_id] = (created, files)
        unknown = [v for v in named if v not in self.dump.of("vector_store")]
        owners = await self.repo.owners(VectorStoreRow, unknown)
        for vs_id in unknown:
            if owners.get(vs_id) not in (None, self.project_id):
                self.problems.append(
                    f"vector store {vs_id} is named by the dump but belongs to another project"
                )
        self.report.skipped["vector_store"] += sum(
            1 for v in unknown if owners.get(v) == self.project_id
        )
        return {v: named[v] for v in unknown if v not in owners}


def _search_attachments(messages: Sequence[Body]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in messages:
        for att in m["attachments"]:
            if any(t["type"] == "file_search" for t in att["tools"]):
                files = out.setdefault(m["thread_id"], [])
                if att["file_id"] not in files:
                    files.append(att["file_id"])
    return out


def find_bytes(files_dir: Path | None, files: Sequence[Body]) -> dict[str, Path]:
    """Where each file's bytes are in `files_dir`: a file named by its id (with any
    extension), else one named by its filename when no other file of the dump has that name."""
    if files_dir is None or not files_dir.is_dir():
        return {}
    entries = {p.name: p for p in files_dir.iterdir() if p.is_file()}
    by_stem: dict[str, Path] = {}
    for name, p in entries.items():
        by_stem.setdefault(name.split(".", 1)[0], p)
    names = Counter(f["filename"] for f in files)
    out = {}
    for f in files:
        path = entries.get(f["id"]) or by_stem.get(f["id"])
        if path is None and names[f["filename"]] == 1:
            path = entries.get(f["filename"])
        if path is not None:
            out[f["id"]] = path
    return out


async def plan(
    s: AsyncSession,
    data_dir: Path,
    project_id: str,
    dump: Dump,
    files_dir: Path | None,
    report: Report,
) -> Plan:
    """Check the dump against the database (read-only); `DumpError` on any conflict."""
    planner = Planner(s, project_id, dump, report)
    new = await planner.new_objects()
    await planner.check_parents()
    placeholders = await planner.placeholders(new)
    if planner.problems:
        raise DumpError(planner.problems)
    sources = find_bytes(files_dir, new["file"])
    known = [i for i, owner in planner.owners["file"].items() if owner == project_id]
    store = storage.store_for(data_dir)
    # Asked without reading the bytes (a HEAD on S3).
    on_disk = {i for i in known if await store.exists(project_id, i)}
    return Plan(new, sources, placeholders, set(sources) | on_disk)


# -- rows ------------------------------------------------------------------------------


def _seqs(bodies: Sequence[Body]) -> dict[str, int]:
    """`created_at` in microseconds, in the dump's order within one second."""
    out: dict[str, int] = {}
    last = 0
    for body in sorted(bodies, key=lambda b: b["created_at"]):
        last = max(body["created_at"] * 1_000_000, last + 1)
        out[
            body["id"]
            if body["object"] != "vector_store.file"
            else f"{body['vector_store_id']}/{body['id']}"
        ] = last
    return out


def _store_row(body: Body, project_id: str, seq: int) -> VectorStoreRow:
    body = dict(body)
    status, expires_at = body.pop("_status", None), body.pop("_expires_at", None)
    days = (body.get("expires_after") or {}).get("days")
    if expires_at is None and days:
        expires_at = int(body["last_active_at"]) + int(days) * DAY
    return VectorStoreRow(
        id=body["id"],
        project_id=project_id,
        seq=seq,
        created_at=body["created_at"],
        body=body,
        expires_at=expires_at,
        expired_at=(expires_at or now_seconds()) if status == "expired" else None,
    )


def _placeholder(vs_id: str, created: int) -> Body:
    return {
        "id": vs_id,
        "object": "vector_store",
        "created_at": created,
        "name": None,
        "description": None,
        "metadata": {},
        "expires_after": None,
        "last_active_at": now_seconds(),
    }


def _store_file_row(body: Body, project_id: str, seq: int, has_bytes: bool) -> VectorStoreFileRow:
    body = dict(body)
    if not has_bytes:
        body["last_error"] = {"code": "invalid_file", "message": NO_CONTENT}
    return VectorStoreFileRow(
        id=body["id"],
        vector_store_id=body["vector_store_id"],
        project_id=project_id,
        seq=seq,
        created_at=body["created_at"],
        body=body,
        status="in_progress" if has_bytes else "failed",
        usage_bytes=0,
        batch_id=None,
        lease_owner=None,
        lease_expires_at=None,
    )


class Writer:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        data_dir: Path,
        project_id: str,
        plan: Plan,
        report: Report,
    ) -> None:
        self.sessions, self.data_dir, self.project_id = sessions, data_dir, project_id
        self.plan, self.report = plan, report
        self.seq: dict[str, int] = {}
        for bodies in plan.new.values():
            self.seq.update(_seqs(bodies))

    def rows(
        self, model: Callable[..., Any], bodies: Sequence[Body], **cols: Callable[[Body], Any]
    ) -> list[Any]:
        return [
            model(
                id=b["id"],
                project_id=self.project_id,
                seq=self.seq[b["id"]],
                created_at=b["created_at"],
                body=b,
                **{k: f(b) for k, f in cols.items()},
            )
            for b in bodies
        ]

    async def files(self, s: AsyncSession) -> None:
        rows: list[FileRow] = []
        for body in self.plan.new["file"]:
            body = dict(body)
            source = self.plan.file_sources.get(body["id"])
            if source is not None:
                data = await asyncio.to_thread(source.read_bytes)
                await storage.store_for(self.data_dir).put_bytes(self.project_id, body["id"], data)
                body["bytes"] = len(data)
                self.report.files_with_bytes += 1
            else:
                self.report.files_without_bytes.append(body["id"])
            rows.append(
                FileRow(
                    id=body["id"],
                    project_id=self.project_id,
                    seq=self.seq[body["id"]],
                    created_at=body["created_at"],
                    body=body,
                    purpose=body["purpose"],
                    expires_at=body["expires_at"],
                    content_missing=source is None,
                )
            )
        await FileRepository(s).insert_many(rows)

    async def stores(self, s: AsyncSession) -> None:
        rows = [
            _store_row(b, self.project_id, self.seq[b["id"]]) for b in self.plan.new["vector_store"]
        ]
        store_files = list(self.plan.new["vector_store.file"])
        for vs_id, (created, file_ids) in self.plan.placeholders.items():
            rows.append(
                _store_row(_placeholder(vs_id, created), self.project_id, created * 1_000_000)
            )
            store_files += [
                {
                    "id": f,
                    "object": "vector_store.file",
                    "created_at": created,
                    "vector_store_id": vs_id,
                    "last_error": None,
                    "chunking_strategy": _default_strategy(),
                    "attributes": {},
                }
                for f in file_ids
            ]
            self.report.placeholder_stores.append(vs_id)
        await VectorStoreRepository(s).insert_many(rows)
        seqs = _seqs(store_files)
        await VectorStoreFileRepository(s).insert_many(
            [
                _store_file_row(
                    b,
                    self.project_id,
                    seqs[f"{b['vector_store_id']}/{b['id']}"],
                    b["id"] in self.plan.has_bytes,
                )
                for b in store_files
            ]
        )
        self.report.created["vector_store"] += len(rows)
        self.report.created["vector_store.file"] += len(store_files)

    async def write(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Everything the plan holds; `DumpError` if another writer got there first."""
        try:
            await self.first()
            await self.threads(progress)
        except IntegrityError:
            raise DumpError(
                [
                    "an object of the dump was created by someone else during the import (another import "
                    "of it?); run the import again: what this one wrote is skipped, the rest goes in"
                ]
            ) from None

    async def first(self) -> None:
        """Files, vector stores and their files, assistants: one transaction."""
        async with self.sessions() as s, s.begin():
            await self.files(s)
            await self.stores(s)
            # The reader keeps an assistant's reasoning_effort (which the API does not show)
            # under a private key; it goes into its column, never into the stored body.
            assistants = [dict(b) for b in self.plan.new["assistant"]]
            efforts = {b["id"]: b.pop(REASONING_EFFORT, None) for b in assistants}
            await AssistantRepository(s).insert_many(
                self.rows(AssistantRow, assistants, reasoning_effort=lambda b: efforts[b["id"]])
            )
        self.report.created["file"] += len(self.plan.new["file"])
        self.report.created["assistant"] += len(self.plan.new["assistant"])

    async def threads(self, progress: Callable[[int, int], None] | None) -> None:
        groups = _by_thread(self.plan.new)
        order = list(groups)
        for start in range(0, len(order), THREAD_BATCH):
            batch = [groups[t] for t in order[start : start + THREAD_BATCH]]
            async with self.sessions() as s, s.begin():
                await self.thread_batch(s, batch)
            if progress is not None:
                progress(min(start + THREAD_BATCH, len(order)), len(order))

    async def thread_batch(self, s: AsyncSession, batch: list[dict[str, list[Body]]]) -> None:
        def part(kind: str) -> list[Body]:
            return [b for g in batch for b in g.get(kind, [])]

        threads, messages, runs, steps = (
            part(k) for k in ("thread", "thread.message", "thread.run", "thread.run.step")
        )
        await ThreadRepository(s).insert_many(self.rows(ThreadRow, threads))
        await MessageRepository(s).insert_many(
            self.rows(
                MessageRow,
                messages,
                thread_id=lambda b: b["thread_id"],
                run_id=lambda b: b["run_id"],
            )
        )
        # An export's active run is imported expired; its status there is kept in its state.
        exported = {b["id"]: b.get(EXPORTED_STATUS) for b in runs}
        runs = [{k: v for k, v in b.items() if k != EXPORTED_STATUS} for b in runs]
        await RunRepository(s).insert_many(
            self.rows(
                RunRow,
                runs,
                state=lambda b: RunState(exported_status=exported[b["id"]]).dump(),
                thread_id=lambda b: b["thread_id"],
                status=lambda b: b["status"],
                active_thread_id=lambda b: None,
                lease_owner=lambda b: None,
                lease_expires_at=lambda b: None,
            )
        )
        await RunStepRepository(s).insert_many(
            self.rows(
                RunStepRow, steps, run_id=lambda b: b["run_id"], thread_id=lambda b: b["thread_id"]
            )
        )
        for kind, bodies in (
            ("thread", threads),
            ("thread.message", messages),
            ("thread.run", runs),
            ("thread.run.step", steps),
        ):
            self.report.created[kind] += len(bodies)


def _default_strategy() -> Body:
    return {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}


def _by_thread(new: dict[str, list[Body]]) -> dict[str, dict[str, list[Body]]]:
    """Each thread's new objects (a thread already in the project may get new messages)."""
    groups: dict[str, dict[str, list[Body]]] = {}
    for body in new["thread"]:
        groups.setdefault(body["id"], {}).setdefault("thread", []).append(body)
    for kind in ("thread.message", "thread.run", "thread.run.step"):
        for body in new[kind]:
            groups.setdefault(body["thread_id"], {}).setdefault(kind, []).append(body)
    return groups


async def import_dump(
    sessions: async_sessionmaker[AsyncSession],
    data_dir: Path,
    project_id: str,
    dump: Dump,
    files_dir: Path | None = None,
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Import a dump read by `dump.read` into `project_id`; `DumpError` (nothing written) when it
    conflicts with the database."""
    report = Report(
        failed_threads=list(dump.failed_threads),
        export_warnings=dump.export_warnings,
        dry_run=dry_run,
    )
    async with sessions() as s:
        p = await plan(s, data_dir, project_id, dump, files_dir, report)
    report.runs_expired = sum(1 for r in p.new["thread.run"] if EXPORTED_STATUS in r)
    if dry_run:
        _dry_counts(p, report)
        return report
    writer = Writer(sessions, data_dir, project_id, p, report)
    await writer.write(progress)
    await _analyze(sessions)
    return report


async def _analyze(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s:
        await TransferRepository(s).analyze([*MODELS.values(), VectorStoreFileRow])
        await s.commit()


def _dry_counts(p: Plan, report: Report) -> None:
    for kind, bodies in p.new.items():
        report.created[kind] = len(bodies)
    report.created["vector_store"] += len(p.placeholders)
    report.created["vector_store.file"] += sum(len(f) for _, f in p.placeholders.values())
    report.placeholder_stores = list(p.placeholders)
    report.files_with_bytes = len(p.file_sources)
    report.files_without_bytes = [f["id"] for f in p.new["file"] if f["id"] not in p.file_sources]
