"""Reading `/metrics` as Prometheus would: the reference text parser, samples by labels."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

Key = tuple[str, frozenset[tuple[str, str]]]


def parse(text: str) -> tuple[dict[Key, float], set[str]]:
    """(every sample by name and labels, the names of every metric family)."""
    samples: dict[Key, float] = {}
    families: set[str] = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, families


def scrape(root: str, token: str | None = None) -> tuple[dict[Key, float], set[str]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(f"{root}/metrics", headers=headers, timeout=10)
    r.raise_for_status()
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def key(name: str, **labels: str) -> Key:
    return (name, frozenset(labels.items()))


def delta(after: Mapping[Key, float], before: Mapping[Key, float], prefix: str) -> Counter[Key]:
    """What changed between two scrapes, for the samples whose name starts with `prefix`."""
    out: Counter[Key] = Counter()
    for k, v in after.items():
        if k[0].startswith(prefix) and v != before.get(k, 0.0):
            change = v - before.get(k, 0.0)
            out[k] = int(change) if change == int(change) else change  # type: ignore[assignment]
    return out
