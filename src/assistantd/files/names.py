"""The one rule for file names: what upload stores as `filename` and what the sandbox mounts.

A stored name is used as a path component later (`/mnt/data/<filename>` in code_interpreter,
`Content-Disposition` on download), so it is made safe once, when the file is created, and
the sandbox applies the same function to what it is given (rows stored before this rule
existed may still hold a name such as `..`). Standard library only: the sandbox imports it.
"""

from __future__ import annotations

import unicodedata

#: What a name that is empty or only dots becomes.
FALLBACK_NAME = "upload"
#: A file name's longest form on Linux filesystems (NAME_MAX), in UTF-8 bytes.
MAX_NAME_BYTES = 255


def safe_filename(name: str | None) -> str:
    """The bare, safe file name of what a client sent.

    Directories are dropped (`../x` and `a/b.csv` keep `x` and `b.csv`; `\\` counts as a
    separator too), control characters, NUL and unpaired surrogates are removed, surrounding
    whitespace is stripped, a name that is then empty, `.` or `..` becomes `upload`, and a
    name longer than 255 UTF-8 bytes is shortened, keeping its extension.
    """
    text = (name or "").replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cs")).strip()
    if text in ("", ".", ".."):
        return FALLBACK_NAME
    if len(text.encode()) > MAX_NAME_BYTES:
        stem, dot, ext = text.rpartition(".")
        if not dot or not stem or len(ext.encode()) > 16:
            stem, dot, ext = text, "", ""
        room = MAX_NAME_BYTES - len((dot + ext).encode())
        stem = stem.encode()[:room].decode("utf-8", "ignore")
        text = (stem + dot + ext).strip()
    return text
