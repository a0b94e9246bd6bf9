"""The one port vs the WSGI application reached directly (PERF.md, `one_port_enqueue_jobs_per_s`).

Single-job enqueue, 16 keep-alive clients, on the same cores: `uvicorn config.front:app` (make run's `web`
process: bodies read on the event loop, then the WSGI app on a2wsgi's thread pool) beside gunicorn serving
`config.wsgi` directly, with the same processes x threads. Rounds alternate between the two so drift on a shared
machine hits both; the medians and their ratio are printed (goal >= 0.9x).

    python bench/one_port.py [--seconds 5] [--rounds 3] [--processes 1] [--threads 8]

It uses bench/common.py's database set-up and load generator; `make bench BENCH=one_port` runs it as a group.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ROOT,
    Procs,
    bench_database_url,
    concurrent_requests,
    free_port,
    make_queue,
    make_workspace,
    pct,
    setup_django,
    vacuum_jobs_tables,
    wait_port,
)

BIN = Path(sys.executable).parent


def start_one_port(procs: Procs, processes: int, threads: int) -> int:
    port = free_port()
    cmd = [
        str(BIN / "uvicorn"),
        "config.front:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--no-proxy-headers",
        "--no-server-header",
        "--no-date-header",
        "--log-level",
        "warning",
    ]
    if processes > 1:
        cmd += ["--workers", str(processes)]
    procs.start(cmd, env={"SPINDLE_WSGI_THREADS": str(threads)}, log="one-port")
    wait_port(port, 60)
    return port


def start_direct(procs: Procs, processes: int, threads: int) -> int:
    port = free_port()
    procs.start(
        [
            str(BIN / "gunicorn"),
            "config.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(processes),
            "--threads",
            str(threads),
            "--log-level",
            "warning",
        ],
        log="direct",
    )
    wait_port(port, 60)
    return port


def cpu_seconds_of_tree(root: int) -> float:
    """User + system CPU time of `root` and its descendants: a per-request cost that a busy machine skews less
    than wall-clock throughput does."""
    table: dict[int, tuple[int, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(stat.parent.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    tree, grew = {root}, True
    while grew:
        found = {pid for pid, (ppid, _) in table.items() if ppid in tree} - tree
        tree |= found
        grew = bool(found)
    return sum(table[pid][1] for pid in tree if pid in table)


def _enqueue_rate(port: int, key: str, queue: str, seconds: float) -> tuple[float, list[float]]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    body = json.dumps({"payload": {"text": "x" * 64}, "tags": ["bench"]}).encode()
    return concurrent_requests(
        port, "POST", f"/v1/queues/{queue}/jobs", headers=headers, body=body, seconds=seconds, expect=201
    )


def measure(
    procs: Procs, *, seconds: float, rounds: int, processes: int, threads: int
) -> dict[str, list[float]]:
    """Enqueue jobs/s and p99 per round for both servers, alternating which goes first."""
    ws, key = make_workspace()
    queue = make_queue(ws, "one-port", delivery="pull")
    rates: dict[str, list[float]] = {
        f"{name}{suffix}": [] for name in ("one_port", "direct") for suffix in ("", "_p99", "_cpu_ms")
    }
    starters = {"one_port": start_one_port, "direct": start_direct}
    for n in range(rounds):
        order = ["one_port", "direct"] if n % 2 == 0 else ["direct", "one_port"]
        for name in order:
            vacuum_jobs_tables()
            port = starters[name](procs, processes, threads)
            server = procs.procs[-1].pid
            try:
                cpu_before = cpu_seconds_of_tree(server)
                rate, latencies = _enqueue_rate(port, key, queue.name, seconds)
                # Warm-up included: concurrent_requests runs 1 s of it before the measured seconds.
                cpu_ms = (cpu_seconds_of_tree(server) - cpu_before) * 1000 / (rate * (seconds + 1))
            finally:
                procs.stop_all()
            rates[name].append(rate)
            rates[f"{name}_p99"].append(pct(latencies, 99))
            rates[f"{name}_cpu_ms"].append(cpu_ms)
            print(
                f"   round {n + 1} {name:8} {rate:7.0f} jobs/s  p99 {pct(latencies, 99):6.1f} ms  "
                f"server CPU {cpu_ms:.2f} ms/request",
                flush=True,
            )
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    (ROOT / "var").mkdir(exist_ok=True)
    setup_django(bench_database_url())
    procs = Procs()
    try:
        rates = measure(
            procs, seconds=args.seconds, rounds=args.rounds, processes=args.processes, threads=args.threads
        )
    finally:
        procs.stop_all()
    one_port, direct = statistics.median(rates["one_port"]), statistics.median(rates["direct"])
    print(f"{args.processes} process(es) x {args.threads} threads, 16 clients, median of {args.rounds}:")
    print(
        f"  one port (uvicorn config.front:app): {one_port:7.0f} jobs/s  p99 {statistics.median(rates['one_port_p99']):.1f} ms"
    )
    print(
        f"  WSGI app direct (gunicorn):          {direct:7.0f} jobs/s  p99 {statistics.median(rates['direct_p99']):.1f} ms"
    )
    print(f"  ratio: {one_port / direct:.2f}x (goal >= 0.9x)")
    cpu_one, cpu_direct = (
        statistics.median(rates["one_port_cpu_ms"]),
        statistics.median(rates["direct_cpu_ms"]),
    )
    print(
        f"  server CPU per request: one port {cpu_one:.2f} ms, direct {cpu_direct:.2f} ms "
        f"(throughput ratio on an idle machine ~ {cpu_direct / cpu_one:.2f}x)"
    )


if __name__ == "__main__":
    main()
