"""The directory where each process of one server writes its Prometheus values.

`prometheus_client` decides at its first import whether values live in memory or in files
under `PROMETHEUS_MULTIPROC_DIR`, so `assistantd serve` and `assistantd worker` call
`prepare` before anything imports it. Every process of the server (the `--workers N`
processes uvicorn spawns inherit the variable; an `assistantd worker` on the same host
given the same directory) writes its own files there, and `/metrics` adds them up.

This module must not import `prometheus_client`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
_PID = re.compile(r"_(\d+)\.db$")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead(directory: Path, prefix: str = "") -> int:
    """Delete the value files (those starting with `prefix`) of processes that are gone."""
    removed = 0
    for path in directory.glob(f"{prefix}*.db"):
        match = _PID.search(path.name)
        if match and not pid_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def prepare(directory: Path) -> Path:
    """Use `directory` for this process and its children (unless the operator already set
    `PROMETHEUS_MULTIPROC_DIR`); the files of processes that are gone are removed first, so a
    restarted server starts its counters from zero."""
    chosen = Path(os.environ.get(ENV) or directory)
    chosen.mkdir(parents=True, exist_ok=True)
    remove_dead(chosen)
    os.environ[ENV] = str(chosen)
    return chosen
