"""Lease owner names and the lease settings: which holder a worker may look up, and a
lease that must outlive its renewals."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from pydantic import ValidationError

from assistantd.core.leases import owner_alive, owner_name, this_host
from assistantd.core.settings import Settings


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_owner_names_carry_the_host_id_or_the_hostname() -> None:
    assert owner_name() == f"{socket.gethostname().replace(':', '_')}:{os.getpid()}"
    assert owner_name("t0k3n", host_id="node-7") == f"node-7:{os.getpid()}:t0k3n"
    assert this_host("a:b") == "a_b"  # a `:` would split the name


def test_only_a_pid_of_this_host_is_looked_up() -> None:
    gone = _gone_pid()
    assert not owner_alive(f"node-7:{gone}", host_id="node-7")
    assert owner_alive(f"node-7:{os.getpid()}", host_id="node-7")
    # Another host's pid cannot be looked up here: presumed alive until its lease runs out.
    assert owner_alive(f"node-8:{gone}", host_id="node-7")
    assert owner_alive(f"{socket.gethostname()}:{gone}", host_id="node-7")
    assert not owner_alive(f"{socket.gethostname()}:{gone}")


def test_the_lease_must_outlive_its_renewals() -> None:
    settings = Settings(_env_file=None, run_lease_seconds=3, run_lease_renew_seconds=1)  # type: ignore[call-arg]
    assert (settings.run_lease_seconds, settings.run_lease_renew_seconds) == (3, 1)
    with pytest.raises(ValidationError, match="must be shorter than ASSISTANTD_RUN_LEASE_SECONDS"):
        Settings(_env_file=None, run_lease_seconds=3, run_lease_renew_seconds=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, run_lease_seconds=0)  # type: ignore[call-arg]
