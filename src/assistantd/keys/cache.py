"""Project keys this process has found valid, kept `auth_cache_seconds` so that a request
need not read its key and project again.

Only successes are kept (an unknown or revoked key is looked up every time). A revocation
or a project archived through this process empties the cache once its transaction has
committed (`forget_all`, called after commit), and a lookup that began before it is not
kept; a change made by another process (another API process, `assistantd keys revoke`)
applies here within `auth_cache_seconds`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from assistantd.core.db import UnitOfWork


@dataclass(slots=True)
class CachedKey:
    """A valid project key: who it is, and its `last_used_at` as last read or written."""

    key_id: str
    project_id: str
    last_used_at: int | None
    until: float  # time.monotonic() after which it is read again


class KeyCache:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._keys: dict[str, CachedKey] = {}
        # Bumped by `forget_all`: a lookup begun under an older generation is not kept.
        self.generation = 0

    def get(self, secret_hash: str) -> CachedKey | None:
        hit = self._keys.get(secret_hash)
        if hit is None:
            return None
        if hit.until <= time.monotonic():
            del self._keys[secret_hash]
            return None
        return hit

    def put(
        self,
        secret_hash: str,
        key_id: str,
        project_id: str,
        last_used_at: int | None,
        generation: int,
    ) -> None:
        """Keep a key found valid by a lookup that began at `generation`."""
        if self.seconds <= 0 or generation != self.generation:
            return
        self._keys[secret_hash] = CachedKey(
            key_id, project_id, last_used_at, time.monotonic() + self.seconds
        )

    def forget_all(self) -> None:
        """After a key was revoked or a project archived: read every key again."""
        self.generation += 1
        self._keys.clear()


def forget_on_commit(uow: UnitOfWork, cache: KeyCache | None) -> None:
    """Keys were revoked or a project archived in `uow`: this process reads every key
    again once that is committed."""
    if cache is not None:
        uow.after_commit(cache.forget_all)
