"""An enqueue that owns its transaction commits its writes in the same round trip (PostgreSQL).

These run outside a test transaction (transaction=True), where the API's enqueue is the outermost atomic block.
"""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import connection
from psycopg import BaseConnection

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
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-round-trip commit is PostgreSQL's"),
]


@pytest.fixture
def tiny(plans):
    plan = Plan.objects.create(code="tiny", name="Tiny", requests_per_minute=None, jobs_per_month=3)
    workspace, key = workspace_create(name="w", plan_code=plan.code)
    make_queue(workspace, "work", delivery="pull")
    make_queue(workspace, "hooks", delivery="push")
    return workspace, make_client(key.raw)


@pytest.fixture
def commands(monkeypatch) -> list[bytes]:
    """Transaction commands psycopg sends on its own (BEGIN, COMMIT, ROLLBACK), each one round trip."""
    sent: list[bytes] = []
    original = BaseConnection._exec_command

    def recording(self, command, *args, **kwargs):  # noqa: ANN001, ANN202 - psycopg's generator
        sent.append(command if isinstance(command, bytes) else str(command).encode())
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(BaseConnection, "_exec_command", recording)
    return sent


def _post(client, path: str, body: dict):
    return client.post(path, body, format="json")


def test_single_enqueue_commits_without_begin_or_commit_round_trips(tiny, commands):
    workspace, client = tiny
    with mock.patch("jobs.services.dispatch.send_hints") as hints:
        assert _post(client, "/v1/queues/work/jobs", {"payload": {"n": 1}}).status_code == 201
        assert _post(client, "/v1/queues/hooks/jobs", {"payload": {"n": 2}}).status_code == 201
    assert not [c for c in commands if c.split()[0] in (b"BEGIN", b"COMMIT")], commands
    assert connection.connection.info.transaction_status == 0  # idle: nothing left open
    assert Job.objects.filter(workspace=workspace).count() == 2
    assert Event.objects.filter(workspace_id=workspace.id).count() == 2
    assert sum(QueueMinuteStat.objects.values_list("enqueued", flat=True)) == 2
    assert UsageCounter.objects.get(workspace=workspace).jobs_enqueued == 2
    hints.assert_called_once()  # the push queue's hint, after the commit


@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/queues/work/jobs", {"payload": {"n": 1}}),
        ("/v1/queues/work/jobs", {"payload": {"n": 1}, "idempotency_key": "k-1"}),
        ("/v1/queues/work/jobs/batch", {"jobs": [{"payload": {"n": i}} for i in range(30)]}),
        ("/v1/queues/work/jobs/batch", {"jobs": [{"payload": {"n": i}} for i in range(600)]}),
    ],
    ids=["single", "single-with-key", "batch-copy", "batch-pipelined"],
)
def test_a_short_quota_commits_nothing(tiny, path, body):
    workspace, client = tiny
    UsageCounter.objects.create(workspace=workspace, period=_period(), jobs_enqueued=3)
    response = _post(client, path, body)
    assert response.status_code == 402, response.content
    assert response.json()["error"]["details"] == {"used": 3, "limit": 3, "plan": "tiny"}
    assert not Job.objects.exists() and not Event.objects.exists() and not QueueMinuteStat.objects.exists()
    assert UsageCounter.objects.get(workspace=workspace).jobs_enqueued == 3
    # The connection is usable afterwards: the next enqueue that fits goes through.
    UsageCounter.objects.filter(workspace=workspace).update(jobs_enqueued=0)
    assert _post(client, "/v1/queues/work/jobs", {"payload": {"n": 2}}).status_code == 201
    assert Job.objects.count() == 1


def test_key_and_batch_paths_commit_in_their_last_round_trip(tiny, commands):
    workspace, client = tiny
    body = {"payload": {"n": 1}, "idempotency_key": "k-1"}
    first = _post(client, "/v1/queues/work/jobs", body)
    again = _post(client, "/v1/queues/work/jobs", body)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    batch = _post(client, "/v1/queues/work/jobs/batch", {"jobs": [{"payload": {"n": i}} for i in range(2)]})
    assert batch.status_code == 201
    # The first key's SELECT opened a transaction whose writes carried the COMMIT; the replay wrote nothing and
    # committed its read as before; the 2-job batch went as one implicit transaction.
    assert [c.split()[0] for c in commands] == [b"BEGIN", b"BEGIN", b"COMMIT"], commands
    assert Job.objects.filter(workspace=workspace).count() == 3
    assert UsageCounter.objects.get(workspace=workspace).jobs_enqueued == 3


def _period():
    from billing.services import current_period

    return current_period()


def test_a_session_lost_mid_enqueue_is_503_and_the_next_request_reconnects(tiny, monkeypatch):
    import psycopg

    from jobs.services import enqueue
    from tests.processes import database_url

    workspace, client = tiny
    build = enqueue._build_jobs

    def build_then_lose_the_session(**kwargs):
        with psycopg.connect(database_url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", [connection.connection.info.backend_pid])
        return build(**kwargs)

    monkeypatch.setattr(enqueue, "_build_jobs", build_then_lose_the_session)
    response = _post(client, "/v1/queues/work/jobs", {"payload": {"n": 1}})
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    monkeypatch.setattr(enqueue, "_build_jobs", build)
    assert _post(client, "/v1/queues/work/jobs", {"payload": {"n": 2}}).status_code == 201
    assert list(Job.objects.values_list("payload", flat=True)) == [{"n": 2}]


# A batch of at least PIPELINE_MIN_JOBS goes through _write_pipelined: its rows in chunks, the response built while
# they are written, the COMMIT last.
BIG = STREAM_FIRST_CHUNK + STREAM_CHUNK + 17  # three chunks, the last one short


def test_a_pipelined_batch_commits_every_row_event_and_count_once(tiny, monkeypatch):
    from jobs.services import enqueue_sql

    workspace, client = tiny
    Plan.objects.filter(code="tiny").update(jobs_per_month=None)
    pipelined = []
    monkeypatch.setattr(enqueue_sql, "_write_pipelined", _spy(enqueue_sql._write_pipelined, pipelined))
    body = {"jobs": [{"payload": {"n": i}, "tags": [f"t{i % 3}"]} for i in range(BIG)]}
    response = _post(client, "/v1/queues/work/jobs/batch", body)
    assert response.status_code == 201, response.content
    assert len(pipelined) == 1
    data = response.json()["data"]
    assert [job["payload"]["n"] for job in data] == list(range(BIG))
    stored = dict(Job.objects.filter(workspace=workspace).values_list("id", "payload"))
    assert {job["id"]: job["payload"] for job in data} == stored and len(stored) == BIG
    assert Event.objects.filter(workspace_id=workspace.id, type="job:waiting").count() == BIG
    assert sum(QueueMinuteStat.objects.values_list("enqueued", flat=True)) == BIG
    assert UsageCounter.objects.get(workspace=workspace).jobs_enqueued == BIG
    assert connection.connection.info.transaction_status == 0  # idle: committed, nothing left open
    # The same connection goes on with the one-round-trip path.
    assert _post(client, "/v1/queues/work/jobs", {"payload": {"n": -1}}).status_code == 201
    assert Job.objects.filter(workspace=workspace).count() == BIG + 1


def test_a_pipelined_batch_whose_response_fails_commits_nothing(tiny, monkeypatch):
    from jobs.views import jobs as job_views

    workspace, client = tiny
    Plan.objects.filter(code="tiny").update(jobs_per_month=None)

    def broken(job, **kwargs):  # noqa: ANN001, ANN003, ANN202
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(job_views, "job_to_dict", broken)
    client.raise_request_exception = False
    response = _post(
        client, "/v1/queues/work/jobs/batch", {"jobs": [{"payload": {"n": i}} for i in range(BIG)]}
    )
    assert response.status_code == 500
    assert not Job.objects.exists() and not Event.objects.exists() and not QueueMinuteStat.objects.exists()
    assert not UsageCounter.objects.filter(workspace=workspace, jobs_enqueued__gt=0).exists()


def test_a_session_lost_mid_pipeline_is_503_and_nothing_of_the_batch_commits(tiny, monkeypatch):
    import psycopg

    from jobs.services import enqueue_sql
    from tests.processes import database_url

    workspace, client = tiny
    Plan.objects.filter(code="tiny").update(jobs_per_month=None)
    insert = enqueue_sql._insert_jobs_statement
    calls = []

    def lose_the_session_at_the_second_chunk(jobs, *args):  # noqa: ANN001, ANN002, ANN202
        calls.append(len(jobs))
        if len(calls) == 2:
            with psycopg.connect(database_url(), autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(%s, 5000)", [connection.connection.info.backend_pid]
                )
        return insert(jobs, *args)

    monkeypatch.setattr(enqueue_sql, "_insert_jobs_statement", lose_the_session_at_the_second_chunk)
    response = _post(
        client, "/v1/queues/work/jobs/batch", {"jobs": [{"payload": {"n": i}} for i in range(BIG)]}
    )
    assert response.status_code == 503, response.content
    assert calls[:2] == [STREAM_FIRST_CHUNK, STREAM_CHUNK]
    monkeypatch.setattr(enqueue_sql, "_insert_jobs_statement", insert)
    assert _post(client, "/v1/queues/work/jobs", {"payload": {"n": -1}}).status_code == 201
    assert list(Job.objects.values_list("payload", flat=True)) == [{"n": -1}]


def _spy(function, calls: list):  # noqa: ANN001, ANN202
    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return function(*args, **kwargs)

    return spy


def test_without_pipeline_support_a_large_batch_takes_the_single_round_trip(tiny, monkeypatch):
    from jobs.services import enqueue_sql

    workspace, client = tiny
    Plan.objects.filter(code="tiny").update(jobs_per_month=None)
    pipelined = []
    monkeypatch.setattr(enqueue_sql, "_pipeline_supported", lambda: False)  # a system libpq older than 14
    monkeypatch.setattr(enqueue_sql, "_write_pipelined", _spy(enqueue_sql._write_pipelined, pipelined))
    response = _post(
        client, "/v1/queues/work/jobs/batch", {"jobs": [{"payload": {"n": i}} for i in range(BIG)]}
    )
    assert response.status_code == 201, response.content
    assert not pipelined
    assert Job.objects.filter(workspace=workspace).count() == BIG
    assert UsageCounter.objects.get(workspace=workspace).jobs_enqueued == BIG
