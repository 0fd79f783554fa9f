"""Cursor pagination exactly as the SDKs walk it: `limit`, `order`, `after`, `before`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastapi import Query

from assistantd.core.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class ListParams:
    limit: int
    order: Literal["asc", "desc"]
    after: str | None
    before: str | None


def parse_limit(limit: str | None, max_limit: int = 100, default_limit: int = 20) -> int:
    """A `limit` query value, checked as OpenAI checks it (an integer from 1 to `max_limit`)."""
    if limit is None or limit == "":
        return default_limit
    try:
        n = int(limit)
    except ValueError:
        raise InvalidRequest(
            f"Invalid 'limit': expected an integer, but got {limit!r} instead.", param="limit"
        ) from None
    if not 1 <= n <= max_limit:
        raise InvalidRequest(
            f"Invalid 'limit': integer below minimum value or above maximum value. Expected a "
            f"value between 1 and {max_limit}, but got {n} instead.",
            param="limit",
        )
    return n


def _parse(
    limit: str | None,
    order: str | None,
    after: str | None,
    before: str | None,
    max_limit: int,
    default_limit: int,
) -> ListParams:
    n = parse_limit(limit, max_limit, default_limit)
    o = order or "desc"
    if o not in ("asc", "desc"):
        raise InvalidRequest(
            f"Invalid value: {o!r}. Supported values are: 'asc' and 'desc'.", param="order"
        )
    return ListParams(n, o, after or None, before or None)  # type: ignore[arg-type]


async def list_params(
    limit: str | None = Query(None),
    order: str | None = Query(None),
    after: str | None = Query(None),
    before: str | None = Query(None),
) -> ListParams:
    """FastAPI dependency for the standard list query (limit 1–100, default 20)."""
    return _parse(limit, order, after, before, 100, 20)


async def file_list_params(
    limit: str | None = Query(None),
    order: str | None = Query(None),
    after: str | None = Query(None),
    before: str | None = Query(None),
) -> ListParams:
    """The Files list allows up to 10,000 per page, 10,000 by default."""
    return _parse(limit, order, after, before, 10_000, 10_000)
