"""Reading dumps (`assistantd.transfer.dump.read`): shapes, order, and problems named by
file and field, before any database is touched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assistantd.testing import dumps
from assistantd.transfer.dump import missing_parents, read
from assistantd.transfer.load import find_bytes
from assistantd.transfer.problems import DumpError


def _thread_file(root: Path) -> Path:
    return root / "threads" / f"{dumps.THREAD}.json"


def _edit(path: Path, change: Any) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def _problems(path: Path) -> list[str]:
    with pytest.raises(DumpError) as e:
        read(path)
    assert "nothing was written" in str(e.value)
    return e.value.problems


def test_exporter_dump_reads_every_kind(tmp_path: Path) -> None:
    d = read(dumps.write_exporter_dump(tmp_path))
    counts = {k: len(v) for k, v in d.objects.items()}
    assert counts == {
        "assistant": 1,
        "thread": 1,
        "thread.message": 6,
        "thread.run": 3,
        "thread.run.step": 4,
        "file": 3,
        "vector_store": 0,
        "vector_store.file": 0,
    }
    assert d.failed_threads == ["thread_gone"]
    assert list(d.of("thread.message")) == [m["id"] for m in dumps.messages()]
    waiting = d.of("thread.run")[dumps.RUN_WAITING]
    assert (waiting["status"], waiting["required_action"], waiting["_exported_status"]) == (
        "expired",
        None,
        "requires_action",
    )
    assert missing_parents(d) == {}


def test_api_pages_newest_first_read_oldest_first(tmp_path: Path) -> None:
    d = read(dumps.write_api_pages(tmp_path))
    by_time = sorted(d.of("thread.message").values(), key=lambda m: m["created_at"])
    assert [m["id"] for m in by_time] == [m["id"] for m in dumps.messages()]
    assert list(d.of("thread.run")) == [dumps.RUN_DONE, dumps.RUN_INCOMPLETE, dumps.RUN_WAITING]
    assert len(d.of("thread.run.step")) == 4


def test_a_bad_field_is_named_with_its_file_and_path(tmp_path: Path) -> None:
    root = dumps.write_exporter_dump(tmp_path)

    def change(rec: dict[str, Any]) -> None:
        rec["messages"][1]["content"][0]["text"]["value"] = 5
        rec["runs"][0]["steps"][1]["step_details"]["type"] = "thinking"
        rec["messages"][3]["role"] = "system"

    _edit(_thread_file(root), change)
    problems = _problems(root)
    name = f"threads/{dumps.THREAD}.json"
    assert any(
        p.startswith(f"{name}: messages[1].content[0].text.value: expected str") for p in problems
    )
    assert any(p.startswith(f"{name}: runs[0].steps[1].step_details.type") for p in problems)
    assert any(
        p.startswith(f"{name}: messages[3].role: expected 'user' or 'assistant'") for p in problems
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a\u0000b", "NUL"),
        ("\ud800", "lone surrogate"),
        (2**70, "64 bits"),
    ],
)
def test_values_neither_database_stores_are_refused(
    tmp_path: Path, value: Any, message: str
) -> None:
    root = dumps.write_exporter_dump(tmp_path)
    _edit(_thread_file(root), lambda rec: rec["messages"][0]["metadata"].update(k=value))
    (problem,) = _problems(root)
    assert (
        problem.startswith(f"threads/{dumps.THREAD}.json: messages[0].metadata.k: ")
        and message in problem
    )


def test_ids_must_have_their_prefix_and_safe_characters(tmp_path: Path) -> None:
    root = dumps.write_exporter_dump(tmp_path)
    _edit(_thread_file(root), lambda rec: rec["messages"][0].update(id="msg_../../etc"))
    (problem,) = _problems(root)
    assert "messages[0].id: expected an id beginning with 'msg_'" in problem


def test_not_json_and_unknown_objects(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{nope")
    (tmp_path / "b.json").write_text(json.dumps({"object": "batch", "id": "batch_1"}))
    problems = _problems(tmp_path)
    assert problems[0].startswith("a.json: not JSON")
    assert problems[1] == "b.json: object: not an object this import reads (object: 'batch')"


def test_the_same_id_twice_with_different_fields(tmp_path: Path) -> None:
    msgs = dumps.messages()
    other = {**msgs[0], "metadata": {"k": "changed"}}
    (tmp_path / "m.json").write_text(json.dumps([dumps.thread(), msgs[0], other]))
    (problem,) = _problems(tmp_path)
    assert (
        problem.startswith("m.json: [2]: thread.message msg_u1")
        and "also at m.json: [1]" in problem
    )


def test_v1_objects_read_as_v2(tmp_path: Path) -> None:
    a = {
        **dumps.assistants()[0],
        "tools": [{"type": "retrieval"}, {"type": "code_interpreter"}],
        "tool_resources": None,
        "file_ids": [dumps.FILE_CSV],
    }
    m = {**dumps.messages()[3], "file_ids": [dumps.FILE_DOC]}
    del m["attachments"]
    cited = dumps.messages()[1]
    cited["content"][0]["text"]["annotations"][0]["file_citation"]["quote"] = "every May"  # v1
    (tmp_path / "v1.json").write_text(json.dumps([a, dumps.thread(), m, cited]))
    d = read(tmp_path)
    got = d.of("assistant")[a["id"]]
    assert got["tools"] == [{"type": "file_search"}, {"type": "code_interpreter"}]
    assert got["tool_resources"] == {"code_interpreter": {"file_ids": [dumps.FILE_CSV]}}
    assert "file_ids" not in got
    (ann,) = d.of("thread.message")[cited["id"]]["content"][0]["text"]["annotations"]
    assert ann["file_citation"] == {"file_id": dumps.FILE_DOC}
    assert d.of("thread.message")[m["id"]]["attachments"] == [
        {"file_id": dumps.FILE_DOC, "tools": [{"type": "file_search"}]}
    ]


def test_a_message_of_a_thread_not_in_the_dump_needs_it_in_the_project(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text(json.dumps(dumps.messages()[:1]))
    assert missing_parents(read(tmp_path)) == {"thread": {dumps.THREAD}}


def test_file_bytes_are_found_by_id_or_unique_filename(tmp_path: Path) -> None:
    files = [
        {"id": "file-a1", "filename": "a.pdf"},
        {"id": "file-b2", "filename": "b.txt"},
        {"id": "file-c3", "filename": "same.txt"},
        {"id": "file-d4", "filename": "same.txt"},
    ]
    for name in ("file-a1.pdf", "b.txt", "same.txt", "unrelated.bin"):
        (tmp_path / name).write_bytes(name.encode())
    found = find_bytes(tmp_path, files)
    assert {k: v.name for k, v in found.items()} == {"file-a1": "file-a1.pdf", "file-b2": "b.txt"}
    assert find_bytes(tmp_path / "absent", files) == {}
