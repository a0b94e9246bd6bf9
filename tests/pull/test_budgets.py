"""Per-request budgets of the hot single-job routes (PERF.md): counts, not times.

SQL round trips per request, authentication included and BEGIN/COMMIT (and savepoints) not counted: enqueue
<= 3, claim <= 3, complete <= 3, get <= 2 (issue 15); heartbeat and fail as complete. A route that names its
queue reads it with the API key (accounts.authentication.Companion), so the queue's enqueue and claim take 2. A health check of the persistent
connection (Django's CONN_HEALTH_CHECKS `SELECT 1`, sent outside the query log) counts as a round trip too.
Redis round trips <= 2 per request, counted at the redis client (every command or pipeline sent), the broker's
on-commit hints left out (ROADMAP "Redis round trips per request").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
import redis.connection
from django.conf import settings
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config import db
from config.db import postgres
from jobs.models import Execution, Job
from jobs.services.engine import job_claim
from tests.factories import insert_jobs, make_queue
from tests.pull.conftest import claim_one, enqueue
from tests.sqltext import expand_prepared

pytestmark = pytest.mark.django_db

ON_POSTGRES = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the set-based paths are PostgreSQL's"
)
_BOOKKEEPING = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT", "BEGIN", "COMMIT")


@dataclass
class Trips:
    sql: list[str] = field(default_factory=list)
    health_checks: int = 0
    redis: int = 0

    @property
    def sql_round_trips(self) -> int:
        return len(self.sql) + self.health_checks


def _broker_db() -> tuple[str | None, int | None, int]:
    url = urlsplit(settings.CELERY_BROKER_URL)
    return url.hostname, url.port, int(url.path.strip("/") or 0)


@contextmanager
def counted() -> Iterator[Trips]:
    trips = Trips()
    send = redis.connection.AbstractConnection.send_packed_command
    usable = BaseDatabaseWrapper.close_if_health_check_failed
    broker = _broker_db()

    def send_counting(self, command, check_health=True):  # noqa: ANN001 - redis-py's signature
        if (getattr(self, "host", None), getattr(self, "port", None), self.db) != broker:
            trips.redis += 1
        return send(self, command, check_health)

    def health_counting(self) -> None:  # noqa: ANN001
        if self.connection is not None and self.health_check_enabled and not self.health_check_done:
            trips.health_checks += 1
        usable(self)

    redis.connection.AbstractConnection.send_packed_command = send_counting
    BaseDatabaseWrapper.close_if_health_check_failed = health_counting
    try:
        with CaptureQueriesContext(connection) as ctx:
            yield trips
    finally:
        redis.connection.AbstractConnection.send_packed_command = send
        BaseDatabaseWrapper.close_if_health_check_failed = usable
    trips.sql = expand_prepared(
        [q["sql"] for q in ctx.captured_queries if not q["sql"].lstrip().startswith(_BOOKKEEPING)]
    )


def _within(trips: Trips, sql: int, redis_trips: int = 2) -> None:
    assert trips.sql_round_trips <= sql, trips.sql
    assert trips.redis <= redis_trips, trips.redis


@pytest.fixture
def warm_client(api_client, pull_queue):
    # The first request of a key records its last_used_at (once a minute at most): out of the measurement.
    assert api_client.get("/v1/jobs").status_code == 200
    return api_client


def test_counter_sees_sql_and_redis(warm_client):
    # A budget test must be able to fail: the counter sees the authenticated request's key lookup and throttle.
    with counted() as trips:
        warm_client.get("/v1/jobs")
    assert trips.sql_round_trips >= 1
    assert trips.redis >= 1


def test_enqueue_budget(warm_client):
    with counted() as trips:
        response = warm_client.post("/v1/queues/work/jobs", {"payload": {"a": 1}}, format="json")
    assert response.status_code == 201
    _within(trips, 2)  # the key with its queue, then the writes with the COMMIT
    with counted() as trips:
        response = warm_client.post("/v1/jobs", {"queue": "work", "payload": {}}, format="json")
    assert response.status_code == 201
    _within(trips, 3)


def test_get_budget(warm_client, workspace, pull_queue):
    [job] = enqueue(workspace, pull_queue)
    with counted() as trips:
        response = warm_client.get(f"/v1/queues/work/jobs/{job.id}")
    assert response.status_code == 200 and response.json()["queue"] == "work"
    _within(trips, 2)
    with counted() as trips:
        assert warm_client.get(f"/v1/jobs/{job.id}").status_code == 200
    _within(trips, 2)


def test_get_of_another_queue_is_still_404(warm_client, workspace, pull_queue):
    other = make_queue(workspace, "other")
    [job] = enqueue(workspace, other)
    response = warm_client.get(f"/v1/queues/work/jobs/{job.id}")
    assert response.status_code == 404
    assert (
        warm_client.get(f"/v1/queues/nope/jobs/{job.id}").json()["error"]["message"]
        == "Queue 'nope' not found."
    )


@ON_POSTGRES
def test_claim_budget_the_key_with_its_queue_then_the_claim(warm_client, workspace, pull_queue):
    enqueue(workspace, pull_queue, 3)
    with counted() as trips:
        response = warm_client.post("/v1/queues/work/jobs/claim", {"limit": 1}, format="json")
    assert len(response.json()["data"]) == 1
    _within(trips, 2)  # the key with its queue, then the claim


@ON_POSTGRES
def test_claim_with_wait_returns_at_once_when_jobs_are_ready(warm_client, workspace, pull_queue):
    enqueue(workspace, pull_queue, 1)
    with counted() as trips:
        response = warm_client.post(
            "/v1/queues/work/jobs/claim", {"limit": 5, "wait_ms": 20000}, format="json"
        )
    assert len(response.json()["data"]) == 1
    assert "Spindle-Long-Poll" not in response
    # No long-poll slot was taken (it costs Redis round trips of its own): the throttle is the only one.
    assert trips.redis == 1
    _within(trips, 3)


@ON_POSTGRES
@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("complete", {"result": {"ok": True}}),
        ("fail", {"error": {"message": "boom"}, "retry": False}),
        ("fail", {"error": {"message": "again later"}}),
        ("heartbeat", {"lease_ms": 60000}),
    ],
)
def test_job_operation_budget(warm_client, workspace, pull_queue, action, body):
    enqueue(workspace, pull_queue, 1)
    job = claim_one(warm_client)
    path = f"/v1/queues/work/jobs/{job['id']}/{action}"
    with counted() as trips:
        response = warm_client.post(path, {"lease_token": job["lease_token"], **body}, format="json")
    assert response.status_code == 200, response.content
    # Auth + two statements (the engine's lock, then its writes reading the job back); heartbeat is one.
    _within(trips, 2 if action == "heartbeat" else 3)
    stored = Job.objects.get(pk=job["id"])
    assert response.json()["state"] == stored.state
    assert response.json()["attempts"] == stored.attempts
    if action == "complete":
        assert stored.state == "completed" and stored.result == {"ok": True}
        execution = Execution.objects.get(job_id=job["id"])
        assert execution.status == "success" and execution.duration_ms is not None
    if action == "heartbeat":
        assert response.json()["lease_token"] == job["lease_token"]


@ON_POSTGRES
def test_stale_token_is_still_lease_lost_and_push_queue_409(warm_client, workspace, pull_queue, push_queue):
    enqueue(workspace, pull_queue, 1)
    job = claim_one(warm_client)
    for action in ("complete", "heartbeat", "fail"):
        body = (
            {"lease_token": "0" * 32, "error": {"message": "x"}}
            if action == "fail"
            else {"lease_token": "0" * 32}
        )
        response = warm_client.post(f"/v1/queues/work/jobs/{job['id']}/{action}", body, format="json")
        assert response.status_code == 409 and response.json()["error"]["code"] == "LEASE_LOST", action
        response = warm_client.post(f"/v1/queues/hooks/jobs/{job['id']}/{action}", body, format="json")
        assert response.status_code == 409 and response.json()["error"]["details"] == {"delivery": "push"}
        response = warm_client.post(f"/v1/queues/nope/jobs/{job['id']}/{action}", body, format="json")
        assert response.status_code == 404
    assert Job.objects.get(pk=job["id"]).state == "active"


@ON_POSTGRES
def test_batch_ack_writes_set_based(warm_client, workspace, pull_queue):
    """The statements of an ack do not grow with its size: 2 and 10 outcomes cost the same."""
    enqueue(workspace, pull_queue, 12)
    counts = []
    for size in (2, 10):
        jobs = warm_client.post("/v1/queues/work/jobs/claim", {"limit": size}, format="json").json()["data"]
        items = [{"id": j["id"], "lease_token": j["lease_token"]} for j in jobs]
        with counted() as trips:
            response = warm_client.post("/v1/queues/work/jobs/ack", {"completed": items}, format="json")
        assert response.json() == {"acked": size, "lease_lost": []}
        counts.append(trips.sql_round_trips)
    assert counts[0] == counts[1] <= 3  # auth, the engine's lock (scoped by queue name) and its writes
    assert Job.objects.filter(state="completed").count() == 12
    assert Execution.objects.filter(status="success", duration_ms__isnull=False).count() == 12


@ON_POSTGRES
def test_batch_enqueue_one_notify_per_batch(warm_client):
    jobs = [{"payload": {"n": i}} for i in range(500)]
    with counted() as trips:
        response = warm_client.post("/v1/queues/work/jobs/batch", {"jobs": jobs}, format="json")
    assert response.status_code == 201
    assert len([s for s in trips.sql if "pg_notify" in s]) == 1
    # The rows go in by one set-based INSERT, sent with the events, NOTIFY, rollup and quota in one round trip.
    assert [s.count("INSERT INTO jobs_job") for s in trips.sql] == [0, 0, 1]
    _within(trips, 3)  # key, queue, the writes


@ON_POSTGRES
def test_health_check_of_a_kept_connection_costs_no_round_trip(monkeypatch):
    """Django checks a kept connection once per request (CONN_HEALTH_CHECKS); config.db.pgengine checks the socket
    instead of sending `SELECT 1` (a round trip on every request otherwise)."""
    connection.ensure_connection()
    sent = []
    raw_type = type(connection.connection)
    original = raw_type.cursor
    monkeypatch.setattr(raw_type, "cursor", lambda self, *a, **k: sent.append(1) or original(self, *a, **k))
    assert connection.is_usable()
    assert sent == []


@ON_POSTGRES
@pytest.mark.django_db(transaction=True)
def test_health_check_sees_a_session_the_server_ended():
    import psycopg

    from tests.processes import database_url

    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    with psycopg.connect(database_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
    try:
        assert not connection.is_usable()
    finally:
        connection.close()
    with connection.cursor() as cursor:  # the next request simply connects again
        cursor.execute("SELECT 1")


def test_ack_with_items_on_a_push_or_unknown_queue_is_refused(warm_client, workspace, pull_queue, push_queue):
    """The ack looks its queue up only when nothing was written: the refusals are those of a lookup first."""
    enqueue(workspace, pull_queue, 1)
    job = claim_one(warm_client)
    body = {"completed": [{"id": job["id"], "lease_token": job["lease_token"]}]}
    response = warm_client.post("/v1/queues/hooks/jobs/ack", body, format="json")
    assert response.status_code == 409 and response.json()["error"]["details"] == {"delivery": "push"}
    assert warm_client.post("/v1/queues/nope/jobs/ack", body, format="json").status_code == 404
    assert Job.objects.get(pk=job["id"]).state == "active"
    response = warm_client.post("/v1/queues/work/jobs/ack", body, format="json")
    assert response.json() == {"acked": 1, "lease_lost": []}


def _plans() -> dict[str, tuple[int, int]]:
    """(generic plans, custom plans) of each statement prepared on this connection, by its text."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, statement, generic_plans, custom_plans FROM pg_prepared_statements")
        rows = cursor.fetchall()
    plans = {}
    for name, text, generic, custom in rows:
        head = f"PREPARE {name} AS "
        body = next((p[len(head) :] for p in text.split(";\n") if p.startswith(head)), text)
        plans[" ".join(body.split())] = (generic, custom)
    return plans


@ON_POSTGRES
def test_hot_statements_are_planned_once_per_connection(warm_client, workspace, pull_queue, monkeypatch):
    """The claim, the engine's lock and writes and the enqueue's writes run prepared, on generic plans: planning
    them cost about as much as running them, on every request. Counted as the change over this test: the connection,
    and the statements prepared on it by earlier tests (other column sets of the same INSERT), outlive a test. (A
    plan older than PLAN_MAX_AGE_S is made again: not within this test.)"""
    monkeypatch.setattr(postgres, "PLAN_MAX_AGE_S", 3600.0)
    before = _plans()
    for n in range(3):
        assert (
            warm_client.post("/v1/queues/work/jobs", {"payload": {"n": n}}, format="json").status_code == 201
        )
        job = claim_one(warm_client)
        body = {"lease_token": job["lease_token"]}
        done = warm_client.post(f"/v1/queues/work/jobs/{job['id']}/complete", body, format="json")
        assert done.status_code == 200
    after = _plans()
    plans = {
        text: (g - before.get(text, (0, 0))[0], c - before.get(text, (0, 0))[1])
        for text, (g, c) in after.items()
    }
    for start in ("WITH r AS MATERIALIZED", "SELECT j.id, j.lease_token", "UPDATE jobs_job AS t SET",
                  "UPDATE jobs_execution AS e SET", "INSERT INTO jobs_event", "INSERT INTO jobs_queueminutestat",
                  "INSERT INTO jobs_job"):  # fmt: skip
        found = [counts for text, counts in plans.items() if text.startswith(start)]
        assert found, (start, sorted(plans))
        assert all(custom == 0 for _, custom in found) and sum(g for g, _ in found) >= 3, (start, found)


def _grow(seed: Job, n: int) -> None:
    """`n` copies of the `seed` job row, in one statement."""
    columns = [connection.ops.quote_name(f.column) for f in Job._meta.concrete_fields]
    cloned = ", ".join("j.id || '_' || g" if c == '"id"' else f"j.{c}" for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO jobs_job ({', '.join(columns)}) SELECT {cloned} "
            "FROM jobs_job j, generate_series(1, %s) g WHERE j.id = %s",
            [n, seed.id],
        )


def _generic_plan(sql: str, params: list) -> str:
    """EXPLAIN of `sql` as this connection has it prepared (run once first, so that it is)."""
    with connection.cursor() as cursor:
        db.execute_prepared(cursor, [(sql, params)])
        cursor.execute(f"EXPLAIN EXECUTE {postgres.statement_name(sql)}(%s)", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@ON_POSTGRES
def test_a_plan_made_on_a_small_table_is_made_again_once_it_is_old(pull_queue, monkeypatch):
    """A generic plan is as good as the statistics it was built from. The outcome write, prepared just after the
    job table was emptied, kept a sequential scan of it while it grew (130 ms per 100-job batch at 20,000 rows):
    the push bench fell from 2,400 to 400 jobs/s once each of its groups started on an empty database."""
    sql = "UPDATE jobs_job SET updated_at = now() WHERE id = ANY(string_to_array(%s, ','))"
    with connection.cursor() as cursor:
        # Empty, as after a TRUNCATE or on a new deployment. Truncated here (rolled back with the test): rows
        # that earlier tests inserted and rolled back still fill the table's pages, which the planner counts.
        cursor.execute("TRUNCATE jobs_job CASCADE")
        cursor.execute("ANALYZE jobs_job")
    assert "Seq Scan on jobs_job" in _generic_plan(sql, ["none"])
    _grow(insert_jobs(pull_queue, 1)[0], 30_000)
    monkeypatch.setattr(postgres, "PLAN_MAX_AGE_S", 0.0)  # as if PLAN_MAX_AGE_S had passed
    plan = _generic_plan(sql, ["none"])
    assert "Seq Scan on jobs_job" not in plan and "Index" in plan, plan


@ON_POSTGRES
def test_the_claim_reaches_jobs_by_primary_key_in_a_large_table(workspace, pull_queue):
    """The claim's LIMIT is a subquery, so its generic plan guesses how many rows it leases (a tenth of the ready
    ones). Once the job table had grown, that guess made it hash-join them against a sequential scan of the whole
    table: EXPLAIN gave 30 ms for one job, and the pull bench's claim-1 row fell to 41 jobs/s."""
    _grow(insert_jobs(pull_queue, 1)[0], 30_000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
    assert len(job_claim(queue=pull_queue, limit=1, lease_ms=60_000)) == 1  # prepares it on this connection
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN EXECUTE spindle_claim_1(%s, 1, 60000, 1000, NULL, 'pull', 'exe_x', 'evt_x')",
            [pull_queue.id],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan on jobs_job" not in plan, plan


def _lookups(node: dict, index: str) -> int:
    """Rows an EXPLAIN ANALYZE plan (JSON) read through `index`, over every loop of every node that used it."""
    here = node.get("Actual Rows", 0) * node.get("Actual Loops", 0) if node.get("Index Name") == index else 0
    return here + sum(_lookups(child, index) for child in node.get("Plans", []))


def _index_conds(node: dict, index: str) -> list[str]:
    here = [node.get("Index Cond", "")] if node.get("Index Name") == index else []
    return here + [c for child in node.get("Plans", []) for c in _index_conds(child, index)]


@ON_POSTGRES
def test_the_claim_looks_each_leased_job_up_once(workspace, pull_queue):
    """Each leased job is read once by primary key. The ranked picks used to be joined to the table on
    `id = n.id AND id = ANY(every picked id)`; on the bench's database the generic plan took the second as its
    index condition and filtered on the first, reading every picked row once per picked row: 1,225 rows thrown
    away for a 50-job claim, two thirds of its 5 ms (auto_explain), in every batch of the push worker, of pull
    batches and of gRPC's ProcessJobs. Here the planner happens to pick a good plan for the old statement too, so
    the test also checks that no lookup's condition holds the list of picked ids (the old statement's did)."""
    pull_queue.concurrency = 1000
    pull_queue.save(update_fields=["concurrency"])
    # A history of finished jobs, analyzed, then the ready ones: as a running service has them (the planner
    # expects next to no ready rows, as in the bench).
    history = make_queue(workspace, "history")
    _grow(insert_jobs(history, 1, state="completed", finished_at=timezone.now())[0], 50_000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
    insert_jobs(pull_queue, 60)
    assert len(job_claim(queue=pull_queue, limit=1, lease_ms=60_000)) == 1  # prepares it on this connection
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) "
            "EXECUTE spindle_claim_1(%s, 50, 60000, 1000, NULL, 'pull', 'exe_x', 'evt_x')",
            [pull_queue.id],
        )
        plan = cursor.fetchone()[0][0]["Plan"]
    assert Job.objects.filter(queue=pull_queue, state="active").count() == 51  # 1 + the 50 EXPLAIN ran
    assert _lookups(plan, "jobs_job_pkey") == 50
    # Whatever the planner chooses: no primary-key lookup may depend on the whole list of picked ids, which a plan
    # can take as its only index condition and repeat once per picked row.
    assert not any("ANY" in cond for cond in _index_conds(plan, "jobs_job_pkey")), plan


def test_the_queue_read_with_the_key_is_the_keys_workspaces(warm_client, other_workspace_and_key, workspace):
    """The key lookup's queue is looked up in the key's workspace only: another workspace's queue of the same
    name is a 404 for the enqueue and the claim, and an unknown name too, however the lookup is shared."""
    other_workspace, _ = other_workspace_and_key
    make_queue(other_workspace, "theirs")
    make_queue(other_workspace, "work")  # the same name as this workspace's queue: this one's is used
    for path, body in (("jobs", {"payload": {}}), ("jobs/claim", {"limit": 1})):
        for name in ("theirs", "nope"):
            with counted() as trips:
                response = warm_client.post(f"/v1/queues/{name}/{path}", body, format="json")
            assert response.status_code == 404, response.content
            _within(trips, 1)  # the key's lookup found no such queue: no second look
    created = warm_client.post("/v1/queues/work/jobs", {"payload": {"mine": True}}, format="json")
    assert created.status_code == 201
    assert Job.objects.get(pk=created.json()["id"]).workspace_id == workspace.id
    [claimed] = warm_client.post("/v1/queues/work/jobs/claim", {"limit": 5}, format="json").json()["data"]
    assert claimed["id"] == created.json()["id"]
