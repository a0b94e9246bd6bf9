"""Push kicks: a claim says whether the queue's own limits capped it, so a finished batch kicks its queue only when
ready jobs were left behind by a cap, never for jobs whose own hints already started a task (issue 14)."""

from __future__ import annotations

import time

import pytest
from celery import current_app
from django.core.cache import cache
from django.db import connection

from jobs.services import conveyor as conveyor_module
from jobs.services.conveyor import Conveyor
from jobs.services.dispatch import capped_key, mark_capped
from jobs.services.engine import job_claim_push_batch
from jobs.tasks import deliver_queue
from tests.endpoints import recording_endpoint
from tests.factories import insert_jobs

pytestmark = pytest.mark.django_db


@pytest.fixture
def hints(monkeypatch) -> list[str]:
    sent: list[str] = []
    monkeypatch.setattr(current_app, "send_task", lambda name, args, **kw: sent.append(args[0]))
    return sent


@pytest.fixture
def endpoint(settings):
    settings.SPINDLE_ALLOW_PRIVATE_TARGETS = True
    with recording_endpoint() as ep:
        yield ep


def test_claim_is_capped_by_concurrency_not_by_running_dry(make_queue):
    q = make_queue(concurrency=2)
    insert_jobs(q, 3)
    first = job_claim_push_batch(queue_id=q.id, limit=10)
    assert (len(first.jobs), first.capped) == (2, True)
    full = job_claim_push_batch(queue_id=q.id, limit=10)
    assert (full.jobs, full.capped) == ([], True)  # nothing leased: every slot is taken

    dry = make_queue("dry", concurrency=10)
    insert_jobs(dry, 3)
    claim = job_claim_push_batch(queue_id=dry.id, limit=10)
    assert (len(claim.jobs), claim.capped) == (3, False)
    assert job_claim_push_batch(queue_id=dry.id, limit=10).capped is False  # empty, not capped


def test_claim_capped_by_the_rate_limit(make_queue):
    q = make_queue(concurrency=10, rate_limit={"max": 1, "per_ms": 60000})
    insert_jobs(q, 2)
    claim = job_claim_push_batch(queue_id=q.id, limit=10)
    assert (len(claim.jobs), claim.capped) == (1, True)


def test_a_batch_that_took_every_ready_job_sends_no_kick(make_queue, endpoint, hints):
    q = make_queue(concurrency=10, endpoint={"url": endpoint.url})
    insert_jobs(q, 1)
    assert deliver_queue(q.id) == 1
    assert len(endpoint.requests) == 1
    assert hints == []  # the old claim-time check re-kicked after every claim: a task that found nothing
    assert cache.get(capped_key(q.id)) is None


def test_a_full_booking_kicks_the_next_claim(make_queue, endpoint, hints, settings):
    settings.SPINDLE_DELIVERY_BATCH = 2
    q = make_queue(concurrency=10, endpoint={"url": endpoint.url})
    insert_jobs(q, 3)
    assert deliver_queue(q.id) == 2
    assert hints == [q.id]


def test_a_capped_claim_is_kicked_when_its_batch_finishes(make_queue, endpoint, hints):
    q = make_queue(concurrency=1, endpoint={"url": endpoint.url})
    insert_jobs(q, 2)
    assert deliver_queue(q.id) == 1
    assert hints == [q.id]  # one job still ready, held back by the concurrency the batch freed
    assert cache.get(capped_key(q.id)) is None  # taken by the kick


def test_finishing_batch_kicks_for_a_capped_claim_elsewhere_only():
    c = Conveyor(total=10, reserve=0)
    ticket = c.reserve_claim("q1", "A", 5)
    ticket.capped = False
    assert c._finish(ticket, True) == []  # ready jobs, but their own hints fetch them
    ticket = c.reserve_claim("q1", "A", 5)
    ticket.capped = False
    mark_capped("q1")  # another process's claim found every slot taken
    assert c._finish(ticket, True) == ["q1"]
    assert cache.get(capped_key("q1")) is None
    ticket = c.reserve_claim("q1", "A", 5)
    mark_capped("q1")
    assert c._finish(ticket, False) == []  # nothing ready: no kick, whatever the flag says


@pytest.mark.django_db(transaction=True)
def test_claim_prepares_its_statement_again_when_the_session_lost_it(make_queue):
    q = make_queue(concurrency=10)
    insert_jobs(q, 2)
    assert len(job_claim_push_batch(queue_id=q.id, limit=1).jobs) == 1  # prepared on this connection
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what a pooler's reset does
    assert len(job_claim_push_batch(queue_id=q.id, limit=1).jobs) == 1
    assert len(job_claim_push_batch(queue_id=q.id, limit=1).jobs) == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("siblings", "woken", "claimed_here"),
    [(False, True, True), (True, True, False), (False, False, False)],
    ids=["thread-pool-waker", "prefork-waker", "recorder"],
)
def test_beside_a_batch_in_flight_only_a_lone_process_s_waker_claims_itself(
    make_queue, endpoint, hints, monkeypatch, siblings, woken, claimed_here
):
    # A thread-pool worker is one process: a broker hint would come back to it, a round trip later (the noisy
    # neighbour bench: every batch beside a tarpit's paid it). A prefork child hints so that a free sibling
    # claims; a recorder thread hints so that it goes back to recording.
    monkeypatch.setattr(conveyor_module, "_siblings", siblings)
    q = make_queue(concurrency=10, endpoint={"url": endpoint.url})
    insert_jobs(q, 3)
    c = Conveyor(total=64, reserve=8)
    c.batches = 1  # another batch waits out a slow endpoint on this loop
    try:
        c.claim_here_or_hint([q.id], woken=woken)
        if claimed_here:
            assert hints == []
            deadline = time.monotonic() + 5
            while len(endpoint.requests) < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(endpoint.requests) == 3
        else:
            assert hints == [q.id]
            assert endpoint.requests == []
    finally:
        c.batches -= 1
        c.drain(5)
