"""Reading a dump: every JSON file under a path, whatever shape each has, into one `Dump`.

Shapes read (each file may hold any of them, and a directory any mix):

- the exporter's directory: `manifest.json` (`assistants-export-manifest/v1`),
  `assistants.json` (a list of assistants) and `threads/<id>.json`
  (`assistants-thread-export/v1`: `thread`, `messages`, `runs` each with its `steps`,
  `files` by id); a thread the exporter could not fetch (`thread: null`) is counted, not read;
- a list page as the API answered it (`{"object": "list", "data": [...]}`, e.g. the pages of
  `client.beta.threads.messages.list`), a plain list, or one object: each object is read by
  its `object` field. A page in `desc` order (the API's default) is read oldest first;
- `assistantd export`'s additions: `files.json` (every file) and `vector_stores.json`
  (each store with its `files`). The bytes of files are read from a files directory
  (`files/` beside the dump unless told otherwise), never from JSON.

Nothing is written here: the whole dump is read and checked first, and every problem is
reported with its file and field (`DumpError`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistantd.transfer import objects
from assistantd.transfer.problems import MAX_PROBLEMS, DumpError, Invalid, Where

THREAD_SCHEMA = "assistants-thread-export/v1"
MANIFEST_SCHEMA = "assistants-export-manifest/v1"
#: The directory of file bytes beside a dump, as `assistantd export` writes it.
FILES_DIR = "files"

Body = dict[str, Any]


@dataclass
class Dump:
    """Every object of a dump by kind (the `object` names), in the order to insert them."""

    objects: dict[str, dict[Any, Body]] = field(
        default_factory=lambda: {k: {} for k in objects.KINDS}
    )
    where: dict[tuple[str, Any], Where] = field(default_factory=dict)
    #: Threads the exporter recorded as failed (deleted before the export): not importable.
    failed_threads: list[str] = field(default_factory=list)
    #: Problems the exporter itself recorded (`errors` of a thread file), as warnings.
    export_warnings: int = 0

    def of(self, kind: str) -> dict[Any, Body]:
        return self.objects[kind]

    def count(self) -> int:
        return sum(len(v) for v in self.objects.values())


def key_of(kind: str, body: Body) -> Any:
    """A store file is keyed by its store and file, every other object by its id."""
    return (body["vector_store_id"], body["id"]) if kind == "vector_store.file" else body["id"]


class Reader:
    def __init__(self) -> None:
        self.dump = Dump()
        self.problems: list[str] = []

    def problem(self, exc: Invalid) -> None:
        self.problems.append(str(exc))

    def add(self, kind: str, obj: Any, where: Where) -> None:
        try:
            body = objects.KINDS[kind](obj, where)
        except Invalid as exc:
            self.problem(exc)
            return
        key = key_of(kind, body)
        bucket = self.dump.of(kind)
        if key in bucket:
            if bucket[key] != body and kind != "file":
                self.problems.append(
                    f"{where}: {kind} {body['id']} is also at {self.dump.where[(kind, key)]}, "
                    "with different fields"
                )
            return
        bucket[key] = body
        self.dump.where[(kind, key)] = where

    def value(self, value: Any, where: Where) -> None:
        """Any JSON value of a dump file: an object, a list of them, a page, a record."""
        if isinstance(value, list):
            for i in _oldest_first(value):
                self.value(value[i], where.at(i))
            return
        if not isinstance(value, dict):
            self.problem(
                Invalid(where, "expected an API object, a list of them, or an export file")
            )
            return
        schema, kind = value.get("export_schema"), value.get("object")
        if schema == MANIFEST_SCHEMA:
            return
        if schema == THREAD_SCHEMA:
            self.thread_record(value, where)
        elif kind == "list" and isinstance(value.get("data"), list):
            self.value(value["data"], where.at("data"))
        elif kind == "thread.run" and isinstance(value.get("steps"), list):
            self.add(kind, {k: v for k, v in value.items() if k != "steps"}, where)
            self.value(value["steps"], where.at("steps"))
        elif kind == "vector_store" and isinstance(value.get("files"), list):
            self.add(kind, {k: v for k, v in value.items() if k != "files"}, where)
            for i, f in enumerate(value["files"]):
                f = {"vector_store_id": value.get("id"), **f} if isinstance(f, dict) else f
                self.add("vector_store.file", f, where.at("files").at(i))
        elif kind in objects.KINDS:
            self.add(kind, value, where)
        else:
            self.problem(
                Invalid(
                    where.at("object") if "object" in value else where,
                    f"not an object this import reads (object: {kind!r})",
                )
            )

    def thread_record(self, rec: Body, where: Where) -> None:
        if rec.get("thread") is None:
            self.dump.failed_threads.append(str(rec.get("thread_id")))
            return
        self.dump.export_warnings += len(rec.get("errors") or [])
        self.value(rec["thread"], where.at("thread"))
        for key in ("messages", "runs"):
            if not isinstance(rec.get(key, []), list):
                self.problem(Invalid(where.at(key), "expected a list"))
                continue
            self.value(rec.get(key, []), where.at(key))
        files = rec.get("files") or {}
        if not isinstance(files, dict):
            self.problem(Invalid(where.at("files"), "expected file objects by id"))
            return
        for file_id, f in files.items():
            self.value(f, where.at("files").at(file_id))


def _oldest_first(items: list[Any]) -> list[int]:
    """Indexes of a list oldest first: a list whose `created_at` only goes down (a `desc` page)
    is read backwards; any other order is kept (creation ties keep the dump's order)."""
    times = [i.get("created_at") if isinstance(i, dict) else None for i in items]
    if len(times) > 1 and all(isinstance(t, int) for t in times):
        ts: list[int] = times  # type: ignore[assignment]
        if all(a >= b for a, b in itertools.pairwise(ts)) and ts[0] > ts[-1]:
            return list(range(len(items) - 1, -1, -1))
    return list(range(len(items)))


def _json_files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    skip = root / FILES_DIR
    for path in sorted(root.rglob("*.json")):
        if path.is_file() and skip not in path.parents:
            yield path


def read(path: Path) -> Dump:
    """Read and check a dump (a directory or one JSON file); `DumpError` lists its problems."""
    if not path.exists():
        raise DumpError([f"{path}: no such file or directory"])
    reader = Reader()
    found = False
    for file in _json_files(path):
        found = True
        name = str(file.relative_to(path)) if path.is_dir() else file.name
        try:
            value = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            reader.problems.append(f"{name}: not JSON ({exc})")
            continue
        reader.value(value, Where(name))
        if len(reader.problems) >= MAX_PROBLEMS:
            break
    if not found:
        raise DumpError([f"{path}: no .json files"])
    _check_parents(reader)
    if reader.problems:
        raise DumpError(reader.problems)
    return reader.dump


#: Each child kind, the field naming its parent, and the parent's kind.
PARENTS = (
    ("thread.message", "thread_id", "thread"),
    ("thread.run", "thread_id", "thread"),
    ("thread.run.step", "run_id", "thread.run"),
    ("vector_store.file", "vector_store_id", "vector_store"),
)


def _check_parents(reader: Reader) -> None:
    """A run step's thread is its run's; a run's messages are in its thread."""
    d = reader.dump
    for step in d.of("thread.run.step").values():
        run = d.of("thread.run").get(step["run_id"])
        if run is not None and run["thread_id"] != step["thread_id"]:
            where = d.where[("thread.run.step", step["id"])]
            reader.problems.append(
                f"{where}: thread_id {step['thread_id']} is not the thread of "
                f"run {run['id']} ({run['thread_id']})"
            )


def missing_parents(dump: Dump) -> dict[str, set[str]]:
    """Parent ids (by parent kind) that children name but the dump does not hold: they must
    already be in the project."""
    out: dict[str, set[str]] = {}
    for child, key, parent in PARENTS:
        have = dump.of(parent)
        for body in dump.of(child).values():
            if body[key] not in have:
                out.setdefault(parent, set()).add(body[key])
    return out
