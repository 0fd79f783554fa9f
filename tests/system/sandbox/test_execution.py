"""What a user of code_interpreter relies on: state, files in and out, images, logs."""

from __future__ import annotations

import asyncio

from assistantd.sandbox import BubblewrapSandbox, ExecutionResult, InputFile, LogChunk
from assistantd.sandbox.base import PNG_SIGNATURE
from assistantd.testing.sandbox import SANDBOX_DIR


async def test_state_persists_between_executions(sandbox: BubblewrapSandbox) -> None:
    first = await sandbox.execute("thread_a", "import numpy as np\nx = np.arange(5)\nint(x.sum())")
    assert (first.error, first.logs) == (False, "10\n")
    second = await sandbox.execute("thread_a", "print(x * 2)")
    assert second.logs == "[0 2 4 6 8]\n"
    assert not second.error


async def test_sessions_are_separate(sandbox: BubblewrapSandbox) -> None:
    await sandbox.execute("thread_a", "x = 1")
    other = await sandbox.execute("thread_b", "x")
    assert other.error
    assert "NameError: name 'x' is not defined" in other.logs


async def test_error_is_a_traceback_not_an_exception(sandbox: BubblewrapSandbox) -> None:
    result = await sandbox.execute("t", "print('before')\n\ndef f():\n    return 1 / 0\nf()")
    assert result.error
    assert result.logs.startswith("before\nTraceback (most recent call last):\n")
    assert 'File "<cell 1>", line 4, in f' in result.logs
    assert result.logs.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "kernel.py" not in result.logs
    syntax = await sandbox.execute("t", "def (")
    assert syntax.error and "SyntaxError" in syntax.logs


async def test_stdout_stderr_and_subprocess_output_interleave(sandbox: BubblewrapSandbox) -> None:
    code = (
        "import sys, subprocess\n"
        "print('one')\n"
        "print('two', file=sys.stderr)\n"
        "subprocess.run(['echo', 'three'])\n"
        "print('four')"
    )
    result = await sandbox.execute("t", code)
    assert result.logs == "one\ntwo\nthree\nfour\n"


async def test_input_files_appear_under_mnt_data(sandbox: BubblewrapSandbox) -> None:
    files = [InputFile("sales.csv", b"region,amount\nnorth,3\nsouth,4\n")]
    code = "import pandas as pd\ndf = pd.read_csv('/mnt/data/sales.csv')\nprint(df.amount.sum())"
    result = await sandbox.execute("t", code, files)
    assert (result.error, result.logs) == (False, "7\n")
    # Input files are not reported back as outputs.
    assert result.files == []


async def test_written_files_come_back(sandbox: BubblewrapSandbox) -> None:
    await sandbox.execute("t", "open('/mnt/data/keep.txt', 'w').write('old')")
    code = (
        "import os\n"
        "os.makedirs('/mnt/data/out', exist_ok=True)\n"
        "open('/mnt/data/out/report.txt', 'w').write('hello')\n"
        "open('relative.csv', 'w').write('a,b')\n"
        "None"
    )
    result = await sandbox.execute("t", code)
    assert sorted((f.name, f.data) for f in result.files) == [
        ("out/report.txt", b"hello"),
        ("relative.csv", b"a,b"),
    ]
    changed = await sandbox.execute("t", "open('/mnt/data/keep.txt', 'w').write('new!')\nNone")
    assert [(f.name, f.data) for f in changed.files] == [("keep.txt", b"new!")]


async def test_plt_show_and_savefig_produce_pngs(sandbox: BubblewrapSandbox) -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 3, 2])\n"
        "plt.show()\n"
        "fig, ax = plt.subplots()\n"
        "ax.bar(['a', 'b'], [1, 2])\n"
        "fig.savefig('/mnt/data/bars.png')\n"
    )
    result = await sandbox.execute("t", code)
    assert not result.error, result.logs
    assert len(result.images) == 2
    assert all(image.startswith(PNG_SIGNATURE) for image in result.images)
    assert [f.name for f in result.files] == ["bars.png"]
    assert result.images[1] == result.files[0].data


async def test_long_output_is_truncated_with_a_marker(sandbox: BubblewrapSandbox) -> None:
    code = "for i in range(100_000):\n    print(f'line {i}')"
    result = await sandbox.execute("t", code)
    assert not result.error
    assert result.logs.startswith("line 0\nline 1\n")
    assert "characters of output omitted ...]" in result.logs
    assert result.logs.rstrip().endswith("line 99999")
    assert len(result.logs) < 21_000


async def test_streaming_yields_fragments_before_the_result(sandbox: BubblewrapSandbox) -> None:
    code = "import time\nprint('first', flush=True)\ntime.sleep(0.5)\nprint('second')"
    events: list[tuple[float, LogChunk | ExecutionResult]] = []
    loop = asyncio.get_running_loop()
    async for event in sandbox.execute_stream("t", code):
        events.append((loop.time(), event))
    chunks = [e for _, e in events if isinstance(e, LogChunk)]
    result = events[-1][1]
    assert isinstance(result, ExecutionResult)
    assert chunks[0].text.startswith("first")
    # The first line was delivered while the cell was still sleeping.
    assert events[-1][0] - events[0][0] >= 0.4
    assert "".join(c.text for c in chunks) == result.logs == "first\nsecond\n"


async def test_idle_session_expires_into_a_fresh_one() -> None:
    box = BubblewrapSandbox(
        sandbox_dir=SANDBOX_DIR, idle_seconds=0.5, pool_size=0, timeout_seconds=10
    )
    try:
        await box.execute("t", "x = 1\nopen('/mnt/data/f.txt', 'w').write('x')")
        assert (await box.execute("t", "x")).logs == "1\n"
        await asyncio.sleep(0.8)
        fresh = await box.execute("t", "import os\nprint(os.listdir('/mnt/data'))\nx")
        assert fresh.error
        assert fresh.logs.startswith("[]\n")
        assert "NameError" in fresh.logs
    finally:
        await box.close()


async def test_reaper_stops_idle_kernels() -> None:
    box = BubblewrapSandbox(
        sandbox_dir=SANDBOX_DIR, idle_seconds=1.0, pool_size=0, timeout_seconds=10
    )
    try:
        await box.execute("t", "x = 1")
        assert await box.expire_idle() == 0
        await asyncio.sleep(1.3)
        # Either this call or the background reaper (which may have run during the sleep)
        # stopped the idle kernel; what matters is that the session is gone.
        assert await box.expire_idle() in (0, 1)
        assert await box.expire_idle() == 0
        assert (await box.execute("t", "'x' in dir()")).logs == "False\n"
    finally:
        await box.close()


async def test_reset_discards_the_session(sandbox: BubblewrapSandbox) -> None:
    await sandbox.execute("t", "x = 1")
    await sandbox.reset("t")
    assert (await sandbox.execute("t", "'x' in dir()")).logs == "False\n"


async def test_concurrent_executions_of_one_key_run_in_order(sandbox: BubblewrapSandbox) -> None:
    await sandbox.execute("t", "seen = []")
    await asyncio.gather(
        *(
            sandbox.execute("t", f"import time\ntime.sleep(0.05)\nseen.append({i})")
            for i in range(4)
        )
    )
    assert (await sandbox.execute("t", "seen")).logs == "[0, 1, 2, 3]\n"


async def test_input_file_names_must_be_bare(sandbox: BubblewrapSandbox) -> None:
    import pytest

    with pytest.raises(ValueError, match="bare file name"):
        await sandbox.execute("t", "1", [InputFile("../../etc/x", b"")])
