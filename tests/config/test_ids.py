"""Prefixed time-ordered ids (config/ids.py): a batch is the same text as encoding each id on its own."""

from __future__ import annotations

import re

from config import ids


def test_a_batch_encodes_like_one_id_at_a_time(monkeypatch):
    for random_bytes in (b"\x00" * 10, b"\xff" * 10, bytes(range(3, 13))):
        monkeypatch.setattr(ids.os, "urandom", lambda n, b=random_bytes: b[:n])
        monkeypatch.setattr(ids.time, "time_ns", lambda: 1_765_000_000_123_456_789)
        base = int.from_bytes(random_bytes, "big") & ~((1 << 24) - 1)
        expected = [
            f"exe_{ids._encode(1_765_000_000_123, 10)}{ids._encode(base + i, 16)}" for i in range(2000)
        ]
        assert ids.new_ids("exe", 2000) == expected


def test_ids_of_a_batch_sort_in_creation_order_and_are_unique():
    batch = ids.new_ids("job", 5000)
    assert batch == sorted(batch) and len(set(batch)) == 5000
    assert all(len(i) == len("job_") + 26 for i in batch)


def test_batch_ids_have_the_single_id_shape():
    shape = re.compile(r"^evt_[0-9a-hjkmnp-tv-z]{26}$")
    assert all(shape.match(i) for i in ids.new_ids("evt", 50) + [ids.new_id("evt")])
