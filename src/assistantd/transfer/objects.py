"""Each kind of object of a dump, checked and turned into the body its table stores.

A body keeps the object's own fields (its id and `created_at` included) and fills the ones
an older export lacks with the values the API would have shown; fields the server derives
at read time (a vector store's `file_counts`, a store file's `status`) are dropped, and
anything unknown is dropped too, so every imported object answers in the v2 shape.
v1 objects are read as OpenAI mapped them onto v2 (`retrieval` is `file_search`, an
assistant's `file_ids` are its code interpreter's files, a message's are attachments).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from assistantd.retrieval import ChunkingStrategy, InvalidChunkingStrategy
from assistantd.transfer.problems import Invalid, Where

#: Unix seconds must fit the INTEGER columns of both databases.
MAX_TIME = 2**31 - 1
MAX_ID = 64
MAX_DEPTH = 64
#: After the prefix: what OpenAI's ids are made of (ids also name files of an export).
_ID_TAIL = re.compile(r"[A-Za-z0-9_-]+")
RUN_TERMINAL = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})
RUN_STATUSES = RUN_TERMINAL | {"queued", "in_progress", "requires_action", "cancelling"}
STEP_STATUSES = frozenset({"in_progress", "cancelled", "failed", "completed", "expired"})
MESSAGE_STATUSES = frozenset({"in_progress", "incomplete", "completed"})
#: The key a read run body carries (in the plan only; the writer moves it to the run's
#: state) when the export's run was still active: its status there.
EXPORTED_STATUS = "_exported_status"
#: Where the reader keeps an assistant's reasoning_effort until the loader puts it in its column.
REASONING_EFFORT = "_reasoning_effort"
PART_TYPES = {
    "text": "text",
    "image_file": "image_file",
    "image_url": "image_url",
    "refusal": "refusal",
}

Body = dict[str, Any]


# -- values ----------------------------------------------------------------------------


def check_value(value: Any, where: Where) -> None:
    """What both databases store: valid Unicode without NUL, 64-bit integers, finite numbers,
    at most `MAX_DEPTH` levels. The walk builds no path unless it finds a problem."""
    bad = _first_bad(value, 0)
    if bad is not None:
        path, message = bad
        for key in reversed(path):
            where = where.at(key)
        raise Invalid(where, message)


def _first_bad(value: Any, depth: int) -> tuple[list[str | int], str] | None:
    """The path (innermost key first) and problem of the first bad value, else None."""
    kind = type(value)
    if kind is str:
        problem = _bad_text(value)
        return ([], problem) if problem else None
    if kind is int:
        return None if -(2**63) <= value < 2**63 else ([], "integer does not fit in 64 bits")
    if kind is float:
        return None if math.isfinite(value) else ([], "number is not finite")
    if kind is dict or kind is list:
        if depth >= MAX_DEPTH:
            return [], f"nested deeper than {MAX_DEPTH} levels"
        items: Any = value.items() if kind is dict else enumerate(value)
        for k, v in items:
            problem = _bad_text(k) if isinstance(k, str) else None
            found = ([], problem) if problem else _first_bad(v, depth + 1)
            if found is not None:
                found[0].append(k)
                return found
    return None


def _bad_text(text: str) -> str | None:
    if "\x00" in text:
        return "contains NUL (\\u0000), which PostgreSQL cannot store"
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None


def _id(obj: Body, key: str, prefix: str, where: Where, *, optional: bool = False) -> str | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if (
        not isinstance(value, str)
        or not value.startswith(prefix)
        or len(value) > MAX_ID
        or not _ID_TAIL.fullmatch(value[len(prefix) :])
    ):
        raise Invalid(
            where.at(key),
            f"expected an id beginning with '{prefix}' (letters, digits, '_' "
            f"and '-', at most {MAX_ID} characters), got {value!r}",
        )
    return value


def _time(obj: Body, key: str, where: Where, *, optional: bool = False) -> int | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TIME:
        raise Invalid(where.at(key), f"expected Unix seconds, got {value!r}")
    return value


def _typed(obj: Body, key: str, kind: type | tuple[type, ...], where: Where, default: Any) -> Any:
    value = obj.get(key)
    if value is None:  # absent or null: what the API would have shown
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise Invalid(where.at(key), f"expected {name}, got {type(value).__name__}")
    return value


def _metadata(obj: Body, where: Where) -> dict[str, str]:
    meta = _typed(obj, "metadata", dict, where, {}) or {}
    for k, v in meta.items():
        if not isinstance(v, str):
            raise Invalid(where.at("metadata").at(k), "metadata values must be strings")
    return dict(meta)


def _choice(obj: Body, key: str, allowed: frozenset[str], where: Where, default: str) -> str:
    value = obj.get(key, default)
    if value not in allowed:
        raise Invalid(where.at(key), f"expected one of {', '.join(sorted(allowed))}, got {value!r}")
    return str(value)


def _start(obj: Any, kind: str, prefix: str, where: Where) -> tuple[Body, str, int]:
    if not isinstance(obj, dict):
        raise Invalid(where, f"expected a {kind} object")
    check_value(obj, where)
    object_id = _id(obj, "id", prefix, where)
    created = _time(obj, "created_at", where)
    assert object_id is not None and created is not None
    return obj, object_id, created


# -- tools and resources ---------------------------------------------------------------


def _tools(obj: Body, where: Where) -> list[Body]:
    out = []
    for i, tool in enumerate(_typed(obj, "tools", list, where, []) or []):
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise Invalid(where.at("tools").at(i), "expected a tool with a 'type'")
        out.append({"type": "file_search"} if tool["type"] == "retrieval" else dict(tool))
    return out


def _id_list(value: Any, prefix: str, where: Where) -> list[str]:
    if not isinstance(value, list):
        raise Invalid(where, "expected a list of ids")
    return [str(_id({"id": v}, "id", prefix, where.at(i))) for i, v in enumerate(value)]


def _tool_resources(obj: Body, where: Where) -> Body:
    res = _typed(obj, "tool_resources", dict, where, {}) or {}
    w = where.at("tool_resources")
    out: Body = {}
    ci = res.get("code_interpreter")
    if isinstance(ci, dict):
        out["code_interpreter"] = {
            "file_ids": _id_list(
                ci.get("file_ids") or [], "file-", w.at("code_interpreter").at("file_ids")
            )
        }
    fs = res.get("file_search")
    if isinstance(fs, dict):
        out["file_search"] = {
            "vector_store_ids": _id_list(
                fs.get("vector_store_ids") or [], "vs_", w.at("file_search").at("vector_store_ids")
            )
        }
    return out


# -- the kinds -------------------------------------------------------------------------


def assistant(obj: Any, where: Where) -> Body:
    a, object_id, created = _start(obj, "assistant", "asst_", where)
    tools = _tools(a, where)
    resources = _tool_resources(a, where)
    v1_files = a.get("file_ids")
    if (
        v1_files
        and "code_interpreter" not in resources
        and any(t["type"] == "code_interpreter" for t in tools)
    ):
        resources["code_interpreter"] = {
            "file_ids": _id_list(v1_files, "file-", where.at("file_ids"))
        }
    body: Body = {
        "id": object_id,
        "object": "assistant",
        "created_at": created,
        "name": _typed(a, "name", str, where, None),
        "description": _typed(a, "description", str, where, None),
        "model": _typed(a, "model", str, where, ""),
        "instructions": _typed(a, "instructions", str, where, None),
        "tools": tools,
        "tool_resources": resources,
        "metadata": _metadata(a, where),
        "top_p": _typed(a, "top_p", (int, float), where, 1.0),
        "temperature": _typed(a, "temperature", (int, float), where, 1.0),
        "response_format": a.get("response_format") or "auto",
    }
    if a.get("reasoning_effort") is not None:
        body[REASONING_EFFORT] = _typed(a, "reasoning_effort", str, where, None)
    return body


def thread(obj: Any, where: Where) -> Body:
    t, object_id, created = _start(obj, "thread", "thread_", where)
    return {
        "id": object_id,
        "object": "thread",
        "created_at": created,
        "metadata": _metadata(t, where),
        "tool_resources": _tool_resources(t, where),
    }


def _annotation(ann: Any, where: Where) -> Body:
    """A citation in the v2 shape (a v1 citation's `quote` is dropped)."""
    if not isinstance(ann, dict) or ann.get("type") not in ("file_citation", "file_path"):
        raise Invalid(where, "expected a file_citation or file_path annotation")
    kind = ann["type"]
    inner = ann.get(kind)
    if not isinstance(inner, dict):
        raise Invalid(where.at(kind), "expected an object with a 'file_id'")
    return {
        "type": kind,
        "text": _typed(ann, "text", str, where, ""),
        kind: {"file_id": _id(inner, "file_id", "file-", where.at(kind))},
        "start_index": _typed(ann, "start_index", int, where, 0),
        "end_index": _typed(ann, "end_index", int, where, 0),
    }


def _part(part: Any, where: Where) -> Body:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind not in PART_TYPES:
        raise Invalid(
            where, f"expected a content part of type {', '.join(PART_TYPES)}, got {kind!r}"
        )
    if kind == "refusal":
        _typed(part, "refusal", str, where, "")
        return dict(part)
    inner = part.get(kind)
    w = where.at(kind)
    if not isinstance(inner, dict):
        raise Invalid(w, "expected an object")
    if kind == "text":
        _typed(inner, "value", str, w, None) if "value" in inner else _missing(w, "value")
        annotations = [
            _annotation(ann, w.at("annotations").at(i))
            for i, ann in enumerate(_typed(inner, "annotations", list, w, []) or [])
        ]
        return {"type": "text", "text": {"value": inner["value"], "annotations": annotations}}
    if kind == "image_file":
        _id(inner, "file_id", "file-", w)
    else:
        _typed(inner, "url", str, w, None) if "url" in inner else _missing(w, "url")
    return dict(part)


def _missing(where: Where, key: str) -> None:
    raise Invalid(where.at(key), "missing")


def _attachments(m: Body, where: Where) -> list[Body]:
    if "attachments" not in m and m.get("file_ids"):  # v1: files of the message were for retrieval
        return [
            {"file_id": f, "tools": [{"type": "file_search"}]}
            for f in _id_list(m["file_ids"], "file-", where.at("file_ids"))
        ]
    out = []
    for i, att in enumerate(_typed(m, "attachments", list, where, []) or []):
        w = where.at("attachments").at(i)
        if not isinstance(att, dict):
            raise Invalid(w, "expected an attachment object")
        file_id = _id(att, "file_id", "file-", w)
        out.append({"file_id": file_id, "tools": _tools(att, w)})
    return out


def message(obj: Any, where: Where) -> Body:
    m, object_id, created = _start(obj, "message", "msg_", where)
    content = _typed(m, "content", list, where, [])
    if m.get("role") not in ("user", "assistant"):
        raise Invalid(where.at("role"), f"expected 'user' or 'assistant', got {m.get('role')!r}")
    return {
        "id": object_id,
        "object": "thread.message",
        "created_at": created,
        "assistant_id": _id(m, "assistant_id", "asst_", where, optional=True),
        "thread_id": _id(m, "thread_id", "thread_", where),
        "run_id": _id(m, "run_id", "run_", where, optional=True),
        "role": m["role"],
        "content": [_part(p, where.at("content").at(i)) for i, p in enumerate(content)],
        "attachments": _attachments(m, where),
        "metadata": _metadata(m, where),
        "status": _choice(m, "status", MESSAGE_STATUSES, where, "completed"),
        "incomplete_details": _typed(m, "incomplete_details", dict, where, None),
        "completed_at": _time(m, "completed_at", where, optional=True),
        "incomplete_at": _time(m, "incomplete_at", where, optional=True),
    }


_RUN_TIMES = ("started_at", "expires_at", "cancelled_at", "failed_at", "completed_at")
_RUN_FREE = (
    "required_action",
    "last_error",
    "incomplete_details",
    "usage",
    "temperature",
    "top_p",
    "max_completion_tokens",
    "max_prompt_tokens",
)


def run(obj: Any, where: Where) -> Body:
    """A run; one that was not over when it was exported is imported `expired` (it can
    never go on: OpenAI is gone), so it holds no lock on its thread."""
    r, object_id, created = _start(obj, "run", "run_", where)
    body: Body = {
        "id": object_id,
        "object": "thread.run",
        "created_at": created,
        "assistant_id": _id(r, "assistant_id", "asst_", where),
        "thread_id": _id(r, "thread_id", "thread_", where),
        "status": _choice(r, "status", RUN_STATUSES, where, "completed"),
    }
    body.update({k: _time(r, k, where, optional=True) for k in _RUN_TIMES})
    body.update({k: r.get(k) for k in _RUN_FREE})
    body.update(
        {
            "model": _typed(r, "model", str, where, ""),
            "instructions": _typed(r, "instructions", str, where, ""),
            "tools": _tools(r, where),
            "tool_resources": _tool_resources(r, where),
            "metadata": _metadata(r, where),
            "truncation_strategy": r.get("truncation_strategy")
            or {"type": "auto", "last_messages": None},
            "response_format": r.get("response_format") or "auto",
            "tool_choice": r.get("tool_choice") or "auto",
            "parallel_tool_calls": _typed(r, "parallel_tool_calls", bool, where, True),
        }
    )
    if body["status"] not in RUN_TERMINAL:
        body[EXPORTED_STATUS] = body["status"]  # kept in the run's state, not shown
        body["status"], body["required_action"] = "expired", None
    return body


_STEP_TIMES = ("expired_at", "expires_at", "cancelled_at", "failed_at", "completed_at")


def step(obj: Any, where: Where) -> Body:
    s, object_id, created = _start(obj, "run step", "step_", where)
    details = _typed(s, "step_details", dict, where, {})
    if (
        details.get("type") not in ("message_creation", "tool_calls")
        or s.get("type") != details["type"]
    ):
        raise Invalid(
            where.at("step_details").at("type"),
            "expected 'message_creation' or 'tool_calls', the same as the step's 'type'",
        )
    status = _choice(s, "status", STEP_STATUSES, where, "completed")
    body: Body = {
        "id": object_id,
        "object": "thread.run.step",
        "created_at": created,
        "assistant_id": _id(s, "assistant_id", "asst_", where),
        "thread_id": _id(s, "thread_id", "thread_", where),
        "run_id": _id(s, "run_id", "run_", where),
        "type": details["type"],
        "status": "expired" if status == "in_progress" else status,
        "step_details": details,
        "last_error": s.get("last_error"),
    }
    body.update({k: _time(s, k, where, optional=True) for k in _STEP_TIMES})
    body.update({"metadata": _metadata(s, where), "usage": s.get("usage")})
    return body


def file(obj: Any, where: Where) -> Body:
    f, object_id, created = _start(obj, "file", "file-", where)
    purpose = _typed(f, "purpose", str, where, "assistants")
    if len(purpose) > 32:
        raise Invalid(where.at("purpose"), "longer than 32 characters")
    return {
        "id": object_id,
        "object": "file",
        "bytes": _typed(f, "bytes", int, where, 0) or 0,
        "created_at": created,
        "filename": _typed(f, "filename", str, where, object_id),
        "purpose": purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": _time(f, "expires_at", where, optional=True),
    }


def vector_store(obj: Any, where: Where) -> Body:
    v, object_id, created = _start(obj, "vector store", "vs_", where)
    return {
        "id": object_id,
        "object": "vector_store",
        "created_at": created,
        "name": _typed(v, "name", str, where, None),
        "description": _typed(v, "description", str, where, None),
        "metadata": _metadata(v, where),
        "expires_after": _typed(v, "expires_after", dict, where, None),
        "last_active_at": _time(v, "last_active_at", where, optional=True) or created,
        # not part of the body: the row's columns (see `load`)
        "_status": v.get("status"),
        "_expires_at": _time(v, "expires_at", where, optional=True),
    }


def vector_store_file(obj: Any, where: Where) -> Body:
    f, object_id, created = _start(obj, "vector store file", "file-", where)
    raw = _typed(f, "chunking_strategy", dict, where, None)
    if raw is not None and raw.get("type") == "other":  # files older than chunking strategies
        raw = None
    try:
        strategy = ChunkingStrategy.from_wire(raw).to_wire()
    except InvalidChunkingStrategy as exc:
        raise Invalid(where.at("chunking_strategy"), exc.message) from None
    return {
        "id": object_id,
        "object": "vector_store.file",
        "created_at": created,
        "vector_store_id": _id(f, "vector_store_id", "vs_", where),
        "last_error": None,
        "chunking_strategy": strategy,
        "attributes": _typed(f, "attributes", dict, where, {}) or {},
    }


#: `object` of each kind, and what checks it.
KINDS: dict[str, Callable[[Any, Where], Body]] = {
    "assistant": assistant,
    "thread": thread,
    "thread.message": message,
    "thread.run": run,
    "thread.run.step": step,
    "file": file,
    "vector_store": vector_store,
    "vector_store.file": vector_store_file,
}
