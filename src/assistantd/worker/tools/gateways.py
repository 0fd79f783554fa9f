"""What the server tools need from the rest of assistantd, as narrow protocols.

The run engine does not import the files or vector-store services; the app hands it
objects with these methods (see `app.py`), so each side can change on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class SearchHit:
    file_id: str
    filename: str
    score: float
    text: str


class FileGateway(Protocol):
    async def read(self, project_id: str, file_id: str) -> tuple[str, bytes] | None:
        """(filename, bytes) of a file of the project, or None if it is gone."""

    async def store(self, project_id: str, filename: str, data: bytes, purpose: str) -> str:
        """Store bytes as a new file; returns its id."""

    async def output_bytes(self, project_id: str) -> int:
        """Bytes the project's code interpreter outputs (`assistants_output` files) take now."""


class SearchGateway(Protocol):
    async def search(
        self,
        project_id: str,
        vector_store_ids: list[str],
        query: str,
        max_num_results: int,
        score_threshold: float,
    ) -> list[SearchHit]:
        """Hybrid search over the stores, best first, scores in 0–1."""

    async def wait_ready(self, project_id: str, vector_store_ids: list[str], within: float) -> None:
        """Wait (up to `within` s) while files of these stores are still being ingested."""

    async def touch(self, project_id: str, vector_store_ids: list[str]) -> None:
        """Mark the stores active (their `last_active_at`, which drives expiry)."""


def merged_resources(
    assistant: dict[str, Any] | None,
    thread: dict[str, Any] | None,
    messages: list[dict[str, Any]],
    run: Mapping[str, Any] | None = None,
) -> dict[str, list[str]]:
    """Files and stores a run's tools see: the assistant's, the thread's, and attachments.

    A run's own `tool_resources` (create-thread-and-run's top-level ones) replace the
    assistant's for that tool, for this run only.
    """
    own = (run or {}).get("tool_resources") or {}
    base = dict((assistant or {}).get("tool_resources") or {})
    base.update({tool: res for tool, res in own.items() if res is not None})
    code: list[str] = []
    stores: list[str] = []
    for res in (base, (thread or {}).get("tool_resources") or {}):
        code += (res.get("code_interpreter") or {}).get("file_ids") or []
        stores += (res.get("file_search") or {}).get("vector_store_ids") or []
    for message in messages:
        for att in message.get("attachments") or []:
            if any(t.get("type") == "code_interpreter" for t in att.get("tools") or []):
                code.append(att["file_id"])
    return {
        "code_interpreter": list(dict.fromkeys(code)),
        "file_search": list(dict.fromkeys(stores)),
    }
