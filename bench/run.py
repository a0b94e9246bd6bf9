"""Spindle benchmarks: `make bench` (or `python bench/run.py [--only GROUP] [--size F]`).

Sets up its own database (`spindle_bench`, next to the one DATABASE_URL names), measures each metric beside
a baseline taken in the same run, prints a table and writes bench/results.json (format in PERF.md).
Groups: enqueue (batch and single), push, latency, noisy (bench/noisy.py), one_port (bench/one_port.py), delayed, list, pull (bench/pull.py), grpc (bench/grpc.py), schedules (bench/schedules.py), memory.
`--size` scales the data (0.1 for a quick run).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Overridable so two people benchmarking on one server do not share a database or a broker queue.
BENCH_DB = os.environ.get("SPINDLE_BENCH_DB", "spindle_bench")
SPINDLE_QUEUE = os.environ.get("SPINDLE_BENCH_QUEUE", "bench_spindle")
RESULTS: list[dict] = []


# --- setup ---------------------------------------------------------------------------------------------------


def bench_database_url() -> str:
    url = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/test"
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    import psycopg

    with psycopg.connect(admin.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone():
            conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def setup_django(db_url: str) -> None:
    os.environ["DATABASE_URL"] = db_url
    os.environ.setdefault("SECRET_KEY", "bench-only-not-secret")
    os.environ.setdefault("SPINDLE_ALLOW_PRIVATE_TARGETS", "1")
    os.environ["SPINDLE_CELERY_QUEUE"] = SPINDLE_QUEUE
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout_s: float = 20) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


class Procs:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, cmd: list[str], *, env: dict | None = None, log: str = "proc") -> subprocess.Popen:
        logf = open(ROOT / "var" / f"bench-{log}.log", "wb")
        p = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(p)
        return p

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                # The whole tree, not the group: bin/run-procfile starts each Procfile process in its own session.
                for pid in process_tree(p.pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                p.wait()
        self.procs.clear()


def process_tree(root: int) -> set[int]:
    """`root` and every live process below it, followed by parent pid."""
    table: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                table[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, grew = {root}, True
    while grew:
        found = {pid for pid, ppid in table.items() if ppid in tree} - tree
        tree |= found
        grew = bool(found)
    return tree


def wait_log(name: str, text: str, timeout_s: float = 30) -> None:
    path = ROOT / "var" / f"bench-{name}.log"
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(
        f"{name} not ready:\n" + (path.read_text(errors="replace")[-2000:] if path.exists() else "")
    )


def record(name: str, value: float, unit: str, goal: str, baseline: tuple[str, float] | None = None) -> None:
    ratio = round(value / baseline[1], 3) if baseline and baseline[1] else None
    RESULTS.append(
        {
            "name": name,
            "value": round(value, 3),
            "unit": unit,
            "baseline": {"name": baseline[0], "value": round(baseline[1], 3)} if baseline else None,
            "ratio": ratio,
            "goal": goal,
        }
    )


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def clean_slate() -> None:
    """Empty the bench database and the bench's Redis databases before each group.

    The bench database outlives runs, and a group's jobs can outlive it: the noisy group's 400 tarpit jobs stay
    leased when their tarpit closes, and the next worker's sweeper redelivers them (to a closed port, retrying),
    beside whatever the next group measures. So every group starts with no rows and no pending hints."""
    import redis
    from django.conf import settings
    from django.core.cache import cache
    from django.core.management import call_command

    call_command("flush", interactive=False, verbosity=0)
    cache.clear()
    if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    seed_history()


# Finished jobs (and their executions) each group starts with: a running service's tables have a history.
HISTORY_JOBS = 50_000


def seed_history() -> None:
    """HISTORY_JOBS completed jobs with one execution each, in a workspace of their own, then VACUUM (ANALYZE).

    A service that has run for a while has a history; an empty job table is the first minutes of a new deployment,
    where plans made on tables that then grow fast are stale for up to config.db.postgres.PLAN_MAX_AGE_S (the push
    row fell from 2,600 to 1,200-1,600 jobs/s on empty tables). Groups measure the service running, so they start
    from this history: the same rows every time, and statistics that say so."""
    from django.db import connection

    from config.ids import new_id

    ws, _key = make_workspace()
    q = make_queue(ws, "history", delivery="pull")
    head = new_id("job")[:14]
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO jobs_job (id, workspace_id, queue_id, payload, tags, state, priority, run_at, attempts,
                max_attempts, deferrals, wait_for_children, ignore_child_failures, cancel_requested,
                created_at, updated_at, finished_at)
            SELECT %s || lpad(to_hex(g), 16, '0'), %s, %s, jsonb_build_object('n', g), '[]'::jsonb, 'completed', 0,
                   now(), 1, 4, 0, false, false, false, now(), now(), now()
            FROM generate_series(1, %s) AS g
            """,
            [head, ws.id, q.id, HISTORY_JOBS],
        )
        cur.execute(
            """
            INSERT INTO jobs_execution (id, workspace_id, job_id, queue_id, attempt, status, started_at,
                completed_at, duration_ms)
            SELECT 'exe_' || substr(id, 5), workspace_id, id, queue_id, 1, 'success', now(), now(), 1
            FROM jobs_job WHERE queue_id = %s
            """,
            [q.id],
        )
    vacuum_jobs_tables()


def vacuum_jobs_tables() -> None:
    """VACUUM (ANALYZE) the engine's hot tables. Runs are compared with each other, and a server with autovacuum
    off (or slow to start) would otherwise carry every earlier run's dead rows into the next measurement."""
    from django.db import connection

    with connection.cursor() as cur:
        for table in ("jobs_job", "jobs_execution", "jobs_event", "jobs_queueminutestat"):
            cur.execute(f"VACUUM (ANALYZE) {table}")


def make_workspace(plan: str = "team"):
    from accounts.models import Plan
    from accounts.plans import seed_default_plans
    from accounts.services import workspace_create

    seed_default_plans(Plan)
    ws, key = workspace_create(name=f"bench-{int(time.time())}", plan_code=plan)
    # Benchmarks must not be throttled by the plan's monthly quota or request rate.
    Plan.objects.filter(code=plan).update(**{f: 10**9 for f in _plan_limit_fields()})
    return ws, key.raw


def _plan_limit_fields() -> list[str]:
    from accounts.models import Plan

    names = {f.name for f in Plan._meta.get_fields()}
    return [
        n for n in ("jobs_per_month", "requests_per_minute", "monthly_jobs", "rate_per_minute") if n in names
    ]


def make_queue(ws, name: str, **fields):
    import base64

    from queues.models import Queue

    fields.setdefault("signing_secret", "whsec_" + base64.b64encode(os.urandom(24)).decode())
    return Queue.objects.create(workspace=ws, name=name, **fields)


class Http:
    """A keep-alive HTTP/1.1 client (one connection), for sequential REST timings."""

    def __init__(self, port: int, key: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def request(self, method: str, path: str, body: object | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers=self.headers)
        resp = self.conn.getresponse()
        return resp.status, resp.read()


def start_web(procs: Procs, *, settings_module: str = "config.settings") -> int:
    """gunicorn as the Procfile runs it (2 workers x 4 threads). `bench.settings` adds the bench-only ping route."""
    port = free_port()
    procs.start(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "config.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "2",
            "--threads",
            "4",
        ],
        env={"DJANGO_SETTINGS_MODULE": settings_module},
        log="web",
    )
    wait_port(port)
    return port


def start_server(procs: Procs, kind: str, *, settings_module: str = "config.settings") -> int:
    """bench/servers.py's `one_port` (the Procfile's web process, what users hit) or `direct` (gunicorn)."""
    from bench import servers

    port = free_port()
    proc = procs.start(
        servers.command(kind, port), env={"DJANGO_SETTINGS_MODULE": settings_module}, log=f"web-{kind}"
    )
    servers.wait_http(proc, port)
    return port


SINGLE_CLIENTS = 16


def _concurrent_requests(
    port: int,
    method: str,
    path: str,
    *,
    headers: dict[str, str],
    body: bytes | None,
    seconds: float,
    expect: int,
) -> tuple[float, list[float]]:
    """SINGLE_CLIENTS clients, each one keep-alive connection sending requests back to back for `seconds`.
    Returns (requests/s, latencies in ms)."""
    import aiohttp

    async def main() -> tuple[float, list[float]]:
        url = f"http://127.0.0.1:{port}{path}"
        latencies: list[float] = []
        connector = aiohttp.TCPConnector(limit=SINGLE_CLIENTS, force_close=False)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

            async def client(deadline: float, sink: list[float] | None) -> None:
                while time.perf_counter() < deadline:
                    t0 = time.perf_counter()
                    async with session.request(method, url, data=body) as r:
                        data = await r.read()
                        if r.status != expect:
                            raise RuntimeError(f"{method} {path} answered {r.status}: {data[:300]!r}")
                    if sink is not None:
                        sink.append((time.perf_counter() - t0) * 1000)

            # Warm-up: every connection open, every gunicorn thread past its first request.
            await asyncio.gather(*(client(time.perf_counter() + 1.0, None) for _ in range(SINGLE_CLIENTS)))
            t0 = time.perf_counter()
            deadline = t0 + seconds
            await asyncio.gather(*(client(deadline, latencies) for _ in range(SINGLE_CLIENTS)))
            return len(latencies) / (time.perf_counter() - t0), latencies

    return asyncio.run(main())


# --- groups --------------------------------------------------------------------------------------------------


def _batch_rest_rate(procs: Procs, kind: str, key: str, queue: str, body: dict, batches: int) -> float:
    port = start_server(procs, kind)
    client = Http(port, key)
    client.request("POST", f"/v1/queues/{queue}/jobs/batch", body)  # warm-up
    t0 = time.perf_counter()
    for _ in range(batches):
        status, out = client.request("POST", f"/v1/queues/{queue}/jobs/batch", body)
        if status != 201:
            raise RuntimeError(f"batch enqueue answered {status}: {out[:300]!r}")
    rate = batches * 1000 / (time.perf_counter() - t0)
    procs.stop_all()
    return rate


def bench_enqueue(size: float, procs: Procs) -> None:
    """Batch enqueue (1,000 jobs per request) through the one port and through gunicorn reached directly, beside
    a raw multi-row INSERT of the same rows from this process; then the single-job rows."""
    from django.db import connection

    ws, key = make_workspace()
    q = make_queue(ws, f"enq-{int(time.time())}", delivery="pull")
    batches = max(2, int(20 * size))
    body = {"jobs": [{"payload": {"n": i, "text": "x" * 64}, "tags": ["bench"]} for i in range(1000)]}
    rest = {
        kind: _batch_rest_rate(procs, kind, key, q.name, body, batches) for kind in ("one_port", "direct")
    }

    # Baseline: the same rows as one multi-row INSERT per 1,000, straight from this process.
    from config.ids import new_ids

    cols = (
        "id",
        "workspace_id",
        "queue_id",
        "payload",
        "tags",
        "state",
        "priority",
        "run_at",
        "attempts",
        "max_attempts",
        "deferrals",
        "wait_for_children",
        "ignore_child_failures",
        "cancel_requested",
        "created_at",
        "updated_at",
    )
    row_sql = "(%s,%s,%s,%s::jsonb,%s::jsonb,'waiting',0,now(),0,4,0,false,false,false,now(),now())"
    t0 = time.perf_counter()
    for _ in range(batches):
        params: list = []
        for i, jid in enumerate(new_ids("job", 1000)):
            params += [jid, ws.id, q.id, json.dumps({"n": i, "text": "x" * 64}), '["bench"]']
        with connection.cursor() as cur:
            cur.execute(
                f"INSERT INTO jobs_job ({', '.join(cols)}) VALUES " + ",".join([row_sql] * 1000), params
            )
    raw_rate = batches * 1000 / (time.perf_counter() - t0)
    for kind, suffix in (("one_port", ""), ("direct", "_direct")):
        record(
            f"batch_enqueue{suffix}_jobs_per_s",
            rest[kind],
            "jobs/s",
            f">= 1.0x raw multi-row INSERT ({SERVER_LABELS[kind]})",
            ("raw multi-row INSERT", raw_rate),
        )
    bench_single_enqueue(size, procs)


SERVER_LABELS = {"one_port": "one port, make run's web", "direct": "gunicorn direct"}


def bench_single_enqueue(size: float, procs: Procs) -> None:
    """One job per request, 16 concurrent clients, beside a DRF ping on the same server (bench-only route from
    bench/settings.py): through the one port users hit, then through gunicorn reached directly. The workspace's
    plan has a requests/minute limit (raised out of reach), so the per-workspace throttle is on the measured path
    as it is for a paying customer."""
    ws, key = make_workspace()
    q = make_queue(ws, f"single-{int(time.time())}", delivery="pull")
    seconds = max(3.0, 10.0 * size)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    body = json.dumps({"payload": {"text": "x" * 64}, "tags": ["bench"]}).encode()
    for kind, suffix in (("one_port", ""), ("direct", "_direct")):
        vacuum_jobs_tables()
        port = start_server(procs, kind, settings_module="bench.settings")
        ping_rate, _ = _concurrent_requests(
            port, "GET", "/bench/ping", headers={}, body=None, seconds=seconds, expect=200
        )
        rate, lat = _concurrent_requests(
            port, "POST", f"/v1/queues/{q.name}/jobs", headers=headers, body=body, seconds=seconds, expect=201
        )
        procs.stop_all()
        label = SERVER_LABELS[kind]
        record(
            f"single_enqueue{suffix}_jobs_per_s",
            rate,
            "jobs/s",
            f">= 0.5x DRF ping (16 clients, {label})",
            (f"DRF ping, {label}", ping_rate),
        )
        record(f"single_enqueue{suffix}_p50_ms", pct(lat, 50), "ms", f"informational (16 clients, {label})")
        record(f"single_enqueue{suffix}_p99_ms", pct(lat, 99), "ms", f"<= 40 ms (16 clients, {label})")


def _endpoint(procs: Procs) -> int:
    port = free_port()
    procs.start([sys.executable, str(ROOT / "bench/endpoint.py"), str(port)], log="endpoint")
    wait_port(port)
    return port


def _endpoint_stats(port: int) -> dict:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/stats")
    return json.loads(c.getresponse().read())


def _endpoint_reset(port: int) -> None:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/reset")
    c.getresponse().read()


def _wait_count(port: int, n: int, timeout_s: float) -> float:
    t0 = time.perf_counter()
    while _endpoint_stats(port)["count"] < n:
        if time.perf_counter() - t0 > timeout_s:
            raise RuntimeError(f"only {_endpoint_stats(port)['count']} of {n} deliveries arrived")
        time.sleep(0.02)
    return time.perf_counter()


def _spindle_worker(procs: Procs, *, concurrency: int = 2) -> subprocess.Popen:
    worker = procs.start(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-l",
            "info",
            "-c",
            str(concurrency),
            "-Q",
            f"{SPINDLE_QUEUE},{SPINDLE_QUEUE}-system",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"bench{time.time()}@%h",
        ],
        log="worker",
    )
    wait_log("worker", " ready.")
    return worker


def bench_push(size: float, procs: Procs) -> None:
    n = max(500, int(10000 * size))
    vacuum_jobs_tables()
    ep = _endpoint(procs)
    url = f"http://127.0.0.1:{ep}/hook"
    bodies = [json.dumps({"id": f"job_{i}", "queue": "q", "payload": {"n": i}}) for i in range(n)]

    # Baseline 1: a bare aiohttp client posting the same bodies, 100 in flight.
    async def bare() -> float:
        import aiohttp

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as s:
            sem = asyncio.Semaphore(100)

            async def one(b: str) -> None:
                async with sem, s.post(url, data=b, headers={"Content-Type": "application/json"}) as r:
                    await r.read()

            t0 = time.perf_counter()
            await asyncio.gather(*(one(b) for b in bodies))
            return n / (time.perf_counter() - t0)

    bare_rate = asyncio.run(bare())
    _endpoint_reset(ep)

    # Baseline 2: plain Celery, one task per job, pooled client, 2 worker processes.
    procs.start(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.plain_celery",
            "worker",
            "-l",
            "info",
            "-c",
            "2",
            "-Q",
            "plain_bench",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"plain{time.time()}@%h",
        ],
        log="plain",
    )
    wait_log("plain", " ready.")
    from bench.plain_celery import app as plain_app
    from bench.plain_celery import post as plain_post

    plain_app.connection_for_write().default_channel.client.delete("plain_bench")
    # Both sides are measured warm (imports done, pooled connections open): steady state, not start-up.
    for b in bodies[:50]:
        plain_post.delay(url, b)
    _wait_count(ep, 50, 120)
    _endpoint_reset(ep)
    m = max(300, n // 5)  # plain Celery is slow; a fifth of the jobs measures its rate well enough
    t0 = time.perf_counter()
    with plain_app.producer_or_acquire() as producer:
        for b in bodies[:m]:
            plain_post.apply_async(args=[url, b], producer=producer)
    celery_rate = m / (_wait_count(ep, m, 300) - t0)
    _endpoint_reset(ep)

    # Spindle: 2 worker processes (as before), then one worker as the Procfile runs it (`make run`'s layout).
    worker = _spindle_worker(procs)
    ws, _key = make_workspace()
    spindle_rate = _spindle_push_rate(ws, url, ep, n)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    _procfile_worker(procs, "push-worker")
    make_run_rate = _spindle_push_rate(ws, url, ep, n)
    record(
        "push_delivery_jobs_per_s",
        spindle_rate,
        "jobs/s",
        ">= 0.5x bare aiohttp client",
        ("bare aiohttp client", bare_rate),
    )
    record(
        "push_delivery_vs_celery",
        spindle_rate,
        "jobs/s",
        ">= 4x plain Celery",
        ("plain Celery, one task per job", celery_rate),
    )
    record(
        "push_delivery_make_run_jobs_per_s",
        make_run_rate,
        "jobs/s",
        "informational (one worker, threads x 4)",
        ("bare aiohttp client", bare_rate),
    )
    procs.stop_all()


def _spindle_push_rate(ws, url: str, ep: int, n: int) -> float:
    """Enqueue n jobs in batches of 1,000 (hints on commit) to a new push queue; jobs/s until all are delivered."""
    from jobs.services.enqueue import job_enqueue_batch
    from jobs.specs import JobSpec

    # Concurrency 200: two batches (SPINDLE_DELIVERY_BATCH, 100) in flight at once, at least.
    q = make_queue(
        ws,
        f"push-{time.time()}",
        delivery="push",
        concurrency=200,
        endpoint={"url": url, "timeout_ms": 30000},
    )
    job_enqueue_batch(workspace=ws, queue=q, specs=[JobSpec(payload={"warm": i}) for i in range(400)])
    _wait_count(ep, 400, 120)
    _endpoint_reset(ep)
    t0 = time.perf_counter()
    for start in range(0, n, 1000):
        job_enqueue_batch(
            workspace=ws,
            queue=q,
            specs=[JobSpec(payload={"n": i}) for i in range(start, min(n, start + 1000))],
        )
    return n / (_wait_count(ep, n, 600) - t0)


def bench_latency(size: float, procs: Procs) -> None:
    vacuum_jobs_tables()
    ep = _endpoint(procs)
    worker = _spindle_worker(procs)
    ws, _key = make_workspace()
    samples = max(50, int(300 * size))
    lat = _spindle_latencies(ws, ep, samples)
    # The same with one worker as the Procfile runs it (`make run`'s layout: thread pool, beat thread).
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    _procfile_worker(procs, "latency-worker")
    make_run_lat = _spindle_latencies(ws, ep, samples)

    # Baseline: Celery enqueue -> task start with a no-op-ish task (plain Celery posting to the endpoint).
    procs.start(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.plain_celery",
            "worker",
            "-l",
            "info",
            "-c",
            "2",
            "-Q",
            "plain_bench",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"plainlat{time.time()}@%h",
        ],
        log="plainlat",
    )
    wait_log("plainlat", " ready.")
    from bench.plain_celery import post as plain_post

    _endpoint_reset(ep)
    for _ in range(samples):
        plain_post.delay(f"http://127.0.0.1:{ep}/hook", json.dumps({"payload": {"t": time.time()}}))
        time.sleep(0.02)
    _wait_count(ep, samples, 60)
    base = _endpoint_stats(ep)["latencies_ms"]
    record(
        "push_latency_p50_ms",
        pct(lat, 50),
        "ms",
        "<= 1.5x Celery's",
        ("Celery enqueue -> start p50", pct(base, 50)),
    )
    record(
        "push_latency_p99_ms", pct(lat, 99), "ms", "<= 12 ms", ("Celery enqueue -> start p99", pct(base, 99))
    )
    record(
        "push_latency_make_run_p50_ms",
        pct(make_run_lat, 50),
        "ms",
        "informational (one worker, threads x 4)",
        ("Celery enqueue -> start p50", pct(base, 50)),
    )
    record(
        "push_latency_make_run_p99_ms",
        pct(make_run_lat, 99),
        "ms",
        "informational (one worker, threads x 4)",
        ("Celery enqueue -> start p99", pct(base, 99)),
    )
    procs.stop_all()


def _spindle_latencies(ws, ep: int, samples: int) -> list[float]:
    """Enqueue -> delivery start (ms) of `samples` jobs enqueued one at a time to a new push queue."""
    from jobs.services.enqueue import job_enqueue
    from jobs.specs import JobSpec

    q = make_queue(
        ws,
        f"lat-{time.time()}",
        delivery="push",
        concurrency=50,
        endpoint={"url": f"http://127.0.0.1:{ep}/hook", "timeout_ms": 30000},
    )
    for i in range(10):  # warm-up: pooled connections, worker imports
        job_enqueue(workspace=ws, queue=q, spec=JobSpec(payload={"warm": i}))
    _wait_count(ep, 10, 60)
    _endpoint_reset(ep)
    for _ in range(samples):
        # `t` is taken just before the enqueue transaction; delivery start is when the endpoint sees it.
        job_enqueue(workspace=ws, queue=q, spec=JobSpec(payload={"t": time.time()}))
        time.sleep(0.02)  # light load: one job at a time
    _wait_count(ep, samples, 60)
    lat = _endpoint_stats(ep)["latencies_ms"]
    _endpoint_reset(ep)
    return lat


def _procfile_worker(procs: Procs, log: str) -> None:
    """One worker as the Procfile runs it: beat in a worker thread, thread pool of 4."""
    procs.start(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--beat-thread",
            "-l",
            "info",
            "--pool",
            "threads",
            "--concurrency",
            "4",
            "-Q",
            f"{SPINDLE_QUEUE},{SPINDLE_QUEUE}-system",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"bench-{log}{time.time()}@%h",
        ],
        log=log,
    )
    wait_log(log, " ready.")


def _procfile_push_queue(procs: Procs, name: str, *, timeout_ms: int):
    """(endpoint port, workspace, push queue to it), with the endpoint and a Procfile-layout worker started."""
    vacuum_jobs_tables()
    ep = _endpoint(procs)
    _procfile_worker(procs, f"{name}-worker")
    ws, _key = make_workspace()
    q = make_queue(
        ws,
        f"{name}-{int(time.time())}",
        delivery="push",
        concurrency=50,
        endpoint={"url": f"http://127.0.0.1:{ep}/hook", "timeout_ms": timeout_ms},
    )
    return ep, ws, q


def bench_noisy(size: float, procs: Procs) -> None:
    """A third tenant's 20-job batches and 1-second schedule while two tenants' endpoints are 30 s tarpits,
    beside the same tenant alone (bench/noisy.py), on one worker as the Procfile runs it."""
    from bench import noisy
    from schedules import services as schedule_services

    ep, ws, q = _procfile_push_queue(procs, "noisy", timeout_ms=5000)
    n = max(3, int(10 * size))

    def count() -> int:
        return _endpoint_stats(ep)["count"]

    def reset() -> None:
        _endpoint_reset(ep)

    noisy.rounds(ws, q, 2, count=count, reset=reset)  # warm-up: imports, pooled connections
    alone = noisy.rounds(ws, q, n, count=count, reset=reset)

    def tarpit_queue(url: str):
        tenant, _ = make_workspace()
        return tenant, make_queue(
            tenant,
            "slow",
            delivery="push",
            concurrency=1000,
            lease_ms=noisy.TARPIT_TIMEOUT_MS + 10_000,
            endpoint={"url": url, "timeout_ms": noisy.TARPIT_TIMEOUT_MS},
        )

    sock = noisy.start_neighbours(tarpit_queue)
    try:
        schedule = schedule_services.schedule_create(
            workspace=ws, data={"name": "beat", "queue": q.name, "interval_ms": 1000, "job": {"payload": {}}}
        )
        t0 = time.perf_counter()
        crowded = noisy.rounds(ws, q, n, count=count, reset=reset)
        time.sleep(max(0.0, 12 - (time.perf_counter() - t0)))  # watch the schedule for at least ~10 ticks
        missed, planned = noisy.ticks_missed(schedule)
    finally:
        sock.close()
    record(
        "noisy_neighbour_jobs_per_s",
        crowded,
        "jobs/s",
        ">= 0.8x the same tenant alone",
        ("the same tenant alone", alone),
    )
    record("noisy_neighbour_ticks_missed", missed, "ticks", f"0 (of {planned} planned)")
    procs.stop_all()


def bench_delayed(size: float, procs: Procs) -> None:
    """Delay from a job's run_at to its delivery start (light load), with the worker and its beat thread as
    `make run` starts them."""
    from datetime import UTC, datetime, timedelta

    from jobs.services.enqueue import job_enqueue
    from jobs.specs import JobSpec

    ep, ws, q = _procfile_push_queue(procs, "delayed", timeout_ms=30000)
    job_enqueue(
        workspace=ws, queue=q, spec=JobSpec(payload={"warm": 1})
    )  # warm: worker imports, pooled client
    _wait_count(ep, 1, 60)
    _endpoint_reset(ep)
    samples = max(50, int(200 * size))
    delay = timedelta(milliseconds=1500)
    for i in range(samples):
        # Run times spread over many sweeper periods (one every 37 ms), each 1.5 s after its enqueue.
        run_at = datetime.now(UTC) + delay
        job_enqueue(
            workspace=ws, queue=q, spec=JobSpec(payload={"t": run_at.timestamp(), "i": i}, run_at=run_at)
        )
        time.sleep(0.037)
    _wait_count(ep, samples, 60)
    lat = _endpoint_stats(ep)["latencies_ms"]
    record("delayed_start_p50_ms", pct(lat, 50), "ms", "informational (run_at -> delivery start)")
    record("delayed_start_p99_ms", pct(lat, 99), "ms", "<= 1000 ms (run_at -> delivery start)")
    procs.stop_all()


def bench_list(size: float, procs: Procs) -> None:
    from django.db import connection

    rows = max(10000, int(1_000_000 * size))
    ws, key = make_workspace()
    q = make_queue(ws, f"list-{int(time.time())}", delivery="pull")
    # Bulk data straight in SQL (the list endpoints are what is measured, not the load). Ids have the real shape
    # (`job_` + the current millisecond in base32 + a 16-character sequence, as config.ids.new_ids makes them),
    # so they sort after every older job in the table, as a live queue's newest jobs do.
    from config.ids import new_id

    id_head = new_id("job")[:14]
    chunk = 200_000
    with connection.cursor() as cur:
        for start in range(0, rows, chunk):
            cur.execute(
                """
                INSERT INTO jobs_job (id, workspace_id, queue_id, payload, tags, state, priority, run_at, attempts,
                    max_attempts, deferrals, wait_for_children, ignore_child_failures, cancel_requested,
                    created_at, updated_at, finished_at)
                SELECT %s || lpad(to_hex(g), 16, '0'), %s, %s, jsonb_build_object('n', g),
                       jsonb_build_array('tag:' || (g %% 100)),
                       (ARRAY['waiting','completed','failed','delayed'])[1 + (g %% 4)], 0, now(), 0, 4, 0,
                       false, false, false, now(), now(),
                       CASE WHEN g %% 4 IN (1, 2) THEN now() END
                FROM generate_series(%s, %s) AS g
                """,
                [id_head, ws.id, q.id, start, min(rows, start + chunk) - 1],
            )
        # Steady state, not the minutes after a bulk load: vacuum now (visibility map, GIN pending lists,
        # statistics) instead of timing the list queries while autovacuum works through a million new rows.
        cur.execute("VACUUM (ANALYZE) jobs_job")
    port = start_web(procs)
    client = Http(port, key)
    n = max(50, int(300 * min(1.0, size * 3)))

    def timed(path: str) -> list[float]:
        client.request("GET", path)  # warm
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            status, body = client.request("GET", path)
            out.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise RuntimeError(f"{path} answered {status}: {body[:300]!r}")
        return out

    by_state = timed(f"/v1/queues/{q.name}/jobs?state=completed&limit=50")
    by_tag = timed(f"/v1/queues/{q.name}/jobs?tag=tag:7&limit=50")
    record("list_by_state_p50_ms", pct(by_state, 50), "ms", f"<= 15 ms ({rows} jobs)")
    record("list_by_state_p99_ms", pct(by_state, 99), "ms", f"<= 50 ms ({rows} jobs)")
    record("list_by_tag_p50_ms", pct(by_tag, 50), "ms", f"<= 15 ms ({rows} jobs)")
    record("list_by_tag_p99_ms", pct(by_tag, 99), "ms", f"<= 50 ms ({rows} jobs)")
    procs.stop_all()
    with connection.cursor() as cur:
        cur.execute("DELETE FROM jobs_job WHERE queue_id = %s", [q.id])
    vacuum_jobs_tables()


def bench_pull(size: float, procs: Procs) -> None:
    from bench import pull

    RESULTS.extend(pull.run(max(1000, int(pull.DEFAULT_SIZE * size))))


def bench_grpc(size: float, procs: Procs) -> None:
    from bench import grpc as grpc_bench

    RESULTS.extend(grpc_bench.run(max(1000, int(grpc_bench.DEFAULT_SIZE * size))))


def bench_one_port(size: float, procs: Procs) -> None:
    """Enqueue through `make run`'s one port (uvicorn config.front:app) beside gunicorn serving the same WSGI app
    directly, same processes x threads, alternating rounds (bench/one_port.py)."""
    import statistics

    from bench import one_port

    rates = one_port.measure(procs, seconds=max(3.0, 5.0 * size), rounds=3, processes=1, threads=8)
    record(
        "one_port_enqueue_jobs_per_s",
        statistics.median(rates["one_port"]),
        "jobs/s",
        ">= 0.9x the WSGI app reached directly (16 clients)",
        ("gunicorn direct, same processes x threads", statistics.median(rates["direct"])),
    )
    record(
        "one_port_cpu_ms_per_request",
        statistics.median(rates["one_port_cpu_ms"]),
        "ms",
        "server CPU per request (informational; a busy shared machine skews it less than throughput)",
        ("gunicorn direct, same processes x threads", statistics.median(rates["direct_cpu_ms"])),
    )


def bench_schedules(size: float, procs: Procs) -> None:
    from bench import schedules

    RESULTS.extend(schedules.run(max(100, int(schedules.DEFAULT_SIZE * size))))


def _rss_of_tree(root: int) -> tuple[float, int]:
    """Summed RSS (MB) and count of `root` and every live process below it (each Procfile process leads its own
    session and group, so the tree is followed by parent pid)."""
    tree = process_tree(root)
    total_kb, count = 0, 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
                    count += 1
        except (OSError, ValueError, IndexError):
            continue
    return total_kb / 1024, count


def bench_memory(size: float, procs: Procs) -> None:
    """Idle RSS of exactly what `make run` starts (bin/run-procfile with the Procfile: web, events, worker with
    embedded beat), on the embedded defaults (SQLite, filesystem broker, database cache) in a throw-away
    SPINDLE_VAR_DIR. Every process of the runner's tree is counted, the runner and the log prefixers included."""
    import shutil
    import tempfile

    var_dir = tempfile.mkdtemp(prefix="spindle-mem-")
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DATABASE_URL",
            "CELERY_BROKER_URL",
            "CACHE_URL",
            "SPINDLE_CELERY_QUEUE",
            "TEST_DB_NAME",
            "SECRET_KEY",
        )
    }
    port = free_port()
    env.update(
        {
            "SPINDLE_VAR_DIR": var_dir,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "PATH": f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}",
        }
    )
    try:
        for cmd in (["migrate", "--no-input", "-v0"], ["createcachetable"]):
            subprocess.run([sys.executable, "manage.py", *cmd], cwd=ROOT, env=env, check=True)
        # Not procs.start: that merges os.environ back, and with it the PostgreSQL/Redis URLs of the other groups.
        log = open(ROOT / "var" / "bench-mem-run.log", "wb")
        runner = subprocess.Popen(
            [str(ROOT / "bin" / "run-procfile"), "Procfile"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.procs.append(runner)
        wait_port(port, 60)
        time.sleep(15)  # idle: beat has ticked the sweeper and the ticker a few times, nothing else runs
        rss, count = _rss_of_tree(runner.pid)
        record("idle_rss_mb", rss, "MB", f"<= 300 MB ({count} processes of make run's Procfile)")
    finally:
        procs.stop_all()
        shutil.rmtree(var_dir, ignore_errors=True)


GROUPS = {
    "enqueue": bench_enqueue,
    "push": bench_push,
    "latency": bench_latency,
    "delayed": bench_delayed,
    "list": bench_list,
    "noisy": bench_noisy,
    "one_port": bench_one_port,
}
# Groups other parts contribute, when their files exist.
if (ROOT / "bench" / "pull.py").exists():
    GROUPS["pull"] = bench_pull
if (ROOT / "bench" / "grpc.py").exists():
    GROUPS["grpc"] = bench_grpc
if (ROOT / "bench" / "schedules.py").exists():
    GROUPS["schedules"] = bench_schedules
GROUPS["memory"] = bench_memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=sorted(GROUPS), help="run one group")
    parser.add_argument("--size", type=float, default=1.0, help="scale factor for the data (0.1 = quick run)")
    args = parser.parse_args()
    (ROOT / "var").mkdir(exist_ok=True)
    setup_django(bench_database_url())
    procs = Procs()
    groups = [args.only] if args.only else list(GROUPS)
    try:
        for g in groups:
            print(f"-- {g} ...", flush=True)
            started = time.perf_counter()
            try:
                clean_slate()
                GROUPS[g](args.size, procs)
            except Exception as exc:  # noqa: BLE001 - one broken group must not lose the others' results
                print(f"   {g} failed: {exc!r}", flush=True)
            finally:
                procs.stop_all()
            print(f"   {g} took {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        procs.stop_all()
    print()
    print(f"{'metric':32} {'value':>12} {'unit':8} {'baseline':36} {'ratio':>7}  goal")
    for r in RESULTS:
        b = r["baseline"]
        base = f"{b['name']} {b['value']}" if b else "—"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "—"
        print(f"{r['name']:32} {r['value']:>12} {r['unit']:8} {base[:36]:36} {ratio:>7}  {r['goal']}")
    out = ROOT / "bench" / "results.json"
    previous = []
    if args.only and out.exists():
        names = {r["name"] for r in RESULTS}
        previous = [r for r in json.loads(out.read_text()) if r["name"] not in names]
    out.write_text(json.dumps(previous + RESULTS, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
