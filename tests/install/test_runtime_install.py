"""The runtime install (`pip install .`, no [dev] extra) is complete: `make run` works on Redis + PostgreSQL.

The dev venv hides missing runtime dependencies (pytest pulled in `packaging`, which kombu's Redis transport
imports, so a fresh install crashed the worker as soon as CELERY_BROKER_URL was redis://). This builds a fresh
venv from pyproject.toml alone, then runs `make run`'s steps and processes from it: migrate, bootstrap_demo and
every process of the Procfile through bin/run-procfile, against this session's test database and Redis (its
own broker queue name, so parallel sessions never take each other's hints). A job enqueued over REST must be
delivered to a loopback endpoint and complete.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from tests import smoke
from tests.endpoints import recording_endpoint
from tests.processes import ROOT, database_url

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


def _runtime_env(venv: Path) -> dict[str, str]:
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "run the suite with CELERY_BROKER_URL=redis://…"
    return smoke.smoke_env(
        drop={"VIRTUAL_ENV", "PYTHONPATH"},
        DATABASE_URL=database_url(),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        SPINDLE_CELERY_QUEUE=f"install-{uuid.uuid4().hex[:10]}",
        # Nothing from the dev venv may leak in: the Procfile's commands resolve to the fresh venv.
        PATH=f"{venv / 'bin'}:{os.environ.get('PATH', '')}",
    )


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
    smoke.manage(python, env, "migrate", "--no-input", "-v0")
    key = smoke.demo_key(python, env)
    with recording_endpoint() as endpoint, smoke.procfile_running(env, tmp_path / "procs.log") as run:
        smoke.push_job_completes(run, key, endpoint, {"hello": "runtime"})
        assert run.runner.alive(), "a process exited:\n" + run.runner.output()
