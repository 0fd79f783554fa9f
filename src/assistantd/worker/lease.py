"""A run's lease as the worker executing it holds it, and the fences that keep a worker
that lost it from acting for the run.

A worker can lose a lease without dying: it stalls (SIGSTOP, a long pause, a frozen VM, a
partition from the database) for longer than the lease, another worker takes the run over,
and then the first one wakes up mid-run. Three fences stop it, as in other lease-based
systems:

- **Local:** the worker knows until when its lease is good, from the start of its last
  successful claim or renewal, less `ASSISTANTD_RUN_LEASE_MARGIN_SECONDS` (clock skew
  between hosts, a write's way to the database). The run's journal checks it (a clock
  comparison, no round trip) before every delta it publishes and every write it makes;
  past it, `LeaseLost` stops the execution. A renewal that finds the run held by another
  worker stops the execution too (`RunWorker.renew`).
- **Event log:** the deltas an execution publishes carry its lease's fencing token, and the
  run's log refuses one lower than it has seen (`events/bus.py::EventBus.publish`): a
  worker that passed the clock check, then stalled before its delta reached Redis, cannot
  slip it in after the new holder's.
- **Store:** every write of the execution to the run, its steps and its messages is
  conditional on `runs.lease_owner` still naming this worker (`worker/store.py`): when it
  does not, the transaction is rolled back and the execution stops, before anything of it
  is published.

A stopped execution leaves the run as it is: its holder (or, if nobody took it, the next
sweep) resumes it.
"""

from __future__ import annotations

import time

_monotonic, _time = time.monotonic, time.time


class LeaseLost(Exception):
    """Raised in a run's execution that may no longer act for the run: its lease ran out
    here without a renewal, or the database says another worker (or nobody) holds it. The
    execution stops without touching the run."""


class HeldLease:
    """The lease on one run that this worker holds: its owner name, and the moment (by
    the wall clock and by the monotonic clock) after which it must not act on it."""

    __slots__ = ("_mono", "_wall", "lost", "margin", "owner", "token")

    def __init__(self, owner: str, margin: float, token: float | None = None) -> None:
        self.owner = owner
        self.margin = margin
        #: The fencing token of the deltas this execution publishes: the lease's expiry as
        #: its claim wrote it. A later holder's claim needed that expiry passed, so its
        #: token is higher, whatever the clocks: the run's log refuses the lower one.
        self.token = token
        self._wall = float("-inf")
        self._mono = float("-inf")
        #: Why this worker may no longer act for the run (sticky), or None.
        self.lost: str | None = None

    def extend(self, wall: float, mono: float, seconds: float) -> None:
        """A claim or renewal that began at `wall` (`time.time()`) and `mono`
        (`time.monotonic()`) succeeded: the lease is good to `seconds` after it, less the
        margin. Both clocks are kept: the wall clock is what other workers compare the
        lease to, the monotonic one is immune to the wall clock stepping back."""
        if self.lost is None:
            self._wall = max(self._wall, wall + seconds - self.margin)
            self._mono = max(self._mono, mono + seconds - self.margin)

    def lose(self, why: str) -> None:
        if self.lost is None:
            self.lost = why

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._mono or time.time() >= self._wall

    def check(self) -> None:
        """Raise `LeaseLost` if this worker may no longer act for the run (on every delta:
        two clock reads when all is well)."""
        if self.lost is None and _monotonic() < self._mono and _time() < self._wall:
            return
        if self.lost is None and self.expired:
            self.lost = "its lease ran out without a renewal"
        if self.lost is not None:
            raise LeaseLost(self.lost)
