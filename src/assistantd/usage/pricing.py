"""The price table: dollars per million input and output tokens per model, from TOML."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PRICING = Path(__file__).with_name("pricing.toml")


@dataclass(frozen=True, slots=True)
class Price:
    """Dollars per million tokens."""

    input: float
    output: float


class PricingError(ValueError):
    """The pricing file is missing or malformed (raised at start-up, naming the file)."""


class Pricing:
    """Prices by model name; a name prices itself and its dash-separated extensions."""

    def __init__(self, prices: dict[str, Price]) -> None:
        self.prices = prices

    @classmethod
    def load(cls, path: Path | None) -> Pricing:
        path = path or DEFAULT_PRICING
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise PricingError(f"cannot read the pricing file {path}: {err}") from err
        prices: dict[str, Price] = {}
        for name, entry in (data.get("models") or {}).items():
            try:
                prices[name] = Price(float(entry["input"]), float(entry["output"]))
            except (KeyError, TypeError, ValueError) as err:
                raise PricingError(
                    f"{path}: models.{name!r} needs numeric 'input' and 'output'"
                ) from err
        return cls(prices)

    def price(self, model: str) -> Price | None:
        """The model's price, or None when no entry names it (unpriced: counted as 0)."""
        found = self.prices.get(model)
        if found is not None:
            return found
        best = max(
            (name for name in self.prices if model.startswith(name + "-")), key=len, default=None
        )
        return self.prices[best] if best is not None else None

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> tuple[float, float]:
        """Dollars for input and output tokens (0 for an unpriced model)."""
        p = self.price(model)
        if p is None:
            return 0.0, 0.0
        return input_tokens * p.input / 1_000_000, output_tokens * p.output / 1_000_000
