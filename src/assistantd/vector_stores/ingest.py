"""The ingestion worker: parses, chunks and embeds attached files in the background.

Requests only record a store file as `in_progress` and hand it here after their commit.
A file is processed by whoever holds its lease (`vector_store_files.lease_owner`),
renewed while the work lasts, so several processes can share one database and each file
is ingested once. The slow part (parsing, embedding) runs outside any transaction; the
chunks are written in one short transaction that first re-checks, under a row lock, that
the file is still ours and still in progress: a batch cancelled, a file detached or
re-attached meanwhile simply drops the work.

Recovery: at start the worker takes over files whose lease holder on this host is dead
(a crash), and every `SWEEP_SECONDS` it claims in-progress files with no live lease
(unclaimed ones, or those of a process that died elsewhere). The same loop marks stores
past their `expires_at` `expired` (expired files are `files/expiry.py`'s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistantd.core.errors import APIError
from assistantd.core.ids import now_seconds
from assistantd.core.leases import owner_alive, owner_name
from assistantd.core.metrics import INGESTION_FAILURES
from assistantd.core.periodic import every
from assistantd.files import storage
from assistantd.files.models import FileRow
from assistantd.retrieval import (
    ChunkIndex,
    ChunkingStrategy,
    Embedder,
    EmbeddingError,
    InvalidFile,
    PreparedFile,
    UnsupportedFile,
    embed_chunks,
)
from assistantd.retrieval.chunk import chunk_bounded
from assistantd.retrieval.parse import ParseLimits, parse_bounded
from assistantd.vector_stores.repository import VectorStoreFileRepository, VectorStoreRepository

log = logging.getLogger("assistantd.ingest")

#: Files ingested at once. Embedding already uses every core for one batch (the embedder
#: serialises model calls); two lets one file parse while another embeds.
CONCURRENCY = 2
LEASE_SECONDS = 60.0
SWEEP_SECONDS = 2.0
EXPIRY_SWEEP_SECONDS = 60.0


class IngestionWorker:
    """Bounded-concurrency asyncio tasks that turn attached files into indexed chunks."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        index: ChunkIndex,
        embedder: Embedder,
        data_dir: Path,
        *,
        concurrency: int = CONCURRENCY,
        limits: ParseLimits | None = None,
        max_chunks: int = 4096,
        host_id: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.index = index
        self.embedder = embedder
        self.data_dir = data_dir
        self.limits = limits or ParseLimits()
        self.max_chunks = max_chunks
        # hostname:pid:token — the token tells this worker from an earlier one of the same pid.
        self.owner = owner_name(secrets.token_hex(4), host_id)
        self._host_id = host_id
        self._limit = asyncio.Semaphore(concurrency)
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False
        self._started = False
        self._last_expiry_sweep = 0.0

    async def start(self) -> None:
        self._started = True
        await self._recover()
        self._sweeper = asyncio.create_task(
            every(SWEEP_SECONDS, self.sweep, log, "ingestion sweep")
        )

    async def stop(self) -> None:
        """Stop; files in flight keep their leases, which run out, and are taken over later."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in [*tasks, *([self._sweeper] if self._sweeper else [])]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def submit(self, vector_store_id: str, file_id: str, steal_from: str | None = None) -> None:
        """Ingest a store file here, unless someone already holds it."""
        key = (vector_store_id, file_id)
        if not self._started or self._closing or key in self._tasks:
            return  # an API-only process: the worker process's sweep picks the file up
        self._tasks[key] = asyncio.create_task(self._run(vector_store_id, file_id, steal_from))

    def busy(self) -> int:
        return len(self._tasks)

    # -- one file ----------------------------------------------------------------------------

    async def _run(self, vector_store_id: str, file_id: str, steal_from: str | None) -> None:
        try:
            async with self._limit:
                await self._ingest(vector_store_id, file_id, steal_from)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ingestion of %s into %s failed", file_id, vector_store_id)
        finally:
            self._tasks.pop((vector_store_id, file_id), None)

    async def _ingest(self, vector_store_id: str, file_id: str, steal_from: str | None) -> None:
        async with self.sessions() as s, s.begin():
            files = VectorStoreFileRepository(s)
            if not await files.claim(
                vector_store_id, file_id, self.owner, time.time(), LEASE_SECONDS, steal_from
            ):
                return
            row = await files.by_key(vector_store_id, file_id)
            file_row = await s.get(FileRow, file_id)
            if row is None:
                return
            project_id = row.project_id
            strategy_wire = row.body.get("chunking_strategy")
            filename = str(file_row.body["filename"]) if file_row is not None else file_id
        renewer = asyncio.create_task(self._renew(vector_store_id, file_id))
        try:
            error: tuple[str, str] | None = None
            prepared = None
            try:
                if file_row is None:
                    raise InvalidFile(f"file {file_id} no longer exists")
                data = await storage.store_for(self.data_dir).get_bytes(project_id, file_id)
                strategy = ChunkingStrategy.from_wire(strategy_wire)
                prepared = await self._prepare(data, filename, strategy)
                if not prepared.chunks:
                    raise InvalidFile(f"{filename} contains no text to index")
            except (UnsupportedFile, InvalidFile) as exc:
                error = (exc.code, exc.message)
            except (EmbeddingError, APIError) as exc:
                # The embedding backend or the file store failed: `message` says so without
                # naming where they live; the log has that.
                log.warning("could not ingest %s: %s", file_id, exc)
                error = ("server_error", f"Could not process {filename}: {exc.message}")
            except Exception as exc:
                # Anything else also ends this file `failed` (left in progress, it would be
                # retried forever); what it says may name paths, so only the log shows it.
                log.exception("could not ingest %s", file_id)
                error = (
                    "server_error",
                    f"Could not process {filename}: an internal error ({type(exc).__name__}); "
                    "the server log has the details.",
                )
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        await self._finish(vector_store_id, file_id, prepared, error)

    async def _prepare(
        self, data: bytes, filename: str, strategy: ChunkingStrategy
    ) -> PreparedFile:
        """Parse (bounded, off the loop: see `parse_bounded`), chunk (bounded, in a thread) and
        embed one file; `InvalidFile` past `limits` or `max_chunks`."""
        document = await parse_bounded(data, filename, None, self.limits)
        del data
        tokenizer = self.embedder.tokenizer()
        offsets, chunks = await asyncio.to_thread(
            chunk_bounded, document.text, tokenizer, strategy, self.max_chunks, filename
        )
        embeddings = await embed_chunks(self.embedder, document.text, offsets, chunks)
        return PreparedFile(document, chunks, embeddings, self.embedder.model_id)

    async def _finish(
        self, vector_store_id: str, file_id: str, prepared: Any, error: tuple[str, str] | None
    ) -> None:
        async with self.sessions() as s, s.begin():
            row = await VectorStoreFileRepository(s).held(vector_store_id, file_id, self.owner)
            if row is None:
                return  # cancelled, detached or re-attached while we worked: drop it
            body = dict(row.body)
            if error is not None:
                INGESTION_FAILURES.labels(error[0]).inc()
                row.status = "failed"
                row.usage_bytes = 0
                body["last_error"] = {"code": error[0], "message": error[1]}
            else:
                await self.index.add_file_chunks(
                    await s.connection(),
                    vector_store_id=vector_store_id,
                    file_id=file_id,
                    chunks=prepared.chunks,
                    embeddings=prepared.embeddings,
                    embedding_model=prepared.model_id,
                    attributes=body.get("attributes") or {},
                )
                row.status = "completed"
                # What the store holds for the file: chunk text plus float32 vectors.
                row.usage_bytes = sum(len(c.text.encode()) for c in prepared.chunks) + int(
                    prepared.embeddings.nbytes
                )
                body["last_error"] = None
            row.lease_owner = None
            row.lease_expires_at = None
            row.body = body

    async def _renew(self, vector_store_id: str, file_id: str) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            try:
                async with self.sessions() as s, s.begin():
                    await VectorStoreFileRepository(s).renew(
                        vector_store_id, file_id, self.owner, time.time() + LEASE_SECONDS
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not renew the ingestion lease of %s", file_id)

    # -- sweeps ------------------------------------------------------------------------------

    async def _recover(self) -> None:
        """Take over files whose lease holder on this host died (the server crashed)."""
        await asyncio.to_thread(storage.remove_stale_parts, self.data_dir)
        async with self.sessions() as s:
            leased = await VectorStoreFileRepository(s).leased(time.time())
        for vs_id, file_id, owner in leased:
            if owner != self.owner and not owner_alive(owner, self._host_id):
                self.submit(vs_id, file_id, steal_from=owner)
        await self.sweep()

    async def sweep(self) -> None:
        """Claim unleased in-progress files; now and then expire stores."""
        async with self.sessions() as s:
            pending = await VectorStoreFileRepository(s).claimable(time.time(), 200)
        for vs_id, file_id in pending:
            self.submit(vs_id, file_id)
        if time.monotonic() - self._last_expiry_sweep >= EXPIRY_SWEEP_SECONDS:
            self._last_expiry_sweep = time.monotonic()
            await self.expire()

    async def expire(self) -> None:
        """Mark stores past `expires_at` expired."""
        async with self.sessions() as s, s.begin():
            now = now_seconds()
            for store in await VectorStoreRepository(s).due_for_expiry(now, 500):
                store.expired_at = now
