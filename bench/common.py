"""What every bench group shares: the bench database and Django set-up, processes and ports, the result table,
the workspace and queue factories, the servers and the concurrent HTTP client (bench/run.py runs the groups)."""

from __future__ import annotations

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


def concurrent_requests(
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
