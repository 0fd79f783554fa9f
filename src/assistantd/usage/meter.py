"""What the run path tells usage and limits when a model call finishes (one call, one hook)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One finished model call of a run: who made it, which model, what it used."""

    project_id: str
    api_key_id: str | None
    run_id: str
    thread_id: str
    model: str
    input_tokens: int
    output_tokens: int
    file_search_calls: int = 0
    code_interpreter_calls: int = 0


class UsageMeter(Protocol):
    """Records model calls (usage rows, tokens-per-minute windows); the run engine calls it."""

    async def model_call(self, call: ModelCall) -> None: ...
