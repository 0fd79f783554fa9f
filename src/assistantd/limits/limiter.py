"""Rate-limit windows on the `limits` library: in memory per process, or in Redis shared by all.

Requests per minute are a moving window (at most N in any 60 s: exactly N pass, the next is
refused); tokens per minute are counted after the fact (a run's tokens are known only when
each model call ends) in a fixed one-minute window, and a request is refused while the
window's tokens have reached the limit. With Redis both are Lua scripts run atomically by
Redis, so every API and worker process sees one count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from limits import RateLimitItemPerMinute
from limits.aio.storage import MovingWindowSupport, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string


@dataclass(frozen=True, slots=True)
class Window:
    """A limit's state after a request: its size, what is left, seconds until it resets."""

    limit: int
    remaining: int
    reset_seconds: float
    allowed: bool


class WindowLimiter:
    """Requests-per-minute and tokens-per-minute windows keyed by project and model."""

    def __init__(self, redis_url: str | None, *, prefix: str = "assistantd") -> None:
        #: Our own pool, so that shutdown can close its connections (the library has no close).
        self._pool: aioredis.ConnectionPool | None = None
        if redis_url:
            scheme, _, rest = redis_url.partition("://")
            self._pool = aioredis.ConnectionPool.from_url(redis_url)
            # The library passes options through to redis-py, though it types them as scalars.
            options: dict[str, Any] = {"connection_pool": self._pool}
            storage = storage_from_string(
                f"async+{scheme}://{rest}",
                implementation="redispy",
                key_prefix=f"{prefix}:limits",
                **options,
            )
        else:
            storage = storage_from_string("async+memory://")
        assert isinstance(storage, Storage) and isinstance(storage, MovingWindowSupport)
        self.storage = storage
        self.requests = MovingWindowRateLimiter(storage)
        self.shared = bool(redis_url)

    async def aclose(self) -> None:
        """Close the Redis connections (none without Redis)."""
        if self._pool is not None:
            await self._pool.disconnect()

    async def take_request(self, key: str, limit: int) -> Window:
        """Count one request in the moving minute; refused (and not counted) past `limit`."""
        item = RateLimitItemPerMinute(limit)
        allowed = await self.requests.hit(item, "rpm", key)
        stats = await self.requests.get_window_stats(item, "rpm", key)
        reset = max(0.0, stats.reset_time - time.time()) if stats.remaining < limit else 0.0
        return Window(limit, max(0, stats.remaining), reset, allowed)

    async def tokens(self, key: str, limit: int) -> Window:
        """The token window's state; `allowed` while its tokens are under `limit`."""
        used = await self.storage.get(f"tpm/{key}")
        reset = max(0.0, await self.storage.get_expiry(f"tpm/{key}") - time.time()) if used else 0.0
        return Window(limit, max(0, limit - used), reset, used < limit)

    async def add_tokens(self, key: str, tokens: int) -> None:
        """Count a model call's tokens in the current minute (beyond the limit too)."""
        if tokens > 0:
            await self.storage.incr(f"tpm/{key}", 60, amount=tokens)

    async def reset(self) -> None:
        """Forget every window (tests and benchmarks)."""
        await self.storage.reset()
