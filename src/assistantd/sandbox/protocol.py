"""The host side of the kernel's framed pipe protocol (the format is described in kernel.py).

The kernel is untrusted once user code has run in it (the code can write forged frames to
the protocol pipe), so every length it sends is checked against the server's own limits
before anything is allocated, and nothing it sends is ever unpickled. What one execution
may send in all (frames, characters of output) is counted by `KernelProcess.run`.
"""

from __future__ import annotations

import asyncio
import json
import struct
from dataclasses import dataclass
from typing import Any

from assistantd.sandbox.limits import OutputLimits

_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """The kernel sent something that is not a well-formed frame, or closed its output."""


class OutputLimitExceeded(ProtocolError):
    """The kernel sent more than the server accepts (see `OutputLimits`); it is killed."""


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


async def read_frame(reader: asyncio.StreamReader, limits: OutputLimits) -> Frame:
    """Read one frame, checking every size it announces before reading (or allocating) it.

    Only a `result` frame may carry blobs: at most `max_images + max_files` of them, each at
    most `max_file_bytes`.
    """
    try:
        (length,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
        if length > limits.max_frame_bytes:
            raise OutputLimitExceeded(
                f"a frame header of {length} bytes, over the limit of {limits.max_frame_bytes}"
            )
        header = json.loads(await reader.readexactly(length))
    except (asyncio.IncompleteReadError, ValueError) as exc:
        raise ProtocolError(f"kernel closed or garbled its output: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError("frame header is not an object")
    sizes = header.get("blobs", [])
    if not isinstance(sizes, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in sizes
    ):
        raise ProtocolError("frame blob sizes are malformed")
    if sizes and header.get("op") != "result":
        raise ProtocolError(f"a {header.get('op')!r} frame with blobs")
    if len(sizes) > limits.max_images + limits.max_files:
        raise OutputLimitExceeded(
            f"{len(sizes)} images and files, over the limit of "
            f"{limits.max_images} images and {limits.max_files} files"
        )
    if sizes and max(sizes) > limits.max_file_bytes:
        raise OutputLimitExceeded(
            f"an output of {max(sizes)} bytes, over the limit of {limits.max_file_bytes}"
        )
    try:
        blobs = [await reader.readexactly(n) for n in sizes]
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError("kernel closed its output inside a frame") from exc
    return Frame(header, blobs)
