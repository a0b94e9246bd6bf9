"""Issue 14 item 2: in-flight limits of the delivery conveyor, per queue, per workspace and per process, are
work-conserving (a tenant alone gets the pool) and fair when several tenants are busy."""

from __future__ import annotations

from jobs.services.capacity import allowance
from jobs.services.conveyor import Conveyor


def test_a_tenant_alone_gets_the_pool_but_the_reserve():
    c = Conveyor(total=100, reserve=10)
    taken = []
    while (t := c.reserve_claim("q1", "A", 30)) is not None:
        taken.append(t.size)
    assert sum(taken) == 90 and max(taken) == 30


def test_a_newcomer_enters_through_the_reserve_when_the_pool_is_taken():
    c = Conveyor(total=100, reserve=10)
    while c.reserve_claim("q1", "A", 30):
        pass
    b = c.reserve_claim("qb", "B", 30)
    assert b is not None and b.size == 5  # half the reserve: a second newcomer still gets in
    assert c.reserve_claim("qc", "C", 30).size == 5
    assert c.reserve_claim("qb", "B", 30) is None  # B now holds deliveries: no more reserve for it


def test_busy_workspaces_share_fairly_and_queues_share_their_workspace():
    c = Conveyor(total=100, reserve=0)
    assert c.reserve_claim("a1", "A", 100).size == 100  # alone: everything
    first = c.reserve_claim("a1", "A", 100)
    assert first is None
    c2 = Conveyor(total=100, reserve=0)
    a = c2.reserve_claim("a1", "A", 20)
    b = c2.reserve_claim("b1", "B", 100)
    assert (a.size, b.size) == (20, 50)  # B's fair share with A active is half the pool
    assert c2.reserve_claim("a2", "A", 100).size == 25  # A's second queue: half of A's share
    assert c2.reserve_claim("a1", "A", 100).size == 5  # a1 up to its half of A's share
    assert c2.reserve_claim("a1", "A", 100) is None


def test_release_gives_capacity_back_and_names_refused_queues():
    c = Conveyor(total=10, reserve=0)
    t = c.reserve_claim("q1", "A", 10)
    assert c.reserve_claim("q1", "A", 10) is None
    c.shrink(t, 4)
    assert c.in_flight == 4
    assert c.release(t) == ["q1"]  # re-kicked by the caller
    assert (c.in_flight, dict(c.by_ws), dict(c.by_queue)) == (0, {}, {})


def test_allowance_never_negative():
    assert (
        allowance(batch=10, total=10, reserve=0, in_flight=10, held_ws=10, active_ws=1, held_q=10, active_q=1)
        == 0
    )
