"""Prefixed, opaque, time-ordered ids (`job_…`, `exe_…`): 48 bits of milliseconds then 80 random bits,
Crockford base32, so ids sort by creation time and keyset pagination on id is newest-first friendly."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _encode(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    """A new id such as `job_01jb…` (26 characters after the prefix)."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_encode(millis, 10)}{_encode(rand, 16)}"


def new_ids(prefix: str, count: int) -> list[str]:
    """`count` ids in creation order (monotonic within the batch)."""
    millis = time.time_ns() // 1_000_000
    head = _encode(millis, 10)
    base = int.from_bytes(os.urandom(10), "big") & ~((1 << 24) - 1)
    return [f"{prefix}_{head}{_encode(base + i, 16)}" for i in range(count)]
