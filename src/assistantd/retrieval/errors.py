"""Exceptions raised by the retrieval engine.

The tree::

    RetrievalError                 root; never raised itself
    ├── UnsupportedFile            the file's type cannot be searched (code ``unsupported_file``)
    ├── InvalidFile                the type is known but the bytes cannot be turned into text
    │                              (code ``invalid_file``)
    ├── InvalidChunkingStrategy    static chunking sizes outside the contract's bounds
    ├── InvalidFilter              a search filter that is not a Comparison/CompoundFilter
    └── EmbeddingError             the embedding backend failed (unreachable, an error status,
                                   a malformed answer); ``message`` for clients, ``detail``
                                   (the endpoint's URL, its answer) for the server log

``code`` matches the vector-store file ``last_error.code`` (files) or is a suitable
``invalid_request_error`` code (requests); the service maps these to its own API errors.
"""

from __future__ import annotations


class RetrievalError(Exception):
    """Root of every error the retrieval engine raises on purpose."""

    code: str = "server_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedFile(RetrievalError):
    """Raised by `parse_document` when the extension / mime type is not one we can read."""

    code = "unsupported_file"


class InvalidFile(RetrievalError):
    """Raised by `parse_document` when a supported file is corrupt, encrypted or has no text."""

    code = "invalid_file"


class InvalidChunkingStrategy(RetrievalError, ValueError):
    """Raised by `ChunkingStrategy.static` for sizes outside 100–4096 / overlap > max/2."""

    code = "invalid_chunking_strategy"


class InvalidFilter(RetrievalError, ValueError):
    """Raised by `parse_filter` for a filter that does not match the contract's schema."""

    code = "invalid_filter"


class EmbeddingError(RetrievalError):
    """Raised by an embedder whose backend failed. `message` is safe to show a client (what
    happened, never where); `detail`, also `str()`, names the endpoint for the server log."""

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message

    def __str__(self) -> str:
        return self.detail
