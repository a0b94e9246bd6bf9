"""Spindle benchmarks: `make bench` (or `python bench/run.py [--only GROUP] [--size F]`).

Sets up its own database (`spindle_bench`, next to the one DATABASE_URL names), measures each metric beside
a baseline taken in the same run, prints a table and writes bench/results.json (format in PERF.md).
Groups: enqueue (batch and single), push, latency and noisy (bench/push.py, bench/noisy.py), one_port
(bench/one_port.py), delayed, list, pull (bench/pull.py), grpc (bench/grpc.py), schedules (bench/schedules.py),
memory. What the groups share is bench/common.py.
`--size` scales the data (0.1 for a quick run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    RESULTS,
    ROOT,
    Http,
    Procs,
    bench_database_url,
    clean_slate,
    concurrent_requests,
    free_port,
    make_queue,
    make_workspace,
    pct,
    process_tree,
    record,
    setup_django,
    start_server,
    start_web,
    vacuum_jobs_tables,
    wait_port,
)
from bench.push import (  # noqa: E402
    bench_latency,
    bench_noisy,
    bench_push,
    endpoint_reset,
    endpoint_stats,
    procfile_push_queue,
    wait_count,
)

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
        ping_rate, _ = concurrent_requests(
            port, "GET", "/bench/ping", headers={}, body=None, seconds=seconds, expect=200
        )
        rate, lat = concurrent_requests(
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


def bench_delayed(size: float, procs: Procs) -> None:
    """Delay from a job's run_at to its delivery start (light load), with the worker and its beat thread as
    `make run` starts them."""
    from datetime import UTC, datetime, timedelta

    from jobs.services.enqueue import job_enqueue
    from jobs.specs import JobSpec

    ep, ws, q = procfile_push_queue(procs, "delayed", timeout_ms=30000)
    job_enqueue(
        workspace=ws, queue=q, spec=JobSpec(payload={"warm": 1})
    )  # warm: worker imports, pooled client
    wait_count(ep, 1, 60)
    endpoint_reset(ep)
    samples = max(50, int(200 * size))
    delay = timedelta(milliseconds=1500)
    for i in range(samples):
        # Run times spread over many sweeper periods (one every 37 ms), each 1.5 s after its enqueue.
        run_at = datetime.now(UTC) + delay
        job_enqueue(
            workspace=ws, queue=q, spec=JobSpec(payload={"t": run_at.timestamp(), "i": i}, run_at=run_at)
        )
        time.sleep(0.037)
    wait_count(ep, samples, 60)
    lat = endpoint_stats(ep)["latencies_ms"]
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
