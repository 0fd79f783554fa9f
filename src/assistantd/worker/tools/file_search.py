"""The `file_search` tool: hybrid search over the assistant's and the thread's vector stores."""

from __future__ import annotations

from typing import Any

from assistantd.llm.base import ToolSpec
from assistantd.worker.tools.base import (
    ServerTool,
    ToolCallState,
    ToolEnv,
    ToolOutcome,
    parse_arguments,
)
from assistantd.worker.tools.gateways import SearchGateway, SearchHit

DEFAULT_MAX_RESULTS = 20
# Roughly OpenAI's 16k-token budget for search results in the prompt.
MAX_OUTPUT_CHARS = 48_000
READY_TIMEOUT = 60.0

DESCRIPTION = (
    "Search the files the user provided. Give one or more search queries; you get the most "
    "relevant passages. Cite a passage you use with its marker exactly as shown, e.g. "
    "【0:1†report.pdf】, right after the sentence it supports."
)


def _ranking(tool: dict[str, Any]) -> dict[str, Any]:
    opts = (tool.get("file_search") or {}).get("ranking_options") or {}
    return {
        "ranker": "default_2024_08_21",
        "score_threshold": float(opts.get("score_threshold") or 0.0),
    }


class FileSearchTool(ServerTool):
    type = "file_search"

    def __init__(self, search: SearchGateway) -> None:
        self.search = search

    def spec(self, tool: dict[str, Any]) -> ToolSpec:
        return ToolSpec(
            name="file_search",
            description=DESCRIPTION,
            parameters={
                "type": "object",
                "properties": {
                    "queries": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "One to five search queries.",
                    }
                },
                "required": ["queries"],
            },
        )

    def intro(self, call: ToolCallState, tool: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": call.id,
            "type": "file_search",
            "file_search": {"ranking_options": _ranking(tool), "results": []},
        }

    async def execute(self, env: ToolEnv, call: ToolCallState, tool: dict[str, Any]) -> ToolOutcome:
        args = parse_arguments(call)
        queries = args.get("queries") or args.get("query") or []
        if isinstance(queries, str):
            queries = [queries]
        queries = [q for q in queries if isinstance(q, str) and q.strip()][:5]
        if not queries:
            last_user = env.last_user_text.strip()
            queries = [last_user] if last_user else []
        ranking = _ranking(tool)
        limit = int((tool.get("file_search") or {}).get("max_num_results") or DEFAULT_MAX_RESULTS)
        stores = env.resources.get("file_search", [])
        hits: dict[tuple[str, str], SearchHit] = {}
        if stores and queries:
            await self.search.wait_ready(env.project_id, env.thread_stores, READY_TIMEOUT)
            await self.search.touch(env.project_id, stores)
            for query in queries:
                for hit in await self.search.search(
                    env.project_id, stores, query, limit, ranking["score_threshold"]
                ):
                    key = (hit.file_id, hit.text)
                    if key not in hits or hits[key].score < hit.score:
                        hits[key] = hit
        best = sorted(hits.values(), key=lambda h: h.score, reverse=True)[:limit]
        results = [
            {
                "file_id": h.file_id,
                "file_name": h.filename,
                "score": round(h.score, 6),
                "content": [{"type": "text", "text": h.text}],
            }
            for h in best
        ]
        n = env.file_search_ordinal
        parts = []
        used = 0
        for k, hit in enumerate(best):
            block = f"【{n}:{k}†{hit.filename}】\n{hit.text}\n"
            if used + len(block) > MAX_OUTPUT_CHARS:
                break
            parts.append(block)
            used += len(block)
        if not stores:
            output = (
                "No files are attached to this assistant or thread, so there is nothing to search."
            )
        elif not parts:
            output = "The search found nothing relevant in the files."
        else:
            output = "\n".join(parts)
        return ToolOutcome(
            call={
                "id": call.id,
                "type": "file_search",
                "file_search": {"ranking_options": ranking, "results": results},
            },
            output=output,
            citations={k: (h.file_id, h.filename) for k, h in enumerate(best)},
        )
