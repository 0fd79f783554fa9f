"""What authenticating a stored project key costs a request, with and without the process's
cache of valid keys (`keys/cache.py`, `ASSISTANTD_AUTH_CACHE_SECONDS`).

In one process, against a migrated SQLite database: `iterations` requests' worth of
`authenticate` (a session, the key lookup or the cache, the commit), one after another,
alternating the two cases in rounds; the process's CPU time per request.

    python -m bench.auth_cache [--iterations N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import fmt, table, write_results

NAME = "auth_cache"


async def _measure(iterations: int, rounds: int) -> dict[str, list[float]]:
    from assistantd.core.db import create_engine, session_maker
    from assistantd.keys.cache import KeyCache
    from assistantd.keys.service import authenticate, create_key
    from assistantd.migrations import upgrade

    out: dict[str, list[float]] = {"stored key, no cache": [], "stored key, cached": []}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url)
        sessions = session_maker(engine)
        try:
            async with sessions() as session:
                _, secret = await create_key(session, "bench", "default")
                await session.commit()
            header = f"Bearer {secret}"
            for _ in range(rounds):
                for case, cache in (
                    ("stored key, no cache", None),
                    ("stored key, cached", KeyCache(60.0)),
                ):
                    began = time.process_time()
                    for _ in range(iterations):
                        async with sessions() as session:
                            await authenticate(session, header, [], cache)
                            await session.commit()
                    out[case].append((time.process_time() - began) / iterations * 1e6)
        finally:
            await engine.dispose()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    samples = asyncio.run(_measure(args.iterations, args.rounds))
    med = {k: statistics.median(v) for k, v in samples.items()}
    text = table(
        ["case", "CPU µs per request (median of rounds)", "rounds"],
        [[k, fmt(v, 0), ", ".join(fmt(x, 0) for x in samples[k])] for k, v in med.items()],
    )
    print(text)
    path = write_results(
        NAME, {"iterations": args.iterations, "samples_us": samples, "table": text}
    )
    print(f"\nwrote {path}")
    return {"samples_us": samples}


if __name__ == "__main__":
    main()
