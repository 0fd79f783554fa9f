"""The File object, as stored in `files.body` and sent as it is."""

from __future__ import annotations

from typing import Literal, TypedDict


class File(TypedDict):
    id: str
    object: Literal["file"]
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"]
    status_details: str | None
    expires_at: int | None


def file_object(
    file_id: str, filename: str, size: int, purpose: str, created: int, expires_at: int | None
) -> File:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": created,
        "filename": filename,
        "purpose": purpose,
        # Files need no processing here: the SDK's wait_for_processing returns at once.
        "status": "processed",
        "status_details": None,
        "expires_at": expires_at,
    }
