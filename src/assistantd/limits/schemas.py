"""Wire models of the rate-limit and spend-limit endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class RateLimitUpdate(BaseModel):
    """`ProjectRateLimitUpdateRequest`; `max_concurrent_runs` is an extension. 0 = no limit."""

    max_requests_per_1_minute: int | None = Field(None, ge=0, le=2**31 - 1)
    max_tokens_per_1_minute: int | None = Field(None, ge=0, le=2**62)
    max_concurrent_runs: int | None = Field(None, ge=0, le=2**31 - 1)
    # Accepted and ignored: assistantd serves no images, audio or batches.
    max_images_per_1_minute: int | None = None
    max_audio_megabytes_per_1_minute: int | None = None
    max_requests_per_1_day: int | None = None
    batch_1_day_max_input_tokens: int | None = None


class SpendLimitUpdate(BaseModel):
    """`UpdateProjectSpendLimitBody` / `UpdateOrganizationSpendLimitBody`."""

    threshold_amount: int = Field(ge=1, le=2**62)
    currency: Literal["USD"]
    interval: Literal["month"]
