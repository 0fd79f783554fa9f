"""Dumps as teams hold them, for the import tests and benchmark.

`write_exporter_dump(root)` writes what `redwoodworksco/assistants-api-export` writes
(`manifest.json`, `assistants.json`, `threads/<id>.json`) holding every kind of object and
the edges (tool calls with outputs, code interpreter images, file citations and paths, an
incomplete run, a run still `requires_action`, unicode), in OpenAI's shapes; bytes of one
file go to `root/files/`. `write_api_pages(root)` writes the same objects as API list pages
(`desc`, as `list()` answers by default). `write_many_threads` is the benchmark's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

T0 = 1_714_000_000
ASST = "asst_abcDEF0123456789xyzABCDE"
THREAD = "thread_abcDEF0123456789xyzAB"
FILE_DOC = "file-Doc0123456789abcdefABCD"
FILE_IMG = "file-Img0123456789abcdefABCD"
FILE_CSV = "file-Csv0123456789abcdefABCD"
VS = "vs_Store0123456789abcdefAB"
RUN_DONE = "run_Done0123456789abcdefAB"
RUN_INCOMPLETE = "run_Inco0123456789abcdefAB"
RUN_WAITING = "run_Wait0123456789abcdefAB"
DOC_TEXT = b"The Rhine-Main sheep festival is held every May in Darmstadt.\n"


def _run(run_id: str, status: str, created: int, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": run_id,
        "object": "thread.run",
        "created_at": created,
        "assistant_id": ASST,
        "thread_id": THREAD,
        "status": status,
        "started_at": created,
        "expires_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": created + 3 if status == "completed" else None,
        "required_action": None,
        "last_error": None,
        "model": "gpt-4o",
        "instructions": "Be brief. Ünïcødé ✓",
        "tools": [
            {"type": "code_interpreter"},
            {"type": "file_search"},
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "description": "d",
                    "parameters": {"type": "object", "properties": {}},
                    "strict": False,
                },
            },
        ],
        "tool_resources": {},
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "max_completion_tokens": None,
        "max_prompt_tokens": None,
        "truncation_strategy": {"type": "auto", "last_messages": None},
        "incomplete_details": None,
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        "response_format": "auto",
        "tool_choice": "auto",
        "parallel_tool_calls": True,
    }
    body.update(over)
    return body


def _msg(
    msg_id: str, role: str, created: int, content: list[dict[str, Any]], **over: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": msg_id,
        "object": "thread.message",
        "created_at": created,
        "assistant_id": None,
        "thread_id": THREAD,
        "run_id": None,
        "role": role,
        "content": content,
        "attachments": [],
        "metadata": {},
        "status": "completed",
        "incomplete_details": None,
        "completed_at": created,
        "incomplete_at": None,
    }
    body.update(over)
    return body


def _text(value: str, annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "text", "text": {"value": value, "annotations": annotations or []}}


def _step(step_id: str, run_id: str, created: int, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": step_id,
        "object": "thread.run.step",
        "created_at": created,
        "assistant_id": ASST,
        "thread_id": THREAD,
        "run_id": run_id,
        "type": details["type"],
        "status": "completed",
        "step_details": details,
        "last_error": None,
        "expired_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": created + 1,
        "metadata": {},
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


def assistants() -> list[dict[str, Any]]:
    return [
        {
            "id": ASST,
            "object": "assistant",
            "created_at": T0,
            "name": "Researcher 🔬",
            "description": None,
            "model": "gpt-4o",
            "instructions": "Answer from the files.",
            "tools": [
                {"type": "code_interpreter"},
                {
                    "type": "file_search",
                    "file_search": {"ranking_options": {"ranker": "auto", "score_threshold": 0.0}},
                },
            ],
            "tool_resources": {
                "code_interpreter": {"file_ids": [FILE_CSV]},
                "file_search": {"vector_store_ids": [VS]},
            },
            "metadata": {"team": "search"},
            "top_p": 1.0,
            "temperature": 0.5,
            "response_format": {"type": "json_object"},
        }
    ]


def files() -> dict[str, dict[str, Any]]:
    def f(file_id: str, name: str, size: int, purpose: str = "assistants") -> dict[str, Any]:
        return {
            "object": "file",
            "id": file_id,
            "purpose": purpose,
            "filename": name,
            "bytes": size,
            "created_at": T0 + 1,
            "expires_at": None,
            "status": "processed",
            "status_details": None,
        }

    return {
        FILE_DOC: f(FILE_DOC, "festival.txt", len(DOC_TEXT)),
        FILE_IMG: f(FILE_IMG, "plot.png", 2048, "assistants_output"),
        FILE_CSV: f(FILE_CSV, "data.csv", 100),
    }


def messages() -> list[dict[str, Any]]:
    citation = {
        "type": "file_citation",
        "text": "【4:0†festival.txt】",
        "start_index": 22,
        "end_index": 40,
        "file_citation": {"file_id": FILE_DOC},
    }
    path = {
        "type": "file_path",
        "text": "sandbox:/mnt/data/plot.png",
        "start_index": 0,
        "end_index": 26,
        "file_path": {"file_id": FILE_IMG},
    }
    return [
        _msg(
            "msg_u1aaaaaaaaaaaaaaaaaaaaaa",
            "user",
            T0 + 10,
            [_text("When is the festival? — 日本語 🐑")],
            attachments=[{"file_id": FILE_DOC, "tools": [{"type": "file_search"}]}],
            metadata={"k": "v"},
        ),
        _msg(
            "msg_a1aaaaaaaaaaaaaaaaaaaaaa",
            "assistant",
            T0 + 12,
            [_text("Every May in Darmstadt.【4:0†festival.txt】", [citation])],
            assistant_id=ASST,
            run_id=RUN_DONE,
        ),
        _msg(
            "msg_a2aaaaaaaaaaaaaaaaaaaaaa",
            "assistant",
            T0 + 12,
            [
                {"type": "image_file", "image_file": {"file_id": FILE_IMG, "detail": "auto"}},
                _text("sandbox:/mnt/data/plot.png", [path]),
            ],
            assistant_id=ASST,
            run_id=RUN_DONE,
        ),
        _msg(
            "msg_u2aaaaaaaaaaaaaaaaaaaaaa",
            "user",
            T0 + 20,
            [
                _text("And a picture?"),
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/a.png", "detail": "low"},
                },
            ],
        ),
        _msg(
            "msg_a3aaaaaaaaaaaaaaaaaaaaaa",
            "assistant",
            T0 + 21,
            [_text("Cut off mid")],
            assistant_id=ASST,
            run_id=RUN_INCOMPLETE,
            status="incomplete",
            completed_at=None,
            incomplete_at=T0 + 22,
            incomplete_details={"reason": "max_tokens"},
        ),
        _msg("msg_u3aaaaaaaaaaaaaaaaaaaaaa", "user", T0 + 30, [_text("look it up")]),
    ]


def runs() -> list[dict[str, Any]]:
    ci_call = {
        "id": "call_ci000000000000000000000",
        "type": "code_interpreter",
        "code_interpreter": {
            "input": "plot()",
            "outputs": [
                {"type": "logs", "logs": "ok"},
                {"type": "image", "image": {"file_id": FILE_IMG}},
            ],
        },
    }
    fs_call = {"id": "call_fs000000000000000000000", "type": "file_search", "file_search": {}}
    fn_call = {
        "id": "call_fn000000000000000000000",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"q": "x"}', "output": None},
    }
    done = _run(RUN_DONE, "completed", T0 + 11)
    done["steps"] = [
        _step(
            "step_1aaaaaaaaaaaaaaaaaaaaaa",
            RUN_DONE,
            T0 + 11,
            {"type": "tool_calls", "tool_calls": [fs_call]},
        ),
        _step(
            "step_2aaaaaaaaaaaaaaaaaaaaaa",
            RUN_DONE,
            T0 + 11,
            {"type": "tool_calls", "tool_calls": [ci_call]},
        ),
        _step(
            "step_3aaaaaaaaaaaaaaaaaaaaaa",
            RUN_DONE,
            T0 + 12,
            {
                "type": "message_creation",
                "message_creation": {"message_id": "msg_a1aaaaaaaaaaaaaaaaaaaaaa"},
            },
        ),
    ]
    incomplete = _run(
        RUN_INCOMPLETE,
        "incomplete",
        T0 + 21,
        incomplete_details={"reason": "max_completion_tokens"},
        max_completion_tokens=5,
    )
    incomplete["steps"] = []
    waiting = _run(
        RUN_WAITING,
        "requires_action",
        T0 + 31,
        required_action={
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {
                "tool_calls": [
                    {
                        "id": fn_call["id"],
                        "type": "function",
                        "function": {"name": "lookup", "arguments": "{}"},
                    }
                ]
            },
        },
        usage=None,
        started_at=T0 + 31,
    )
    waiting["steps"] = [
        _step(
            "step_4aaaaaaaaaaaaaaaaaaaaaa",
            RUN_WAITING,
            T0 + 31,
            {"type": "tool_calls", "tool_calls": [fn_call]},
        )
    ]
    waiting["steps"][0]["status"] = "in_progress"
    return [done, incomplete, waiting]


def thread() -> dict[str, Any]:
    return {
        "id": THREAD,
        "object": "thread",
        "created_at": T0 + 5,
        "metadata": {"user": "u-1"},
        "tool_resources": {
            "code_interpreter": {"file_ids": []},
            "file_search": {"vector_store_ids": [VS]},
        },
    }


def _dump_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False), encoding="utf-8")


def write_exporter_dump(root: Path, *, with_bytes: bool = True) -> Path:
    """The exporter's layout; `root/files/<id>.txt` holds the one file whose bytes a team kept."""
    _dump_json(
        root / "manifest.json",
        {
            "export_schema": "assistants-export-manifest/v1",
            "script_version": "1.0.0",
            "exported_at": "2026-08-20T10:00:00+00:00",
            "endpoint": "openai",
            "base_url": "https://api.openai.com/v1",
            "assistants_count": 1,
            "threads_requested": 2,
            "threads_exported": 1,
            "threads_failed": [{"thread_id": "thread_gone", "error": "not_found_or_deleted"}],
            "notes": [],
        },
    )
    _dump_json(root / "assistants.json", assistants())
    _dump_json(
        root / "threads" / f"{THREAD}.json",
        {
            "export_schema": "assistants-thread-export/v1",
            "thread_id": THREAD,
            "exported_at": "2026-08-20T10:00:01+00:00",
            "thread": thread(),
            "messages": messages(),
            "runs": runs(),
            "files": files(),
            "errors": [],
        },
    )
    _dump_json(
        root / "threads" / "thread_gone.json",
        {
            "export_schema": "assistants-thread-export/v1",
            "thread_id": "thread_gone",
            "exported_at": "x",
            "thread": None,
            "messages": [],
            "runs": [],
            "files": {},
            "errors": [{"object": "thread", "id": "thread_gone", "error": "not_found_or_deleted"}],
        },
    )
    if with_bytes:
        (root / "files").mkdir(exist_ok=True)
        (root / "files" / f"{FILE_DOC}.txt").write_bytes(DOC_TEXT)
    return root


def _page(items: list[dict[str, Any]]) -> dict[str, Any]:
    items = sorted(items, key=lambda i: i["created_at"], reverse=True)
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": False,
    }


def write_api_pages(root: Path) -> Path:
    """The same objects as pages of `list()` (newest first), one file per call."""
    rs = runs()
    steps = [s for r in rs for s in r.pop("steps")]
    _dump_json(root / "assistants.json", _page(assistants()))
    _dump_json(root / "thread.json", thread())
    _dump_json(root / "messages.json", _page([m for m in messages() if m["created_at"] != T0 + 12]))
    _dump_json(root / "messages-2.json", [m for m in messages() if m["created_at"] == T0 + 12])
    _dump_json(root / "runs.json", _page(rs))
    _dump_json(root / "steps.json", _page(steps))
    _dump_json(root / "files.json", _page(list(files().values())))
    return root


def write_many_threads(root: Path, threads: int, messages_per_thread: int) -> Path:
    """`threads` exporter thread files of `messages_per_thread` messages each (the benchmark)."""
    (root / "threads").mkdir(parents=True, exist_ok=True)
    for t in range(threads):
        thread_id = f"thread_bench{t:016d}"
        msgs = [
            _msg(
                f"msg_bench{t:010d}x{i:06d}",
                "user" if i % 2 == 0 else "assistant",
                T0 + t + i,
                [_text(f"message {i} of thread {t}: some ordinary words")],
                thread_id=thread_id,
            )
            for i in range(messages_per_thread)
        ]
        record = {
            "export_schema": "assistants-thread-export/v1",
            "thread_id": thread_id,
            "exported_at": "x",
            "thread": {
                "id": thread_id,
                "object": "thread",
                "created_at": T0 + t,
                "metadata": {},
                "tool_resources": {},
            },
            "messages": msgs,
            "runs": [],
            "files": {},
            "errors": [],
        }
        (root / "threads" / f"{thread_id}.json").write_text(json.dumps(record), encoding="utf-8")
    return root
