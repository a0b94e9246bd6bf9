"""new_ids: one batch's ids share their head, increase with the batch counter and keep new_id's shape."""

from __future__ import annotations

import re

from config import ids


def test_batch_ids_are_the_full_encoding_of_a_counter(monkeypatch):
    draws = iter([bytes(range(10)), b"\xff" * 10])
    monkeypatch.setattr(ids.os, "urandom", lambda n: next(draws))
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_765_000_000_000 * 1_000_000)
    for _ in range(2):
        minted = ids.new_ids("job", 3000)
        base = int.from_bytes(bytes(range(10)), "big") if _ == 0 else int.from_bytes(b"\xff" * 10, "big")
        base &= ~((1 << 24) - 1)
        head = "job_" + ids._encode(1_765_000_000_000, 10)
        assert minted == [head + ids._encode(base + i, 16) for i in range(3000)]
        assert minted == sorted(minted) and len(set(minted)) == 3000


def test_batch_ids_have_the_single_id_shape():
    shape = re.compile(r"^evt_[0-9a-hjkmnp-tv-z]{26}$")
    assert all(shape.match(i) for i in ids.new_ids("evt", 50) + [ids.new_id("evt")])
