"""Rate limits and spend limits: the admin API's reads and writes, and `Limits`, which admits
or refuses each run request and meters each model call.

A run request (create run, create thread and run, submit tool outputs) for a project and
model passes, in order: the monthly spend limits (project, then organization; 429
`insufficient_quota`), the concurrent active runs (extension), the requests-per-minute
window, and the tokens-per-minute window (429 `rate_limit_exceeded`, type `requests` or
`tokens`). Limits are read from the database and kept `limits_cache_seconds` per process;
a change made through this process applies at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from assistantd.core.errors import InvalidRequest, NotFound, QuotaExceeded, RateLimited
from assistantd.core.ids import now_seconds
from assistantd.core.metrics import RATE_LIMIT_REJECTIONS
from assistantd.core.settings import Settings
from assistantd.limits.headers import add_headers, duration
from assistantd.limits.limiter import Window, WindowLimiter
from assistantd.limits.models import ORGANIZATION, RateLimitRow, SpendLimitRow
from assistantd.runs.models import RunRow
from assistantd.usage.meter import ModelCall
from assistantd.usage.pricing import Pricing
from assistantd.usage.service import month_spend_cents

log = logging.getLogger("assistantd.limits")

_SAFE = re.compile(r"[A-Za-z0-9._:-]{1,200}")
FIELDS = ("max_requests_per_1_minute", "max_tokens_per_1_minute", "max_concurrent_runs")


def rate_limit_id(model: str) -> str:
    """`rl-<model>` (`rl-gpt-4o`), or `rl-<hash>` for a name that cannot sit in a URL path."""
    if _SAFE.fullmatch(model):
        return f"rl-{model}"
    return "rl-" + hashlib.sha256(model.encode()).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """A project's limits for one model; 0 = no limit."""

    id: str
    model: str
    max_requests_per_1_minute: int
    max_tokens_per_1_minute: int
    max_concurrent_runs: int

    def wire(self) -> dict[str, Any]:
        return {
            "object": "project.rate_limit",
            "id": self.id,
            "model": self.model,
            "max_requests_per_1_minute": self.max_requests_per_1_minute,
            "max_tokens_per_1_minute": self.max_tokens_per_1_minute,
            "max_concurrent_runs": self.max_concurrent_runs,
        }


def month_start(now: float | None = None) -> int:
    """The first second of the current UTC month: spend limits count from there."""
    t = dt.datetime.fromtimestamp(now if now is not None else time.time(), dt.UTC)
    return int(dt.datetime(t.year, t.month, 1, tzinfo=dt.UTC).timestamp())


def _spend_wire(row: SpendLimitRow, kind: str, spent_cents: float) -> dict[str, Any]:
    status = "enforcing" if spent_cents >= row.threshold_amount else "inactive"
    return {
        "object": kind,
        "threshold_amount": row.threshold_amount,
        "currency": row.currency,
        "interval": row.interval,
        "enforcement": {"status": status},
    }


class Limits:
    """Admits or refuses run requests, and meters model calls (usage rows and token windows)."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        pricing: Pricing,
        limiter: WindowLimiter,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = sessions
        self.pricing = pricing
        self.limiter = limiter
        self._rates: dict[tuple[str, str], tuple[float, ModelLimits]] = {}
        self._spend_limits: dict[str, tuple[float, int | None]] = {}
        self._spent: dict[str, tuple[float, float]] = {}

    async def aclose(self) -> None:
        await self.limiter.aclose()

    # -- configuration -----------------------------------------------------------------

    def defaults(self, model: str) -> ModelLimits:
        s = self.settings
        return ModelLimits(
            rate_limit_id(model),
            model,
            s.rate_limit_requests_per_minute,
            s.rate_limit_tokens_per_minute,
            s.rate_limit_concurrent_runs,
        )

    def forget(self, project_id: str) -> None:
        """Drop this process's cached limits of a project (after an admin change)."""
        self._rates = {k: v for k, v in self._rates.items() if k[0] != project_id}
        self._spend_limits.pop(project_id, None)
        self._spend_limits.pop(ORGANIZATION, None)

    async def model_limits(self, session: AsyncSession, project_id: str, model: str) -> ModelLimits:
        now = time.monotonic()
        hit = self._rates.get((project_id, model))
        if hit is not None and hit[0] > now:
            return hit[1]
        row = await session.get(RateLimitRow, (project_id, model))
        found = (
            self.defaults(model)
            if row is None
            else ModelLimits(
                row.id,
                row.model,
                row.max_requests_per_1_minute,
                row.max_tokens_per_1_minute,
                row.max_concurrent_runs,
            )
        )
        self._rates[(project_id, model)] = (now + self.settings.limits_cache_seconds, found)
        return found

    async def _threshold(self, session: AsyncSession, scope: str) -> int | None:
        now = time.monotonic()
        hit = self._spend_limits.get(scope)
        if hit is not None and hit[0] > now:
            return hit[1]
        row = await session.get(SpendLimitRow, scope)
        value = row.threshold_amount if row is not None else None
        self._spend_limits[scope] = (now + self.settings.limits_cache_seconds, value)
        return value

    async def spent_cents(self, session: AsyncSession, scope: str) -> float:
        now = time.monotonic()
        hit = self._spent.get(scope)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = await month_spend_cents(
            session, self.pricing, month_start(), None if scope == ORGANIZATION else scope
        )
        self._spent[scope] = (now + self.settings.limits_cache_seconds, value)
        return value

    # -- admission ---------------------------------------------------------------------

    async def admit(self, session: AsyncSession, project_id: str, model: str) -> None:
        """Let one run request for `model` through, or raise the 429 it gets."""
        await self._check_spend(session, project_id)
        limits = await self.model_limits(session, project_id, model)
        if limits.max_concurrent_runs:
            await self._check_concurrency(session, project_id, model, limits.max_concurrent_runs)
        key = f"{project_id}/{model}"
        rpm, tpm = limits.max_requests_per_1_minute, limits.max_tokens_per_1_minute
        # Both windows at once: with Redis their round trips overlap.
        requests, tokens = await asyncio.gather(
            self.limiter.take_request(key, rpm) if rpm else _none(),
            self.limiter.tokens(key, tpm) if tpm else _none(),
        )
        headers: dict[str, str] = {}
        for kind, w in (("requests", requests), ("tokens", tokens)):
            if w is not None:
                headers.update(_headers(kind, w))
        for kind, what, w in (
            ("requests", "requests per min (RPM)", requests),
            ("tokens", "tokens per min (TPM)", tokens),
        ):
            if w is not None and not w.allowed:
                RATE_LIMIT_REJECTIONS.labels(kind).inc()
                raise RateLimited(
                    _message(model, project_id, what, w),
                    kind=kind,
                    retry_after=max(w.reset_seconds, 0.001),
                    headers=headers,
                )
        add_headers(headers)

    async def _check_spend(self, session: AsyncSession, project_id: str) -> None:
        for scope in (project_id, ORGANIZATION):
            threshold = await self._threshold(session, scope)
            if threshold is None:
                continue
            spent = await self.spent_cents(session, scope)
            if spent >= threshold:
                RATE_LIMIT_REJECTIONS.labels("spend").inc()
                who = "The organization" if scope == ORGANIZATION else f"Project {project_id}"
                where = (
                    "/v1/organization/spend_limit"
                    if scope == ORGANIZATION
                    else f"/v1/organization/projects/{project_id}/spend_limit"
                )
                raise QuotaExceeded(
                    f"You exceeded your current quota: {who} has spent ${spent / 100:.2f} this month, and its "
                    f"spend limit is ${threshold / 100:.2f}. Raise the limit (POST {where}) or wait for the "
                    "next month."
                )

    async def _check_concurrency(
        self, session: AsyncSession, project_id: str, model: str, most: int
    ) -> None:
        stmt = (
            select(func.count())
            .select_from(RunRow)
            .where(
                RunRow.project_id == project_id,
                RunRow.active_thread_id.is_not(None),
                RunRow.body["model"].as_string() == model,
            )
        )
        active = int((await session.execute(stmt)).scalar_one())
        if active >= most:
            RATE_LIMIT_REJECTIONS.labels("concurrent_runs").inc()
            raise RateLimited(
                f"Rate limit reached for {model} in project {project_id} on concurrent runs: Limit {most}, "
                f"Active {active}. Wait for a run to finish, or cancel one.",
                kind="requests",
                retry_after=1.0,
            )

    # -- metering ----------------------------------------------------------------------

    async def recorded(self, calls: Sequence[ModelCall]) -> None:
        """Model calls whose usage rows the run engine has committed: their spend is no
        longer what this process cached, and their tokens count in the TPM window."""
        for call in calls:
            self._spent.pop(call.project_id, None)
            self._spent.pop(ORGANIZATION, None)
            try:
                await self.limiter.add_tokens(
                    f"{call.project_id}/{call.model}", call.input_tokens + call.output_tokens
                )
            except Exception:  # usage must never fail the run it measures
                log.exception("counting the tokens of run %s failed", call.run_id)


async def _none() -> None:
    return None


def _headers(kind: str, w: Window) -> dict[str, str]:
    return {
        f"x-ratelimit-limit-{kind}": str(w.limit),
        f"x-ratelimit-remaining-{kind}": str(w.remaining),
        f"x-ratelimit-reset-{kind}": duration(w.reset_seconds),
    }


def _message(model: str, project_id: str, what: str, w: Window) -> str:
    return (
        f"Rate limit reached for {model} in project {project_id} on {what}: Limit {w.limit}, "
        f"Used {w.limit - w.remaining}, Requested 1. Please try again in {duration(w.reset_seconds)}."
    )


# -- the admin API's side ----------------------------------------------------------------


async def list_rate_limits(
    session: AsyncSession,
    limits: Limits,
    project_id: str,
    catalog: Sequence[str],
    *,
    limit: int,
    after: str | None,
    before: str | None,
) -> dict[str, Any]:
    """The project's limit of every model the server routes by name, and of every model set."""
    rows = (
        await session.execute(select(RateLimitRow).where(RateLimitRow.project_id == project_id))
    ).scalars()
    by_model = {m: limits.defaults(m) for m in catalog}
    for r in rows:
        by_model[r.model] = ModelLimits(
            r.id,
            r.model,
            r.max_requests_per_1_minute,
            r.max_tokens_per_1_minute,
            r.max_concurrent_runs,
        )
    items = sorted(by_model.values(), key=lambda m: m.id)
    ids = [m.id for m in items]
    if after is not None and after in ids:
        items = items[ids.index(after) + 1 :]
    if before is not None and before in ids:
        items = [m for m in items if m.id < before][-limit:]
    page, more = items[:limit], len(items) > limit
    data = [m.wire() for m in page]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }


async def _model_of(
    session: AsyncSession,
    limits: Limits,
    project_id: str,
    rate_limit_id_: str,
    catalog: Sequence[str],
) -> str:
    row = (
        await session.execute(
            select(RateLimitRow.model).where(
                RateLimitRow.project_id == project_id, RateLimitRow.id == rate_limit_id_
            )
        )
    ).scalar_one_or_none()
    if row is not None:
        return row
    for model in catalog:
        if rate_limit_id(model) == rate_limit_id_:
            return model
    name = rate_limit_id_.removeprefix("rl-")
    if rate_limit_id_.startswith("rl-") and _SAFE.fullmatch(name):
        return name  # any model may be limited before it is used: `rl-<model>`
    raise NotFound(f"No rate limit found with id '{rate_limit_id_}'.", param="rate_limit_id")


async def update_rate_limit(
    session: AsyncSession,
    limits: Limits,
    project_id: str,
    rate_limit_id_: str,
    changes: dict[str, int],
    catalog: Sequence[str],
) -> dict[str, Any]:
    model = await _model_of(session, limits, project_id, rate_limit_id_, catalog)
    for name, value in changes.items():
        if value < 0:
            raise InvalidRequest(f"Invalid '{name}': must be 0 (no limit) or more.", param=name)
    row = await session.get(RateLimitRow, (project_id, model))
    if row is None:
        d = limits.defaults(model)
        row = RateLimitRow(
            project_id=project_id,
            model=model,
            id=d.id,
            max_requests_per_1_minute=d.max_requests_per_1_minute,
            max_tokens_per_1_minute=d.max_tokens_per_1_minute,
            max_concurrent_runs=d.max_concurrent_runs,
            updated_at=now_seconds(),
        )
        session.add(row)
    for name in FIELDS:
        if name in changes:
            setattr(row, name, changes[name])
    row.updated_at = now_seconds()
    await session.flush()
    limits.forget(project_id)
    return ModelLimits(
        row.id,
        row.model,
        row.max_requests_per_1_minute,
        row.max_tokens_per_1_minute,
        row.max_concurrent_runs,
    ).wire()


def _kind(scope: str) -> str:
    return "organization.spend_limit" if scope == ORGANIZATION else "project.spend_limit"


async def get_spend_limit(session: AsyncSession, limits: Limits, scope: str) -> dict[str, Any]:
    row = await session.get(SpendLimitRow, scope)
    if row is None:
        who = "the organization" if scope == ORGANIZATION else f"project '{scope}'"
        raise NotFound(f"No spend limit is set for {who}.")
    return _spend_wire(row, _kind(scope), await limits.spent_cents(session, scope))


async def set_spend_limit(
    session: AsyncSession,
    limits: Limits,
    scope: str,
    threshold_amount: int,
    currency: str,
    interval: str,
) -> dict[str, Any]:
    row = await session.get(SpendLimitRow, scope)
    if row is None:
        row = SpendLimitRow(
            project_id=scope,
            threshold_amount=threshold_amount,
            currency=currency,
            interval=interval,
            updated_at=now_seconds(),
        )
        session.add(row)
    else:
        row.threshold_amount, row.currency, row.interval = threshold_amount, currency, interval
        row.updated_at = now_seconds()
    await session.flush()
    limits.forget(scope)
    return _spend_wire(row, _kind(scope), await limits.spent_cents(session, scope))


async def delete_spend_limit(session: AsyncSession, limits: Limits, scope: str) -> dict[str, Any]:
    await session.execute(delete(SpendLimitRow).where(SpendLimitRow.project_id == scope))
    limits.forget(scope)
    return {"object": _kind(scope) + ".deleted", "deleted": True}
