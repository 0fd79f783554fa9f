"""`assistantd usage`: tokens and cost by day, project and model, as a table for a terminal."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from assistantd.usage import repository as repo
from assistantd.usage.pricing import Pricing

DAY = 86400


@dataclass(frozen=True, slots=True)
class SummaryRow:
    day: str
    project_id: str
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost: float
    priced: bool


async def summary(
    session: AsyncSession, pricing: Pricing, start: int, end: int, project_ids: tuple[str, ...] = ()
) -> list[SummaryRow]:
    """One row per UTC day, project and model with usage in `[start, end)`."""
    span = repo.Span(
        origin=start - start % DAY, start=start, end=end, width=DAY, project_ids=project_ids
    )
    rows = await repo.token_sums(session, span, ["project_id", "model"])
    out = []
    for bucket, project_id, model, inp, outp, calls in rows:
        day = dt.datetime.fromtimestamp(span.origin + int(bucket) * DAY, dt.UTC).date().isoformat()
        c_in, c_out = pricing.cost(model, int(inp or 0), int(outp or 0))
        out.append(
            SummaryRow(
                day,
                project_id,
                model,
                int(calls),
                int(inp or 0),
                int(outp or 0),
                c_in + c_out,
                pricing.price(model) is not None,
            )
        )
    return sorted(out, key=lambda r: (r.day, r.project_id, r.model))


def render(rows: list[SummaryRow]) -> str:
    """The table, with a total line; unpriced models show `-` for their cost."""
    head = f"{'DAY':<10}  {'PROJECT':<20}  {'MODEL':<28}  {'REQUESTS':>8}  {'INPUT':>12}  {'OUTPUT':>12}  {'COST $':>10}"
    lines = [head]
    for r in rows:
        cost = f"{r.cost:.4f}" if r.priced else "-"
        lines.append(
            f"{r.day:<10}  {r.project_id:<20}  {r.model:<28}  {r.requests:>8}  {r.input_tokens:>12}  "
            f"{r.output_tokens:>12}  {cost:>10}"
        )
    total = sum(r.cost for r in rows)
    lines.append(
        f"{'total':<10}  {'':<20}  {'':<28}  {sum(r.requests for r in rows):>8}  "
        f"{sum(r.input_tokens for r in rows):>12}  {sum(r.output_tokens for r in rows):>12}  "
        f"{total:>10.4f}"
    )
    if any(not r.priced for r in rows):
        lines.append("(-: the model has no price in the pricing file; counted as 0)")
    return "\n".join(lines)
