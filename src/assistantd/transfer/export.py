"""`assistantd export`: a project in the exporter's format, read back by `assistantd import`.

    PATH/manifest.json          assistants-export-manifest/v1, with the counts
    PATH/assistants.json        every assistant, oldest first
    PATH/threads/<id>.json      assistants-thread-export/v1: thread, messages, runs with
                                their steps, the files they name
    PATH/files.json             every file object (an addition: the exporter had only
                                the files threads name)
    PATH/vector_stores.json     every store with its `files` (an addition)
    PATH/files/<file id>        the bytes of every file that has them

Objects are written as the API shows them (run steps with their file_search result
content), so an export imported into an empty database answers the same wire objects.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistantd.assistants.models import AssistantRow
from assistantd.core.db import ObjectRow
from assistantd.files import storage
from assistantd.files.models import FileRow
from assistantd.files.repository import live
from assistantd.messages.models import MessageRow
from assistantd.runs.models import RunRow, RunStepRow
from assistantd.runs.objects import step_view
from assistantd.threads.models import ThreadRow
from assistantd.transfer.dump import FILES_DIR, MANIFEST_SCHEMA, THREAD_SCHEMA
from assistantd.transfer.repository import TransferRepository
from assistantd.vector_stores.models import VectorStoreFileRow, VectorStoreRow
from assistantd.vector_stores.repository import VectorStoreFileRepository
from assistantd.vector_stores.service import file_wire, store_wire

Body = dict[str, Any]


async def _rows(
    s: AsyncSession, model: type[ObjectRow], project_id: str, *where: Any
) -> Sequence[Any]:
    return await TransferRepository(s).all_of(model, project_id, *where)


def _write(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def referenced_files(messages: Sequence[Body], steps: Sequence[Body]) -> set[str]:
    """The files messages and steps name: attachments, images, citations, code outputs."""
    ids: set[str] = set()
    for m in messages:
        ids.update(a["file_id"] for a in m.get("attachments") or [])
        for part in m.get("content") or []:
            if part.get("type") == "image_file":
                ids.add(part["image_file"]["file_id"])
            elif part.get("type") == "text":
                for ann in part["text"].get("annotations") or []:
                    ids.add((ann.get(ann.get("type")) or {}).get("file_id", ""))
    for step in steps:
        for call in (step.get("step_details") or {}).get("tool_calls") or []:
            for out in (call.get("code_interpreter") or {}).get("outputs") or []:
                if out.get("type") == "image":
                    ids.add(out["image"]["file_id"])
    ids.discard("")
    return ids


async def _thread_record(
    s: AsyncSession, project_id: str, thread: ThreadRow, files: dict[str, Body]
) -> Body:
    messages = [
        r.body for r in await _rows(s, MessageRow, project_id, MessageRow.thread_id == thread.id)
    ]
    runs = [dict(r.body) for r in await _rows(s, RunRow, project_id, RunRow.thread_id == thread.id)]
    steps = await _rows(s, RunStepRow, project_id, RunStepRow.thread_id == thread.id)
    by_run: dict[str, list[Body]] = {}
    for st in steps:
        by_run.setdefault(st.run_id, []).append(step_view(st.body, include_content=True))
    step_bodies = [b for bodies in by_run.values() for b in bodies]
    named = referenced_files(messages, step_bodies)
    return {
        "export_schema": THREAD_SCHEMA,
        "thread_id": thread.id,
        "exported_at": _now(),
        "thread": dict(thread.body),
        "messages": messages,
        "runs": [{**r, "steps": by_run.get(r["id"], [])} for r in runs],
        "files": {f: files[f] for f in sorted(named) if f in files},
        "errors": [],
    }


def _version() -> str:
    try:
        return metadata.version("assistantd")
    except metadata.PackageNotFoundError:
        return "unknown"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


async def _stores(s: AsyncSession, project_id: str) -> list[Body]:
    stores = await _rows(s, VectorStoreRow, project_id)
    counts = await VectorStoreFileRepository(s).counts_by_store([r.id for r in stores])
    out = []
    for row in stores:
        files = await _rows(
            s, VectorStoreFileRow, project_id, VectorStoreFileRow.vector_store_id == row.id
        )
        out.append({**store_wire(row, counts.get(row.id)), "files": [file_wire(f) for f in files]})
    return out


async def export_project(
    sessions: async_sessionmaker[AsyncSession], data_dir: Path, project_id: str, out: Path
) -> Counter[str]:
    """Write the project under `out` (made if needed); returns the count of each kind."""
    (out / "threads").mkdir(parents=True, exist_ok=True)
    (out / FILES_DIR).mkdir(exist_ok=True)
    counts: Counter[str] = Counter()
    async with sessions() as s:
        assistants = [dict(r.body) for r in await _rows(s, AssistantRow, project_id)]
        files = {r.id: dict(r.body) for r in await _rows(s, FileRow, project_id, live())}
        store = storage.store_for(data_dir)
        for file_id in files:
            target = out / FILES_DIR / file_id
            try:
                # A local store's file is copied on disk, not read into memory (up to 512 MB).
                path = await store.local_path(project_id, file_id)
                if path is not None:
                    await asyncio.to_thread(shutil.copyfile, path, target)
                else:
                    await asyncio.to_thread(
                        target.write_bytes, await store.get_bytes(project_id, file_id)
                    )
            except FileNotFoundError:
                continue
            counts["file bytes"] += 1
        stores = await _stores(s, project_id)
        for thread in await _rows(s, ThreadRow, project_id):
            record = await _thread_record(s, project_id, thread, files)
            _write(out / "threads" / f"{thread.id}.json", record)
            counts["threads"] += 1
            counts["messages"] += len(record["messages"])
            counts["runs"] += len(record["runs"])
            counts["run steps"] += sum(len(r["steps"]) for r in record["runs"])
    _write(out / "assistants.json", assistants)
    _write(out / "files.json", list(files.values()))
    _write(out / "vector_stores.json", stores)
    counts.update(
        {
            "assistants": len(assistants),
            "files": len(files),
            "vector stores": len(stores),
            "vector store files": sum(len(v["files"]) for v in stores),
        }
    )
    _write(
        out / "manifest.json",
        {
            "export_schema": MANIFEST_SCHEMA,
            "script_version": f"assistantd {_version()}",
            "exported_at": _now(),
            "endpoint": "assistantd",
            "base_url": None,
            "assistants_count": len(assistants),
            "threads_requested": counts["threads"],
            "threads_exported": counts["threads"],
            "threads_failed": [],
            "notes": [
                "Written by `assistantd export`; `assistantd import` reads it back. files/ holds the bytes "
                "of every file that has them."
            ],
        },
    )
    return counts
