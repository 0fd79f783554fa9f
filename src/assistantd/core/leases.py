"""Lease owners: which process holds a run or a file being ingested, and is it still alive."""

from __future__ import annotations

import os
import socket


def this_host(host_id: str | None = None) -> str:
    """The host part of this process's lease names: `host_id` (`ASSISTANTD_HOST_ID`) or the
    hostname. A `:` would split the name wrongly, so it becomes `_`."""
    return (host_id or socket.gethostname()).replace(":", "_")


def owner_name(suffix: str | None = None, host_id: str | None = None) -> str:
    """`host:pid` (or `host:pid:suffix`), what a process writes into the leases it takes."""
    base = f"{this_host(host_id)}:{os.getpid()}"
    return f"{base}:{suffix}" if suffix else base


def owner_alive(owner: str, host_id: str | None = None) -> bool:
    """Is the process named by a lease still running? Only knowable for this host (the
    pid is looked up); a lease of another host is presumed alive until it expires."""
    host, pid, _ = [*owner.split(":"), "", ""][:3]
    if host != this_host(host_id):
        return True
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True
