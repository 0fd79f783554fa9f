"""The README stays true: every setting is documented in its table, the code map names
every package."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistantd.core.settings import Settings

REPO = Path(__file__).parents[2]
README = (REPO / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_setting_is_in_readme_table(name: str) -> None:
    assert f"| `ASSISTANTD_{name.upper()}` |" in README, (
        f"ASSISTANTD_{name.upper()} is not in the README"
    )


def test_quick_start_commands() -> None:
    assert "make run" in README and "make test" in README


def _code_map() -> list[str]:
    section = README.split("\n## Code map\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^- `([\w/]+)/`: \S", section, re.M)


def _packages() -> list[str]:
    """Every package under src/assistantd, every test tier, and bench/."""
    found = [
        f"src/assistantd/{d.name}"
        for d in sorted((REPO / "src" / "assistantd").iterdir())
        if d.is_dir() and any(d.glob("*.py"))
    ]
    found += [
        f"tests/{d.name}"
        for d in sorted((REPO / "tests").iterdir())
        if d.is_dir() and any(d.rglob("test_*.py"))
    ]
    return [*found, "bench"]


def test_code_map_names_every_package_and_only_those() -> None:
    named = _code_map()
    assert len(named) == len(set(named)), "the code map names a package twice"
    assert len(named) > 15, "the code map is not found"
    missing = sorted(set(_packages()) - set(named))
    gone = sorted(p for p in named if not (REPO / p).is_dir())
    assert not missing, f"packages missing from the README's code map: {missing}"
    assert not gone, f"the README's code map names packages that do not exist: {gone}"
