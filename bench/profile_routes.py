"""Where one request of each single-job route spends its time: pyinstrument over N sequential requests through
Django's test client in this process (no HTTP server in the way), against the bench database.

    python bench/profile_routes.py [--requests 300] [--route enqueue] [--depth 14]

Routes: enqueue, get, claim, heartbeat, complete, fail. For each it prints the wall time per request, the SQL
statements and Redis round trips one request makes, and the top of the profile (the frames that took at least
2 % of the time); bench/PROFILES.md keeps these before and after each change. Reads DATABASE_URL and CACHE_URL
as `make bench` sets them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bench_database_url, make_queue, make_workspace, setup_django  # noqa: E402

ROUTES = ("enqueue", "get", "claim", "heartbeat", "complete", "fail")


def _requests(client, queue: str, n: int) -> dict[str, Callable[[], None]]:
    """One zero-argument callable per route, each making one request (claimed jobs prepared up front)."""

    def post(path: str, body: dict, expect: int = 200) -> dict:
        response = client.post(path, json.dumps(body), content_type="application/json")
        if response.status_code != expect:
            raise RuntimeError(f"{path}: {response.status_code} {response.content[:300]!r}")
        return response.json()

    base = f"/v1/queues/{queue}/jobs"
    job_id = post(base, {"payload": {"x": 1}}, 201)["id"]
    leased: dict[str, list[dict]] = {}

    def fill(count: int) -> None:
        for start in range(0, count, 1000):
            jobs = [{"payload": {"n": i}} for i in range(min(1000, count - start))]
            post(f"{base}/batch", {"jobs": jobs}, 201)

    def lease(route: str) -> None:
        fill(n + 5)
        leased[route] = []
        while len(leased[route]) < n + 5:
            got = post(f"{base}/claim", {"limit": 100, "lease_ms": 600_000})["data"]
            if not got:
                raise RuntimeError("nothing to claim: is the queue's concurrency capped?")
            leased[route] += got

    for route in ("heartbeat", "complete", "fail"):
        lease(route)
    fill(n + 5)  # ready for the claims

    def on_leased(route: str, action: str, body: dict) -> Callable[[], None]:
        jobs = leased[route]

        def call() -> None:
            job = jobs.pop() if action != "heartbeat" else jobs[0]
            post(f"{base}/{job['id']}/{action}", {"lease_token": job["lease_token"], **body})

        return call

    def claim() -> None:
        post(f"{base}/claim", {"limit": 1})

    return {
        "enqueue": lambda: post(base, {"payload": {"text": "x" * 64}, "tags": ["bench"]}, 201),
        "get": lambda: client.get(f"{base}/{job_id}"),
        "claim": claim,
        "heartbeat": on_leased("heartbeat", "heartbeat", {}),
        "complete": on_leased("complete", "complete", {"result": {"ok": True}}),
        "fail": on_leased("fail", "fail", {"error": {"message": "boom"}, "retry": False}),
    }


def _round_trips(call: Callable[[], None]) -> tuple[list[str], int]:
    """The SQL statements (BEGIN/COMMIT/savepoints left out) and the Redis round trips of one call."""
    import redis.connection
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    sent = [0]
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):  # noqa: ANN001 - redis-py's own signature
        sent[0] += 1
        return original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counting
    try:
        with CaptureQueriesContext(connection) as ctx:
            call()
    finally:
        redis.connection.AbstractConnection.send_packed_command = original
    skip = ("SAVEPOINT", "RELEASE SAVEPOINT", "BEGIN", "COMMIT", "ROLLBACK")
    sql = [" ".join(q["sql"].split())[:110] for q in ctx.captured_queries]
    return [s for s in sql if not s.startswith(skip)], sent[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--route", choices=ROUTES, action="append")
    parser.add_argument("--depth", type=int, default=14, help="profile lines kept per route")
    args = parser.parse_args()
    setup_django(bench_database_url())
    logging.getLogger("jobs").setLevel(logging.ERROR)  # the fail route dead-letters every job it profiles
    from django.test import Client
    from django.test.utils import setup_test_environment
    from pyinstrument import Profiler

    setup_test_environment()  # the test client's request/response plumbing, as a WSGI server would drive it
    ws, key = make_workspace()
    queue = make_queue(ws, f"profile-{int(time.time())}", delivery="pull", concurrency=1_000_000)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    calls = _requests(client, queue.name, args.requests + 2)
    for route in args.route or ROUTES:
        call = calls[route]
        call()  # warm: the key's last_used_at write, per-process caches
        sql, redis_trips = _round_trips(call)
        profiler = Profiler(interval=0.001)
        started = time.perf_counter()
        with profiler:
            for _ in range(args.requests):
                call()
        per_request = (time.perf_counter() - started) * 1000 / args.requests
        print(f"## {route}: {per_request:.2f} ms/request, {len(sql)} SQL, {redis_trips} Redis round trips")
        for statement in sql:
            print(f"    SQL {statement}")
        # Flat: the functions where the time was spent (self time, own code and libraries alike), biggest first.
        text = profiler.output_text(flat=True, time="percent_of_total", short_mode=True)
        kept = [line for line in text.splitlines() if line.strip()][: args.depth]
        print("\n".join(kept))
        print()


if __name__ == "__main__":
    main()
