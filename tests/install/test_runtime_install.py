"""The runtime install (`pip install .`, no [dev] extra) is complete: `make run` works on Redis + PostgreSQL.

The dev venv hides missing runtime dependencies (pytest pulled in `packaging`, which kombu's Redis transport
imports, so a fresh install crashed the worker as soon as CELERY_BROKER_URL was redis://). This builds a fresh
venv from pyproject.toml alone, then runs `make run`'s steps and processes from it: migrate, bootstrap_demo and
every process of the Procfile through bin/run-procfile, against this session's test database and Redis (its
own broker queue name, so parallel sessions never take each other's hints). A job enqueued over REST must be
delivered to a loopback endpoint and complete.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.events.servers import call, free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the runtime dependencies declared in pyproject.toml."""
    base = tmp_path_factory.mktemp("runtime-install")
    # Only pyproject.toml: `packages = []`, so the build needs no sources and never writes into the tree
    # (the apps are imported from the repository root, the processes' working directory, as with `make run`).
    project = base / "project"
    project.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    venv = base / "venv"
    # No pip inside it (ensurepip costs seconds): this interpreter's pip installs into it (`--python`).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    # The normal registry and pip's cache; --no-compile skips byte-compiling all of Django up front.
    # About 15 s idle here, 30 s on a loaded machine.
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-compile",
            "--disable-pip-version-check",
            str(project),
        ],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return venv


def _database_url() -> str:
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _runtime_env(venv: Path) -> dict[str, str]:
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "run the suite with CELERY_BROKER_URL=redis://…"
    env = {k: v for k, v in os.environ.items() if k not in {"TEST_DB_NAME", "VIRTUAL_ENV", "PYTHONPATH"}}
    env.update(
        DATABASE_URL=_database_url(),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        SPINDLE_CELERY_QUEUE=f"install-{uuid.uuid4().hex[:10]}",
        SPINDLE_ALLOW_PRIVATE_TARGETS="1",
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONUNBUFFERED="1",
        # Nothing from the dev venv may leak in: the Procfile's commands resolve to the fresh venv.
        PATH=f"{venv / 'bin'}:{os.environ.get('PATH', '')}",
    )
    return env


def _call(method: str, url: str, key: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    status, _, raw = call(method, url, key, body)
    return status, json.loads(raw or b"{}")


class _Receiver(BaseHTTPRequestHandler):
    received: list[Any] = []

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        self.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "11")
        self.end_headers()
        self.wfile.write(b'{"ok":true}')

    def log_message(self, *args: Any) -> None:
        pass


def test_runtime_install_imports_every_module(runtime_venv: Path) -> None:
    # Lazily imported modules (tasks, management commands, the Redis transport) would only fail at run time.
    script = (
        "import importlib, os, pkgutil, django\n"
        "django.setup()\n"
        "import kombu.transport.redis, django.core.cache.backends.redis, config.wsgi, config.asgi\n"
        "from django.apps import apps\n"
        "ours = ['config'] + [a.name for a in apps.get_app_configs() if a.path.startswith(os.getcwd())]\n"
        "failed = []\n"
        "for app in ours:\n"
        "    for m in pkgutil.walk_packages(importlib.import_module(app).__path__, app + '.'):\n"
        "        try:\n"
        "            importlib.import_module(m.name)\n"
        "        except Exception as exc:\n"
        "            failed.append(f'{m.name}: {exc!r}')\n"
        "print('\\n'.join(failed) or f'ok {len(ours)}')\n"
    )
    result = subprocess.run(
        [str(runtime_venv / "bin" / "python"), "-c", script],
        cwd=ROOT,
        env=_runtime_env(runtime_venv),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.startswith("ok "), result.stdout + result.stderr[-3000:]


@pytest.mark.django_db(transaction=True)
def test_make_run_from_runtime_install_completes_a_job(runtime_venv: Path, plans, tmp_path: Path) -> None:
    env = _runtime_env(runtime_venv)
    python = str(runtime_venv / "bin" / "python")
    # `make run`'s steps, from the fresh venv (migrate is a no-op on the migrated test database).
    subprocess.run(
        [python, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True, timeout=60
    )
    out = subprocess.run(
        [python, "manage.py", "bootstrap_demo"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    key = next(word for word in out.split() if word.startswith("rt_ws_"))

    _Receiver.received = []
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    receiver.daemon_threads = True
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port = free_port()
    env.update(HOST="127.0.0.1", PORT=str(port))
    log_path = tmp_path / "procs.log"
    logs = open(log_path, "wb")
    runner = subprocess.Popen(
        [str(ROOT / "bin" / "run-procfile"), "Procfile"],
        cwd=ROOT,
        env=env,
        stdout=logs,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def output() -> str:
        return log_path.read_text(errors="replace")[-4000:]

    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and runner.poll() is None:
            try:
                status, _ = _call("GET", f"{base}/v1/health")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert status == 200, "web process did not answer /v1/health:\n" + output()

        status, queue = _call(
            "POST",
            f"{base}/v1/queues",
            key,
            {
                "name": "hooks",
                "delivery": "push",
                "endpoint": {"url": f"http://127.0.0.1:{receiver.server_port}/hook"},
            },
        )
        assert status == 201, queue
        status, job = _call("POST", f"{base}/v1/queues/hooks/jobs", key, {"payload": {"hello": "runtime"}})
        assert status == 201, job

        current: dict = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and runner.poll() is None:
            _, current = _call("GET", f"{base}/v1/queues/hooks/jobs/{job['id']}", key)
            if current.get("state") == "completed":
                break
            time.sleep(0.3)
        assert current.get("state") == "completed", f"{current}\n{output()}"
        assert _Receiver.received and _Receiver.received[0]["payload"] == {"hello": "runtime"}
        assert runner.poll() is None, "a process exited:\n" + output()
    finally:
        runner.send_signal(signal.SIGINT)
        try:
            runner.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        # Anything left of this runner's session (its own process group) goes too.
        try:
            os.killpg(runner.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        receiver.shutdown()
        receiver.server_close()
        logs.close()
