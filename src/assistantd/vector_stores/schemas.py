"""Request models of the vector-store endpoints (the response objects are in `wire.py`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from assistantd.core.schemas import JSONObject, Metadata, Wire, check_key_values

FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")


class ExpiresAfter(Wire):
    anchor: Literal["last_active_at"]
    days: int = Field(ge=1, le=365)


class AutoChunking(Wire):
    type: Literal["auto"]


class StaticChunkingSizes(Wire):
    max_chunk_size_tokens: int = Field(ge=100, le=4096)
    chunk_overlap_tokens: int = Field(ge=0)


class StaticChunking(Wire):
    type: Literal["static"]
    static: StaticChunkingSizes

    @model_validator(mode="after")
    def _overlap_at_most_half(self) -> StaticChunking:
        s = self.static
        if s.chunk_overlap_tokens > s.max_chunk_size_tokens // 2:
            raise ValueError(
                "Invalid 'chunking_strategy.static.chunk_overlap_tokens': it must not exceed half of "
                f"max_chunk_size_tokens ({s.max_chunk_size_tokens // 2}), but got {s.chunk_overlap_tokens}."
            )
        return self


ChunkingParam = Annotated[AutoChunking | StaticChunking, Field(discriminator="type")]


def chunking_wire(value: AutoChunking | StaticChunking | None) -> dict[str, Any] | None:
    return None if value is None else value.model_dump()


def _check_attributes(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return check_key_values(value, "attributes")


# Strict types: `"5"` stays a string and `true` a boolean, as filters compare them by kind.
Attributes = Annotated[
    dict[str, StrictStr | StrictBool | StrictInt | StrictFloat] | None,
    AfterValidator(_check_attributes),
]


class VectorStoreCreate(Wire):
    file_ids: list[str] | None = Field(None, max_length=500)
    name: str | None = Field(None, max_length=256)
    description: str | None = Field(None, max_length=512)
    expires_after: ExpiresAfter | None = None
    chunking_strategy: ChunkingParam | None = None
    metadata: Metadata = None


class VectorStoreModify(Wire):
    name: str | None = Field(None, max_length=256)
    expires_after: ExpiresAfter | None = None
    metadata: Metadata = None


class VectorStoreFileCreate(Wire):
    file_id: str = Field(min_length=1)
    chunking_strategy: ChunkingParam | None = None
    attributes: Attributes = None


class VectorStoreFileUpdate(Wire):
    attributes: Attributes


class BatchFile(Wire):
    file_id: str = Field(min_length=1)
    chunking_strategy: ChunkingParam | None = None
    attributes: Attributes = None


class FileBatchCreate(Wire):
    file_ids: list[str] | None = Field(None, min_length=1, max_length=2000)
    files: list[BatchFile] | None = Field(None, min_length=1, max_length=2000)
    chunking_strategy: ChunkingParam | None = None
    attributes: Attributes = None

    @model_validator(mode="after")
    def _one_source(self) -> FileBatchCreate:
        if self.file_ids is None and self.files is None:
            raise ValueError("Missing required parameter: give either 'file_ids' or 'files'.")
        if self.file_ids is not None and self.files is not None:
            raise ValueError("Give either 'file_ids' or 'files', not both.")
        return self


class RankingOptions(Wire):
    ranker: Literal["none", "auto", "default-2024-11-15"] = "auto"
    score_threshold: float = Field(0.0, ge=0, le=1)


class SearchRequest(Wire):
    query: str | list[str]
    rewrite_query: bool = False
    max_num_results: int = Field(10, ge=1, le=50)
    filters: JSONObject | None = None
    ranking_options: RankingOptions | None = None

    @field_validator("query")
    @classmethod
    def _query_not_empty(cls, query: str | list[str]) -> str | list[str]:
        queries = [query] if isinstance(query, str) else query
        if not any(q.strip() for q in queries):
            raise ValueError("Invalid 'query': expected a non-empty string or array of strings.")
        return query
