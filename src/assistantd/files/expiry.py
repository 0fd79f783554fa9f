"""The expired-file sweep: files past their `expires_at` are deleted, bytes and all.

Clients stop seeing a file the moment it expires (`repository.live`); this sweep, run where
the workers run, removes it for good now and then, through `service.delete_file` so it also
leaves every vector store it was in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistantd.core.db import UnitOfWork
from assistantd.core.periodic import every
from assistantd.files.repository import FileRepository
from assistantd.files.service import FileDependents, delete_file

log = logging.getLogger("assistantd.files")

EXPIRY_SWEEP_SECONDS = 60.0
#: Files deleted per sweep at most; the rest wait for the next one.
BATCH = 200


class FileExpiry:
    """Deletes expired files: once at start, then every `EXPIRY_SWEEP_SECONDS`."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], data_dir: Path, dependents: FileDependents
    ) -> None:
        self.sessions = sessions
        self.data_dir = data_dir
        self.dependents = dependents
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.sweep()
        self._task = asyncio.create_task(
            every(EXPIRY_SWEEP_SECONDS, self.sweep, log, "file expiry sweep")
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def sweep(self) -> None:
        """Delete files past their `expires_at`, each in a transaction of its own."""
        async with self.sessions() as s:
            expired = [(r.project_id, r.id) for r in await FileRepository(s).expired(BATCH)]
        for project_id, file_id in expired:
            async with self.sessions() as s:
                uow = UnitOfWork(s)
                try:
                    await delete_file(
                        uow,
                        self.dependents,
                        self.data_dir,
                        project_id,
                        file_id,
                        include_expired=True,
                    )
                    await uow.commit()
                except Exception:
                    await s.rollback()
                    log.exception("could not delete expired file %s", file_id)
