"""Ids of files and vector stores that a request names, checked before anything is stored.

An assistant, thread, message or run may only refer to files and stores of its own project.
Services collect every id of a request into one `References` (with the field it came in),
then `check` looks each kind up with one query and raises OpenAI's 404 for the first id
that the project does not have, e.g. `No file found with id 'file-x'.` with
`param: "tool_resources.code_interpreter.file_ids"`. The request's transaction then rolls
back, so nothing it made before the check is kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from assistantd.core.errors import not_found
from assistantd.core.schemas import ToolResources
from assistantd.files.repository import FileRepository
from assistantd.messages.schemas import ImageFilePart, MessageCreate
from assistantd.vector_stores.repository import VectorStoreRepository

Kind = Literal["file", "vector store"]


class References:
    """The file and vector-store ids of one request, in the order they appear in it."""

    def __init__(self) -> None:
        self._refs: list[tuple[Kind, str, str]] = []

    def __bool__(self) -> bool:
        return bool(self._refs)

    def files(self, param: str, file_ids: Iterable[str] | None) -> References:
        self._refs += [("file", param, i) for i in file_ids or ()]
        return self

    def stores(self, param: str, vector_store_ids: Iterable[str] | None) -> References:
        self._refs += [("vector store", param, i) for i in vector_store_ids or ()]
        return self

    def tool_resources(
        self, resources: ToolResources | None, prefix: str = "tool_resources"
    ) -> References:
        """`code_interpreter.file_ids`, `file_search.vector_store_ids` and the files of
        `file_search.vector_stores[]` helpers."""
        if resources is None:
            return self
        if resources.code_interpreter is not None:
            self.files(f"{prefix}.code_interpreter.file_ids", resources.code_interpreter.file_ids)
        fs = resources.file_search
        if fs is not None:
            self.stores(f"{prefix}.file_search.vector_store_ids", fs.vector_store_ids)
            for i, helper in enumerate(fs.vector_stores or []):
                self.files(f"{prefix}.file_search.vector_stores[{i}].file_ids", helper.file_ids)
        return self

    def message(self, req: MessageCreate, prefix: str = "") -> References:
        """A message's `image_file` parts, `attachments` and v1 `file_ids`."""
        dot = f"{prefix}." if prefix else ""
        if not isinstance(req.content, str):
            for i, part in enumerate(req.content):
                if isinstance(part, ImageFilePart):
                    self.files(f"{dot}content[{i}].image_file.file_id", [part.image_file.file_id])
        for i, attachment in enumerate(req.attachments or []):
            self.files(f"{dot}attachments[{i}].file_id", [attachment.file_id])
        return self.files(f"{dot}file_ids", req.file_ids)

    def messages(self, reqs: list[MessageCreate] | None, prefix: str) -> References:
        for i, req in enumerate(reqs or []):
            self.message(req, f"{prefix}[{i}]")
        return self

    async def check(self, session: AsyncSession, project_id: str) -> None:
        """404 for the first id the project has no such object for: one query per kind."""
        if not self._refs:
            return
        found: dict[Kind, set[str]] = {}
        for kind in dict.fromkeys(k for k, _, _ in self._refs):
            ids = [i for k, _, i in self._refs if k == kind]
            if kind == "file":
                found[kind] = await FileRepository(session).existing_live(project_id, ids)
            else:
                found[kind] = await VectorStoreRepository(session).existing_ids(project_id, ids)
        for kind, param, object_id in self._refs:
            if object_id not in found[kind]:
                raise not_found(kind, object_id, param=param)
