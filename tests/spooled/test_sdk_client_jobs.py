"""The official `spooled` SDK's spooled_client against a live server: jobs, the worker protocol by hand, the DLQ."""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.spooled.sdk_alias import sdk

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
errors = sdk.errors


def test_create_get_list_cancel(spooled_client) -> None:
    created = spooled_client.jobs.create(
        {"queue_name": "emails", "payload": {"to": "a@example.com"}, "priority": 5}
    )
    assert created.created is True
    job = spooled_client.jobs.get(created.id)
    assert (job.id, job.queue_name, job.status, job.payload, job.priority) == (
        created.id,
        "emails",
        "pending",
        {"to": "a@example.com"},
        5,
    )
    page = spooled_client.jobs.list({"queue_name": "emails", "limit": 10})
    assert [j.id for j in page] == [created.id]
    assert page.has_more is False
    spooled_client.jobs.cancel(created.id)
    assert spooled_client.jobs.get(created.id).status == "cancelled"
    # Spooled's words on the way in too: the list filters by them.
    assert spooled_client.jobs.list({"status": "cancelled"})[0].id == created.id
    assert list(spooled_client.jobs.list({"status": "pending"})) == []


def test_idempotency_priority_stats_status_bulk(spooled_client) -> None:
    first = spooled_client.jobs.create({"queue_name": "q1", "payload": {"n": 1}, "idempotency_key": "k-1"})
    again = spooled_client.jobs.create({"queue_name": "q1", "payload": {"n": 1}, "idempotency_key": "k-1"})
    assert (again.id, again.created) == (first.id, False)
    boosted = spooled_client.jobs.boost_priority(first.id, 50)
    assert (boosted.old_priority, boosted.new_priority) == (0, 50)
    bulk = spooled_client.jobs.bulk_enqueue(
        {"queue_name": "q1", "jobs": [{"payload": {"i": i}} for i in range(3)], "default_priority": 7}
    )
    assert (bulk.total, bulk.success_count, bulk.failure_count) == (3, 3, 0)
    ids = [item.job_id for item in bulk.succeeded]
    assert {j.priority for j in Job.objects.filter(id__in=ids)} == {7}
    statuses = spooled_client.jobs.batch_status([first.id, *ids])
    assert sorted(s.id for s in statuses) == sorted([first.id, *ids])
    assert {s.status for s in statuses} == {"pending"}
    stats = spooled_client.jobs.get_stats()
    assert (stats.pending, stats.total) == (4, 4)
    page = spooled_client.jobs.list({"limit": 2})
    assert len(page) == 2 and page.has_more is True


def test_worker_protocol_by_hand(spooled_client) -> None:
    job_id = spooled_client.jobs.create(
        {"queue_name": "work", "payload": {"x": [1, "two", None]}, "max_retries": 1}
    ).id
    worker = spooled_client.workers.register({"queue_name": "work", "hostname": "host-1"})
    assert worker.heartbeat_interval_secs > 0
    claimed = spooled_client.jobs.claim({"queue_name": "work", "worker_id": worker.id, "limit": 5})
    assert [j.id for j in claimed.jobs] == [job_id]
    leased = claimed.jobs[0]
    assert leased.payload == {"x": [1, "two", None]} and leased.lease_id
    assert spooled_client.jobs.get(job_id).status == "processing"
    spooled_client.jobs.heartbeat(job_id, {"worker_id": worker.id, "lease_id": leased.lease_id})
    with pytest.raises(errors.ConflictError) as lost:
        spooled_client.jobs.complete(job_id, {"worker_id": worker.id, "lease_id": "not-the-lease"})
    assert lost.value.code == "LEASE_EXPIRED"
    assert spooled_client.jobs.fail(
        job_id, {"worker_id": worker.id, "lease_id": leased.lease_id, "error": "boom"}
    ).success
    failed = spooled_client.jobs.get(job_id)
    assert (failed.status, failed.retry_count, failed.last_error) == ("failed", 0, "boom")
    Job.objects.filter(id=job_id).update(run_at=Job.objects.get(id=job_id).created_at, state="waiting")
    again = spooled_client.jobs.claim({"queue_name": "work", "worker_id": worker.id}).jobs[0]
    assert again.retry_count == 1
    done = spooled_client.jobs.complete(
        job_id, {"worker_id": worker.id, "lease_id": again.lease_id, "result": {"ok": 1}}
    )
    assert done.success
    # A replayed complete of the same lease is a success, not a conflict.
    assert spooled_client.jobs.complete(job_id, {"worker_id": worker.id, "lease_id": again.lease_id}).success
    job = spooled_client.jobs.get(job_id)
    assert (job.status, job.result) == ("completed", {"ok": 1})
    history = spooled_client.jobs.history(job_id)
    assert [h.event_type for h in history] == ["failed", "completed"]
    assert spooled_client.workers.get(worker.id).current_jobs == 0
    spooled_client.workers.deregister(worker.id)
    with pytest.raises(errors.NotFoundError):
        spooled_client.workers.get(worker.id)


def test_dead_letter_list_retry_purge(spooled_client) -> None:
    ids = [
        spooled_client.jobs.create({"queue_name": "dl", "payload": {"i": i}, "max_retries": 0}).id
        for i in range(3)
    ]
    worker = spooled_client.workers.register({"queue_name": "dl", "hostname": "h"})
    for job in spooled_client.jobs.claim({"queue_name": "dl", "worker_id": worker.id, "limit": 3}).jobs:
        spooled_client.jobs.fail(job.id, {"worker_id": worker.id, "lease_id": job.lease_id, "error": "nope"})
    dead = spooled_client.jobs.dlq.list({"queue_name": "dl"})
    assert sorted(j.id for j in dead) == sorted(ids)
    assert {j.status for j in dead} == {"deadletter"}
    retried = spooled_client.jobs.dlq.retry({"job_ids": [ids[0]]})
    assert (retried.retried_count, retried.retried_jobs) == (1, [ids[0]])
    assert spooled_client.jobs.get(ids[0]).status == "pending"
    assert spooled_client.jobs.dlq.purge({"queue_name": "dl", "confirm": True}).purged_count == 2
    assert list(spooled_client.jobs.dlq.list()) == []
    with pytest.raises(errors.ConflictError):
        spooled_client.jobs.retry(ids[0])  # a pending job cannot be retried: 409
