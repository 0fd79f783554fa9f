"""Stream a `multipart/form-data` upload straight to disk, enforcing the size limit as it goes.

Starlette's form parser buffers file parts in a spooled temp file before the handler runs,
so an oversized upload would be read in full and written to the system temp dir first.
This parser writes the `file` part to the project's `.part` temp file while the request
streams in and stops at the first byte past the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from assistantd.core.errors import InvalidRequest, PayloadTooLarge

_MAX_FIELD_BYTES = 64 * 1024
_MAX_FIELDS = 32


@dataclass
class ReceivedUpload:
    """The form fields of an upload and its `file` part, already on disk at `part_path`."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    part_path: Path | None = None
    size: int = 0


class _Collector:
    """python-multipart callbacks: text fields into memory, the file part into a queue."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_chunks: list[bytes] = []
        self.file_seen = False
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._is_file = False
        self._data = bytearray()
        self.ended = False  # the closing boundary was seen

    def on_end(self) -> None:
        self.ended = True

    def on_part_begin(self) -> None:
        self._disposition, self._name, self._is_file = b"", "", False
        self._data = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        # Only the `file` part is streamed; any other file-like part is read as a field.
        self._is_file = self._name == "file" and b"filename" in options
        if self._is_file:
            if self.file_seen:
                raise InvalidRequest(
                    "Only one 'file' part may be uploaded per request.", param="file"
                )
            self.file_seen = True
            self.filename = options[b"filename"].decode("utf-8", "replace")
        elif len(self.fields) >= _MAX_FIELDS:
            raise InvalidRequest("Too many form fields in the upload.")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.file_chunks.append(data[start:end])
            return
        if len(self._data) + (end - start) > _MAX_FIELD_BYTES:
            raise InvalidRequest(
                f"Form field '{self._name}' is too long.", param=self._name or None
            )
        self._data += data[start:end]

    def on_part_end(self) -> None:
        if not self._is_file and self._name:
            self.fields[self._name] = self._data.decode("utf-8", "replace")


async def receive_upload(
    content_type: str | None, stream: AsyncIterator[bytes], part_path: Path, max_bytes: int
) -> ReceivedUpload:
    """Parse the body; the `file` part lands in `part_path` (removed again on any error).

    Raises `InvalidRequest` for a body that is not well-formed multipart and
    `PayloadTooLarge` past `max_bytes` of file data (the rest of the body is drained, so
    the client reads the 413 instead of a reset connection).
    """
    ctype, params = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise InvalidRequest(
            "The request must be multipart/form-data with a 'file' part and a 'purpose' field.",
        )
    collector = _Collector()
    callbacks: Any = {
        "on_part_begin": collector.on_part_begin,
        "on_part_data": collector.on_part_data,
        "on_part_end": collector.on_part_end,
        "on_header_field": collector.on_header_field,
        "on_header_value": collector.on_header_value,
        "on_header_end": collector.on_header_end,
        "on_headers_finished": collector.on_headers_finished,
        "on_end": collector.on_end,
    }
    parser = MultipartParser(params[b"boundary"], callbacks)
    out = ReceivedUpload()
    fh: IO[bytes] | None = None
    try:
        async for chunk in stream:
            try:
                parser.write(chunk)
            except FormParserError as exc:
                raise InvalidRequest(f"Malformed multipart body: {exc}") from None
            if collector.file_chunks:
                data = b"".join(collector.file_chunks)
                collector.file_chunks.clear()
                out.size += len(data)
                if out.size > max_bytes:
                    raise PayloadTooLarge(
                        f"File too large: the upload exceeds the server's limit of {max_bytes} "
                        "bytes (ASSISTANTD_MAX_UPLOAD_BYTES).",
                        param="file",
                    )
                if fh is None:
                    fh = await asyncio.to_thread(part_path.open, "wb")
                await asyncio.to_thread(fh.write, data)
        try:
            parser.finalize()
        except FormParserError as exc:
            raise InvalidRequest(f"Malformed multipart body: {exc}") from None
        if not collector.ended:
            # python-multipart's finalize() does not check that the body is complete: a body
            # cut short would leave a file of whatever part of it arrived.
            raise InvalidRequest(
                "Malformed multipart body: the body ends before its closing boundary."
            )
        if collector.file_seen and fh is None:
            fh = await asyncio.to_thread(part_path.open, "wb")  # an empty file is still a file
        if fh is not None:
            await asyncio.to_thread(fh.close)
            fh = None
    except BaseException as exc:
        if fh is not None:
            fh.close()
        await asyncio.to_thread(part_path.unlink, missing_ok=True)
        if isinstance(exc, PayloadTooLarge):
            with contextlib.suppress(Exception):
                async for _ in stream:
                    pass
        raise
    out.fields = collector.fields
    out.filename = collector.filename
    out.part_path = part_path if collector.file_seen else None
    return out
