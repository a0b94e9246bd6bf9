"""The set-based ticker: exactly one job per tick, downtime fires once, DST with a controllable clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from accounts.models import Plan
from accounts.services import workspace_create
from jobs.models import Job
from queues.models import Event
from queues.services import queue_create
from schedules import services
from schedules.models import Schedule, ScheduleTick
from schedules.tasks import tick
from tests.threads import run_in_threads

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
# Every test here runs through both firing paths (tests/schedules/conftest.py).
pytestmark = pytest.mark.usefixtures("firing")


def make(workspace, *, now=T0, **data):
    body = {"name": "s", "queue": "sync", "job": {"name": "tick", "payload": {"n": 1}}, **data}
    return services.schedule_create(workspace=workspace, data=body, now=now)


def ticks(schedule):
    return list(
        ScheduleTick.objects.filter(schedule=schedule).order_by("tick_at").values_list("tick_at", flat=True)
    )


@pytest.mark.django_db
def test_due_schedule_fires_once_and_advances(workspace, pull_queue):
    s = make(workspace, interval_ms=60_000)
    assert s.next_run_at == T0 + timedelta(minutes=1)
    assert services.schedules_fire_due(now=T0 + timedelta(seconds=59)) == 0
    assert services.schedules_fire_due(now=T0 + timedelta(minutes=1)) == 1
    assert services.schedules_fire_due(now=T0 + timedelta(minutes=1, seconds=30)) == 0
    s.refresh_from_db()
    job = Job.objects.get()
    assert job.schedule_id == s.id and job.queue_id == pull_queue.id and job.payload == {"n": 1}
    assert job.name == "tick" and job.state == "waiting"
    assert s.next_run_at == T0 + timedelta(minutes=2)
    assert s.last_job_id == job.id and s.last_run_at == T0 + timedelta(minutes=1)
    assert ticks(s) == [T0 + timedelta(minutes=1)]
    assert ScheduleTick.objects.get().job_id == job.id
    event = Event.objects.get(type="schedule:fired")
    assert event.job_id == job.id and event.queue_name == "sync" and event.data["schedule"] == "s"


@pytest.mark.django_db
def test_downtime_fires_once_for_all_missed_ticks(workspace, pull_queue):
    s = make(workspace, interval_ms=1000)
    later = T0 + timedelta(hours=1, milliseconds=500)
    assert services.schedules_fire_due(now=later) == 1
    s.refresh_from_db()
    assert Job.objects.count() == 1
    # Back on the grid, strictly after now.
    assert s.next_run_at == T0 + timedelta(hours=1, seconds=1)
    cron = make(workspace, name="c", cron="*/5 * * * *")
    assert services.schedules_fire_due(now=T0 + timedelta(days=2, minutes=2)) == 2  # both, once each
    cron.refresh_from_db()
    assert cron.next_run_at == T0 + timedelta(days=2, minutes=5)
    assert Job.objects.filter(schedule_id=cron.id).count() == 1


@pytest.mark.django_db
def test_slightly_late_ticker_still_fires_each_tick(workspace, pull_queue):
    # A beat that runs 1.5 s late must not leave a gap in a one-second schedule.
    s = make(workspace, interval_ms=1000)
    assert services.schedules_fire_due(now=T0 + timedelta(seconds=2, milliseconds=500)) == 2
    assert ticks(s) == [T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]
    s.refresh_from_db()
    assert s.next_run_at == T0 + timedelta(seconds=3)


@pytest.mark.django_db
def test_paused_schedule_does_not_fire_and_resume_skips_backlog(workspace, pull_queue):
    s = make(workspace, interval_ms=1000)
    services.schedule_pause(workspace=workspace, schedule=s)
    assert services.schedules_fire_due(now=T0 + timedelta(minutes=5)) == 0
    s = services.schedule_resume(
        workspace=workspace, schedule=s, now=T0 + timedelta(minutes=5, milliseconds=200)
    )
    assert s.next_run_at == T0 + timedelta(minutes=5, seconds=1)
    assert services.schedules_fire_due(now=T0 + timedelta(minutes=5, seconds=1)) == 1


@pytest.mark.django_db
def test_a_retried_ticker_with_stale_state_enqueues_nothing(workspace, pull_queue):
    s = make(workspace, interval_ms=1000)
    assert services.schedules_fire_due(now=T0 + timedelta(seconds=1)) == 1
    # A second ticker that read next_run_at before the first one committed: the tick row refuses it.
    Schedule.objects.filter(pk=s.pk).update(next_run_at=T0 + timedelta(seconds=1))
    assert services.schedules_fire_due(now=T0 + timedelta(seconds=1)) == 0
    assert Job.objects.count() == 1
    s.refresh_from_db()
    assert s.next_run_at == T0 + timedelta(seconds=2)


@pytest.mark.django_db
def test_overlap_skip_waits_for_terminal_previous_job(workspace, pull_queue):
    s = make(workspace, interval_ms=1000, overlap="skip")
    assert services.schedules_fire_due(now=T0 + timedelta(seconds=1)) == 1
    assert services.schedules_fire_due(now=T0 + timedelta(seconds=2)) == 0  # previous still waiting
    s.refresh_from_db()
    assert s.next_run_at == T0 + timedelta(seconds=3)
    Job.objects.update(state="completed", finished_at=timezone.now())
    assert services.schedules_fire_due(now=T0 + timedelta(seconds=3)) == 1
    assert Job.objects.count() == 2


@pytest.mark.django_db
def test_overlap_allow_fires_while_previous_runs(workspace, pull_queue):
    make(workspace, interval_ms=1000)
    for i in range(1, 4):
        assert services.schedules_fire_due(now=T0 + timedelta(seconds=i)) == 1
    assert Job.objects.count() == 3


@pytest.mark.django_db
def test_quota_exceeded_workspace_does_not_block_others(workspace, pull_queue, plans):
    rich, _ = workspace_create(name="rich", plan_code="pro")
    queue_create(workspace=rich, data={"name": "sync", "delivery": "pull"})
    poor_s = make(workspace, interval_ms=1000)
    rich_s = make(rich, interval_ms=1000)
    Plan.objects.filter(code="free").update(jobs_per_month=0)
    assert services.schedules_fire_due(now=T0 + timedelta(seconds=1)) == 1
    assert list(Job.objects.values_list("schedule_id", flat=True)) == [rich_s.id]
    poor_s.refresh_from_db()
    rich_s.refresh_from_db()
    # Both advance; the refused tick is recorded without a job and emits nothing.
    assert poor_s.next_run_at == rich_s.next_run_at == T0 + timedelta(seconds=2)
    assert poor_s.last_job_id is None
    assert ScheduleTick.objects.get(schedule=poor_s).job_id is None
    assert not Event.objects.filter(type="schedule:fired", workspace=workspace).exists()


@pytest.mark.django_db
def test_batches_cover_every_due_schedule(workspace, pull_queue, plans):
    Plan.objects.filter(code="free").update(max_schedules=None)
    workspace.plan.refresh_from_db()
    for i in range(23):
        make(workspace, name=f"s{i}", interval_ms=1000)
    assert services.schedules_fire_due(now=T0 + timedelta(seconds=1), batch_size=5) == 23
    assert Job.objects.count() == 23
    assert not Schedule.objects.filter(next_run_at__lte=T0 + timedelta(seconds=1)).exists()


@pytest.mark.django_db
def test_http_template_fires_into_default_queue(workspace, settings):
    settings.SPINDLE_ALLOW_PRIVATE_TARGETS = True
    s = services.schedule_create(
        workspace=workspace,
        now=T0,
        data={
            "name": "hook",
            "interval_ms": 1000,
            "job": {"http": {"url": "http://127.0.0.1:9/x", "body": "{}"}},
        },
    )
    assert services.schedules_fire_due(now=T0 + timedelta(seconds=1)) == 1
    job = Job.objects.get()
    assert (
        job.queue.name == "default" and job.http["url"] == "http://127.0.0.1:9/x" and job.schedule_id == s.id
    )


@pytest.mark.django_db
def test_prune_old_ticks(workspace, pull_queue):
    s = make(workspace, interval_ms=1000)
    services.schedules_fire_due(now=T0 + timedelta(seconds=1))
    assert services.schedule_ticks_prune(now=T0 + timedelta(minutes=30)) == 0
    assert services.schedule_ticks_prune(now=T0 + timedelta(hours=2)) == 1
    assert not ScheduleTick.objects.filter(schedule=s).exists()


@pytest.mark.django_db
def test_tick_task_fires_due_schedules(workspace, pull_queue):
    s = make(workspace, now=timezone.now() - timedelta(seconds=1, milliseconds=500), interval_ms=1000)
    assert tick.apply(kwargs={"window_ms": 0}).get() == 1
    s.refresh_from_db()
    assert s.next_run_at > timezone.now() - timedelta(seconds=1)
    assert Job.objects.filter(schedule_id=s.id).count() == 1


# -- daylight saving with a controllable clock -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("tz", "start", "days", "expected"),
    [
        ("Europe/Berlin", (2026, 3, 27), 4, ["03-27 02:30", "03-28 02:30", "03-29 03:00", "03-30 02:30"]),
        ("Europe/Berlin", (2026, 10, 23), 4, ["10-23 02:30", "10-24 02:30", "10-25 02:30", "10-26 02:30"]),
        ("America/New_York", (2026, 3, 6), 4, ["03-06 02:30", "03-07 02:30", "03-08 03:00", "03-09 02:30"]),
        ("America/New_York", (2026, 10, 30), 4, ["10-30 02:30", "10-31 02:30", "11-01 02:30", "11-02 02:30"]),
    ],
)
def test_daily_firing_across_dst(workspace, pull_queue, tz, start, days, expected):
    zone = ZoneInfo(tz)
    begin = datetime(*start, tzinfo=zone).astimezone(UTC)
    s = make(workspace, now=begin, cron="30 2 * * *", timezone=tz)
    # Tick every 15 minutes of (real UTC) time across the whole window.
    clock = begin
    while clock < begin + timedelta(days=days):
        clock += timedelta(minutes=15)
        services.schedules_fire_due(now=clock)
    fired = ticks(s)
    assert [t.astimezone(zone).strftime("%m-%d %H:%M") for t in fired] == expected
    assert Job.objects.filter(schedule_id=s.id).count() == days


# -- exactly once under concurrency ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_tickers_enqueue_one_job_per_tick(plans):
    Plan.objects.filter(code="free").update(max_schedules=None, jobs_per_month=None)
    workspace, _ = workspace_create(name="acme", plan_code="free")
    queue_create(workspace=workspace, data={"name": "sync", "delivery": "pull"})
    schedules = [make(workspace, name=f"s{i}", interval_ms=1000) for i in range(40)]
    rounds = 25
    barrier = threading.Barrier(2)

    def run() -> None:
        for i in range(1, rounds + 1):
            barrier.wait()
            services.schedules_fire_due(now=T0 + timedelta(seconds=i), batch_size=7)

    errors = run_in_threads(run, 2, timeout_s=120)
    assert not errors, errors
    assert Job.objects.count() == len(schedules) * rounds
    assert ScheduleTick.objects.count() == len(schedules) * rounds
    assert ScheduleTick.objects.filter(job_id__isnull=True).count() == 0
    for s in schedules:
        assert ticks(s) == [T0 + timedelta(seconds=i) for i in range(1, rounds + 1)]
    assert (
        Job.objects.values("id").distinct().count()
        == ScheduleTick.objects.values("job_id").distinct().count()
    )
