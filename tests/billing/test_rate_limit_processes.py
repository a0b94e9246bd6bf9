"""The per-workspace limit holds across web processes: they share the counter in Redis."""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from accounts.services import workspace_create
from tests.billing.test_rate_limits import fresh_window

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    db = settings.DATABASES["default"]  # the test database, as pytest-django renamed it
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _get(url: str, key: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def two_web_processes():
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql" or not os.environ.get(
        "CACHE_URL"
    ):
        pytest.skip("needs PostgreSQL and a Redis cache shared by the processes")
    env = {**os.environ, "DATABASE_URL": _database_url(), "CONN_MAX_AGE": "0"}
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    procs, bases = [], []
    try:
        for _ in range(2):
            port = _free_port()
            procs.append(
                subprocess.Popen(
                    [
                        gunicorn,
                        "config.wsgi:application",
                        "-b",
                        f"127.0.0.1:{port}",
                        "-w",
                        "1",
                        "--threads",
                        "2",
                        "--log-level",
                        "warning",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
            bases.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        for proc, base in zip(procs, bases, strict=True):
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"web process died: {proc.stderr.read().decode()[-2000:]}")
                try:
                    urllib.request.urlopen(f"{base}/v1/health", timeout=2).close()
                    break
                except urllib.error.HTTPError:
                    break  # it answers: degraded health is fine here
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail("web process did not start")
                    time.sleep(0.2)
        yield bases
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_burst_across_two_processes_gets_exactly_the_plan_rate(plans, two_web_processes):
    workspace, issued = workspace_create(name="burst", plan_code="free")
    fresh_window(workspace.id, needed_s=15)
    codes = [_get(f"{two_web_processes[i % 2]}/v1/auth/me", issued.raw) for i in range(90)]
    assert codes.count(200) == 60, codes
    assert codes.count(429) == 30, codes
    # Both processes served successes and refusals: the counter really is shared.
    assert {codes[i] for i in range(0, 90, 2)} == {200, 429}
    assert {codes[i] for i in range(1, 90, 2)} == {200, 429}
