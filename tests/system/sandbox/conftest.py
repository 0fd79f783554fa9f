"""A real BubblewrapSandbox per test, with small limits so the attacks finish quickly."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from assistantd.sandbox import BubblewrapSandbox
from assistantd.testing.sandbox import SANDBOX_DIR, SECRET


@pytest.fixture
async def sandbox(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[BubblewrapSandbox]:
    monkeypatch.setenv("ASSISTANTD_LLM_API_KEY", SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    box = BubblewrapSandbox(
        sandbox_dir=SANDBOX_DIR,
        timeout_seconds=8.0,
        memory_mb=768,
        disk_mb=32,
        max_processes=64,
        pool_size=1,
    )
    await box.start()
    yield box
    await box.close()
