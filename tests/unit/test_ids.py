"""Object ids: OpenAI's shape, every character of the alphabet reachable in every position."""

from __future__ import annotations

import string

from assistantd.core.ids import new_id

ALPHABET = set(string.ascii_letters + string.digits)


def test_ids_have_the_prefix_the_length_and_only_letters_and_digits() -> None:
    ids = [new_id("run_") for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for i in ids:
        assert i.startswith("run_") and len(i) == 4 + 24
        assert set(i[4:]) <= ALPHABET
    assert len(new_id("file-", 8)) == 5 + 8


def test_every_position_takes_every_character() -> None:
    # A base conversion that drops the top digit or favours low ones shows here: 62 symbols,
    # 4,000 draws, each symbol is expected ~65 times in a position and missing it has
    # probability ~e^-65.
    ids = [new_id("", 24) for _ in range(4000)]
    for position in (0, 11, 23):
        assert {i[position] for i in ids} == ALPHABET, position
