"""The real processes some tests need (web servers, the Celery worker, Redis, helper scripts), started one way.

Every process starts in its own session (so its own process group): the whole group (gunicorn's workers,
Celery's pool and embedded beat, bin/run-procfile's children) is stopped together, TERM first, KILL after a
grace period, and reaped. Stopping happens on the way out of each starter, even when a KeyboardInterrupt
(Ctrl-C) arrives while waiting; anything still registered is killed at the end of the pytest session and at
interpreter exit, so no process outlives the run. Output goes to a log file, never to a pipe that could fill
up and block the process.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
_RUNNING: set[Process] = set()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The test database as pytest-django renamed it, for a subprocess's DATABASE_URL."""
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def require_postgres(reason: str = "needs PostgreSQL shared with a subprocess") -> None:
    if connection.vendor != "postgresql":
        pytest.skip(reason)


def process_env(**extra: str) -> dict[str, str]:
    """This environment pointed at the test database; connections are not kept, so the database can be dropped."""
    env = {**os.environ, "DATABASE_URL": database_url(), "CONN_MAX_AGE": "0", **extra}
    env.pop("TEST_DB_NAME", None)
    return env


class Process:
    """One started process group and its log."""

    def __init__(self, cmd: Sequence[str], *, env: dict[str, str], log: Path | None = None) -> None:
        if log is None:
            fd, name = tempfile.mkstemp(prefix="spindle-proc-", suffix=".log")
            os.close(fd)
            log = Path(name)
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                list(cmd), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        _RUNNING.add(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self, tail: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-tail:] if self.log.exists() else ""

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill9(self) -> None:
        """kill -9 the whole group at once (a crash, as the fault tests need it)."""
        self._signal_group(signal.SIGKILL)
        self.proc.wait(10)
        _RUNNING.discard(self)

    def stop(self, *, sig: int = signal.SIGTERM, grace_s: float = 10) -> None:
        """`sig` to the group, then SIGKILL to whatever is left of it (also when interrupted while waiting)."""
        try:
            if self.alive():
                self._signal_group(sig)
                self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
        finally:
            # The leader may have exited and left children behind: the group goes in every case.
            self.kill9()


def stop_all() -> None:
    """Kill every process a test started and did not stop (an interrupted teardown)."""
    for process in list(_RUNNING):
        process.kill9()


atexit.register(stop_all)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_termination() -> None:
    """SIGTERM and SIGHUP end the run as Ctrl-C does, so teardowns and `stop_all` still run.

    Their default action kills pytest alone: the process groups it started would be left running.
    """
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _interrupt)


@contextmanager
def running(cmd: Sequence[str], *, env: dict[str, str], log: Path | None = None) -> Iterator[Process]:
    process = Process(cmd, env=env, log=log)
    try:
        yield process
    finally:
        process.stop()


def wait_until(
    ready: Callable[[], bool], process: Process, *, what: str, timeout_s: float = 30, interval_s: float = 0.1
) -> None:
    """Poll `ready` until it holds; fail with the process's output if it exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if not process.alive():
            pytest.fail(f"{what}: the process exited:\n{process.output()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not ready in {timeout_s} s:\n{process.output()}")
        time.sleep(interval_s)


def answers(url: str, *, only_200: bool = True) -> bool:
    """Whether `url` answers (200 only, or any HTTP status: a degraded /v1/health is 503)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200 or not only_200
    except urllib.error.HTTPError:
        return not only_200
    except OSError:
        return False


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def gunicorn_cmd(bind: str, threads: int) -> list[str]:
    return [
        str(BIN / "gunicorn"), "config.wsgi", "--bind", bind, "--workers", "1", "--threads", str(threads),
        "--keep-alive", "30", "--graceful-timeout", "1", "--log-level", "warning",
    ]  # fmt: skip


def uvicorn_cmd(app: str, port: int, *options: str) -> list[str]:
    return [
        str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "--timeout-graceful-shutdown", "1", *options,
    ]  # fmt: skip


# As the Procfile's `web` line runs it.
FRONT_OPTIONS = (
    "--no-access-log", "--no-proxy-headers", "--no-server-header", "--no-date-header", "--timeout-keep-alive", "5",
)  # fmt: skip


@contextmanager
def gunicorn_server(env: dict[str, str], *, threads: int = 4, only_200: bool = True) -> Iterator[int]:
    """gunicorn alone on a TCP port (production without the front); yields the port once /v1/health answers."""
    port = free_port()
    with running(gunicorn_cmd(f"127.0.0.1:{port}", threads), env=env) as web:
        health = f"http://127.0.0.1:{port}/v1/health"
        wait_until(lambda: answers(health, only_200=only_200), web, what="gunicorn")
        yield port


@contextmanager
def front_server(env: dict[str, str], *, threads: int = 4) -> Iterator[int]:
    """`make run`'s web process: `uvicorn config.front:app` on a TCP port, the WSGI app on `threads` threads."""
    port = free_port()
    env = {**env, "SPINDLE_WSGI_THREADS": str(threads)}
    with running(uvicorn_cmd("config.front:app", port, *FRONT_OPTIONS), env=env) as front:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/v1/health"), front, what="front")
        yield port


@contextmanager
def asgi_server(env: dict[str, str], app: str = "config.asgi:application") -> Iterator[int]:
    """`uvicorn <app>` alone; yields the port once it accepts connections."""
    port = free_port()
    with running(uvicorn_cmd(app, port), env=env) as server:
        wait_until(lambda: accepts(port), server, what="uvicorn", timeout_s=20)
        yield port


def celery_worker_cmd(*, queue: str, node: str, concurrency: int, beat_dir: Path | None) -> list[str]:
    """`celery -A config worker` on the session's own broker queues, with beat (the sweeper) if `beat_dir`."""
    cmd = [
        sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "info", "-c", str(concurrency),
        "-P", "prefork", "-Q", f"{queue},{queue}-system", "-n", f"{node}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    if beat_dir is not None:
        cmd += ["-B", "-s", str(beat_dir), "--scheduler", "celery.beat:PersistentScheduler"]
    return cmd


def redis_server(port: int, workdir: Path) -> Process:
    """A private redis-server (no persistence) on `port`, answering PING."""
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = Process([*cmd, "--dir", str(workdir)], env=dict(os.environ), log=workdir / f"redis-{port}.log")
    ping = ["redis-cli", "-p", str(port), "ping"]
    wait_until(
        lambda: subprocess.run(ping, capture_output=True).returncode == 0, server, what="redis", timeout_s=10
    )
    return server
