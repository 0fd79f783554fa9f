"""The host side of the kernel's framed pipe protocol (the format is described in kernel.py).

The kernel is untrusted once user code has run in it, so every length it sends is checked
against limits before anything is allocated, and nothing it sends is ever unpickled.
"""

from __future__ import annotations

import asyncio
import json
import struct
from dataclasses import dataclass
from typing import Any

_HEADER = struct.Struct(">I")
MAX_HEADER_BYTES = 16 * 1024 * 1024


class ProtocolError(Exception):
    """The kernel sent something that is not a well-formed frame within the limits."""


@dataclass(slots=True)
class Frame:
    """One message: its JSON header and the binary blobs that followed it."""

    header: dict[str, Any]
    blobs: list[bytes]


def encode(header: dict[str, Any], blobs: list[bytes] | None = None) -> bytes:
    """Serialise a frame for the kernel's stdin."""
    blob_list = blobs or []
    raw = json.dumps({**header, "blobs": [len(b) for b in blob_list]}).encode()
    return b"".join([_HEADER.pack(len(raw)), raw, *blob_list])


async def read_frame(reader: asyncio.StreamReader, max_blob_bytes: int) -> Frame:
    """Read one frame; `max_blob_bytes` caps the sum of its blobs (the session's disk quota)."""
    try:
        (length,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
        if length > MAX_HEADER_BYTES:
            raise ProtocolError(f"frame header of {length} bytes is over the limit")
        header = json.loads(await reader.readexactly(length))
    except (asyncio.IncompleteReadError, ValueError) as exc:
        raise ProtocolError(f"kernel closed or garbled its output: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError("frame header is not an object")
    sizes = header.get("blobs", [])
    if not isinstance(sizes, list) or not all(isinstance(n, int) and n >= 0 for n in sizes):
        raise ProtocolError("frame blob sizes are malformed")
    if sum(sizes) > max_blob_bytes:
        raise ProtocolError(f"frame carries {sum(sizes)} bytes, over the limit of {max_blob_bytes}")
    try:
        blobs = [await reader.readexactly(n) for n in sizes]
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError("kernel closed its output inside a frame") from exc
    return Frame(header, blobs)
