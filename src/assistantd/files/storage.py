"""Where file bytes live: a directory (local or shared) or S3-compatible object storage.

One interface, `FileStore`, for everything that stores or reads file bytes: uploads and
code-interpreter outputs (`files.service`), downloads (`GET /v1/files/{id}/content`),
ingestion and the file-content endpoint (`vector_stores`), and the sandbox (which reads
through `files.service.read_file_bytes`). `ASSISTANTD_STORAGE` picks the backend:

- `local` (`LocalStore`): ``<FILES_DIR>/<project>/<file_id>`` (FILES_DIR defaults to
  ``DATA_DIR/files``). Point every API and worker process at one shared directory (NFS,
  CephFS, a mounted volume) and they serve each other's files. Every write goes to a
  `.part` temp file in the same directory and is renamed into place only when
  complete, so a failed or interrupted write never leaves a half-written file under a
  real id (`remove_stale_parts` clears what a crash left).
- `s3` (`S3Store`, in `s3.py`): object ``<S3_PREFIX><project>/<file_id>`` of
  ``S3_BUCKET`` on AWS or any S3-compatible endpoint. A PUT is atomic: an object is
  visible complete or not at all.

Uploads are first streamed to a temp file under ``DATA_DIR/files`` (bounded, never held
in memory), then handed to the store (`put_file`), which renames it (local) or uploads
it (S3). Callers pass ``data_dir``: `configure` registers the store the settings ask for
under that data dir (the app does it at start-up), and `store_for` finds it; a data dir
never configured gets a `LocalStore` in ``data_dir/files``, as before.

Every store raises the same two errors, whatever went wrong underneath:

    StoreError                  base of both
    ├── FileMissing             the store holds no bytes for the file (also a
    │                           FileNotFoundError); callers answer 404 / skip the file
    └── StorageUnavailable      the store cannot be reached or refuses (S3 down, access
                                denied, no such bucket, a disk error); 503 `server_error`

Neither message names a path, bucket or endpoint: the client sees them. The store logs
the underlying error (logger ``assistantd.files``) before raising.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

from assistantd.core.errors import ServiceUnavailable

log = logging.getLogger("assistantd.files")

_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
PART_SUFFIX = ".part"


class StoreError(Exception):
    """Base of what a `FileStore` raises."""


class FileMissing(StoreError, FileNotFoundError):
    """The store holds no bytes for this file: never written, deleted, or lost."""

    def __init__(self, file_id: str) -> None:
        super().__init__(f"No content stored for file {file_id}.")
        self.file_id = file_id


class StorageUnavailable(StoreError, ServiceUnavailable):
    """The store could not do what was asked: unreachable, refusing, or failing.

    The message is for the client (which file, what to do); the cause is logged.
    """

    def __init__(self, action: str, file_id: str) -> None:
        super().__init__(
            f"File storage is unavailable: could not {action} file {file_id}. "
            "Try again later; if it persists, the server's file storage needs attention."
        )


class FileStore(Protocol):
    """File bytes by (project, file id). Raises only `FileMissing` and `StorageUnavailable`."""

    async def put_file(self, project_id: str, file_id: str, source: Path) -> None:
        """Store a complete temp file as a file's bytes (the temp file may be moved away)."""

    async def put_bytes(self, project_id: str, file_id: str, data: bytes) -> None: ...

    async def get_bytes(self, project_id: str, file_id: str) -> bytes: ...

    async def exists(self, project_id: str, file_id: str) -> bool:
        """Whether the store holds the file's bytes, without reading them (S3: a HEAD)."""

    async def local_path(self, project_id: str, file_id: str) -> Path | None:
        """A path to serve the bytes from directly, when the store has one (local), else None."""

    async def stream(self, project_id: str, file_id: str) -> tuple[int, AsyncIterator[bytes]]:
        """(size, chunks) of a file's bytes, for a download; `FileMissing` before any."""

    async def delete(self, project_id: str, file_id: str) -> None:
        """Remove a file's bytes; a missing file is not an error."""

    async def aclose(self) -> None: ...


def project_key(project_id: str) -> str:
    """A project's directory / key component; odd project names are hashed, never joined raw."""
    if _SAFE.match(project_id) and project_id not in (".", ".."):
        return project_id
    return "p-" + hashlib.sha256(project_id.encode()).hexdigest()[:32]


def project_dir(data_dir: Path, project_id: str) -> Path:
    """The directory of one project's files in a data dir's default local store."""
    return data_dir / "files" / project_key(project_id)


def file_path(data_dir: Path, project_id: str, file_id: str) -> Path:
    return project_dir(data_dir, project_id) / file_id


def new_part_path(data_dir: Path, project_id: str) -> Path:
    """A fresh temp path for an upload being received (always under ``data_dir/files``)."""
    directory = project_dir(data_dir, project_id)
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f".upload-{secrets.token_hex(8)}{PART_SUFFIX}"


def commit_part(part: Path, final: Path) -> None:
    """Make a complete temp file visible under its final name (blocking).

    A rename when both are on one filesystem; a copy to a temp file beside `final` and
    a rename there otherwise (FILES_DIR on another mount than DATA_DIR).
    """
    with part.open("rb+") as fh:
        os.fsync(fh.fileno())
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(part, final)
    except OSError:
        beside = final.parent / f".upload-{secrets.token_hex(8)}{PART_SUFFIX}"
        try:
            with part.open("rb") as src, beside.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(beside, final)
        finally:
            beside.unlink(missing_ok=True)


def _write_atomic(root: Path, project_id: str, file_id: str, data: bytes) -> None:
    directory = root / project_key(project_id)
    directory.mkdir(parents=True, exist_ok=True)
    part = directory / f".upload-{secrets.token_hex(8)}{PART_SUFFIX}"
    try:
        with part.open("wb") as fh:
            fh.write(data)
        commit_part(part, directory / file_id)
    finally:
        part.unlink(missing_ok=True)


def write_atomic(data_dir: Path, project_id: str, file_id: str, data: bytes) -> Path:
    """Write `data` under the data dir's default local directory (blocking).

    Kept for callers written before `FileStore`; new code goes through
    ``await store_for(data_dir).put_bytes(...)``, which also reaches S3 and FILES_DIR.
    """
    _write_atomic(data_dir / "files", project_id, file_id, data)
    return file_path(data_dir, project_id, file_id)


def remove(path: Path) -> None:
    """Delete a local file's bytes (blocking); see `write_atomic`."""
    path.unlink(missing_ok=True)


@contextlib.contextmanager
def _local_errors(action: str, file_id: str, path: Path, *, reading: bool) -> Iterator[None]:
    """OS errors of a local store as `FileMissing` (reads of an absent file) or
    `StorageUnavailable` (anything else: permissions, a full disk, a failing NFS mount)."""
    try:
        yield
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        if reading:
            raise FileMissing(file_id) from None
        log.warning("file store: could not %s %s: %s", action, path, exc)
        raise StorageUnavailable(action, file_id) from exc
    except OSError as exc:
        log.warning("file store: could not %s %s: %s", action, path, exc)
        raise StorageUnavailable(action, file_id) from exc


class LocalStore:
    """Files in a directory: this host's disk, or a directory shared by every process."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, project_id: str, file_id: str) -> Path:
        return self.root / project_key(project_id) / file_id

    async def put_file(self, project_id: str, file_id: str, source: Path) -> None:
        path = self.path(project_id, file_id)
        with _local_errors("store", file_id, path, reading=False):
            await asyncio.to_thread(commit_part, source, path)

    async def put_bytes(self, project_id: str, file_id: str, data: bytes) -> None:
        path = self.path(project_id, file_id)
        with _local_errors("store", file_id, path, reading=False):
            await asyncio.to_thread(_write_atomic, self.root, project_id, file_id, data)

    async def get_bytes(self, project_id: str, file_id: str) -> bytes:
        path = self.path(project_id, file_id)
        with _local_errors("read", file_id, path, reading=True):
            return await asyncio.to_thread(path.read_bytes)

    async def exists(self, project_id: str, file_id: str) -> bool:
        path = self.path(project_id, file_id)
        with _local_errors("look up", file_id, path, reading=False):
            return await asyncio.to_thread(path.is_file)

    async def local_path(self, project_id: str, file_id: str) -> Path | None:
        if not await self.exists(project_id, file_id):
            raise FileMissing(file_id)
        return self.path(project_id, file_id)

    async def stream(self, project_id: str, file_id: str) -> tuple[int, AsyncIterator[bytes]]:
        path = self.path(project_id, file_id)
        with _local_errors("read", file_id, path, reading=True):
            fh = await asyncio.to_thread(path.open, "rb")
        size = os.fstat(fh.fileno()).st_size

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    with _local_errors("read", file_id, path, reading=False):
                        chunk = await asyncio.to_thread(fh.read, 1 << 20)
                    if not chunk:
                        return
                    yield chunk
            finally:
                fh.close()

        return size, chunks()

    async def delete(self, project_id: str, file_id: str) -> None:
        path = self.path(project_id, file_id)
        with _local_errors("delete", file_id, path, reading=False):
            await asyncio.to_thread(path.unlink, True)

    async def aclose(self) -> None:
        return None


_stores: dict[Path, FileStore] = {}


def _key(data_dir: Path) -> Path:
    return Path(os.path.abspath(data_dir))


def configure(data_dir: Path, store: FileStore) -> None:
    """Use `store` for every caller passing `data_dir` (the app calls it at start-up)."""
    _stores[_key(data_dir)] = store


def unconfigure(data_dir: Path) -> FileStore | None:
    return _stores.pop(_key(data_dir), None)


def store_for(data_dir: Path) -> FileStore:
    """The store configured for `data_dir`, else a `LocalStore` in ``data_dir/files``."""
    return _stores.get(_key(data_dir)) or LocalStore(data_dir / "files")


def remove_stale_parts(data_dir: Path, older_than_seconds: float = 3600.0) -> int:
    """Delete temp files of uploads that died with their process; returns how many."""
    roots = {data_dir / "files"}
    store = _stores.get(_key(data_dir))
    if isinstance(store, LocalStore):
        roots.add(store.root)
    cutoff = time.time() - older_than_seconds
    removed = 0
    for root in roots:
        if not root.is_dir():
            continue
        for part in root.glob(f"*/.upload-*{PART_SUFFIX}"):
            try:
                if part.stat().st_mtime < cutoff:
                    part.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
    return removed
