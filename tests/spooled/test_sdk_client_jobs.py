"""The official `spooled` SDK's client against a live server: jobs, the worker protocol by hand, the DLQ."""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.spooled.sdk_alias import sdk

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
errors = sdk.errors


def test_create_get_list_cancel(client) -> None:
    created = client.jobs.create({"queue_name": "emails", "payload": {"to": "a@example.com"}, "priority": 5})
    assert created.created is True
    job = client.jobs.get(created.id)
    assert (job.id, job.queue_name, job.status, job.payload, job.priority) == (
        created.id,
        "emails",
        "pending",
        {"to": "a@example.com"},
        5,
    )
    page = client.jobs.list({"queue_name": "emails", "limit": 10})
    assert [j.id for j in page] == [created.id]
    assert page.has_more is False
    client.jobs.cancel(created.id)
    assert client.jobs.get(created.id).status == "cancelled"
    # Spooled's words on the way in too: the list filters by them.
    assert client.jobs.list({"status": "cancelled"})[0].id == created.id
    assert list(client.jobs.list({"status": "pending"})) == []


def test_idempotency_priority_stats_status_bulk(client) -> None:
    first = client.jobs.create({"queue_name": "q1", "payload": {"n": 1}, "idempotency_key": "k-1"})
    again = client.jobs.create({"queue_name": "q1", "payload": {"n": 1}, "idempotency_key": "k-1"})
    assert (again.id, again.created) == (first.id, False)
    boosted = client.jobs.boost_priority(first.id, 50)
    assert (boosted.old_priority, boosted.new_priority) == (0, 50)
    bulk = client.jobs.bulk_enqueue(
        {"queue_name": "q1", "jobs": [{"payload": {"i": i}} for i in range(3)], "default_priority": 7}
    )
    assert (bulk.total, bulk.success_count, bulk.failure_count) == (3, 3, 0)
    ids = [item.job_id for item in bulk.succeeded]
    assert {j.priority for j in Job.objects.filter(id__in=ids)} == {7}
    statuses = client.jobs.batch_status([first.id, *ids])
    assert sorted(s.id for s in statuses) == sorted([first.id, *ids])
    assert {s.status for s in statuses} == {"pending"}
    stats = client.jobs.get_stats()
    assert (stats.pending, stats.total) == (4, 4)
    page = client.jobs.list({"limit": 2})
    assert len(page) == 2 and page.has_more is True


def test_worker_protocol_by_hand(client) -> None:
    job_id = client.jobs.create(
        {"queue_name": "work", "payload": {"x": [1, "two", None]}, "max_retries": 1}
    ).id
    worker = client.workers.register({"queue_name": "work", "hostname": "host-1"})
    assert worker.heartbeat_interval_secs > 0
    claimed = client.jobs.claim({"queue_name": "work", "worker_id": worker.id, "limit": 5})
    assert [j.id for j in claimed.jobs] == [job_id]
    leased = claimed.jobs[0]
    assert leased.payload == {"x": [1, "two", None]} and leased.lease_id
    assert client.jobs.get(job_id).status == "processing"
    client.jobs.heartbeat(job_id, {"worker_id": worker.id, "lease_id": leased.lease_id})
    with pytest.raises(errors.ConflictError) as lost:
        client.jobs.complete(job_id, {"worker_id": worker.id, "lease_id": "not-the-lease"})
    assert lost.value.code == "LEASE_EXPIRED"
    assert client.jobs.fail(
        job_id, {"worker_id": worker.id, "lease_id": leased.lease_id, "error": "boom"}
    ).success
    failed = client.jobs.get(job_id)
    assert (failed.status, failed.retry_count, failed.last_error) == ("failed", 0, "boom")
    Job.objects.filter(id=job_id).update(run_at=Job.objects.get(id=job_id).created_at, state="waiting")
    again = client.jobs.claim({"queue_name": "work", "worker_id": worker.id}).jobs[0]
    assert again.retry_count == 1
    done = client.jobs.complete(
        job_id, {"worker_id": worker.id, "lease_id": again.lease_id, "result": {"ok": 1}}
    )
    assert done.success
    # A replayed complete of the same lease is a success, not a conflict.
    assert client.jobs.complete(job_id, {"worker_id": worker.id, "lease_id": again.lease_id}).success
    job = client.jobs.get(job_id)
    assert (job.status, job.result) == ("completed", {"ok": 1})
    history = client.jobs.history(job_id)
    assert [h.event_type for h in history] == ["failed", "completed"]
    assert client.workers.get(worker.id).current_jobs == 0
    client.workers.deregister(worker.id)
    with pytest.raises(errors.NotFoundError):
        client.workers.get(worker.id)


def test_dead_letter_list_retry_purge(client) -> None:
    ids = [
        client.jobs.create({"queue_name": "dl", "payload": {"i": i}, "max_retries": 0}).id for i in range(3)
    ]
    worker = client.workers.register({"queue_name": "dl", "hostname": "h"})
    for job in client.jobs.claim({"queue_name": "dl", "worker_id": worker.id, "limit": 3}).jobs:
        client.jobs.fail(job.id, {"worker_id": worker.id, "lease_id": job.lease_id, "error": "nope"})
    dead = client.jobs.dlq.list({"queue_name": "dl"})
    assert sorted(j.id for j in dead) == sorted(ids)
    assert {j.status for j in dead} == {"deadletter"}
    retried = client.jobs.dlq.retry({"job_ids": [ids[0]]})
    assert (retried.retried_count, retried.retried_jobs) == (1, [ids[0]])
    assert client.jobs.get(ids[0]).status == "pending"
    assert client.jobs.dlq.purge({"queue_name": "dl", "confirm": True}).purged_count == 2
    assert list(client.jobs.dlq.list()) == []
    with pytest.raises(errors.ConflictError):
        client.jobs.retry(ids[0])  # a pending job cannot be retried: 409
