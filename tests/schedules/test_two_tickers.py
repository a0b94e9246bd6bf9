"""Issue 5: two ticker processes for about a minute on one-second schedules -> no duplicate, no gap."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest
from django.db.models import Count

from accounts.models import Plan
from accounts.services import workspace_create
from jobs.models import Job
from queues.services import queue_create
from schedules import services
from schedules.models import Schedule, ScheduleTick
from tests import processes

SOAK_S = float(os.environ.get("SPINDLE_SCHEDULE_SOAK_S", "60"))
LOOP = Path(__file__).with_name("ticker_loop.py")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_ticker_processes_no_duplicate_no_gap(plans):
    Plan.objects.filter(code="free").update(max_schedules=None, jobs_per_month=None)
    workspace, _ = workspace_create(name="acme", plan_code="free")
    queue_create(workspace=workspace, data={"name": "sync", "delivery": "pull"})
    schedules = [
        services.schedule_create(
            workspace=workspace, data={"name": f"every-second-{i}", "queue": "sync", "interval_ms": 1000}
        )
        for i in range(20)
    ]
    env = processes.process_env()
    with ExitStack() as stack:
        procs = [
            stack.enter_context(processes.running([sys.executable, str(LOOP), str(SOAK_S)], env=env))
            for _ in range(2)
        ]
        for p in procs:
            p.proc.wait(SOAK_S + 60)
        outputs = [p.output() for p in procs]
    assert [p.proc.returncode for p in procs] == [0, 0], outputs

    expected_min = int(SOAK_S) - 5  # process start-up eats a second or two
    for s in schedules:
        tick_times = list(
            ScheduleTick.objects.filter(schedule=s).order_by("tick_at").values_list("tick_at", flat=True)
        )
        assert len(tick_times) >= expected_min, (s.name, len(tick_times))
        gaps = [
            b - a for a, b in zip(tick_times, tick_times[1:], strict=False) if b - a != timedelta(seconds=1)
        ]
        assert not gaps, (s.name, gaps[:5])
        assert Job.objects.filter(schedule_id=s.id).count() == len(tick_times)
    # Every tick has exactly one job and no job belongs to two ticks.
    assert not ScheduleTick.objects.filter(job_id__isnull=True).exists()
    assert not ScheduleTick.objects.values("job_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert Schedule.objects.filter(last_job_id__isnull=True).count() == 0
