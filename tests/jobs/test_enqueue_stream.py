"""A large batch is checked chunk by chunk while PostgreSQL writes the chunks before (jobs.specs.SpecStream).

Its items are checked inside the enqueue's transaction, after the first rows were sent, so a refused item must
still leave nothing behind. These run outside a test transaction (transaction=True), where the API's enqueue is
the outermost atomic block, as it is in production.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from accounts.models import Plan
from accounts.services import workspace_create
from billing.models import UsageCounter
from jobs.models import Job
from jobs.specs import STREAM_CHUNK, STREAM_FIRST_CHUNK
from queues.models import Event, QueueMinuteStat
from tests.conftest import make_client
from tests.factories import make_queue

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the pipelined write is PostgreSQL's"),
]

BIG = STREAM_FIRST_CHUNK + 2 * STREAM_CHUNK + 17  # four chunks, the last one short


@pytest.fixture
def roomy(plans):
    plan = Plan.objects.create(code="roomy", name="Roomy", requests_per_minute=None, max_attempts=10)
    workspace, key = workspace_create(name="w", plan_code=plan.code)
    make_queue(workspace, "work", delivery="pull")
    make_queue(workspace, "hooks", delivery="push", endpoint={"url": "http://93.184.216.34/hook"})
    return workspace, make_client(key.raw)


@pytest.fixture
def inserts(monkeypatch) -> list[int]:
    """The size of each job INSERT sent to PostgreSQL."""
    from jobs.services import enqueue_sql

    sizes: list[int] = []
    original = enqueue_sql._insert_jobs_statement

    def counting(jobs, *args):  # noqa: ANN001, ANN002, ANN202
        sizes.append(len(jobs))
        return original(jobs, *args)

    monkeypatch.setattr(enqueue_sql, "_insert_jobs_statement", counting)
    return sizes


def _batch(client, jobs: list[dict], queue: str = "work"):
    return client.post(f"/v1/queues/{queue}/jobs/batch", {"jobs": jobs}, format="json")


def _nothing_committed(workspace) -> bool:
    return (
        not Job.objects.exists()
        and not Event.objects.exists()
        and not QueueMinuteStat.objects.exists()
        and not UsageCounter.objects.filter(workspace=workspace, jobs_enqueued__gt=0).exists()
    )


def test_a_streamed_batch_is_written_in_chunks_with_every_value_in_place(roomy, inserts):
    workspace, client = roomy
    soon = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    jobs = [{"payload": {"n": i}} for i in range(BIG)]
    # Optional columns set only in later chunks: the statement cannot leave their columns out.
    jobs[STREAM_FIRST_CHUNK + 5].update(name="late-name", timeout_ms=5000, group="g1")
    jobs[-1].update(priority=7, max_attempts=9, run_at=soon.isoformat(), tags=["last"])
    response = _batch(client, jobs)
    assert response.status_code == 201, response.content
    assert inserts == [STREAM_FIRST_CHUNK, STREAM_CHUNK, STREAM_CHUNK, 17]
    data = response.json()["data"]
    assert [job["payload"]["n"] for job in data] == list(range(BIG))
    rows = {job.id: job for job in Job.objects.filter(workspace=workspace)}
    assert len(rows) == BIG
    named = rows[data[STREAM_FIRST_CHUNK + 5]["id"]]
    assert (named.name, named.timeout_ms, named.group) == ("late-name", 5000, "g1")
    last = rows[data[-1]["id"]]
    assert (last.priority, last.max_attempts, last.tags, last.state) == (7, 9, ["last"], "delayed")
    assert last.run_at == soon
    plain = rows[data[0]["id"]]
    assert (plain.name, plain.timeout_ms, plain.group, plain.state) == (None, None, None, "waiting")
    assert Event.objects.filter(type="job:waiting").count() == BIG - 1
    assert Event.objects.filter(type="job:delayed").count() == 1
    assert UsageCounter.objects.get(workspace=workspace).jobs_enqueued == BIG
    assert connection.connection.info.transaction_status == 0  # idle: committed, nothing left open


def test_an_item_refused_after_the_first_chunks_were_sent_commits_nothing(roomy, inserts):
    workspace, client = roomy
    jobs = [{"payload": {"n": i}} for i in range(BIG)]
    late = STREAM_FIRST_CHUNK + STREAM_CHUNK + 3  # in the third chunk
    jobs[late]["priority"] = 1000
    jobs[-1]["tags"] = "not-a-list"
    response = _batch(client, jobs)
    assert response.status_code == 400, response.content
    details = response.json()["error"]["details"]
    # Every item's errors, as for a batch checked whole.
    assert set(details) == {f"jobs.{late}.priority", f"jobs.{BIG - 1}.tags"}
    # The chunks before the refused one went to PostgreSQL; nothing after it did.
    assert inserts == [STREAM_FIRST_CHUNK, STREAM_CHUNK]
    assert _nothing_committed(workspace)
    # The connection goes on: the next enqueue commits alone.
    assert _batch(client, [{"payload": {"n": -1}}]).status_code == 201
    assert list(Job.objects.values_list("payload", flat=True)) == [{"n": -1}]


@pytest.mark.parametrize(
    ("item", "status", "code"),
    [
        ({"payload": {"big": "x" * 2048}}, 413, "PAYLOAD_TOO_LARGE"),
        ({"payload": {}, "max_attempts": 50}, 402, "PLAN_LIMIT"),
    ],
)
def test_a_late_item_over_a_limit_is_refused_with_its_status_and_commits_nothing(
    roomy, inserts, item, status, code
):
    workspace, client = roomy
    jobs = [{"payload": {"n": i}} for i in range(BIG)]
    jobs[-1] = item
    with override_settings(SPINDLE_MAX_PAYLOAD_BYTES=1024):
        response = _batch(client, jobs)
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert inserts and len(inserts) < 4
    assert _nothing_committed(workspace)


@pytest.mark.parametrize(
    "extra",
    [{"idempotency_key": "k-1"}, {"http": {"url": "http://93.184.216.35/other"}}],
    ids=["idempotency key", "http target"],
)
def test_a_batch_with_keys_or_targets_is_checked_whole_before_any_write(roomy, inserts, extra):
    workspace, client = roomy
    jobs = [{"payload": {"n": i}} for i in range(BIG)]
    jobs[0].update(extra)
    jobs[-1]["priority"] = 1000
    response = _batch(client, jobs, queue="hooks")
    assert response.status_code == 400, response.content
    assert set(response.json()["error"]["details"]) == {f"jobs.{BIG - 1}.priority"}
    assert inserts == []  # refused before the transaction sent anything
    assert _nothing_committed(workspace)


def test_a_short_quota_refuses_a_streamed_batch_whole(roomy, inserts):
    workspace, client = roomy
    Plan.objects.filter(code="roomy").update(jobs_per_month=BIG - 1)
    response = _batch(client, [{"payload": {"n": i}} for i in range(BIG)])
    assert response.status_code == 402, response.content
    assert response.json()["error"]["code"] == "QUOTA_EXCEEDED"
    assert len(inserts) == 4  # every chunk was sent; the quota, last, refused them all
    assert _nothing_committed(workspace)
