"""Push wake-ups end to end: a real worker's waker claims what an enqueue's NOTIFY names, with no broker hint
and no sweeper (no beat) to fall back on."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection

from jobs.models import Job
from jobs.services import dispatch
from jobs.services.enqueue import job_enqueue_batch
from jobs.specs import JobSpec
from tests.e2e.conftest import wait_for
from tests.e2e.test_push_delivery import push_queue

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_enqueue_wakes_the_worker_without_a_broker_hint(workspace, endpoint, start_worker, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    q = push_queue(workspace, endpoint)
    hinted: list[list[str]] = []
    monkeypatch.setattr(dispatch, "send_hints", lambda ids: hinted.append(list(ids)))
    start_worker(beat=False)
    wait_for(lambda: cache.get(dispatch.wakers_key()))  # the worker's first pool process listens
    dispatch.forget_wakers()

    for round_ in range(3):  # one after another: each is woken on its own
        ((job, _),) = job_enqueue_batch(workspace=workspace, queue=q, specs=[JobSpec(payload={"n": round_})])
        wait_for(lambda job_id=job.id: Job.objects.get(pk=job_id).state == "completed", timeout_s=10)
    batch = job_enqueue_batch(
        workspace=workspace, queue=q, specs=[JobSpec(payload={"n": i}) for i in range(20)]
    )
    wait_for(lambda: Job.objects.filter(queue=q, state="completed").count() == 23, timeout_s=20)

    assert hinted == []  # no broker hint was sent by this process: every job was woken by NOTIFY
    assert len(endpoint.requests) == 23 and len(batch) == 20
