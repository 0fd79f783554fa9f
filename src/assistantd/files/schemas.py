"""Wire rules of the Files API: purposes, the `expires_after` form fields, the File object."""

from __future__ import annotations

from dataclasses import dataclass

from assistantd.core.errors import InvalidRequest

#: Purposes a client may upload with (CONTRACT §2 Files).
UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
#: Purposes assistantd itself writes (code interpreter outputs).
OUTPUT_PURPOSES = ("assistants_output",)

MIN_EXPIRES_SECONDS = 3600
MAX_EXPIRES_SECONDS = 2_592_000


@dataclass(frozen=True, slots=True)
class UploadForm:
    """The validated text fields of `POST /v1/files`."""

    purpose: str
    expires_after_seconds: int | None


def parse_upload_form(fields: dict[str, str]) -> UploadForm:
    """Validate `purpose` and `expires_after[anchor]`/`expires_after[seconds]`."""
    purpose = fields.get("purpose")
    if not purpose:
        raise InvalidRequest("Missing required parameter: 'purpose'.", param="purpose")
    if purpose not in UPLOAD_PURPOSES:
        supported = ", ".join(f"'{p}'" for p in UPLOAD_PURPOSES)
        raise InvalidRequest(
            f"Invalid value for 'purpose': {purpose!r}. Supported values are: {supported}.",
            param="purpose",
        )
    anchor = fields.get("expires_after[anchor]")
    seconds_raw = fields.get("expires_after[seconds]")
    if anchor is None and seconds_raw is None:
        return UploadForm(purpose, None)
    if anchor != "created_at":
        raise InvalidRequest(
            f"Invalid value for 'expires_after.anchor': {anchor!r}. Supported values are: 'created_at'.",
            param="expires_after.anchor",
        )
    try:
        seconds = int(seconds_raw or "")
    except ValueError:
        raise InvalidRequest(
            f"Invalid 'expires_after.seconds': expected an integer, got {seconds_raw!r}.",
            param="expires_after.seconds",
        ) from None
    if not MIN_EXPIRES_SECONDS <= seconds <= MAX_EXPIRES_SECONDS:
        raise InvalidRequest(
            f"Invalid 'expires_after.seconds': expected a value between {MIN_EXPIRES_SECONDS} and "
            f"{MAX_EXPIRES_SECONDS}, but got {seconds} instead.",
            param="expires_after.seconds",
        )
    return UploadForm(purpose, seconds)
