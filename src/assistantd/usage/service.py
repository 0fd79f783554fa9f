"""OpenAI's usage and costs reports: time buckets over the usage records.

Buckets start at `start_time` and are `bucket_width` long (the last one ends at `end_time`,
default now); a page holds `limit` buckets, every one of them even when empty, and
`next_page` names the first bucket of the next page. Only records inside
`[start_time, end_time)` count, so the buckets' sums are exactly the records' sums.
"""

from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import QueryParams

from assistantd.core.errors import InvalidRequest
from assistantd.core.ids import now_seconds
from assistantd.usage import repository as repo
from assistantd.usage.pricing import Pricing

WIDTHS = {"1m": 60, "1h": 3600, "1d": 86400}
#: (default, max) buckets per page for each width, as OpenAI's.
LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}
COSTS_LIMIT = (7, 180)

#: Each report's groups, result object, and the groups OpenAI names that are always null here.
COMPLETIONS_GROUPS = ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier")
EMBEDDINGS_GROUPS = ("project_id", "user_id", "api_key_id", "model")
FILE_SEARCH_GROUPS = ("project_id", "user_id", "api_key_id", "vector_store_id")
PROJECT_GROUPS = ("project_id",)
COSTS_GROUPS = ("project_id", "line_item", "api_key_id")
#: Groups that are columns of the usage table.
COLUMNS = ("project_id", "api_key_id", "model")


@dataclass(frozen=True)
class UsageQuery:
    """A report's parsed query: the span of this page, its groups, and the next page."""

    span: repo.Span
    width_name: str
    group_by: tuple[str, ...]
    buckets: list[tuple[int, int]]
    next_page: str | None


def _list(q: QueryParams, name: str) -> tuple[str, ...]:
    """`name=a&name=b` or the SDK's `name[]=a&name[]=b`."""
    return tuple(v for v in (*q.getlist(name), *q.getlist(name + "[]")) if v)


def _int(q: QueryParams, name: str, default: int | None) -> int | None:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(
            f"Invalid '{name}': expected an integer, got {raw!r}.", param=name
        ) from None
    if not -(2**62) < value < 2**62:
        raise InvalidRequest(f"Invalid '{name}': {raw} is out of range.", param=name)
    return value


def _page(token: str | None) -> int | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token.removeprefix("page_").encode() + b"==").decode()
        return int(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidRequest(
            f"Invalid 'page': {token!r} is not a page from a previous response.", param="page"
        ) from None


def _page_token(start: int) -> str:
    return "page_" + base64.urlsafe_b64encode(str(start).encode()).decode().rstrip("=")


def parse(q: QueryParams, groups: Sequence[str], *, costs: bool = False) -> UsageQuery:
    """Read and check a report's query; a bad value is a 400 naming it."""
    start = _int(q, "start_time", None)
    if start is None:
        raise InvalidRequest("Missing required parameter: 'start_time'.", param="start_time")
    if start < 0:
        raise InvalidRequest(
            "Invalid 'start_time': must be a Unix time in seconds.", param="start_time"
        )
    end = _int(q, "end_time", None)
    end = now_seconds() + 1 if end is None else end
    if end <= start:
        raise InvalidRequest("Invalid 'end_time': must be after 'start_time'.", param="end_time")
    width_name = q.get("bucket_width") or "1d"
    allowed = ("1d",) if costs else tuple(WIDTHS)
    if width_name not in allowed:
        raise InvalidRequest(
            f"Invalid 'bucket_width': {width_name!r}. Expected one of {', '.join(allowed)}.",
            param="bucket_width",
        )
    default, most = COSTS_LIMIT if costs else LIMITS[width_name]
    limit = _int(q, "limit", default) or 0
    if not 1 <= limit <= most:
        raise InvalidRequest(
            f"Invalid 'limit': {limit}. Expected a value between 1 and {most} for "
            f"bucket_width {width_name}.",
            param="limit",
        )
    group_by = _list(q, "group_by")
    for g in group_by:
        if g not in groups:
            raise InvalidRequest(
                f"Invalid 'group_by': {g!r}. Expected any of {', '.join(groups)}.", param="group_by"
            )
    width = WIDTHS[width_name]
    first = _page(q.get("page"))
    if first is None:
        first = start
    if first < start or (first - start) % width:
        raise InvalidRequest("Invalid 'page': it does not belong to this query.", param="page")
    buckets = [
        (s, min(s + width, end)) for s in range(first, min(end, first + limit * width), width)
    ]
    page_end = buckets[-1][1] if buckets else first
    span = repo.Span(
        origin=start,
        start=first,
        end=page_end,
        width=width,
        project_ids=_list(q, "project_ids"),
        api_key_ids=_list(q, "api_key_ids"),
        models=_list(q, "models"),
    )
    return UsageQuery(
        span=span,
        width_name=width_name,
        group_by=group_by,
        buckets=buckets,
        next_page=_page_token(page_end) if page_end < end else None,
    )


def _page_of(query: UsageQuery, results: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    data = []
    for s, e in query.buckets:
        index = (s - query.span.origin) // query.span.width
        data.append(
            {"object": "bucket", "start_time": s, "end_time": e, "results": results.get(index, [])}
        )
    return {
        "object": "page",
        "data": data,
        "has_more": query.next_page is not None,
        "next_page": query.next_page,
    }


def _grouping(query: UsageQuery, names: Sequence[str], row: tuple[Any, ...]) -> dict[str, Any]:
    """The result's group fields: the row's values for the grouped columns, null elsewhere."""
    cols = [g for g in query.group_by if g in COLUMNS]
    values = dict(zip(cols, row[1 : 1 + len(cols)], strict=True))
    out: dict[str, Any] = {name: values.get(name) for name in names}
    if "batch" in query.group_by and "batch" in out:
        out["batch"] = False
    if "service_tier" in query.group_by and "service_tier" in out:
        out["service_tier"] = "default"
    return out


def _columns(query: UsageQuery) -> list[str]:
    return [g for g in query.group_by if g in COLUMNS]


def _collect(
    rows: repo.Rows, build: Callable[[tuple[Any, ...]], dict[str, Any]]
) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        out[int(row[0])].append(build(row))
    return out


async def completions(session: AsyncSession, query: UsageQuery) -> dict[str, Any]:
    rows = await repo.token_sums(session, query.span, _columns(query))
    n = 1 + len(_columns(query))

    def build(row: tuple[Any, ...]) -> dict[str, Any]:
        inp, out, calls = int(row[n] or 0), int(row[n + 1] or 0), int(row[n + 2] or 0)
        return {
            "object": "organization.usage.completions.result",
            "input_tokens": inp,
            "input_cached_tokens": 0,
            "input_cache_write_tokens": 0,
            "input_uncached_tokens": inp,
            "output_tokens": out,
            "input_text_tokens": inp,
            "output_text_tokens": out,
            "input_cached_text_tokens": 0,
            "input_audio_tokens": 0,
            "input_cached_audio_tokens": 0,
            "output_audio_tokens": 0,
            "input_image_tokens": 0,
            "input_cached_image_tokens": 0,
            "output_image_tokens": 0,
            "num_model_requests": calls,
            **_grouping(query, COMPLETIONS_GROUPS, row),
        }

    return _page_of(query, _collect(rows, build))


async def embeddings(session: AsyncSession, query: UsageQuery) -> dict[str, Any]:
    """Embeddings are computed by the server itself (ingestion, search); none are billed."""
    del session
    return _page_of(query, {})


async def file_search_calls(session: AsyncSession, query: UsageQuery) -> dict[str, Any]:
    rows = await repo.file_search_sums(session, query.span, _columns(query))
    n = 1 + len(_columns(query))
    return _page_of(
        query,
        _collect(
            rows,
            lambda row: {
                "object": "organization.usage.file_searches.result",
                "num_requests": int(row[n] or 0),
                **_grouping(query, FILE_SEARCH_GROUPS, row),
            },
        ),
    )


async def code_interpreter_sessions(session: AsyncSession, query: UsageQuery) -> dict[str, Any]:
    rows = await repo.code_sessions(session, query.span, _columns(query))
    n = 1 + len(_columns(query))
    return _page_of(
        query,
        _collect(
            rows,
            lambda row: {
                "object": "organization.usage.code_interpreter_sessions.result",
                "num_sessions": int(row[n] or 0),
                **_grouping(query, PROJECT_GROUPS, row),
            },
        ),
    )


async def vector_stores(session: AsyncSession, query: UsageQuery) -> dict[str, Any]:
    """Each bucket reports the current size of the stores created before its end (a store's
    past sizes are not kept; a deleted store no longer counts)."""
    stores = await repo.vector_store_bytes(session, query.span.project_ids)
    by_project = "project_id" in query.group_by
    results: dict[int, list[dict[str, Any]]] = {}
    for s, e in query.buckets:
        sums: dict[str | None, int] = defaultdict(int)
        for project_id, created_at, used in stores:
            if created_at < e:
                sums[project_id if by_project else None] += int(used)
        index = (s - query.span.origin) // query.span.width
        results[index] = [
            {
                "object": "organization.usage.vector_stores.result",
                "usage_bytes": used,
                "project_id": project,
            }
            for project, used in sorted(sums.items(), key=str)
        ]
    return _page_of(query, results)


async def costs(session: AsyncSession, query: UsageQuery, pricing: Pricing) -> dict[str, Any]:
    """Costs per bucket from the token sums and the price table; `line_item` splits them into
    `<model>, input` and `<model>, output` (an unpriced model's items say so, at 0)."""
    grouped = [g for g in query.group_by if g in COLUMNS]
    rows = await repo.token_sums(session, query.span, [*grouped, "model"])
    n = 1 + len(grouped)
    sums: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for row in rows:
        model = row[n]
        inp, out = int(row[n + 1] or 0), int(row[n + 2] or 0)
        c_in, c_out = pricing.cost(model, inp, out)
        head = (int(row[0]), *row[1:n])
        if "line_item" in query.group_by:
            tag = "" if pricing.price(model) is not None else " (unpriced)"
            sums[(*head, f"{model}, input{tag}")] = [c_in, float(inp)]
            sums[(*head, f"{model}, output{tag}")] = [c_out, float(out)]
        else:
            sums[(*head, None)][0] += c_in + c_out
    results: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for (index, *groups), (amount, quantity) in sums.items():
        values = dict(zip(grouped, groups[:-1], strict=True))
        line_item = groups[-1]
        results[index].append(
            {
                "object": "organization.costs.result",
                "amount": {"value": round(amount, 10), "currency": "usd"},
                "line_item": line_item,
                "project_id": values.get("project_id"),
                "api_key_id": values.get("api_key_id"),
                "quantity": quantity if line_item is not None else None,
                "quantity_unit": "tokens" if line_item is not None else None,
            }
        )
    return _page_of(query, results)


async def month_spend_cents(
    session: AsyncSession, pricing: Pricing, since: int, project_id: str | None
) -> float:
    """What a project (or, with None, everyone) has spent since `since`, in cents."""
    total = 0.0
    for model, inp, out in await repo.month_tokens(session, since, project_id):
        c_in, c_out = pricing.cost(model, int(inp or 0), int(out or 0))
        total += c_in + c_out
    return total * 100
