"""Where file bytes live: `<data_dir>/files/<project>/<file_id>`, written atomically.

Every write goes to a `.part` temp file in the same directory and is renamed into place
only when complete, so a failed, oversized or interrupted upload never leaves a
half-written file under a real id. Temp files a crash left behind are removed by
`remove_stale_parts`.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from pathlib import Path

_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
PART_SUFFIX = ".part"


def project_dir(data_dir: Path, project_id: str) -> Path:
    """The directory of one project's files; odd project names are hashed, never joined raw."""
    name = project_id if _SAFE.match(project_id) and project_id not in (".", "..") else (
        "p-" + hashlib.sha256(project_id.encode()).hexdigest()[:32]
    )
    return data_dir / "files" / name


def file_path(data_dir: Path, project_id: str, file_id: str) -> Path:
    return project_dir(data_dir, project_id) / file_id


def new_part_path(data_dir: Path, project_id: str) -> Path:
    """A fresh temp path beside the final one (same filesystem, so the rename is atomic)."""
    directory = project_dir(data_dir, project_id)
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f".upload-{secrets.token_hex(8)}{PART_SUFFIX}"


def commit_part(part: Path, final: Path) -> None:
    """Make a complete temp file visible under its final name (blocking)."""
    with part.open("rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(part, final)


def write_atomic(data_dir: Path, project_id: str, file_id: str, data: bytes) -> Path:
    """Write `data` as a file's bytes (blocking; call from a thread in async code)."""
    part = new_part_path(data_dir, project_id)
    try:
        with part.open("wb") as fh:
            fh.write(data)
        final = file_path(data_dir, project_id, file_id)
        commit_part(part, final)
        return final
    finally:
        part.unlink(missing_ok=True)


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def remove_stale_parts(data_dir: Path, older_than_seconds: float = 3600.0) -> int:
    """Delete temp files of uploads that died with their process; returns how many."""
    root = data_dir / "files"
    if not root.is_dir():
        return 0
    cutoff = time.time() - older_than_seconds
    removed = 0
    for part in root.glob(f"*/.upload-*{PART_SUFFIX}"):
        try:
            if part.stat().st_mtime < cutoff:
                part.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
