"""The smoke run shared by the install and embedded-mode tests: `make run`'s steps and processes, then one job.

Each test builds its own environment (a fresh venv, or the embedded SQLite mode); the steps are the same:
`manage.py` commands, every process of the Procfile through bin/run-procfile, a push queue aimed at a
loopback endpoint, one job enqueued over REST that must complete there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from tests import processes
from tests.endpoints import Endpoint
from tests.events.servers import call

ROOT = processes.ROOT


def smoke_env(*, drop: set[str], **extra: str) -> dict[str, str]:
    """This environment without `drop`, for the project's own settings, private targets allowed."""
    env = {k: v for k, v in os.environ.items() if k not in drop | {"TEST_DB_NAME"}}
    env.update(
        SPINDLE_ALLOW_PRIVATE_TARGETS="1",
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def manage(python: str, env: dict[str, str], *args: str) -> str:
    """`python manage.py <args>` in the repository; its standard output."""
    return subprocess.check_output([python, "manage.py", *args], cwd=ROOT, env=env, timeout=120, text=True)


def demo_key(python: str, env: dict[str, str]) -> str:
    """The raw key `bootstrap_demo` prints for the demo workspace it creates."""
    return next(word for word in manage(python, env, "bootstrap_demo").split() if word.startswith("rt_ws_"))


def call_json(method: str, url: str, key: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    status, _, raw = call(method, url, key, body)
    return status, json.loads(raw or b"{}")


@dataclass
class Procfile:
    runner: processes.Process
    port: int
    grpc_port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def procfile_running(env: dict[str, str], log: Path) -> Iterator[Procfile]:
    """Every process of the Procfile through bin/run-procfile, once its web process answers /v1/health."""
    port, grpc_port = processes.free_port(), processes.free_port()
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "GRPC_PORT": str(grpc_port)}
    with processes.running([str(ROOT / "bin" / "run-procfile"), "Procfile"], env=env, log=log) as runner:
        health = f"http://127.0.0.1:{port}/v1/health"
        # A generous start budget: on a loaded machine a fresh venv compiles its imports on first start.
        ready = partial(processes.answers, health)
        processes.wait_until(ready, runner, what="web process /v1/health", timeout_s=90, interval_s=0.2)
        # The Procfile's `grpc` process (Spooled's gRPC API) listens on its own port.
        grpc_ready = partial(processes.accepts, grpc_port)
        processes.wait_until(grpc_ready, runner, what="grpc process", timeout_s=90, interval_s=0.2)
        yield Procfile(runner, port, grpc_port)


def push_job_completes(
    run: Procfile, key: str, endpoint: Endpoint, payload: dict[str, Any]
) -> dict[str, Any]:
    """A push queue aimed at `endpoint`, one job enqueued over REST: it completes there. The job as last read."""
    status, queue = call_json(
        "POST",
        f"{run.base}/v1/queues",
        key,
        {"name": "hooks", "delivery": "push", "endpoint": {"url": endpoint.url}},
    )
    assert status == 201, queue
    status, job = call_json("POST", f"{run.base}/v1/queues/hooks/jobs", key, {"payload": payload})
    assert status == 201, job
    current: dict[str, Any] = {}
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and run.runner.alive():
        _, current = call_json("GET", f"{run.base}/v1/queues/hooks/jobs/{job['id']}", key)
        if current.get("state") == "completed":
            break
        time.sleep(0.3)
    assert current.get("state") == "completed", f"{current}\n{run.runner.output()}"
    assert endpoint.requests and json.loads(endpoint.requests[0].body)["payload"] == payload
    return current


def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process on the machine."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        table[int(stat.parent.name)] = (int(fields[1]), fields[0])
    return table


def descendants(root: int) -> set[int]:
    """`root` and every process below it, followed by parent pid: each Procfile process leads its own session."""
    table = _process_table()
    tree, grew = {root}, True
    while grew:
        found = {pid for pid, (ppid, _) in table.items() if ppid in tree} - tree
        tree |= found
        grew = bool(found)
    return tree


def still_running(pids: set[int]) -> list[str]:
    """The processes of `pids` still running (zombies have exited), with their command lines."""
    table = _process_table()
    alive = []
    for pid in sorted(pids):
        if pid in table and table[pid][1] != "Z":
            try:
                cmdline = (
                    Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
            except OSError:
                continue  # exited just now
            alive.append(f"{pid} {cmdline}")
    return alive


def ctrl_c(runner: processes.Process, timeout_s: float = 20) -> tuple[float, list[str]]:
    """SIGINT to bin/run-procfile alone, as Ctrl-C reaches it (it forwards it and waits for its processes).

    Returns the seconds it took and which processes of its tree, taken just before the signal, still run.
    """
    tree = descendants(runner.pid)
    started = time.monotonic()
    runner.proc.send_signal(signal.SIGINT)
    try:
        runner.proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        pass
    stop_s = time.monotonic() - started
    return stop_s, still_running(tree)
