"""Schedule firing precision (PERF.md): with `size` active schedules (5% of them on one-second intervals: 5,000
of 100,000), two ticker processes run the schedules.tick task body once a second, like two `celery beat` +
worker pairs.

Measured on the tick rows: lag from tick time to enqueue (p50, p99), ticks missed (a planned tick with no job),
ticks doubled (jobs beyond one per tick) and firings per second over the window. `run(size)` is called by
bench/run.py; alone: `python bench/schedules.py [--size 100000] [--seconds 30]` (DATABASE_URL as for `make bench`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

DEFAULT_SIZE = 100_000
FAST_SHARE = 20  # one schedule in 20 fires every second
DEFAULT_SECONDS = float(os.environ.get("BENCH_SCHEDULES_SECONDS", "30"))
# First ticks start this long after the insert begins: 3 s plus ~0.3 ms per schedule to insert them all (a loaded
# machine may take longer; the measured window opens only once every chunk is in).
WARMUP_S = 3.0
WARMUP_PER_SCHEDULE_S = 0.0003
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


def _start_tickers(seconds: float) -> list[subprocess.Popen]:
    """Both ticker processes, started and ticked once: start-up is not firing precision."""
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
    return procs


CHUNK = 10_000  # schedules per INSERT


def _create(workspace, queue, size: int, warmup_s: float) -> tuple:
    """`size` schedules, one in FAST_SHARE on one second, inserted server-side in chunks; first ticks start
    `warmup_s` after the first INSERT. Returns (first tick time, last commit time, {id: (first, interval_ms)}).

    generate_series and random phases in SQL: building 100,000 model instances took a minute on a loaded
    machine, and one INSERT of them ~15 s (index and foreign-key work). A chunk's rows become due only at its
    commit; the measured window opens once every chunk is in.
    """
    from django.db import connection, transaction
    from django.utils import timezone

    from config.ids import new_ids

    anchors: dict = {}
    start = timezone.now() + timedelta(seconds=warmup_s)
    for first_index in range(0, size, CHUNK):
        count = min(CHUNK, size - first_index)
        with transaction.atomic(), connection.cursor() as cursor:
            # Random phases: real schedules are not all aligned on the same millisecond.
            cursor.execute(
                "INSERT INTO schedules_schedule (id, workspace_id, queue_id, name, description, interval_ms, job,"
                " overlap, paused, next_run_at, created_at, updated_at)"
                " SELECT v.id, %(ws)s, %(q)s, 's' || (v.i + %(offset)s), '', v.step,"
                " jsonb_build_object('name', 'bench', 'payload', jsonb_build_object('i', v.i)), 'allow', false,"
                " %(start)s + make_interval(secs => floor(random() * v.step) / 1000), now(), now()"
                " FROM (SELECT u.id, u.i, CASE WHEN u.i %% %(share)s = 0 THEN 1000"
                " ELSE (ARRAY[60000, 300000, 3600000])[1 + floor(random() * 3)::int] END AS step"
                " FROM unnest(%(ids)s::text[]) WITH ORDINALITY AS u(id, i)) AS v"
                " RETURNING id, next_run_at, interval_ms",
                {
                    "ws": workspace.id,
                    "q": queue.id,
                    "start": start,
                    "share": FAST_SHARE,
                    "offset": first_index,
                    "ids": new_ids("sch", count),
                },
            )
            anchors.update((sid, (first, interval_ms)) for sid, first, interval_ms in cursor.fetchall())
    return start, timezone.now(), anchors


def _read_snapshot(workspace) -> tuple[list, int]:
    """The tick rows and the count of scheduled jobs, from one snapshot: a killed ticker's COMMIT can still land
    after the tickers exit (deferred foreign-key checks take a while), and two separate reads would then count
    its jobs without their tick rows as doubled."""
    from django.db import connection, transaction

    from jobs.models import Job
    from schedules.models import ScheduleTick

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        ticks = list(
            ScheduleTick.objects.filter(schedule__workspace=workspace).values_list(
                "schedule_id", "tick_at", "created_at", "job_id"
            )
        )
        jobs = Job.objects.filter(workspace=workspace, schedule_id__isnull=False).count()
    return ticks, jobs


def _measure(workspace, anchors: dict, window: tuple) -> dict:
    """Lags, missed, doubled and firings/s of the ticks planned inside `window` (start, end)."""
    begin, window_end = window
    ticks, jobs = _read_snapshot(workspace)
    inside = [(sid, t, c, j) for sid, t, c, j in ticks if begin <= t <= window_end]
    lags = [(created - tick_at).total_seconds() * 1000 for _sid, tick_at, created, _j in inside]
    if os.environ.get("BENCH_SCHEDULES_DEBUG"):
        worst = sorted(((c - t).total_seconds(), (t - begin).total_seconds()) for _s, t, c, _j in inside)[
            -10:
        ]
        print("worst (lag s, at s):", [(round(a, 3), round(b, 2)) for a, b in worst], file=sys.stderr)
    fired = {(sid, tick_at) for sid, tick_at, _c, job_id in ticks if job_id}
    missed = planned = 0
    for sid, (first, interval_ms) in anchors.items():
        step = timedelta(milliseconds=interval_ms)
        at = first
        if at < begin:
            at += step * ((begin - at) // step + (1 if (begin - at) % step else 0))
        while at <= window_end:
            planned += 1
            if (sid, at) not in fired:
                missed += 1
            at += step
    span = max((window_end - begin).total_seconds(), 1e-3)
    return {
        "lags": lags,
        "missed": missed,
        "doubled": jobs - len(fired),
        # Throughput, whatever the lag: tick rows with a job written inside the window.
        "firings_per_s": sum(1 for _s, _t, c, job_id in ticks if job_id and begin <= c <= window_end) / span,
        "planned_per_s": planned / span,
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
    from schedules.models import Schedule

    size = max(int(size), 100)
    fast = size // FAST_SHARE
    seed_default_plans(Plan)
    workspace, _ = workspace_create(name=f"bench-schedules-{os.getpid()}", plan_code="enterprise")
    queue = queue_create(workspace=workspace, data={"name": "bench-schedules", "delivery": "pull"})[0]
    procs = _start_tickers(seconds)
    try:
        start, committed, anchors = _create(workspace, queue, size, WARMUP_S + size * WARMUP_PER_SCHEDULE_S)
        begin = max(start, committed)
        connection.close()
        end = begin + timedelta(seconds=seconds)
        time.sleep(max(0.0, (end - timezone.now()).total_seconds()))
    finally:
        for p in procs:
            p.terminate()  # a transaction cut short rolls back; its ticks were not counted as fired
        for p in procs:
            p.wait(timeout=60)
    # The window opens when every schedule is in; its last second may still be due.
    window = (begin, end - timedelta(seconds=1))
    try:
        measured = _measure(workspace, anchors, window)
    finally:
        Schedule.objects.filter(workspace=workspace).delete()
        Job.objects.filter(workspace=workspace).delete()
        try:
            workspace.delete()
        except Exception as exc:  # noqa: BLE001 - a bench leftover is not worth failing the run for
            print(f"schedules: could not delete the bench workspace {workspace.id}: {exc}", file=sys.stderr)

    lags = measured["lags"]
    print(
        f"schedules: {size} active ({fast} one-second), {seconds:.0f} s, {len(lags)} ticks in window",
        file=sys.stderr,
    )
    return [
        _result("schedule_lag_p50_ms", _percentile(lags, 0.50), "ms", "informational"),
        _result("schedule_lag_p99_ms", _percentile(lags, 0.99), "ms", f"p99 <= {GOAL_LAG_MS} ms"),
        _result("schedule_ticks_missed", measured["missed"], "ticks", "0"),
        _result("schedule_ticks_doubled", measured["doubled"], "ticks", "0"),
        _result(
            "schedule_firings_per_s",
            measured["firings_per_s"],
            "firings/s",
            f">= {measured['planned_per_s']:.0f}/s: every planned tick ({fast} schedules every second)",
        ),
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
