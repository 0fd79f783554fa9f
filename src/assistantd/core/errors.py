"""The one exception tree of the API, each class carrying its HTTP status and OpenAI error shape.

    APIError                      base: status, `type`, `code`, `param`, message
    ├── InvalidRequest            400 invalid_request_error (bad parameter, state conflict)
    │   └── ActiveRunConflict     400: the thread is locked by a run that is not terminal
    ├── AuthenticationFailed      401 invalid_request_error / invalid_api_key
    ├── PermissionDenied          403 invalid_request_error: a valid key of the wrong kind
    ├── NotFound                  404 invalid_request_error: no such object (or another project's)
    ├── PayloadTooLarge           413 invalid_request_error: an upload over the size limit
    ├── RateLimited               429 requests|tokens / rate_limit_exceeded (+ x-ratelimit-* headers)
    ├── QuotaExceeded             429 insufficient_quota: a spend limit is reached (not retried)
    ├── ServerError               500 server_error: a fault of ours, never the client's
    └── ServiceUnavailable        503 server_error: a service we depend on is down; retry later
        └── files.storage.StorageUnavailable  the file store (S3, the files directory)

`core.handlers` maps every one of them (and FastAPI's own validation errors, which are
client errors too) to `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

from assistantd.core.wire import ErrorEnvelope, error_envelope


class APIError(Exception):
    """Base of every error the API answers with; never raised itself."""

    status_code: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def body(self) -> ErrorEnvelope:
        return error_envelope(self.message, self.type, self.param, self.code)


class InvalidRequest(APIError):
    """A parameter is missing, malformed or out of range, or the request conflicts with state."""

    status_code = 400
    type = "invalid_request_error"


class ActiveRunConflict(InvalidRequest):
    """A message or run was added to a thread while one of its runs is not terminal.

    400, not 409: the SDKs retry 409 automatically, which would create duplicate runs.
    """


class AuthenticationFailed(APIError):
    """The `Authorization` header is missing, or its key is unknown or revoked."""

    status_code = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(APIError):
    """The key is valid but may not do this (a project key on `/v1/organization/*`)."""

    status_code = 403
    type = "invalid_request_error"


class NotFound(APIError):
    """No object with that id exists in the caller's project."""

    status_code = 404
    type = "invalid_request_error"


class PayloadTooLarge(APIError):
    """An upload exceeds `ASSISTANTD_MAX_UPLOAD_BYTES`."""

    status_code = 413
    type = "invalid_request_error"


class RateLimited(APIError):
    """The key exceeded its request budget; carries the seconds to wait, and the
    `x-ratelimit-*` headers of the limit it ran into. `kind` is OpenAI's error `type`:
    `requests` or `tokens`."""

    status_code = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        kind: str = "requests",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.type = kind
        self.headers = headers or {}


class QuotaExceeded(APIError):
    """A project's or the organization's monthly spend limit is spent: no new model work
    until the month turns or the limit is raised. Not retried (`x-should-retry: false`)."""

    status_code = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


class ServerError(APIError):
    """An unexpected fault in assistantd; logged with its request id."""

    status_code = 500
    type = "server_error"


class ServiceUnavailable(APIError):
    """A service assistantd depends on (file storage) cannot be reached or refuses us.

    503, and unlike other 5xx answers the SDKs may retry it: nothing was changed. The
    message says which service and what to do, never its address; the log has the detail.
    """

    status_code = 503
    type = "server_error"


def not_found(kind: str, object_id: str, *, param: str | None = None) -> NotFound:
    """The 404 OpenAI answers for an unknown id, e.g. `No assistant found with id 'asst_x'.`

    `param` names the request field that held the id when it came in the body.
    """
    return NotFound(f"No {kind} found with id '{object_id}'.", param=param)
