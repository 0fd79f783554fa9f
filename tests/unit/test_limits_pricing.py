"""The price table, rate-limit ids and OpenAI's reset durations."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistantd.limits.headers import duration
from assistantd.limits.service import month_start, rate_limit_id
from assistantd.usage.pricing import Price, Pricing, PricingError


def test_shipped_prices_and_dated_versions() -> None:
    p = Pricing.load(None)
    assert p.price("gpt-4o") == Price(5.0, 15.0)
    assert p.price("gpt-4o-2024-08-06") == Price(5.0, 15.0)
    assert p.price("gpt-4o-mini-2024-07-18") == Price(0.15, 0.6)  # the longest name wins
    assert p.price("gpt-4-turbo") == Price(10.0, 30.0)
    assert p.price("gpt-4") == Price(30.0, 60.0)
    assert p.price("gpt-3.5-turbo-0125") == Price(0.5, 1.5)
    assert p.price("gpt-4.1") is None  # not a dash-separated extension of gpt-4
    assert p.price("gemma-3-270m") == Price(0.0, 0.0)
    assert p.cost("gpt-4o", 1_000_000, 2_000_000) == (5.0, 30.0)
    assert p.cost("my-local-model", 10**9, 10**9) == (0.0, 0.0)


def test_a_bad_pricing_file_names_itself(tmp_path: Path) -> None:
    bad = tmp_path / "prices.toml"
    bad.write_text('[models."x"]\ninput = "cheap"\n')
    with pytest.raises(PricingError, match=r"prices\.toml"):
        Pricing.load(bad)
    with pytest.raises(PricingError, match="cannot read"):
        Pricing.load(tmp_path / "missing.toml")


def test_rate_limit_ids() -> None:
    assert rate_limit_id("gpt-4o") == "rl-gpt-4o"
    odd = rate_limit_id("org/model name")
    assert odd.startswith("rl-") and "/" not in odd and odd == rate_limit_id("org/model name")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.12, "120ms"), (0.0, "0ms"), (1.5, "1.5s"), (17, "17s"), (60, "1m0s"), (90.25, "1m30.25s")],
)
def test_reset_durations(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_month_start_is_utc() -> None:
    assert (
        month_start(1_733_011_200 + 5 * 86400 + 3600) == 1_733_011_200
    )  # 2024-12-06 01:00 → 2024-12-01
