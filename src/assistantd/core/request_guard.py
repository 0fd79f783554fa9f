"""What every request must be before it is routed: no value the databases cannot hold.

`RequestGuard` sits in front of the routers (ASGI middleware):

- a POST body is read into memory only up to `ASSISTANTD_MAX_JSON_BODY_BYTES` (413 past it);
- a POST with no body at all is read as `{}` (the Node SDK sends no body for
  `vectorStores.create()` without arguments), so it is accepted exactly where `{}` is and
  otherwise the 400 names the real missing field;
- a JSON body is parsed once here and every value in it checked: strings are valid Unicode
  without NUL (PostgreSQL's text and jsonb cannot hold `\\u0000`; the rule is the same on
  SQLite), integers fit in 64 bits, numbers are finite, nesting is at most
  `MAX_BODY_DEPTH` levels. A failure is a 400 naming the parameter, as pydantic's would be;
- path segments, query values and headers carry no NUL either (`/v1/assistants/asst_%00`).

The checks walk the parsed body once; FastAPI then parses the same bytes for its models.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Collection
from typing import Any
from urllib.parse import parse_qsl

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistantd.core.errors import InvalidRequest, PayloadTooLarge
from assistantd.core.handlers import error_response, json_invalid_message
from assistantd.core.schemas import MAX_JSON_DEPTH

#: Deepest nesting of a whole request body. The free-form values in it (a function's
#: `parameters`, a response format's `schema`) are held to `MAX_JSON_DEPTH` by their
#: models, which name the field; this bound, above theirs plus the few levels a body wraps
#: them in, keeps the parsers and the walk below shallow whatever is sent.
MAX_BODY_DEPTH = MAX_JSON_DEPTH + 32

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class _BadValue(Exception):
    """A value the body may not carry; `path` is filled in, innermost first, on the way out."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: list[str | int] = []


def _text_problem(s: str) -> str | None:
    if "\x00" in s:
        return "the string contains a null character (\\u0000), which is not supported"
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            return "the string contains a lone UTF-16 surrogate, which is not valid Unicode"
    return None


def _shown(n: int) -> str:
    digits = str(n)
    return digits if len(digits) <= 40 else f"an integer of {len(digits.lstrip('-'))} digits"


def _check_scalar(value: Any) -> None:
    """Raise `_BadValue` if a string, number, boolean or null may not be carried."""
    if isinstance(value, str):
        if (problem := _text_problem(value)) is not None:
            raise _BadValue(problem)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if value > INT64_MAX:
            raise _BadValue(
                f"integer above maximum value. Expected a value less than or equal to "
                f"{INT64_MAX}, but got {_shown(value)} instead"
            )
        if value < INT64_MIN:
            raise _BadValue(
                f"integer below minimum value. Expected a value greater than or equal "
                f"to {INT64_MIN}, but got {_shown(value)} instead"
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _BadValue("number out of range. Expected a finite number")


def _walk(value: Any, depth: int) -> None:
    """Raise `_BadValue` for the first value in `value` that the body may not carry."""
    if not isinstance(value, (dict, list)):
        _check_scalar(value)
        return
    if depth >= MAX_BODY_DEPTH:
        raise _BadValue(
            f"nested too deeply. A request body may be nested at most {MAX_BODY_DEPTH} levels deep"
        )
    items: Any = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(key, str) and (problem := _text_problem(key)) is not None:
            raise _BadValue(f"a key is not valid: {problem}")
        try:
            _walk(item, depth + 1)
        except _BadValue as exc:
            exc.path.append(key)
            raise


def _param(path: list[str | int]) -> str | None:
    out = ""
    for p in reversed(path):
        out += f"[{p}]" if isinstance(p, int) else ("." if out else "") + p
    return out or None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def check_body(raw: bytes) -> InvalidRequest | None:
    """The error a JSON request body earns, or None when it may go on to the models."""
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        return InvalidRequest(
            json_invalid_message(f"The body is nested more than {MAX_BODY_DEPTH} levels deep.")
        )
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, invalid UTF-8, huge literals
        return InvalidRequest(json_invalid_message(str(exc)))
    try:
        _walk(value, 1)
    except _BadValue as exc:
        param = _param(exc.path)
        if exc.problem.startswith("nested too deeply"):
            param = _param(exc.path[-1:])  # the top-level field: the full path is the nesting
        where = f"'{param}'" if param else "request body"
        return InvalidRequest(f"Invalid {where}: {exc.problem}.", param=param)
    return None


@functools.cache
def _path_templates(app: Any) -> list[re.Pattern[str]]:
    openapi = app.openapi() if hasattr(app, "openapi") else {}
    return [compile_path(path)[0] for path in openapi.get("paths", {})]


def _path_param_with_nul(scope: Scope) -> str | None:
    """The name of the path parameter holding the NUL, from the app's own route templates."""
    path = scope["path"]
    for pattern in _path_templates(scope.get("app")):
        if m := pattern.match(path):
            return next((k for k, v in m.groupdict().items() if "\x00" in v), None)
    return None


def _check_url(scope: Scope) -> InvalidRequest | None:
    """NUL in a path segment or query value: a 400 naming the path or query parameter."""
    if "\x00" in scope["path"]:
        name = _path_param_with_nul(scope)
        where = f"'{name}'" if name else "URL path"
        return InvalidRequest(
            f"Invalid {where}: the value contains a null character (\\u0000), "
            "which is not supported.",
            param=name,
        )
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query:
        for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in key or "\x00" in value:
                name = key.replace("\x00", "") or None
                where = f"'{name}'" if name else "query string"
                return InvalidRequest(
                    f"Invalid {where}: the value contains a null character "
                    "(\\u0000), which is not supported.",
                    param=name,
                )
    for header, value in scope["headers"]:
        if b"\x00" in value:
            name = header.decode("latin-1")
            return InvalidRequest(
                f"Invalid '{name}' header: the value contains a null character "
                "(\\u0000), which is not supported.",
                param=name,
            )
    return None


class RequestGuard:
    """ASGI middleware: bounds, normalizes and checks request input (see the module docstring).

    `max_body_bytes` bounds every POST body read into memory (413 past it); the POST routes
    in `streamed_paths` (the file upload) stream their body themselves, with their own limit.
    """

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, streamed_paths: Collection[str] = ()
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.streamed_paths = frozenset(streamed_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (bad := _check_url(scope)) is not None:
            await error_response(bad)(scope, receive, send)
            return
        if scope["method"] != "POST" or scope["path"] in self.streamed_paths:
            await self.app(scope, receive, send)
            return
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.split(b";", 1)[0].strip().lower()

        read = await self._read_body(scope, receive, send)
        if read is None:
            return
        body, disconnect = read
        if not body and disconnect is None:
            # No body at all: the same as `{}` sent as JSON.
            body = b"{}"
            scope["headers"] = [
                (k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")
            ]
            scope["headers"] += [(b"content-type", b"application/json"), (b"content-length", b"2")]
        elif disconnect is None and (
            content_type in (b"", b"application/json") or content_type.endswith(b"+json")
        ):
            if (bad := check_body(body)) is not None:
                await error_response(bad)(scope, receive, send)
                return
            if not content_type:  # JSON without a content type is still JSON to the models
                scope["headers"] = [*scope["headers"], (b"content-type", b"application/json")]

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                if disconnect is not None:
                    return disconnect
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read_body(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[bytes, Message | None] | None:
        """The whole body and the disconnect that cut it short, if one did; None when it was
        too large (the 413 has been sent)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client left mid-body: the app sees it as it would.
                return b"".join(chunks), message
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(scope, receive, send, message)
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks), None

    async def _too_large(
        self, scope: Scope, receive: Receive, send: Send, message: Message
    ) -> None:
        """Answer 413; the rest of the body is read and dropped, so the client reads the answer
        instead of a reset connection (the body timeout bounds a client that never ends)."""
        while message.get("more_body") and message["type"] == "http.request":
            message = await receive()
        err = PayloadTooLarge(
            f"Request body too large: the body exceeds the server's limit of {self.max_body_bytes} "
            "bytes (ASSISTANTD_MAX_JSON_BODY_BYTES)."
        )
        await error_response(err)(scope, receive, send)
