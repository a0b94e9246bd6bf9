"""Prefixed, opaque, time-ordered ids (`job_…`, `exe_…`): 48 bits of milliseconds then 80 random bits,
Crockford base32, so ids sort by creation time and keyset pagination on id is newest-first friendly."""

from __future__ import annotations

import os
import time

from django.utils.deconstruct import deconstructible

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]  # every 10-bit value as two characters


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


@deconstructible
class IdMaker:
    """A model's id default, `IdMaker("job")()` == new_id("job"): one declaration per table, which migrations
    write as `config.ids.IdMaker("job")` (or by the module attribute that holds it, as the early ones do)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self) -> str:
        return new_id(self.prefix)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMaker) and other.prefix == self.prefix

    def __hash__(self) -> int:
        return hash(self.prefix)


def new_ids(prefix: str, count: int) -> list[str]:
    """`count` ids in creation order (monotonic within the batch)."""
    millis = time.time_ns() // 1_000_000
    base = int.from_bytes(os.urandom(10), "big") & ~((1 << 24) - 1)
    # The ids of a batch (fewer than 2**24) differ only in the low 24 bits of their random part: its top 55 bits
    # are encoded once (11 characters) and each id's low 25 bits as one character and two 10-bit pairs (5 more),
    # the same text as _encode(base + i, 16) at a third of the cost (claims mint two ids a job).
    shared = f"{prefix}_{_encode(millis, 10)}{_encode(base >> 25, 11)}"
    low = base & ((1 << 25) - 1)
    alphabet, pairs = _ALPHABET, _PAIRS
    return [
        f"{shared}{alphabet[v >> 20]}{pairs[(v >> 10) & 1023]}{pairs[v & 1023]}"
        for v in range(low, low + count)
    ]


# Ids minted inside one SQL statement (set-based writers such as the schedule ticker): Python draws the first 20
# characters (the milliseconds and 50 random bits) once per statement and SQL appends the row's ordinal as the
# last 6 characters (30 bits), so each id has new_ids' shape and order: `prefix_` + 26 Crockford base32 characters.
SQL_ID_ORDINAL_BITS = 30


def sql_id_head(prefix: str) -> str:
    """The shared first part of a statement's ids (`prefix_` + 20 characters); see sql_id_expr."""
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{_encode(millis, 10)}{_encode(int.from_bytes(os.urandom(7), 'big') >> 6, 10)}"


def sql_id_expr(head_sql: str, ordinal_sql: str) -> str:
    """SQL for `head || base32(ordinal)` with 6 characters: ids unique and increasing for ordinals 0 .. 2**30 - 1."""
    digits = [
        f"substr('{_ALPHABET}', ((({ordinal_sql}) >> {shift}) & 31)::int + 1, 1)"
        for shift in range(SQL_ID_ORDINAL_BITS - 5, -1, -5)
    ]
    return f"({head_sql} || " + " || ".join(digits) + ")"
