"""The push groups of `make bench`: delivery throughput beside a bare aiohttp client and plain Celery, enqueue ->
delivery start beside Celery, and the worker as the Procfile runs it (bench/run.py runs them; bench/noisy.py
has the noisy-neighbour load)."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ROOT,
    SPINDLE_QUEUE,
    Procs,
    free_port,
    make_queue,
    make_workspace,
    pct,
    record,
    vacuum_jobs_tables,
    wait_log,
    wait_port,
)

SPINDLE_QUEUES = f"{SPINDLE_QUEUE},{SPINDLE_QUEUE}-system"


def _endpoint(procs: Procs) -> int:
    port = free_port()
    procs.start([sys.executable, str(ROOT / "bench/endpoint.py"), str(port)], log="endpoint")
    wait_port(port)
    return port


def endpoint_stats(port: int) -> dict:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/stats")
    return json.loads(c.getresponse().read())


def endpoint_reset(port: int) -> None:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/reset")
    c.getresponse().read()


def wait_count(port: int, n: int, timeout_s: float) -> float:
    t0 = time.perf_counter()
    while endpoint_stats(port)["count"] < n:
        if time.perf_counter() - t0 > timeout_s:
            raise RuntimeError(f"only {endpoint_stats(port)['count']} of {n} deliveries arrived")
        time.sleep(0.02)
    return time.perf_counter()


def _celery_worker(procs: Procs, app: str, queues: str, log: str, *options: str) -> subprocess.Popen:
    """A Celery worker of `app` on `queues`, started and ready (its log says so)."""
    worker = procs.start(
        [
            sys.executable,
            *("-m", "celery", "-A", app, "worker", "-l", "info", *options, "-Q", queues),
            *("--without-gossip", "--without-mingle", "-n", f"bench-{log}{time.time()}@%h"),
        ],
        log=log,
    )
    wait_log(log, " ready.")
    return worker


def _spindle_worker(procs: Procs, *, concurrency: int = 2) -> subprocess.Popen:
    return _celery_worker(procs, "config", SPINDLE_QUEUES, "worker", "-c", str(concurrency))


def _plain_celery_worker(procs: Procs, log: str) -> None:
    """The plain Celery baseline's worker: bench/plain_celery.py, 2 prefork processes, its own queue."""
    _celery_worker(procs, "bench.plain_celery", "plain_bench", log, "-c", "2")


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
    endpoint_reset(ep)

    # Baseline 2: plain Celery, one task per job, pooled client, 2 worker processes.
    _plain_celery_worker(procs, "plain")
    from bench.plain_celery import app as plain_app
    from bench.plain_celery import post as plain_post

    plain_app.connection_for_write().default_channel.client.delete("plain_bench")
    # Both sides are measured warm (imports done, pooled connections open): steady state, not start-up.
    for b in bodies[:50]:
        plain_post.delay(url, b)
    wait_count(ep, 50, 120)
    endpoint_reset(ep)
    m = max(300, n // 5)  # plain Celery is slow; a fifth of the jobs measures its rate well enough
    t0 = time.perf_counter()
    with plain_app.producer_or_acquire() as producer:
        for b in bodies[:m]:
            plain_post.apply_async(args=[url, b], producer=producer)
    celery_rate = m / (wait_count(ep, m, 300) - t0)
    endpoint_reset(ep)

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
    wait_count(ep, 400, 120)
    endpoint_reset(ep)
    t0 = time.perf_counter()
    for start in range(0, n, 1000):
        job_enqueue_batch(
            workspace=ws,
            queue=q,
            specs=[JobSpec(payload={"n": i}) for i in range(start, min(n, start + 1000))],
        )
    return n / (wait_count(ep, n, 600) - t0)


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
    _plain_celery_worker(procs, "plainlat")
    from bench.plain_celery import post as plain_post

    endpoint_reset(ep)
    for _ in range(samples):
        plain_post.delay(f"http://127.0.0.1:{ep}/hook", json.dumps({"payload": {"t": time.time()}}))
        time.sleep(0.02)
    wait_count(ep, samples, 60)
    base = endpoint_stats(ep)["latencies_ms"]
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
    wait_count(ep, 10, 60)
    endpoint_reset(ep)
    for _ in range(samples):
        # `t` is taken just before the enqueue transaction; delivery start is when the endpoint sees it.
        job_enqueue(workspace=ws, queue=q, spec=JobSpec(payload={"t": time.time()}))
        time.sleep(0.02)  # light load: one job at a time
    wait_count(ep, samples, 60)
    lat = endpoint_stats(ep)["latencies_ms"]
    endpoint_reset(ep)
    return lat


def _procfile_worker(procs: Procs, log: str) -> None:
    """One worker as the Procfile runs it: beat in a worker thread, thread pool of 4."""
    _celery_worker(
        procs, "config", SPINDLE_QUEUES, log, "--beat-thread", "--pool", "threads", "--concurrency", "4"
    )


def procfile_push_queue(procs: Procs, name: str, *, timeout_ms: int):
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

    ep, ws, q = procfile_push_queue(procs, "noisy", timeout_ms=5000)
    n = max(3, int(10 * size))

    def count() -> int:
        return endpoint_stats(ep)["count"]

    def reset() -> None:
        endpoint_reset(ep)

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
