"""Filter semantics, without a database."""

from __future__ import annotations

import pytest

from assistantd.retrieval import InvalidFilter, parse_filter
from assistantd.retrieval.filters import matches


def check(flt: dict[str, object], attrs: dict[str, object]) -> bool:
    return matches(parse_filter(flt), attrs)


def test_kinds_do_not_mix() -> None:
    assert not check({"type": "eq", "key": "a", "value": 1}, {"a": True})
    assert not check({"type": "eq", "key": "a", "value": "5"}, {"a": 5})
    assert check({"type": "eq", "key": "a", "value": 5}, {"a": 5.0})
    assert not check({"type": "gt", "key": "a", "value": 1}, {"a": "2"})
    assert check({"type": "gt", "key": "d", "value": "2024-01-01"}, {"d": "2024-06-30"})


def test_missing_attribute_fails_every_comparison() -> None:
    for op in ("eq", "ne", "gt", "lt"):
        assert not check({"type": op, "key": "a", "value": 1}, {})
    assert not check({"type": "nin", "key": "a", "value": [1]}, {})


def test_compound_nesting() -> None:
    flt = {"type": "and", "filters": [{"type": "or", "filters": []}]}
    assert not check(flt, {})  # an empty "or" is false, like any([])
    assert check({"type": "and", "filters": []}, {})


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "eq", "key": "a"},
        {"type": "eq", "key": 3, "value": 1},
        {"type": "in", "key": "a", "value": 1},
        {"type": "eq", "key": "a", "value": [1]},
        {"type": "and", "filters": {"type": "eq"}},
        {"type": "xor", "filters": []},
    ],
)
def test_invalid_shapes(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidFilter):
        parse_filter(bad)
