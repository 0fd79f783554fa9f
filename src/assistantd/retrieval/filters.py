"""Attribute filters of the search endpoint and the file_search tool.

Exactly the contract's shapes: ComparisonFilter ``{type: eq|ne|gt|gte|lt|lte|in|nin,
key, value}`` and CompoundFilter ``{type: and|or, filters: [...]}``, nested freely.

Filters are evaluated in Python against each file's attributes (a store has far fewer
files than chunks), which gives identical semantics on SQLite and PostgreSQL:

- strings, numbers and booleans compare only with their own kind (``True`` is not ``1``,
  ``"5"`` is not ``5``); ordering (gt/gte/lt/lte) works for numbers and for strings
  (lexicographic, which is right for ISO dates);
- ``in`` / ``nin`` take an array; ``in`` is true when the attribute equals an element;
- like SQL NULL, a missing attribute makes every comparison false, ``ne`` and ``nin``
  included: ``{"type": "ne", "key": "team", "value": "x"}`` keeps only files that have
  a ``team`` attribute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from .errors import InvalidFilter

Scalar: TypeAlias = str | int | float | bool
ComparisonOp = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
_COMPARISONS = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"}


@dataclass(frozen=True, slots=True)
class ComparisonFilter:
    """Compare one attribute with a value."""

    type: ComparisonOp
    key: str
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class CompoundFilter:
    """All (``and``) or any (``or``) of several filters."""

    type: Literal["and", "or"]
    filters: tuple[Filter, ...]


Filter: TypeAlias = ComparisonFilter | CompoundFilter


def parse_filter(raw: Mapping[str, Any] | Filter, path: str = "filters") -> Filter:
    """Validate a wire filter (a dict, e.g. a pydantic model's ``model_dump()``)."""
    if isinstance(raw, ComparisonFilter | CompoundFilter):
        return raw
    if not isinstance(raw, Mapping):
        raise InvalidFilter(f"{path} must be an object, got {type(raw).__name__}")
    kind = raw.get("type")
    if kind in ("and", "or"):
        items = raw.get("filters")
        if not isinstance(items, list | tuple):
            raise InvalidFilter(f"{path}.filters must be an array for a '{kind}' filter")
        return CompoundFilter(
            kind, tuple(parse_filter(f, f"{path}.filters[{i}]") for i, f in enumerate(items))
        )
    if kind not in _COMPARISONS:
        raise InvalidFilter(
            f"{path}.type must be one of eq, ne, gt, gte, lt, lte, in, nin, and, or; got {kind!r}"
        )
    key = raw.get("key")
    if not isinstance(key, str):
        raise InvalidFilter(f"{path}.key must be a string")
    if "value" not in raw:
        raise InvalidFilter(f"{path}.value is required")
    value = raw["value"]
    if kind in ("in", "nin"):
        if not isinstance(value, list | tuple) or not all(_is_scalar(v) for v in value):
            raise InvalidFilter(f"{path}.value must be an array of strings/numbers for '{kind}'")
        return ComparisonFilter(kind, key, tuple(value))
    if not _is_scalar(value):
        raise InvalidFilter(f"{path}.value must be a string, number or boolean for '{kind}'")
    return ComparisonFilter(kind, key, value)


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _equal(a: Scalar, b: Scalar) -> bool:
    return _kind(a) == _kind(b) and a == b


def matches(flt: Filter, attributes: Mapping[str, Any]) -> bool:
    """Whether a file with `attributes` passes `flt`."""
    if isinstance(flt, CompoundFilter):
        results = (matches(f, attributes) for f in flt.filters)
        return all(results) if flt.type == "and" else any(results)
    if flt.key not in attributes or attributes[flt.key] is None:
        return False
    actual = attributes[flt.key]
    if not _is_scalar(actual):
        return False
    value = flt.value
    if flt.type in ("in", "nin"):
        assert isinstance(value, tuple)
        found = any(_equal(actual, v) for v in value)
        return found if flt.type == "in" else not found
    assert not isinstance(value, tuple)
    if flt.type == "eq":
        return _equal(actual, value)
    if flt.type == "ne":
        return not _equal(actual, value)
    kind = _kind(actual)
    if kind != _kind(value) or kind == "bool":
        return False
    a: Any = actual
    b: Any = value
    if flt.type == "gt":
        return bool(a > b)
    if flt.type == "gte":
        return bool(a >= b)
    if flt.type == "lt":
        return bool(a < b)
    return bool(a <= b)
