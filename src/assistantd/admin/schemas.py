"""Request bodies of the admin API (unknown fields are ignored, as everywhere)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from assistantd.core.schemas import Wire

Residency = Literal[
    "GLOBAL",
    "US_STORAGE_PROCESSING",
    "EU_STORAGE_PROCESSING",
    "JP_STORAGE",
    "KR_STORAGE",
    "CA_STORAGE",
    "SG_STORAGE",
    "IN_STORAGE",
    "AU_STORAGE",
    "GB_STORAGE",
    "AE_STORAGE",
    "AE_STORAGE_PROCESSING",
]


class _Body(Wire):
    @model_validator(mode="before")
    @classmethod
    def _object_body(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("The request body must be a JSON object.")
        return data


class ProjectCreate(_Body):
    name: str = Field(min_length=1, max_length=256)
    external_key_id: str | None = Field(None, max_length=256)
    # Accepted for the SDK's sake; assistantd keeps every project's data where it runs.
    residency: Residency | None = None


class ProjectUpdate(_Body):
    name: str | None = Field(None, min_length=1, max_length=256)
    external_key_id: str | None = Field(None, max_length=256)


class AdminKeyCreate(_Body):
    name: str = Field(max_length=256)
    expires_in_seconds: int | None = Field(None, ge=1, le=31_536_000)


class ServiceAccountCreate(_Body):
    name: str = Field(min_length=1, max_length=256)
    create_service_account_only: bool | None = None


class ServiceAccountUpdate(_Body):
    name: str | None = Field(None, min_length=1, max_length=256)
    role: Literal["member", "owner"] | None = None


class ServiceAccountKeyCreate(_Body):
    name: str | None = Field(None, max_length=256)
    scopes: list[str] | None = Field(None, max_length=64)
