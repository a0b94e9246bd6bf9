"""Schedule firing precision (PERF.md): with `size` active schedules (a tenth of them on one-second intervals),
two ticker processes run the schedules.tick task body once a second, like two `celery beat` + worker pairs.

Measured on the tick rows: lag from tick time to enqueue (p50, p99), ticks missed (a planned tick with no job)
and ticks doubled (jobs beyond one per tick). `run(size)` is called by bench/run.py; alone:
`python bench/schedules.py [--size 10000] [--seconds 30]` (DATABASE_URL as for `make bench`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

DEFAULT_SIZE = 10_000
DEFAULT_SECONDS = float(os.environ.get("BENCH_SCHEDULES_SECONDS", "30"))
WARMUP_S = 2.0  # time to insert the schedules before their first tick
GOAL_LAG_MS = 1000


def _setup() -> None:
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


def _db_url() -> str:
    from django.conf import settings

    db = settings.DATABASES["default"]
    auth = (db.get("USER") or "") + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def _ticker(seconds: float) -> None:
    """One ticker process: the task body once a second until `seconds` have passed."""
    _setup()
    from schedules.tasks import tick

    tick(window_ms=0)
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        tick(window_ms=900)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _result(name: str, value: float, unit: str, goal: str) -> dict:
    return {
        "name": name,
        "value": round(value, 2),
        "unit": unit,
        "baseline": None,
        "ratio": None,
        "goal": goal,
    }


def run(size: int = DEFAULT_SIZE, seconds: float = DEFAULT_SECONDS) -> list[dict]:
    """Create `size` schedules, tick them with two processes for `seconds`, return PERF.md result objects."""
    _setup()
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Plan
    from accounts.plans import seed_default_plans
    from accounts.services import workspace_create
    from jobs.models import Job
    from queues.services import queue_create
    from schedules.models import Schedule, ScheduleTick

    size = max(int(size), 100)
    seed_default_plans(Plan)
    workspace, _ = workspace_create(name=f"bench-schedules-{os.getpid()}", plan_code="enterprise")
    queue = queue_create(workspace=workspace, data={"name": "bench-schedules", "delivery": "pull"})[0]

    # Start both tickers first and wait until they have ticked once: start-up is not firing precision.
    env = {**os.environ, "DATABASE_URL": _db_url()}
    env.pop("TEST_DB_NAME", None)
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--ticker", str(seconds + 600)],
            env=env,
            cwd=str(ROOT),
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        p.stdout.readline()

    rng = random.Random(5)
    start = timezone.now() + timedelta(seconds=WARMUP_S)
    fast = size // 10
    rows = []
    for i in range(size):
        if i < fast:
            interval_ms = 1000
        else:
            interval_ms = rng.choice([60_000, 300_000, 3_600_000])
        # Random phases: real schedules are not all aligned on the same millisecond.
        first = start + timedelta(milliseconds=rng.randrange(interval_ms))
        rows.append(
            Schedule(
                workspace=workspace,
                queue=queue,
                name=f"s{i}",
                interval_ms=interval_ms,
                job={"name": "bench", "payload": {"i": i}},
                next_run_at=first,
            )
        )
    Schedule.objects.bulk_create(rows, batch_size=2000)
    anchors = {s.id: (s.next_run_at, s.interval_ms) for s in rows}
    connection.close()
    end = start + timedelta(seconds=seconds)
    time.sleep(max(0.0, (end - timezone.now()).total_seconds()))
    for p in procs:
        p.terminate()  # a transaction cut short rolls back; its ticks were not counted as fired
    for p in procs:
        p.wait(timeout=60)

    try:
        ids = list(anchors)
        ticks = list(
            ScheduleTick.objects.filter(schedule__workspace=workspace).values_list(
                "schedule_id", "tick_at", "created_at", "job_id"
            )
        )
        # Measure the ticks planned inside the window [start, end - 1 s] (the last second may still be due).
        window_end = end - timedelta(seconds=1)
        lags = [
            (created - tick_at).total_seconds() * 1000
            for _sid, tick_at, created, _j in ticks
            if start <= tick_at <= window_end
        ]
        if os.environ.get("BENCH_SCHEDULES_DEBUG"):
            worst = sorted(
                ((created - tick_at).total_seconds(), (tick_at - start).total_seconds())
                for _sid, tick_at, created, _j in ticks
                if start <= tick_at <= window_end
            )[-10:]
            print("worst (lag s, at s):", [(round(a, 3), round(b, 2)) for a, b in worst], file=sys.stderr)
        fired = {(sid, tick_at) for sid, tick_at, _c, job_id in ticks if job_id}
        missed = 0
        for sid, (anchor, interval_ms) in anchors.items():
            step = timedelta(milliseconds=interval_ms)
            at = anchor
            while at <= window_end:
                if (sid, at) not in fired:
                    missed += 1
                at += step
        jobs = Job.objects.filter(workspace=workspace, schedule_id__in=ids).count()
        doubled = jobs - len(fired)
        planned = len(lags)
    finally:
        Schedule.objects.filter(workspace=workspace).delete()
        Job.objects.filter(workspace=workspace).delete()
        try:
            workspace.delete()
        except Exception as exc:  # noqa: BLE001 - a bench leftover is not worth failing the run for
            print(f"schedules: could not delete the bench workspace {workspace.id}: {exc}", file=sys.stderr)

    print(
        f"schedules: {size} active ({fast} one-second), {seconds:.0f} s, {planned} ticks in window",
        file=sys.stderr,
    )
    return [
        _result("schedule_lag_p50_ms", _percentile(lags, 0.50), "ms", "informational"),
        _result("schedule_lag_p99_ms", _percentile(lags, 0.99), "ms", f"p99 <= {GOAL_LAG_MS} ms"),
        _result("schedule_ticks_missed", missed, "ticks", "0"),
        _result("schedule_ticks_doubled", doubled, "ticks", "0"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument("--ticker", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ticker is not None:
        _ticker(args.ticker)
        return
    _setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(json.dumps(run(args.size, args.seconds), indent=2))


if __name__ == "__main__":
    main()
