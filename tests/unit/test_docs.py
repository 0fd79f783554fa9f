"""The README stays true: every setting is documented in its table."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistantd.core.settings import Settings

README = (Path(__file__).parents[2] / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_setting_is_in_readme_table(name: str) -> None:
    assert f"| `ASSISTANTD_{name.upper()}` |" in README, f"ASSISTANTD_{name.upper()} is not in the README"


def test_quick_start_commands() -> None:
    assert "make run" in README and "make test" in README
