"""The multi-process bus: run event logs in Redis streams, so an API process can stream a
run that a worker process executes.

Each run has a stream `assistantd:run:<id>` whose entry ids are `0-<seq>` (and a key
`…:fence`, the highest publisher's fence seen, `EventBus.publish`); a Lua script
assigns the next seq and appends in one atomic step, so publishers in several processes
never reorder a log. Logs are written to the database at each `done` (like the memory
bus) and expire from Redis `keep_seconds` later; a log no longer in Redis is read back
from the database, and its seq numbering continues where the database left off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import TimeoutError as RedisTimeout

from assistantd.events.bus import DONE, EventBus, Load, Persist, RunEvent, Superseded

# ARGV[4]: the publisher's fence ('' for none); the highest one seen is kept in KEYS[4],
# and an event with a lower one is refused (-1).
_APPEND = """
if ARGV[4] ~= '' then
  local held = redis.call('GET', KEYS[4])
  if held and tonumber(held) > tonumber(ARGV[4]) then
    return -1
  end
  if held ~= ARGV[4] then
    redis.call('SET', KEYS[4], ARGV[4])
  end
end
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], '0-' .. seq, 'e', ARGV[1], 'd', ARGV[2])
if ARGV[1] == 'done' then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  redis.call('EXPIRE', KEYS[3], ARGV[3])
  redis.call('EXPIRE', KEYS[4], ARGV[3])
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
  redis.call('PERSIST', KEYS[3])
  redis.call('PERSIST', KEYS[4])
end
return seq
"""

log = logging.getLogger("assistantd.events")

# The longest one XREAD waits before the subscriber loops (and notices a closed client).
BLOCK_MS = 5000
# A blocking XREAD is a read on the client's socket, bounded by its `socket_timeout`. With
# redis-py's default (5 s, as long as BLOCK_MS) every block of a silent stream was cut by
# it (`TimeoutError: Timeout reading from …`), and so was the stream. The bus sets its
# own timeout (a `?socket_timeout=` in the URL wins) and blocks at most half of it.
SOCKET_TIMEOUT_SECONDS = 10.0
BLOCK_SHARE_OF_SOCKET_TIMEOUT = 0.5
# Consecutive timed-out reads a subscriber retries (a loop stalled past the socket timeout,
# a slow Redis) before it gives up.
READ_RETRIES = 3


class RedisEventBus(EventBus):
    def __init__(self, url: str, persist: Persist, load: Load, keep_seconds: int = 600) -> None:
        # redis-py's stubs type replies as unions
        self.redis: Any = aioredis.from_url(url, socket_timeout=SOCKET_TIMEOUT_SECONDS)
        self._persist = persist
        self._load = load
        self._keep = keep_seconds
        self._append = self.redis.register_script(_APPEND)
        timeout = self.redis.connection_pool.connection_kwargs.get("socket_timeout")
        self.block_ms = BLOCK_MS  # no socket timeout (`?socket_timeout=` empty): any block
        if timeout:
            self.block_ms = max(
                1, min(BLOCK_MS, int(float(timeout) * 1000 * BLOCK_SHARE_OF_SOCKET_TIMEOUT))
            )

    @staticmethod
    def _keys(run_id: str) -> tuple[str, str, str]:
        base = f"assistantd:run:{run_id}"
        return base, base + ":seq", base + ":persisted"

    async def _ensure_seq(self, run_id: str) -> None:
        """A log that left Redis continues after the last seq in the database."""
        _, seq_key, persisted_key = self._keys(run_id)
        if await self.redis.exists(seq_key):
            return
        stored = await self._load(run_id)
        last = stored[-1].seq if stored else 0
        if await self.redis.set(seq_key, last, nx=True):
            await self.redis.set(persisted_key, last)

    async def open(self, run_id: str) -> None:
        _, seq_key, persisted_key = self._keys(run_id)
        await self.redis.set(seq_key, 0, nx=True)
        await self.redis.set(persisted_key, 0, nx=True)

    async def publish(
        self, run_id: str, event: str, data: dict[str, Any], fence: float | None = None
    ) -> int:
        return await self._add(run_id, event, orjson.dumps(data), fence)

    async def _add(self, run_id: str, event: str, data: bytes, fence: float | None = None) -> int:
        await self._ensure_seq(run_id)
        stream, seq_key, persisted_key = self._keys(run_id)
        seq = int(
            await self._append(
                keys=[stream, seq_key, persisted_key, stream + ":fence"],
                args=[event, data, self._keep, "" if fence is None else repr(fence)],
            )
        )
        if seq < 0:
            raise Superseded(run_id)
        return seq

    async def finish(self, run_id: str) -> None:
        await self._add(run_id, DONE, b"[DONE]")
        stream, _, persisted_key = self._keys(run_id)
        persisted = int(await self.redis.get(persisted_key) or 0)
        entries = await self.redis.xrange(stream, min=f"0-{persisted + 1}", max="+")
        events = [self._event(entry_id, fields) for entry_id, fields in entries]
        if events:
            await self._persist(run_id, events)
            await self.redis.set(persisted_key, events[-1].seq, ex=self._keep)

    async def position(self, run_id: str) -> int:
        await self._ensure_seq(run_id)
        return int(await self.redis.get(self._keys(run_id)[1]) or 0)

    async def history(self, run_id: str) -> list[RunEvent]:
        stream = self._keys(run_id)[0]
        entries = await self.redis.xrange(stream, min="-", max="+")
        if not entries:
            return await self._load(run_id)
        return [self._event(entry_id, fields) for entry_id, fields in entries]

    @staticmethod
    def _event(entry_id: Any, fields: Any) -> RunEvent:
        seq = int(entry_id.split(b"-", 1)[1])
        return RunEvent(seq, fields[b"e"].decode(), fields[b"d"])

    async def subscribe(
        self, run_id: str, after: int = 0, idle: float | None = None
    ) -> AsyncGenerator[RunEvent | None, None]:
        stream = self._keys(run_id)[0]
        cursor = after
        if not await self.redis.exists(stream):
            # Gone from Redis (expired, or never there): what the database has, then live.
            for ev in await self._load(run_id):
                if ev.seq <= cursor:
                    continue
                cursor = ev.seq
                yield ev
                if ev.event == DONE:
                    return
        quiet_since = time.monotonic()  # the last event or keep-alive
        timeouts = 0
        while True:
            block = self.block_ms
            if idle is not None:  # wake for the next keep-alive
                block = max(1, min(block, int((quiet_since + idle - time.monotonic()) * 1000) + 1))
            try:
                reply = await self.redis.xread({stream: f"0-{cursor}"}, block=block, count=512)
            except RedisTimeout:
                # The read outlived the socket timeout (the loop or Redis stalled): the
                # cursor says where to go on from, and a fresh connection is taken.
                timeouts += 1
                if timeouts > READ_RETRIES:
                    raise
                log.warning("run %s: event read timed out; retrying", run_id)
                reply = None
            else:
                timeouts = 0
            if not reply:
                if idle is not None and time.monotonic() - quiet_since >= idle:
                    quiet_since = time.monotonic()
                    yield None
                continue
            quiet_since = time.monotonic()
            for _, entries in reply:
                for entry_id, fields in entries:
                    ev = self._event(entry_id, fields)
                    cursor = ev.seq
                    yield ev
                    if ev.event == DONE:
                        return

    async def aclose(self) -> None:
        await self.redis.aclose()
