"""Object ids with OpenAI's prefixes, and the sequence numbers that order every list."""

from __future__ import annotations

import secrets
import string
import threading
import time

_ALPHABET = string.ascii_letters + string.digits
_BASE = len(_ALPHABET)
_lock = threading.Lock()
_last_seq = 0


def new_id(prefix: str, length: int = 24) -> str:
    """A fresh id such as `asst_Xy3…` (`file-` ids use a dash, as OpenAI's do).

    One draw from the OS for the whole id, written in base 62: uniform over the
    `62**length` ids exactly as `secrets.choice` per character is, at a tenth of the cost
    (that was one `getrandbits`, so one `urandom` system call, per character: ~27 µs an id,
    and every request and object takes one).
    """
    n = secrets.randbelow(_BASE**length)
    chars = []
    for _ in range(length):
        n, digit = divmod(n, _BASE)
        chars.append(_ALPHABET[digit])
    return prefix + "".join(chars)


def next_seq() -> int:
    """A strictly increasing number (microseconds since the epoch, bumped on ties).

    Lists are ordered by `(seq, id)`: `created_at` has one-second resolution, so many
    objects share it, and the SDK's cursor walk needs an order that is total and stable.
    Across processes two objects may share a seq; the id breaks the tie.
    """
    global _last_seq
    with _lock:
        now = time.time_ns() // 1000
        _last_seq = now if now > _last_seq else _last_seq + 1
        return _last_seq


def now_seconds() -> int:
    return int(time.time())
