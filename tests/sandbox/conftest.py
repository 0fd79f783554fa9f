"""A real BubblewrapSandbox per test, with small limits so the attacks finish quickly."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from assistantd.core.settings import Settings
from assistantd.sandbox import BubblewrapSandbox

# The installed sandbox, where the server would look (ASSISTANTD_SANDBOX_DIR or .env; None =
# the default).
SANDBOX_DIR = Settings().sandbox_dir

# Planted in the server's environment before any kernel starts; must never be seen inside.
SECRET = "sk-assistantd-test-secret-3f9c"


@pytest.fixture
async def sandbox(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[BubblewrapSandbox]:
    monkeypatch.setenv("ASSISTANTD_LLM_API_KEY", SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    box = BubblewrapSandbox(
        sandbox_dir=SANDBOX_DIR, timeout_seconds=8.0, memory_mb=768, disk_mb=32, max_processes=64, pool_size=1
    )
    await box.start()
    yield box
    await box.close()
