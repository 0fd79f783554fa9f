"""The server tools' gateways, implemented on the files and vector-store services."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistantd.core.errors import APIError
from assistantd.files import service as files
from assistantd.files.storage import StorageUnavailable
from assistantd.vector_stores import service as stores
from assistantd.vector_stores.runtime import VectorStoreRuntime
from assistantd.worker.tools.base import ToolFailed
from assistantd.worker.tools.gateways import SearchHit


class AppFiles:
    """Files for the code interpreter: read inputs, store outputs (`assistants_output`)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], data_dir: Path) -> None:
        self.sessions = sessions
        self.data_dir = data_dir

    async def read(self, project_id: str, file_id: str) -> tuple[str, bytes] | None:
        async with self.sessions() as s:
            try:
                meta = await files.get_file(s, project_id, file_id)
                data = await files.read_file_bytes(s, self.data_dir, project_id, file_id)
            except StorageUnavailable as err:
                raise ToolFailed(err.message) from err  # not gone: say so, do not skip it
            except APIError:
                return None  # deleted or expired since it was attached: nothing to place
        return str(meta["filename"]), data

    async def image(
        self, project_id: str, file_id: str, max_bytes: int
    ) -> tuple[str, int, bytes | None] | None:
        """(purpose, size, bytes or None when over `max_bytes`), for image_file parts."""
        async with self.sessions() as s:
            try:
                meta = await files.get_file(s, project_id, file_id)
                size = int(meta["bytes"])
                data = None
                if size <= max_bytes:
                    data = await files.read_file_bytes(s, self.data_dir, project_id, file_id)
            except APIError:
                return None
        return str(meta["purpose"]), size, data

    async def output_bytes(self, project_id: str) -> int:
        async with self.sessions() as s:
            return await files.output_bytes(s, project_id)

    async def store(self, project_id: str, filename: str, data: bytes, purpose: str) -> str:
        async with self.sessions() as s:
            body = await files.create_file_from_bytes(
                s, self.data_dir, project_id, filename, data, purpose
            )
            await s.commit()
        return str(body["id"])


class AppSearch:
    """Vector-store search for the file_search tool."""

    def __init__(self, runtime: VectorStoreRuntime) -> None:
        self.runtime = runtime

    async def search(
        self,
        project_id: str,
        vector_store_ids: list[str],
        query: str,
        max_num_results: int,
        score_threshold: float,
    ) -> list[SearchHit]:
        async with self.runtime.sessions() as s:
            try:
                hits = await stores.search_stores(
                    self.runtime,
                    s,
                    project_id,
                    vector_store_ids,
                    query,
                    max_num_results,
                    score_threshold,
                )
            except APIError as err:
                raise ToolFailed(
                    f"file_search could not search {', '.join(vector_store_ids)}: {err.message}"
                ) from err
            await s.commit()
        return [SearchHit(h.file_id, h.filename, h.score, h.text) for h in hits]

    async def wait_ready(self, project_id: str, vector_store_ids: list[str], within: float) -> None:
        if vector_store_ids:
            await stores.wait_ready(self.runtime, project_id, vector_store_ids, within)

    async def touch(self, project_id: str, vector_store_ids: list[str]) -> None:
        return None  # search_stores updates last_active_at itself
