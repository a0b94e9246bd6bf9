"""Pull-worker throughput (PERF.md): REST claim + ack through the one port of `make run` and through gunicorn
reached directly (bench/servers.py), beside a raw SQL claim+complete loop.

- `pull_batch_jobs_per_s` (`pull_batch_direct_jobs_per_s`): 4 worker processes, each claiming 100 jobs per request
  and acknowledging them with one `POST …/jobs/ack`; baseline: the raw SQL loop (SKIP LOCKED claim of 100 + one
  completing UPDATE, 4 connections) on the same database in the same run, the faster of two runs. Goal: >= 0.3x
  the baseline.
- `pull_single_jobs_per_s` (`pull_single_direct_jobs_per_s`): 4 worker processes, each one job at a time (claim 1,
  complete 1), for at most BENCH_PULL_SINGLE_S seconds (default 20). Goal: >= 600 jobs/s.

Everything runs in a throw-away database (`spindle_bench_pull`, created and migrated here, dropped at the end)
on the server of DATABASE_URL, which starts with bench/run.py's history of 50,000 finished jobs and their
executions (vacuumed and analyzed), as every other group does. `run(size)` is called by bench/run.py; alone: `python bench/pull.py --size N`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = os.environ.get("SPINDLE_BENCH_PULL_DB", "spindle_bench_pull")
DEFAULT_SIZE = 20_000
WORKERS = 4
BATCH = 100
# Batch and single queues per server (bench/servers.py: the one port, then gunicorn direct), and the raw one.
QUEUES = ("bench-batch", "bench-single", "bench-raw", "bench-batch-direct", "bench-single-direct")
# The one-at-a-time run stops after this long (or when its jobs run out), so a slow server cannot stall `make bench`.
SINGLE_SECONDS = float(os.environ.get("BENCH_PULL_SINGLE_S", "20"))


# --- database ---------------------------------------------------------------------------------------


def _base_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("bench/pull.py needs DATABASE_URL pointing at PostgreSQL (as `make bench` sets it)")
    return url


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _recreate_db(url: str) -> None:
    import psycopg

    with psycopg.connect(_with_db(url, "postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")


def _drop_db(url: str) -> None:
    import psycopg

    with psycopg.connect(_with_db(url, "postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def _env(bench_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": bench_url,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only",
    }
    env.pop("TEST_DB_NAME", None)
    env.setdefault("CACHE_URL", "redis://127.0.0.1:6379/12")
    env.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/13")
    return env


def _setup(jobs_batch: int, jobs_single: int, jobs_raw: int) -> None:
    """(Subprocess, bench database) an enterprise workspace, three pull queues and their jobs; prints the key."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.utils import timezone

    from accounts.models import Plan
    from accounts.plans import seed_default_plans
    from accounts.services import workspace_create
    from bench.common import seed_history, vacuum_jobs_tables
    from config.ids import new_ids
    from jobs.models import Job
    from queues.models import Queue

    seed_default_plans(Plan)
    # A running service's history, as every bench/run.py group starts with: on empty tables, the engine's
    # statements were planned for tables that then grew during the run (bench/PROFILES.md, "Batched claims").
    seed_history()
    workspace, key = workspace_create(name="bench-pull", plan_code="enterprise")
    now = timezone.now()
    counts = (jobs_batch, jobs_single, jobs_raw, jobs_batch, jobs_single)
    for name, count in zip(QUEUES, counts, strict=True):
        queue = Queue.objects.create(
            workspace=workspace,
            name=name,
            delivery="pull",
            concurrency=1_000_000,
            signing_secret="whsec_bench",
        )
        for start in range(0, count, 5000):
            n = min(5000, count - start)
            Job.objects.bulk_create(
                [
                    Job(
                        id=job_id,
                        workspace=workspace,
                        queue=queue,
                        payload={"i": start + i},
                        run_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                    for i, job_id in enumerate(new_ids("job", n))
                ],
                batch_size=5000,
            )
    vacuum_jobs_tables()
    print(
        json.dumps({"key": key.raw, "raw_queue": Queue.objects.get(workspace=workspace, name="bench-raw").id})
    )


# --- the REST workers -------------------------------------------------------------------------------


def _worker(port: int, key: str, queue: str, batch: int, seconds: float) -> None:
    """(Subprocess) claim `batch` jobs per request until none is left or `seconds` have passed; ack them.
    Prints counts and times."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def post(path: str, body: dict) -> dict:
        conn.request("POST", path, body=json.dumps(body), headers=headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {data[:300]!r}")
        return json.loads(data)

    done = lost = 0
    started = time.time()
    while time.time() - started < seconds:
        claimed = post(f"/v1/queues/{queue}/jobs/claim", {"limit": batch})["data"]
        if not claimed:
            break
        if batch == 1:
            job = claimed[0]
            post(f"/v1/queues/{queue}/jobs/{job['id']}/complete", {"lease_token": job["lease_token"]})
            done += 1
        else:
            acked = post(
                f"/v1/queues/{queue}/jobs/ack",
                {"completed": [{"id": j["id"], "lease_token": j["lease_token"]} for j in claimed]},
            )
            done += acked["acked"]
            lost += len(acked["lease_lost"])
    print(json.dumps({"done": done, "lost": lost, "start": started, "end": time.time()}))


def worker_processes(argv: list[str], env: dict[str, str], timeout_s: float) -> tuple[int, float]:
    """Run WORKERS copies of `python argv` (each prints a JSON report {done, start, end} last); (jobs done, seconds
    from the first start to the last end). The pull and gRPC groups share it."""
    procs = [
        subprocess.Popen([sys.executable, *argv], env=env, cwd=str(ROOT), stdout=subprocess.PIPE, text=True)
        for _ in range(WORKERS)
    ]
    reports = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout_s)
        if p.returncode != 0:
            raise RuntimeError(f"bench worker {argv[:2]} failed ({p.returncode})")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    done = sum(r["done"] for r in reports)
    elapsed = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    return done, elapsed


def _run_workers(
    port: int, key: str, queue: str, batch: int, env: dict[str, str], seconds: float = 1500
) -> tuple[int, float]:
    argv = [__file__, "--worker", str(port), key, queue, str(batch), str(seconds)]
    return worker_processes(argv, env, timeout_s=1800)


def _vacuum(bench_url: str) -> None:
    import psycopg

    with psycopg.connect(bench_url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) jobs_job, jobs_execution, jobs_event, jobs_queueminutestat")


def _warm(port: int, key: str, queue: str, connections: int = 8) -> None:
    """Measure a warm server, as the raw loop's connections are: its application imported, and a database
    connection open on each of its threads (a queue read on `connections` parallel keep-alive connections)."""

    def read() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(3):
            conn.request("GET", f"/v1/queues/{queue}", headers={"Authorization": f"Bearer {key}"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"warm-up: {response.status}")
        conn.close()

    threads = [threading.Thread(target=read) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# --- the raw SQL baseline ---------------------------------------------------------------------------

# Same table, same partial index (jobs_job_ready) as the engine's claim: SKIP LOCKED batch, lease, then one
# completing UPDATE per batch fenced by the token; two commits per batch, as the REST path has.
_RAW_CLAIM = """
    WITH c AS (
        SELECT id FROM jobs_job WHERE queue_id = %s AND state = 'waiting'
        ORDER BY priority DESC, run_at, id LIMIT %s FOR UPDATE SKIP LOCKED
    )
    UPDATE jobs_job j SET state = 'active', attempts = j.attempts + 1, lease_token = md5(random()::text),
        lease_expires_at = now() + interval '5 minutes', started_at = now(), updated_at = now()
    FROM c WHERE j.id = c.id RETURNING j.id, j.lease_token
"""
_RAW_COMPLETE = """
    UPDATE jobs_job j SET state = 'completed', finished_at = now(), lease_token = NULL, lease_expires_at = NULL,
        updated_at = now()
    FROM unnest(%s::text[], %s::text[]) AS d(id, token)
    WHERE j.id = d.id AND j.lease_token = d.token AND j.state = 'active'
"""


def _raw_loop(bench_url: str, queue_id: str, target: int | None = None) -> tuple[int, float]:
    """The raw loop's jobs and seconds, until the queue is empty or (about) `target` jobs are done."""
    import psycopg

    counts = [0] * WORKERS
    barrier = threading.Barrier(WORKERS + 1)

    def loop(index: int) -> None:
        with psycopg.connect(bench_url) as conn:
            barrier.wait()
            while target is None or sum(counts) < target:
                with conn.transaction():
                    rows = conn.execute(_RAW_CLAIM, (queue_id, BATCH)).fetchall()
                if not rows:
                    return
                with conn.transaction():
                    conn.execute(_RAW_COMPLETE, ([r[0] for r in rows], [r[1] for r in rows]))
                counts[index] += len(rows)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.monotonic()
    for t in threads:
        t.join()
    return sum(counts), time.monotonic() - started


# --- the servers -----------------------------------------------------------------------------------


def _start_server(kind: str, env: dict[str, str]) -> subprocess.Popen:
    sys.path.insert(0, str(ROOT))
    from bench import servers

    (ROOT / "var").mkdir(exist_ok=True)
    proc, port = servers.start(kind, env=env, log=ROOT / "var" / f"bench-pull-{kind}.log")
    proc.port = port  # type: ignore[attr-defined]
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- entry points -----------------------------------------------------------------------------------


def _result(name: str, value: float, unit: str, goal: str, baseline: tuple[str, float] | None = None) -> dict:
    return {
        "name": name,
        "value": round(value, 1),
        "unit": unit,
        "baseline": {"name": baseline[0], "value": round(baseline[1], 1)} if baseline else None,
        "ratio": round(value / baseline[1], 3) if baseline and baseline[1] else None,
        "goal": goal,
    }


def prepare(env: dict[str, str], jobs_batch: int, jobs_single: int, jobs_raw: int) -> dict:
    """Migrate the bench database and fill it (`_setup`, in a subprocess): its key, queues and counts."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v0"], env=env, cwd=str(ROOT), check=True
    )
    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--setup",
            str(jobs_batch),
            str(jobs_single),
            str(jobs_raw),
        ],
        env=env,
        cwd=str(ROOT),
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(size: int = DEFAULT_SIZE) -> list[dict]:
    """Measure pull throughput with `size` jobs for the batch runs; returns PERF.md result objects."""
    size = max(int(size), 1000)
    single = max(500, min(size // 4, 5000))
    base = _base_url()
    bench_url = _with_db(base, BENCH_DB)
    env = _env(bench_url)
    _recreate_db(base)
    measured: dict[str, tuple[tuple[int, float], tuple[int, float]]] = {}
    try:
        setup = prepare(env, size, single, 2 * size)
        # The baseline's own run lasts about a second, and one run moved by a quarter between group runs: the
        # faster of two (each on vacuumed tables) is the baseline, the stricter one for the ratio.
        _vacuum(bench_url)
        first = _raw_loop(bench_url, setup["raw_queue"], target=size)
        _vacuum(bench_url)
        second = _raw_loop(bench_url, setup["raw_queue"])
        raw_done, raw_s = max(first, second, key=lambda run: run[0] / run[1])
        raw_rate = raw_done / raw_s
        for kind, suffix in (("one_port", ""), ("direct", "-direct")):
            # Each server starts on vacuumed tables: else the first one measured shares its run with autovacuum
            # cleaning up after the raw loop (and the second one with the first one's dead rows).
            _vacuum(bench_url)
            server = _start_server(kind, env)
            try:
                port = server.port  # type: ignore[attr-defined]
                _warm(port, setup["key"], f"bench-batch{suffix}")
                batch_run = _run_workers(port, setup["key"], f"bench-batch{suffix}", BATCH, env)
                single_run = _run_workers(port, setup["key"], f"bench-single{suffix}", 1, env, SINGLE_SECONDS)
            finally:
                _stop(server)
            measured[kind] = (batch_run, single_run)
    finally:
        _drop_db(base)
    for kind, ((batch_done, batch_s), (single_done, single_s)) in measured.items():
        if batch_done != size or single_done > single or first[0] + second[0] != 2 * size:
            raise RuntimeError(
                f"pull bench lost jobs ({kind}): batch {batch_done}/{size}, single {single_done}/{single}, "
                f"raw {first[0] + second[0]}/{2 * size}"
            )
        print(
            f"pull ({kind}): raw {raw_done} in {raw_s:.2f} s (the faster of {first[0] / first[1]:.0f} and "
            f"{second[0] / second[1]:.0f} jobs/s); REST batch {batch_done} in {batch_s:.2f} s; "
            f"REST single {single_done} in {single_s:.2f} s",
            file=sys.stderr,
        )
    results = []
    for kind, suffix in (("one_port", ""), ("direct", "_direct")):
        (batch_done, batch_s), (single_done, single_s) = measured[kind]
        label = "one port, make run's web" if kind == "one_port" else "gunicorn direct"
        results += [
            _result(
                f"pull_batch{suffix}_jobs_per_s",
                batch_done / batch_s,
                "jobs/s",
                f">= 0.3x raw SQL claim+complete (batch 100, 4 connections; {label})",
                baseline=("raw_sql_claim_complete_batch100_4conn_jobs_per_s", raw_rate),
            ),
            _result(
                f"pull_single{suffix}_jobs_per_s",
                single_done / single_s,
                "jobs/s",
                f">= 600 jobs/s (4 workers, claim 1 + complete 1 each; {label})",
            ),
        ]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    parser.add_argument("--setup", nargs=3, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:
        _setup(*args.setup)
    elif args.worker:
        port, key, queue, batch, seconds = args.worker
        _worker(int(port), key, queue, int(batch), float(seconds))
    else:
        print(json.dumps(run(args.size), indent=2))


if __name__ == "__main__":
    main()
