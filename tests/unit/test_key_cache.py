"""The cache of valid project keys (`keys/cache.py`): kept for its time, emptied by a
revocation, and a lookup that began before a revocation is not kept."""

from __future__ import annotations

import time

from assistantd.keys.cache import KeyCache


def test_a_key_is_kept_for_its_time_then_read_again() -> None:
    cache = KeyCache(0.2)
    cache.put("h1", "key_1", "proj_1", None, cache.generation)
    hit = cache.get("h1")
    assert hit is not None and (hit.key_id, hit.project_id) == ("key_1", "proj_1")
    time.sleep(0.25)
    assert cache.get("h1") is None


def test_forget_all_drops_every_key_and_an_older_lookup() -> None:
    cache = KeyCache(60)
    cache.put("h1", "key_1", "proj_1", None, cache.generation)
    began = cache.generation  # a lookup starts, reads the key as valid …
    cache.forget_all()  # … while a revocation commits
    assert cache.get("h1") is None
    cache.put("h2", "key_2", "proj_1", None, began)
    assert cache.get("h2") is None  # what it read may be the revoked key: not kept
    cache.put("h2", "key_2", "proj_1", None, cache.generation)
    assert cache.get("h2") is not None


def test_zero_seconds_keeps_nothing() -> None:
    cache = KeyCache(0)
    cache.put("h1", "key_1", "proj_1", None, cache.generation)
    assert cache.get("h1") is None
