"""gRPC pull throughput (PERF.md `grpc_pull_jobs_per_s`): 4 workers on Spooled's ProcessJobs (claim + complete)
against `manage.py grpcserve`, beside REST pull single (bench/pull.py's one-at-a-time workers against gunicorn)
in the same run, on the same throw-away database.

Each gRPC worker keeps two `dequeue` requests (BATCH jobs each) in flight on one ProcessJobs stream and answers
every job with a `complete` at once, asking for more as the completions come back; the server settles what
arrived together in one batch (spooled/grpc/process.py). Goal: >= 3,000 jobs/s and >= 5x REST pull single.
The same clients then run against ProcessJobs served from memory (bench/grpc_floor.py, no database): the
transport's own cost per job, so the report shows how much of grpcserve's time is ours.

`run(size)` is called by bench/run.py (`make bench BENCH=grpc`). The workers start as `python -m bench.grpc
--worker ...` from the repository root: run as a script, this file's folder would come first on sys.path and
this module would shadow the `grpc` library.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import pull  # noqa: E402
from bench import servers as bench_servers  # noqa: E402

BATCH = int(os.environ.get("BENCH_GRPC_BATCH", "50"))
SERVER_THREADS = int(os.environ.get("BENCH_GRPC_THREADS", "4"))
QUEUE = "bench-batch"  # bench/pull.py's setup fills it; the REST batch run is not part of this group
DEFAULT_SIZE = 20_000


def _worker(address: str, key: str, seconds: float) -> None:
    """(Subprocess) ProcessJobs until the queue is empty or `seconds` passed; prints counts and times. An asyncio
    client (grpc.aio): one thread reads and writes the stream, as a production worker's event loop would."""
    import asyncio

    print(json.dumps(asyncio.run(_work(address, key, seconds))))


async def _work(address: str, key: str, seconds: float) -> dict:
    import grpc as grpc_lib

    from spooled.grpc import spooled_pb2 as pb
    from spooled.grpc import spooled_pb2_grpc as pb_grpc

    ask = pb.ProcessRequest(dequeue=pb.DequeueRequest(queue_name=QUEUE, worker_id="bench", batch_size=BATCH))
    async with grpc_lib.aio.insecure_channel(address) as channel:
        call = pb_grpc.QueueServiceStub(channel).ProcessJobs(metadata=[("x-api-key", key)])
        # Jobs each in-flight dequeue still owes (the server answers a short one with NO_JOBS after its jobs).
        owed: list[int] = [BATCH, BATCH]
        await call.write(ask)
        await call.write(ask)
        done = pending = 0
        draining = False
        started = time.time()
        while owed or pending:
            response = await call.read()
            if response is grpc_lib.aio.EOF:
                raise RuntimeError("the server ended the stream")
            kind = response.WhichOneof("response")
            served = False
            if kind == "job":
                pending += 1
                job = response.job
                complete = pb.CompleteRequest(job_id=job.id, worker_id="bench", lease_id=job.lease_id)
                await call.write(pb.ProcessRequest(complete=complete))
                owed[0] -= 1
                served = owed[0] == 0
            elif kind == "complete":
                pending -= 1
                done += 1
            elif kind == "error" and response.error.code == "NO_JOBS":
                served, draining = True, True
            else:
                raise RuntimeError(f"unexpected response: {response}")
            if served:
                owed.pop(0)
                if not draining and time.time() - started < seconds:
                    owed.append(BATCH)
                    await call.write(ask)
        await call.done_writing()
        return {"done": done, "start": started, "end": time.time()}


def _run_grpc_workers(address: str, key: str, env: dict[str, str], seconds: float) -> tuple[int, float]:
    return pull.worker_processes(
        ["-m", "bench.grpc", "--worker", address, key, str(seconds)], env, timeout_s=600
    )


def _start(argv: list[str], port: int, env: dict[str, str]) -> subprocess.Popen:
    """Start a gRPC server process and wait until it listens on `port`."""
    import socket

    proc = subprocess.Popen([sys.executable, *argv], env=env, cwd=str(ROOT))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[:2]} exited during start-up")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"{argv[:2]} did not listen within 60 s")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pg_backends_cpu_s(env: dict[str, str]) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend on the bench database (when PostgreSQL runs on this machine)."""
    import psycopg

    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        pids = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    cpu = {}
    for (pid,) in pids:
        try:
            cpu[pid] = _cpu_s(pid)
        except OSError:  # not on this machine, or gone
            pass
    return cpu


def _measure(server: subprocess.Popen, port: int, key: str, env: dict[str, str]) -> dict:
    """The 4 workers against `server` until its queue is empty: jobs, seconds, CPU ms per job of each side and
    of the PostgreSQL backends serving it."""
    server_cpu, pg_cpu = _cpu_s(server.pid), _pg_backends_cpu_s(env)
    workers_cpu = os.times().children_user + os.times().children_system
    done, elapsed = _run_grpc_workers(f"127.0.0.1:{port}", key, env, 300)
    server_cpu = _cpu_s(server.pid) - server_cpu
    workers_cpu = os.times().children_user + os.times().children_system - workers_cpu
    pg_cpu = sum(cpu - pg_cpu.get(pid, 0.0) for pid, cpu in _pg_backends_cpu_s(env).items())
    per_job = 1000 / max(done, 1)
    return {
        "done": done,
        "s": elapsed,
        "server_ms": server_cpu * per_job,
        "client_ms": workers_cpu * per_job,
        "pg_ms": pg_cpu * per_job,
    }


def _serve_and_measure(argv: list[str], key: str, env: dict[str, str]) -> dict:
    port = bench_servers.free_port()
    server = _start([*argv, "--port", str(port)], port, env)
    try:
        return _measure(server, port, key, env)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _rest_single(size: int, env: dict[str, str]) -> tuple[str, float]:
    """Migrate and fill the bench database (prints nothing); the key and REST pull single's jobs/s."""
    single = max(500, min(size // 4, 5000))
    key = pull.prepare(env, size, single, 0)["key"]
    # REST pull single through the one port make run serves (the pull group's headline row).
    server = pull._start_server("one_port", env)
    try:
        port = server.port  # type: ignore[attr-defined]
        done, elapsed = pull._run_workers(port, key, "bench-single", 1, env, pull.SINGLE_SECONDS)
    finally:
        pull._stop(server)
    return key, done / elapsed


def run(size: int = DEFAULT_SIZE) -> list[dict]:
    size = max(int(size), 1000)
    base = pull._base_url()
    env = pull._env(pull._with_db(base, pull.BENCH_DB))
    pull._recreate_db(base)
    try:
        key, rest_rate = _rest_single(size, env)
        server = ["manage.py", "grpcserve", "--threads", str(SERVER_THREADS)]
        real = _serve_and_measure(server, key, env)
        # The same clients against ProcessJobs served from memory: what the transport alone costs here.
        floor = _serve_and_measure(["-m", "bench.grpc_floor", str(size)], key, env)
    finally:
        pull._drop_db(base)
    for name, got in (("grpcserve", real), ("floor", floor)):
        if got["done"] != size:
            raise RuntimeError(f"gRPC bench ({name}) lost jobs: {got['done']}/{size}")
        print(
            f"grpc {name}: {got['done']} jobs in {got['s']:.2f} s, CPU per job: server {got['server_ms']:.3f} ms, "
            f"4 clients {got['client_ms']:.3f} ms, PostgreSQL {got['pg_ms']:.3f} ms (load {os.getloadavg()[0]:.1f})",
            file=sys.stderr,
        )
    return _results(real, floor, rest_rate)


def _results(real: dict, floor: dict, rest_rate: float) -> list[dict]:
    cpu = "CPU per job (informational: what bounds the rate on a shared 2-core machine)"
    return [
        pull._result(
            "grpc_pull_jobs_per_s",
            real["done"] / real["s"],
            "jobs/s",
            f">= 3,000 jobs/s and >= 5x REST pull single ({pull.WORKERS} workers, ProcessJobs claim+complete)",
            baseline=("rest_pull_single_jobs_per_s (same run)", rest_rate),
        ),
        pull._result(
            "grpc_server_cpu_ms_per_job",
            real["server_ms"],
            "ms",
            f"grpcserve's {cpu}; the 4 clients used {real['client_ms']:.3f} ms/job, PostgreSQL's backends "
            f"{real['pg_ms']:.3f} ms/job",
        ),
        pull._result(
            "grpc_floor_jobs_per_s",
            floor["done"] / floor["s"],
            "jobs/s",
            "the same clients against ProcessJobs served from memory, no database (bench/grpc_floor.py): the "
            f"transport's ceiling here; {cpu}: server {floor['server_ms']:.3f} ms, clients {floor['client_ms']:.3f} ms",
        ),
        pull._result(
            "grpc_outside_ceiling_jobs_per_s",
            _outside_ceiling(real, floor),
            "jobs/s",
            "informational: the rate if grpcserve's own work cost nothing, i.e. the CPU of what is not our code "
            "(the transport, as the memory server spends it, the clients, PostgreSQL) spread over this machine's "
            f"{os.cpu_count()} cores; under 3,000 the goal is out of reach here whatever grpcserve does",
        ),
    ]


def _outside_ceiling(real: dict, floor: dict) -> float:
    """Jobs/s the machine's cores allow for the CPU per job that is not grpcserve's own: the transport (the memory
    server's CPU per job), the clients' and PostgreSQL's, as measured against the real server."""
    outside_ms = floor["server_ms"] + real["client_ms"] + real["pg_ms"]
    return (os.cpu_count() or 1) * 1000 / outside_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        address, key, seconds = args.worker
        _worker(address, key, float(seconds))
    else:
        print(json.dumps(run(args.size), indent=2))


if __name__ == "__main__":
    main()
