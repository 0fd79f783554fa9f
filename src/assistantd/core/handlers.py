"""Exception handlers: every failure leaves as OpenAI's error envelope, never as a 422."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistantd.core.errors import (
    APIError,
    QuotaExceeded,
    RateLimited,
    ServerError,
    ServiceUnavailable,
)
from assistantd.core.http import JSONResponse
from assistantd.core.wire import error_envelope

log = logging.getLogger("assistantd")

_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "an array",
}


_BRANCH_LABELS = frozenset({"str", "int", "float", "bool", "dict", "list", "none"})


def format_loc(loc: Sequence[str | int], body: Any = None) -> str | None:
    """`("body", "tools", 0, "function", "function", "name")` → `tools[0].function.name`.

    pydantic puts a tagged union's tag into the location; walking the request body tells a
    tag (a `type` value at that level) from a real key.
    """
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    node = body
    tag_seen = False  # this level's tag was skipped: what follows is a real key, even if equal
    for i, p in enumerate(parts):
        if isinstance(p, int):
            out += f"[{p}]"
            node = node[p] if isinstance(node, list) and -len(node) <= p < len(node) else None
            tag_seen = False
            continue
        is_key = isinstance(node, dict) and p in node
        nxt = parts[i + 1] if i + 1 < len(parts) else None
        if (
            isinstance(node, dict)
            and node.get("type") == p
            and not tag_seen
            and (not is_key or nxt == p)
        ):
            tag_seen = True
            continue  # a tagged union's tag, placed before the real keys
        if not is_key and (
            "[" in p or p in _BRANCH_LABELS or p[:1].isupper() or p.startswith("constrained-")
        ):
            continue  # a union branch's label, not a parameter
        out += ("." if out else "") + p
        node = node.get(p) if isinstance(node, dict) else None
        tag_seen = False
    return out or None


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _literal(value: Any) -> str:
    """A value as the client wrote it: `'text'`, `null`, `true`, `3`, `[1, 2]`."""
    if isinstance(value, str):
        return repr(value)
    if value is None or isinstance(value, bool | int | float | list | dict):
        try:
            return json.dumps(value)
        except (TypeError, ValueError):
            pass
    return repr(value)


def json_invalid_message(detail: str = "") -> str:
    """OpenAI's words for a body that is not JSON; `detail` says what the parser found."""
    return (
        "We could not parse the JSON body of your request. (HINT: This likely means you "
        "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
        f"but what was sent was not valid JSON. {detail}".rstrip()
        + ")"
    )


def validation_message(err: dict[str, Any], body: Any = None) -> tuple[str, str | None]:
    """One pydantic error → (OpenAI-style message, param)."""
    param = format_loc(err.get("loc", ()), body)
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if param is None and kind != "json_invalid" and (kind == "missing" or kind in _TYPE_NAMES):
        # The body itself is wrong (`null`, an array, a string): there is no parameter to name.
        got = _json_kind(err.get("input")) if kind != "missing" else "null"
        return (
            f"Invalid type for the request body: expected an object, but got {got} instead.",
            None,
        )
    if kind == "json_invalid":
        return json_invalid_message(str(ctx.get("error", ""))), None
    if kind == "url_invalid":
        return (
            f"Invalid '{param}'. Expected a valid URL, but got a value with an invalid format.",
            param,
        )
    if kind == "json_too_deep":
        return f"Invalid '{param}': {err.get('msg')}.", param
    if kind == "missing":
        return f"Missing required parameter: '{param}'.", param
    if kind == "value_error":
        msg = str(ctx.get("error") or err.get("msg", "")).removeprefix("Value error, ")
        return msg, param
    if kind in _TYPE_NAMES:
        return (
            f"Invalid type for '{param}': expected {_TYPE_NAMES[kind]}, but got "
            f"{_json_kind(err.get('input'))} instead.",
            param,
        )
    if kind in ("literal_error", "enum"):
        return (
            f"Invalid value: {_literal(err.get('input'))}. Supported values are: {ctx.get('expected')}.",
            param,
        )
    if kind in ("string_too_long", "too_long"):
        limit = ctx.get("max_length")
        return (
            f"Invalid '{param}': string too long. Expected a string with maximum length "
            f"{limit}, but got a string with length {len(err.get('input') or '')} instead."
            if kind == "string_too_long"
            else f"Invalid '{param}': array too long. Expected an array with maximum length "
            f"{limit}, but got an array with length {len(err.get('input') or [])} instead."
        ), param
    if kind in ("string_too_short", "too_short"):
        return (
            f"Invalid '{param}': expected at least {ctx.get('min_length')} item(s) or character(s).",
            param,
        )
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = next(iter(ctx.values()), None)
        words = {
            "greater_than_equal": "greater than or equal to",
            "greater_than": "greater than",
            "less_than_equal": "less than or equal to",
            "less_than": "less than",
        }[kind]
        return (
            f"Invalid '{param}': expected a value {words} {bound}, but got {err.get('input')} instead.",
            param,
        )
    if kind == "extra_forbidden":
        return f"Unrecognized request argument supplied: {param}", param
    if kind == "union_tag_invalid":
        given = err.get("input")
        tag = given.get("type") if isinstance(given, dict) else ctx.get("tag")
        return (
            f"Invalid value: {_literal(tag)}. Supported values are: {ctx.get('expected_tags')}.",
            f"{param}.type" if param else "type",
        )
    where = f"'{param}'" if param else "request body"
    return f"Invalid {where}: {err.get('msg')}.", param


def error_response(exc: APIError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)


def install_handlers(app: FastAPI) -> None:
    """Register the handlers that make every error an OpenAI envelope."""

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        headers: dict[str, str] = {}
        if isinstance(exc, RateLimited):
            headers.update(exc.headers)
            headers["retry-after"] = str(max(1, round(exc.retry_after)))
            headers["retry-after-ms"] = str(int(exc.retry_after * 1000))
        elif isinstance(exc, QuotaExceeded) or (
            exc.status_code >= 500 and not isinstance(exc, ServiceUnavailable)
        ):
            headers["x-should-retry"] = "false"
        return error_response(exc, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        # A JSON syntax error hides every other complaint; report it alone.
        # Of a union's several complaints, the deepest (then a non-type error) names the
        # real problem: `content: [{"type": "video"}]` is a bad part, not "not a string".
        first = next((e for e in errors if e.get("type") == "json_invalid"), None) or max(
            errors, key=lambda e: (len(e.get("loc", ())), e.get("type") not in _TYPE_NAMES)
        )
        message, param = validation_message(dict(first), exc.body)
        return JSONResponse(
            error_envelope(message, "invalid_request_error", param, None),
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status, message = exc.status_code, str(exc.detail)
        if status in (404, 405):
            # OpenAI answers an unknown path and a known path's wrong method alike.
            status, message = 404, f"Invalid URL ({request.method} {request.url.path})"
        return JSONResponse(
            error_envelope(message, "invalid_request_error", None, None),
            status_code=status,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        err = ServerError(
            "The server had an error while processing your request. Sorry about that! "
            f"(request id {request.scope.get('request_id', '')})"
        )
        return error_response(err, {"x-should-retry": "false"})
