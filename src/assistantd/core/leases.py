"""Lease owners: which process holds a run or a file being ingested, and is it still alive."""

from __future__ import annotations

import os
import socket


def owner_name(suffix: str | None = None) -> str:
    """`host:pid` (or `host:pid:suffix`), what a process writes into the leases it takes."""
    base = f"{socket.gethostname()}:{os.getpid()}"
    return f"{base}:{suffix}" if suffix else base


def owner_alive(owner: str) -> bool:
    """Is the process named by a lease still running? Only knowable for this host; a lease
    of another host is presumed alive until it expires."""
    host, pid, _ = [*owner.split(":"), "", ""][:3]
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True
