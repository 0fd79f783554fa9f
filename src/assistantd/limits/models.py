"""Rate limits per project and model, and monthly spend limits per project and organization."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from assistantd.core.db import Base

#: The `project_id` of the organization's own spend limit row.
ORGANIZATION = "*"


class RateLimitRow(Base):
    """A project's limits for one model, as the admin set them (absent = the settings' defaults).
    0 in a column means no limit."""

    __tablename__ = "project_rate_limits"

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(256), primary_key=True)
    id: Mapped[str] = mapped_column(String(300))
    max_requests_per_1_minute: Mapped[int] = mapped_column(Integer)
    max_tokens_per_1_minute: Mapped[int] = mapped_column(BigInteger)
    max_concurrent_runs: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[int] = mapped_column(Integer)


class SpendLimitRow(Base):
    """A hard monthly spend limit in cents (USD), of a project or (`ORGANIZATION`) of all."""

    __tablename__ = "spend_limits"

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    threshold_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    interval: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[int] = mapped_column(Integer)
