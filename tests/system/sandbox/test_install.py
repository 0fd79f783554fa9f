"""The sandbox does not depend on where the checkout lives: a checkout under a directory of
mode 0700 (what `mktemp -d` makes) installs its sandbox and runs code in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistantd.sandbox.bubblewrap import default_sandbox_dir
from assistantd.testing.sandbox import SANDBOX_DIR

REPO = Path(__file__).resolve().parents[3]

# The server side, as the private checkout's own code runs it.
RUN_CODE = """
import asyncio, sys
from pathlib import Path
from assistantd.sandbox import BubblewrapSandbox
from assistantd.sandbox.bubblewrap import KERNEL_SOURCE

async def main() -> None:
    box = BubblewrapSandbox(sandbox_dir=Path(sys.argv[1]), pool_size=0, timeout_seconds=30)
    try:
        result = await box.execute("t", "import numpy; print(int(numpy.arange(7).sum() * 2))")
    finally:
        await box.close()
    print(KERNEL_SOURCE)
    print(result.logs.strip() or result.error)

asyncio.run(main())
"""


@pytest.fixture
def private_checkout() -> Iterator[tuple[Path, Path]]:
    """(a checkout of src/ and scripts/ under a fresh 0700 directory, a fresh sandbox dir).

    The checkout's kernel.py is a version of its own, so installing must really put a new
    kernel in place. The sandbox dir reuses the installed venv through a symlink, so the test
    does not spend a minute on pip; everything else in it is installed by the script."""
    private = Path(tempfile.mkdtemp())
    public = Path(tempfile.mkdtemp())
    try:
        assert private.stat().st_mode & 0o777 == 0o700
        public.chmod(0o755)
        checkout = private / "x"
        skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
        shutil.copytree(REPO / "src", checkout / "src", ignore=skip)
        shutil.copytree(REPO / "scripts", checkout / "scripts")
        kernel = checkout / "src" / "assistantd" / "sandbox" / "kernel.py"
        kernel.write_text(kernel.read_text() + f"\n# the private checkout {private}\n")
        sandbox_dir = public / "sandbox"
        sandbox_dir.mkdir()
        (sandbox_dir / "venv").symlink_to((SANDBOX_DIR or default_sandbox_dir()) / "venv")
        yield checkout, sandbox_dir
    finally:
        shutil.rmtree(private)
        shutil.rmtree(public)


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root server drops to the sandbox uid")
def test_a_checkout_under_a_0700_directory_installs_and_runs_code(
    private_checkout: tuple[Path, Path],
) -> None:
    checkout, sandbox_dir = private_checkout
    install = subprocess.run(
        [checkout / "scripts" / "install-sandbox.sh", sandbox_dir],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    assert f"ready at {sandbox_dir}" in install.stdout
    installed = [p for p in sandbox_dir.iterdir() if p.name.startswith("kernel-")]
    assert len(installed) == 1 and installed[0].stat().st_uid == 0
    assert installed[0].stat().st_mode & 0o777 == 0o644

    ran = subprocess.run(
        [sys.executable, "-c", RUN_CODE, sandbox_dir],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(checkout / "src")},
    )
    assert ran.returncode == 0, ran.stderr
    source, output = ran.stdout.strip().splitlines()[-2:]
    assert source.startswith(str(checkout))  # the private checkout's code ran the kernel
    assert output == "42"
