"""Lease owner names and the lease settings: which holder a worker may look up, a lease
that must outlive its renewals and its margin, and the local fence of a held lease."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from pydantic import ValidationError

from assistantd.core.leases import owner_alive, owner_name, this_host
from assistantd.core.settings import Settings
from assistantd.worker.lease import HeldLease, LeaseLost


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


def test_the_lease_must_outlive_its_renewals_and_its_margin() -> None:
    settings = Settings(_env_file=None, run_lease_seconds=4, run_lease_renew_seconds=1)  # type: ignore[call-arg]
    assert (settings.run_lease_seconds, settings.run_lease_renew_seconds) == (4, 1)
    assert settings.run_lease_margin_seconds == 2
    with pytest.raises(ValidationError, match="must be shorter than ASSISTANTD_RUN_LEASE_SECONDS"):
        Settings(_env_file=None, run_lease_seconds=3, run_lease_renew_seconds=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="plus ASSISTANTD_RUN_LEASE_MARGIN_SECONDS"):
        Settings(_env_file=None, run_lease_seconds=3, run_lease_renew_seconds=1)  # type: ignore[call-arg]
    Settings(
        _env_file=None, run_lease_seconds=3, run_lease_renew_seconds=1, run_lease_margin_seconds=1.5
    )  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, run_lease_seconds=0)  # type: ignore[call-arg]


def test_a_held_lease_is_good_to_its_lease_less_the_margin_by_either_clock() -> None:
    wall, mono = time.time(), time.monotonic()
    lease = HeldLease("host-a:1", margin=2)
    with pytest.raises(LeaseLost):  # never claimed
        HeldLease("host-a:1", margin=2).check()
    lease.extend(wall, mono, 30)
    lease.check()
    assert not lease.expired
    lease.extend(wall - 40, mono - 40, 30)  # a renewal never moves it back
    lease.check()

    stalled = HeldLease("host-a:1", margin=2)
    stalled.extend(wall - 29, mono - 29, 30)  # 1 s left of the lease: within the margin
    assert stalled.expired
    with pytest.raises(LeaseLost, match="ran out without a renewal"):
        stalled.check()
    stalled.extend(wall, mono, 30)  # a renewal that comes back now is too late: it stays lost
    with pytest.raises(LeaseLost):
        stalled.check()

    # Either clock past the end is enough: the wall clock (the one other workers compare
    # the lease with), or the monotonic one (the wall clock stepped back).
    for wall_start, mono_start in ((wall - 29, mono), (wall, mono - 29)):
        one = HeldLease("host-a:1", margin=2)
        one.extend(wall_start, mono_start, 30)
        assert one.expired

    taken = HeldLease("host-a:1", margin=2)
    taken.extend(wall, mono, 30)
    taken.lose("its lease passed to host-b:2")
    with pytest.raises(LeaseLost, match="host-b:2"):
        taken.check()
