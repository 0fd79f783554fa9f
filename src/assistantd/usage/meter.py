"""What the run path tells usage and limits when a model call finishes.

A model call's usage row is written by the run engine itself, in the transaction of the
run's change that reports the call (the step it closes, or the run's end: one commit per
model call, `worker/journal.py`); the meter hears of the calls after that commit.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    """Told of model calls whose usage rows have just been committed (its caches of spend,
    the tokens-per-minute windows); the run engine calls it."""

    async def recorded(self, calls: Sequence[ModelCall]) -> None:
        """After the commit of `calls`' usage rows. Never raises: usage must not fail a run."""
        ...
