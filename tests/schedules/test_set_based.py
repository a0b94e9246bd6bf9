"""The set-based ticker (PostgreSQL) against the row path: the same jobs, events, rollup and refusals; every
planned tick fired once over a timeline of interval and cron schedules in several timezones, paused and deleted
ones included; a batch whose statement fails still fires through the row path; a quota race re-plans."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from accounts.models import Plan
from billing.models import UsageCounter
from billing.services.usage import current_period
from jobs.models import Execution, Job
from queues.models import DEFAULT_RETRY_POLICY, Event, QueueMinuteStat
from schedules import services, timing
from schedules.models import Schedule, ScheduleTick
from schedules.services import fire_sql, ticker
from tests.factories import make_queue

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TEMPLATE = {
    "name": "nightly",
    "payload": {"n": 1, "nested": {"a": [1, 2]}},
    "tags": ["a", "b"],
    "priority": 7,
    "timeout_ms": 1500,
    "retry_policy": {"max_attempts": 9, "initial_delay_ms": 2000},
}
JOB_FIELDS = (
    "name", "payload", "tags", "state", "priority", "attempts", "max_attempts", "deferrals", "retry_policy",
    "timeout_ms", "http", "idempotency_key", "group", "parent_id", "wait_for_children", "ignore_child_failures",
    "cancel_requested", "replay_of", "started_at", "finished_at",
)  # fmt: skip


def _unlimited(workspace):
    Plan.objects.filter(code=workspace.plan_id).update(
        max_schedules=None, jobs_per_month=None, max_attempts=None
    )
    workspace.plan.refresh_from_db()


def _fire_one_of_each(workspace, queue, monkeypatch, *, set_based: bool) -> dict:
    """Create one schedule per template kind, fire them once, and return what the firing wrote."""
    names = []
    for kind, template in {"full": TEMPLATE, "bare": {}, "nulls": {"name": None, "payload": None}}.items():
        name = f"{kind}-{set_based}"
        services.schedule_create(
            workspace=workspace,
            now=T0,
            data={"name": name, "queue": queue.name, "interval_ms": 1000, "job": template},
        )
        names.append(name)
    monkeypatch.setattr(ticker, "_set_based", lambda: set_based)
    assert services.schedules_fire_due(now=T0 + timedelta(seconds=1)) == 3
    out = {}
    for name in names:
        s = Schedule.objects.get(workspace=workspace, name=name)
        job = Job.objects.get(schedule_id=s.id)
        tick = ScheduleTick.objects.get(schedule=s)
        assert (
            tick.job_id == job.id and s.last_job_id == job.id and s.last_run_at == T0 + timedelta(seconds=1)
        )
        assert s.next_run_at == T0 + timedelta(seconds=2)
        events = {e.type: e.data for e in Event.objects.filter(job_id=job.id)}
        assert set(events) == {"job:waiting", "schedule:fired"}
        assert events["schedule:fired"]["schedule"] == name
        events["schedule:fired"]["schedule"] = name.split("-")[0]
        kind = name.split("-")[0]
        out[kind] = ({f: getattr(job, f) for f in JOB_FIELDS}, events, len(job.id), job.id[:4])
    return out


@pytest.mark.django_db
def test_set_based_writes_what_the_row_path_writes(workspace, plans, monkeypatch):
    _unlimited(workspace)
    queue = make_queue(
        workspace, "sync", retry_policy={**DEFAULT_RETRY_POLICY, "max_attempts": 5, "backoff": "fixed"}
    )
    rows = _fire_one_of_each(workspace, queue, monkeypatch, set_based=False)
    sql = _fire_one_of_each(workspace, queue, monkeypatch, set_based=True)
    assert sql == rows
    full = sql["full"][0]
    assert full["retry_policy"] == {
        **DEFAULT_RETRY_POLICY,
        "max_attempts": 9,
        "backoff": "fixed",
        "initial_delay_ms": 2000,
    }
    assert full["max_attempts"] == 9 and full["tags"] == ["a", "b"] and full["priority"] == 7
    assert sql["bare"][0]["max_attempts"] == 5 and sql["bare"][0]["retry_policy"] is None
    assert sql["full"][1]["schedule:fired"] == {
        "schedule": "full",
        "tick_at": "2026-06-01T12:00:01.000Z",
        "manual": False,
    }
    # Both paths count their jobs in the rollup and the quota.
    assert sum(QueueMinuteStat.objects.filter(queue=queue).values_list("enqueued", flat=True)) == 6
    assert UsageCounter.objects.get(workspace=workspace, period=current_period()).jobs_enqueued == 6


def _expected(schedule_spec: dict, start: datetime, end: datetime) -> list[datetime]:
    times, at = [], start
    while True:
        at = timing.next_fire(
            cron=schedule_spec.get("cron"),
            interval_ms=schedule_spec.get("interval_ms"),
            tz_name=schedule_spec.get("timezone"),
            after=at,
            anchor=at,
        )
        if at > end:
            return times
        times.append(at)


KINDS = [
    {"interval_ms": 1000},
    {"interval_ms": 7000},
    {"cron": "* * * * *"},
    {"cron": "*/2 * * * *", "timezone": "Europe/Berlin"},
    {"cron": "30 * * * *", "timezone": "Asia/Kolkata"},  # a half-hour offset: fires at hh:00 UTC
    {"cron": "@hourly", "timezone": "America/New_York"},
]


@pytest.mark.django_db
def test_every_tick_fires_once_over_a_timeline(workspace, other_workspace_and_key, plans, monkeypatch):
    monkeypatch.setattr(ticker, "fire_batch_rows", lambda **kw: pytest.fail("fell back to the row path"))
    other = other_workspace_and_key[0]
    start, specs = T0 - timedelta(seconds=90), {}
    for ws in (workspace, other):
        _unlimited(ws)
        for qname in ("a", "b"):
            make_queue(ws, qname)
        for i in range(24):
            body = {"name": f"s{i}", "queue": "ab"[i % 2], **KINDS[i % len(KINDS)]}
            specs[services.schedule_create(workspace=ws, data=body, now=start).id] = body
    paused = Schedule.objects.get(workspace=other, name="s0")
    gone = Schedule.objects.get(workspace=other, name="s1")
    clock, stop_at = start, None
    while clock < T0 + timedelta(seconds=130):
        clock += timedelta(milliseconds=700)  # a ticker slightly off the one-second grid
        if stop_at is None and clock >= start + timedelta(seconds=60):
            stop_at = clock - timedelta(milliseconds=700)  # the last firing before the pause and the delete
            services.schedule_pause(workspace=other, schedule=paused)
            services.schedule_delete(workspace=other, schedule=gone)
        services.schedules_fire_due(now=clock, batch_size=17)
    fired: dict[str, list[datetime]] = {}
    for sid, tick_at, job_id in ScheduleTick.objects.values_list("schedule_id", "tick_at", "job_id"):
        assert job_id is not None
        fired.setdefault(sid, []).append(tick_at)
    gone_jobs = Job.objects.filter(schedule_id=gone.id).count()
    assert gone_jobs == len(_expected(specs[gone.id], start, stop_at))  # its tick rows went with it
    # One job per tick row and no more: nothing doubled.
    assert Job.objects.count() - gone_jobs == sum(len(v) for v in fired.values())
    for sid, body in specs.items():
        if sid == gone.id:
            continue
        until = stop_at if sid == paused.id else clock
        assert sorted(fired.get(sid, [])) == _expected(body, start, until), body


@pytest.mark.django_db
def test_downtime_backlog_fires_once_set_based(workspace, pull_queue, monkeypatch):
    monkeypatch.setattr(ticker, "fire_batch_rows", lambda **kw: pytest.fail("fell back to the row path"))
    interval = services.schedule_create(
        workspace=workspace, now=T0, data={"name": "i", "queue": "sync", "interval_ms": 1000}
    )
    # Late by under the grace: each tick fires on its own; by more: one firing for the whole backlog.
    assert services.schedules_fire_due(now=T0 + timedelta(seconds=4, milliseconds=100)) == 4
    assert services.schedules_fire_due(now=T0 + timedelta(hours=3, milliseconds=300)) == 1
    interval.refresh_from_db()
    assert interval.next_run_at == T0 + timedelta(hours=3, seconds=1)
    assert list(ScheduleTick.objects.order_by("tick_at").values_list("tick_at", flat=True))[
        -1
    ] == T0 + timedelta(seconds=5)


@pytest.mark.django_db
def test_a_failing_batch_statement_falls_back_to_the_row_path(
    workspace, other_workspace_and_key, plans, caplog
):
    other = other_workspace_and_key[0]
    for ws in (workspace, other):
        make_queue(ws, "sync")
        services.schedule_create(
            workspace=ws, now=T0, data={"name": "s", "queue": "sync", "interval_ms": 1000}
        )
    # A template no validation would let through (written behind the API's back): its cast fails in SQL.
    with connection.cursor() as cursor:
        cursor.execute(
            'UPDATE schedules_schedule SET job = \'{"priority": "high"}\' WHERE workspace_id = %s',
            [workspace.id],
        )
    with caplog.at_level(logging.WARNING, logger="schedules.services.ticker"):
        assert services.schedules_fire_due(now=T0 + timedelta(seconds=1)) == 1
    assert "firing this batch row by row" in caplog.text
    assert list(Job.objects.values_list("workspace_id", flat=True)) == [other.id]
    # Both schedules advanced: the broken one does not stall the ticker.
    assert set(Schedule.objects.values_list("next_run_at", flat=True)) == {T0 + timedelta(seconds=2)}


@pytest.mark.django_db
def test_a_quota_race_replans_the_workspace_as_refused(workspace, pull_queue, plans, monkeypatch):
    monkeypatch.setattr(ticker, "fire_batch_rows", lambda **kw: pytest.fail("fell back to the row path"))
    Plan.objects.filter(code=workspace.plan_id).update(jobs_per_month=10)
    services.schedule_create(
        workspace=workspace, now=T0, data={"name": "s", "queue": "sync", "interval_ms": 1000}
    )
    run = fire_sql._run
    calls = []

    def racing_run(params):
        result = run(params)
        if not calls:  # an API enqueue takes the rest of the quota between the read and the upsert
            UsageCounter.objects.update_or_create(
                workspace=workspace, period=current_period(), defaults={"jobs_enqueued": 10}
            )
        calls.append(params["refused"])
        return result

    monkeypatch.setattr(fire_sql, "_run", racing_run)
    assert services.schedules_fire_due(now=T0 + timedelta(seconds=1)) == 0
    assert calls == [[], [workspace.id]]
    assert not Job.objects.exists()
    tick = ScheduleTick.objects.get()
    assert tick.job_id is None
    [execution] = Execution.objects.filter(status="quota_exceeded")
    error = execution.error
    assert error["type"] == "quota_exceeded" and error["tick_at"] == "2026-06-01T12:00:01.000Z"
    assert error["limit"] == 10 and error["plan"] == workspace.plan_id
    # The race's own write was rolled back with the first plan here; the refused plan counts nothing.
    assert not UsageCounter.objects.filter(workspace=workspace, jobs_enqueued__gt=0).exists()
