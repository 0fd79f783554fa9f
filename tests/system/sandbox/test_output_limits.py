"""What the server reads from a kernel is bounded by the server, whatever the cell sends.

The attacks are real: the cell finds the kernel's protocol pipe and writes forged frames
to it, as hostile code can. The sandbox's reading side runs in this test process, so its
RSS is what a server's would be.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from assistantd.sandbox import BubblewrapSandbox
from assistantd.sandbox.limits import OutputLimits
from assistantd.testing.sandbox import ATTACKS, FORGE, rss_mb


@pytest.fixture
async def box() -> AsyncIterator[BubblewrapSandbox]:
    sandbox = BubblewrapSandbox(
        timeout_seconds=20.0,
        pool_size=1,
        max_output_chars=20_000,
        output_limits=OutputLimits(
            max_frame_bytes=1024 * 1024,
            max_frames=2_000,
            max_images=3,
            max_files=3,
            max_file_bytes=256 * 1024,
        ),
    )
    await sandbox.start()
    yield sandbox
    await sandbox.close()


@pytest.mark.parametrize("code", list(ATTACKS.values()), ids=list(ATTACKS))
async def test_forged_frames_end_the_execution_within_the_limits(
    box: BubblewrapSandbox, code: str
) -> None:
    await box.execute("t", "x = 1")
    result = await box.execute("t", FORGE + code)
    assert result.error and result.session_restarted
    assert "The session was restarted" in result.logs
    assert len(result.logs) < 20_000 + 1_000
    assert result.images == [] and result.files == []
    after = await box.execute("t", "'x' in dir()")
    assert (after.error, after.logs) == (False, "False\n")


async def test_the_limit_is_named_in_the_output(box: BubblewrapSandbox) -> None:
    result = await box.execute("t", FORGE + ATTACKS["100M characters of logs"])
    assert (
        "The session sent more than the server accepts (more than 20000 characters of "
        "output in one execution) and was stopped." in result.logs
    )
    result = await box.execute("t", FORGE + ATTACKS["too many frames"])
    assert "(more than 2000 frames in one execution)" in result.logs


async def test_server_memory_stays_flat_under_forged_frames(box: BubblewrapSandbox) -> None:
    await box.execute("warm-up", FORGE + ATTACKS["too many frames"])
    before = peak = rss_mb()
    for _ in range(3):
        for code in ATTACKS.values():
            result = await box.execute("t", FORGE + code)
            peak = max(peak, rss_mb())  # while the result is still held
            assert result.error
    grown = peak - before
    assert grown < 50, f"server RSS grew {grown:.0f} MB"


async def test_an_honest_kernel_stays_within_the_limits(box: BubblewrapSandbox) -> None:
    # Chatty output: one flush per character, many more writes than frames allowed.
    chatty = await box.execute(
        "t", "import sys\nfor i in range(30_000):\n    print('x', end='', flush=True)"
    )
    assert not chatty.error, chatty.logs[-500:]
    assert chatty.logs.count("x") <= 20_000 and "characters of output omitted" in chatty.logs
    code = """
import matplotlib.pyplot as plt
for n in range(5):
    plt.plot([0, n]); plt.show()
for n in range(5):
    open(f'/mnt/data/small_{n}.txt', 'w').write(str(n))
open('/mnt/data/big.bin', 'wb').write(b'0' * 300_000)
print('done')
"""
    result = await box.execute("t", code)
    assert not result.error, result.logs
    assert len(result.images) == 3
    assert [f.name for f in result.files] == ["small_0.txt", "small_1.txt", "small_2.txt"]
    assert "[2 figure(s) from plt.show() were not kept: at most 3 per execution" in result.logs
    assert (
        "[Not copied out of /mnt/data for the user: big.bin (300000 bytes, larger than the "
        "262144 bytes limit per file); small_3.txt (1 bytes, over the limit of 3 files per "
        "execution); small_4.txt (1 bytes, over the limit of 3 files per execution). "
        "They are still in the session.]"
    ) in result.logs
    kept = await box.execute("t", "import os\nprint(os.path.getsize('/mnt/data/big.bin'))")
    assert kept.logs == "300000\n"
