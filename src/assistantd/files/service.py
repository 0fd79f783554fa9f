"""Rules and state changes for files; also the functions other packages call.

Other code stores and reads files through `create_file_from_bytes`, `get_file`,
`read_file_bytes` and `delete_file` (the code interpreter writes its outputs with
purpose `assistants_output`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

from sqlalchemy.ext.asyncio import AsyncSession

from assistantd.core.db import UnitOfWork
from assistantd.core.errors import InvalidRequest, not_found
from assistantd.core.ids import new_id, next_seq, now_seconds
from assistantd.core.pagination import ListParams
from assistantd.core.wire import Deleted, ListPage, deleted, list_of
from assistantd.files import storage
from assistantd.files.models import FileRow
from assistantd.files.multipart import ReceivedUpload
from assistantd.files.names import safe_filename
from assistantd.files.repository import FileRepository, live
from assistantd.files.schemas import (
    OUTPUT_PURPOSES,
    UPLOAD_PURPOSES,
    parse_upload_form,
)
from assistantd.files.wire import File, file_object

SessionLike = AsyncSession | UnitOfWork


class FileDependents(Protocol):
    """What else holds files: told inside the deleting transaction, before the row goes.

    Vector stores implement it (`vector_stores.service.VectorStoreDependents`); the app
    passes it in, so files do not import the packages built on them.
    """

    async def file_deleted(self, uow: UnitOfWork, project_id: str, file_id: str) -> None: ...


def _session(s: SessionLike) -> AsyncSession:
    return s.session if isinstance(s, UnitOfWork) else s


def new_file_id() -> str:
    """`file-` and 24 alphanumerics, as OpenAI's file ids."""
    return new_id("file-", 24)


async def _insert(session: AsyncSession, project_id: str, body: File) -> None:
    row = FileRow(
        id=body["id"],
        project_id=project_id,
        seq=next_seq(),
        created_at=body["created_at"],
        body=body,
        purpose=body["purpose"],
        expires_at=body["expires_at"],
    )
    await FileRepository(session).insert(row)


async def create_from_upload(
    uow: UnitOfWork, project_id: str, data_dir: Path, upload: ReceivedUpload
) -> File:
    """Register a streamed upload; its temp file is renamed into place or removed."""
    try:
        form = parse_upload_form(upload.fields)
        if upload.part_path is None:
            raise InvalidRequest("Missing required parameter: 'file'.", param="file")
        created = now_seconds()
        file_id = new_file_id()
        expires = created + form.expires_after_seconds if form.expires_after_seconds else None
        body = file_object(
            file_id, safe_filename(upload.filename), upload.size, form.purpose, created, expires
        )
        # Bytes first, row second: a visible row always has its bytes. If the commit then
        # fails, the orphan bytes are removed below or, after a crash, never referenced.
        store = storage.store_for(data_dir)
        await store.put_file(project_id, file_id, upload.part_path)
        try:
            await _insert(uow.session, project_id, body)
        except BaseException:
            await store.delete(project_id, file_id)
            raise
        return body
    finally:
        if upload.part_path is not None:
            upload.part_path.unlink(missing_ok=True)


async def create_file_from_bytes(
    uow: SessionLike, data_dir: Path, project_id: str, filename: str, data: bytes, purpose: str
) -> File:
    """Store `data` as a new file of the project (e.g. a code interpreter output).

    `purpose` is one of the upload purposes or `assistants_output`. The caller's
    transaction owns the row; the bytes are on disk before this returns.
    """
    if purpose not in UPLOAD_PURPOSES + OUTPUT_PURPOSES:
        raise ValueError(f"unknown file purpose {purpose!r}")
    file_id = new_file_id()
    body = file_object(file_id, safe_filename(filename), len(data), purpose, now_seconds(), None)
    store = storage.store_for(data_dir)
    await store.put_bytes(project_id, file_id, data)
    try:
        await _insert(_session(uow), project_id, body)
    except BaseException:
        await store.delete(project_id, file_id)
        raise
    return body


async def output_bytes(s: SessionLike, project_id: str) -> int:
    """Bytes the project's live `assistants_output` files (code interpreter outputs) take."""
    return await FileRepository(_session(s)).bytes_used(project_id, OUTPUT_PURPOSES[0])


async def get_file(s: SessionLike, project_id: str, file_id: str) -> File:
    """The File object; `NotFound` (404) when unknown, another project's, or expired."""
    return cast(
        File, dict((await FileRepository(_session(s)).require(project_id, file_id, live())).body)
    )


def _check_content(row: FileRow) -> None:
    """A file `assistantd import` found no bytes for is there, but its content is not."""
    if row.content_missing:
        raise InvalidRequest(
            f"File {row.id} was imported without its content (OpenAI does not release the bytes of "
            "files with purpose 'assistants'); upload the file again to use it.",
            param="file_id",
        )


async def read_file_bytes(s: SessionLike, data_dir: Path, project_id: str, file_id: str) -> bytes:
    """A file's content; `NotFound` (404) as `get_file` or when the store has no bytes;
    `InvalidRequest` for a file imported without its bytes; `StorageUnavailable` (503)."""
    _check_content(await FileRepository(_session(s)).require(project_id, file_id, live()))
    try:
        return await storage.store_for(data_dir).get_bytes(project_id, file_id)
    except storage.FileMissing:
        raise not_found("file", file_id) from None


@dataclass(frozen=True, slots=True)
class Content:
    """A download: a local path to serve directly, or a size and a stream of chunks."""

    filename: str
    path: Path | None
    size: int = 0
    chunks: AsyncIterator[bytes] | None = None


async def open_content(s: SessionLike, data_dir: Path, project_id: str, file_id: str) -> Content:
    """A file's bytes for the download endpoint; errors as `read_file_bytes`."""
    row = await FileRepository(_session(s)).require(project_id, file_id, live())
    _check_content(row)
    filename = str(row.body["filename"])
    store = storage.store_for(data_dir)
    try:
        path = await store.local_path(project_id, file_id)
        if path is not None:
            return Content(filename, path)
        size, chunks = await store.stream(project_id, file_id)
    except storage.FileMissing:
        raise not_found("file", file_id) from None
    return Content(filename, None, size, chunks)


async def list_files(
    s: SessionLike, project_id: str, params: ListParams, purpose: str | None
) -> ListPage[File]:
    where = [live()]
    if purpose:
        where.append(FileRow.purpose == purpose)
    rows, more = await FileRepository(_session(s)).list_page(project_id, params, *where)
    return list_of([cast(File, r.body) for r in rows], more)


async def delete_file(
    uow: UnitOfWork,
    dependents: FileDependents,
    data_dir: Path,
    project_id: str,
    file_id: str,
    *,
    include_expired: bool = False,
) -> Deleted:
    """Delete a file: detach it from every vector store, drop the row, then the bytes.

    The bytes go only after the commit, so a rolled-back delete loses nothing. An expired
    file is already gone for clients (404); the expiry sweep passes `include_expired`.
    """
    repo = FileRepository(uow.session)
    row = await (
        repo.get(project_id, file_id) if include_expired else repo.get_live(project_id, file_id)
    )
    if row is None:
        raise not_found("file", file_id)
    await dependents.file_deleted(uow, project_id, file_id)
    await FileRepository(uow.session).delete(row)
    store = storage.store_for(data_dir)
    uow.after_commit(lambda: store.delete(project_id, file_id))
    return deleted(file_id, "file")
