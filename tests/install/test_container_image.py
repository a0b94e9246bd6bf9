"""The Dockerfile and compose.yaml, built and run with Debian's podman.

No container registry is reachable here, so nothing can be pulled: the image's base is made from Debian's
packages (debootstrap of bookworm with Python 3.11 and venv, `podman import`) and given to `podman build --from`
in place of `python:3.11-slim-bookworm`; everything after FROM is the Dockerfile as users build it. The compose
file's `postgres` and `redis` services are registry images too, so the containers reach this machine's PostgreSQL
and Redis over the host network instead. `migrate`, `web` and `worker` each run the command compose.yaml gives
them, from the built image, as the image's non-root user, and one push job enqueued over REST must complete at
a loopback endpoint.

What this sandbox needs from podman, all host-specific flags rather than changes to the files under test: the
runc runtime (crun refuses the host's hybrid cgroup layout), ulimits no higher than the host's (no
CAP_SYS_RESOURCE), and the host's CA bundle mounted for pip during the build (outbound TLS is intercepted).
The base image stays in podman's storage between runs, so only the first run on a machine pays for debootstrap.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from tests import processes, smoke
from tests.endpoints import recording_endpoint

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BASE_IMAGE = "localhost/spindle-base:bookworm"
BASE_PACKAGES = "python3,python3-venv,python-is-python3,ca-certificates"
DEBIAN_MIRROR = os.environ.get("SPINDLE_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CA_BUNDLE = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")


def _podman(*args: str, timeout_s: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout_s)
    if check:
        assert result.returncode == 0, f"podman {' '.join(args[:3])}: {result.stderr[-3000:]}"
    return result


def _run_flags() -> list[str]:
    """Host network, runc, and ulimits no higher than this process's (which this sandbox may not raise)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return ["--network", "host", "--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=4096:4096"]


@pytest.fixture(scope="module")
def base_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Debian bookworm with Python 3.11 and venv, from Debian's packages (kept in podman's storage)."""
    assert shutil.which("podman") and shutil.which("runc") and shutil.which("debootstrap"), "make podman"
    if _podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return BASE_IMAGE
    rootfs = tmp_path_factory.mktemp("rootfs")
    subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={BASE_PACKAGES}",
            "bookworm",
            str(rootfs),
            DEBIAN_MIRROR,
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(["podman", "import", "-", BASE_IMAGE], stdin=tar.stdout, capture_output=True)
    tar.wait()
    assert imported.returncode == 0, imported.stderr[-2000:]
    return BASE_IMAGE


@pytest.fixture(scope="module")
def image(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Dockerfile built over the Debian base, from the checkout (its .dockerignore applies)."""
    tag = f"localhost/spindle-test:{uuid.uuid4().hex[:8]}"
    pip_conf = tmp_path_factory.mktemp("pip") / "pip.conf"
    pip_conf.write_text(f"[global]\ncert = {CA_BUNDLE}\n")
    _podman(
        "build", "--runtime", "runc", *_run_flags(), "--from", base_image,
        "-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro", "-v", f"{pip_conf}:/etc/pip.conf:ro",
        "-t", tag, str(processes.ROOT),
        timeout_s=900,
    )  # fmt: skip
    yield tag
    _podman("rmi", "-f", tag, check=False)


def _compose_command(service: str) -> list[str]:
    """The service's command in compose.yaml, `$$` (compose's escape) read as the `$` the shell sees."""
    command = yaml.safe_load((processes.ROOT / "compose.yaml").read_text())["services"][service]["command"]
    return [part.replace("$$", "$") for part in command]


class Container:
    """A detached container of the image; alive() and output() as tests.smoke expects of a runner."""

    def __init__(self, image: str, env: dict[str, str], command: list[str], name: str) -> None:
        self.name = name
        env_flags = [flag for key, value in env.items() for flag in ("-e", f"{key}={value}")]
        _podman("run", "-d", "--runtime", "runc", *_run_flags(), "--name", name, *env_flags, image, *command)

    def alive(self) -> bool:
        state = _podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return state.stdout.strip() == "true"

    def output(self, tail: int = 3000) -> str:
        logs = _podman("logs", self.name, check=False)
        return (logs.stdout + logs.stderr)[-tail:]

    def remove(self) -> None:
        _podman("rm", "-f", "-t", "5", self.name, check=False)


class _Run:
    """What smoke.push_job_completes needs: the web base URL and a runner to watch (the worker container)."""

    def __init__(self, runner: Container, port: int) -> None:
        self.runner, self.base = runner, f"http://127.0.0.1:{port}"


def test_the_image_runs_migrate_web_and_worker_as_compose_does(image: str, plans) -> None:
    port = processes.free_port()
    prefix = f"spindle-test-{uuid.uuid4().hex[:8]}"
    env = {
        "DATABASE_URL": processes.database_url(),
        "CONN_MAX_AGE": "0",  # the test database is dropped after the session
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CACHE_URL": os.environ["CACHE_URL"],
        "SPINDLE_CELERY_QUEUE": prefix,  # no other worker of the suite takes its hints
        "SECRET_KEY": "container-test-only-not-a-secret-long-enough-for-hs256",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "SPINDLE_ALLOW_PRIVATE_TARGETS": "1",
    }
    user = _podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
    assert user == "spindle"
    env_flags = [flag for key, value in env.items() for flag in ("-e", f"{key}={value}")]
    one_off = ["run", "--rm", "--runtime", "runc", *_run_flags(), *env_flags, image]
    _podman(*one_off, *_compose_command("migrate"), timeout_s=180)
    created = _podman(
        *one_off, "python", "manage.py", "create_workspace", "container", "--plan", "team"
    ).stdout
    key = next(line.split()[-1] for line in created.splitlines() if line.startswith("api key:"))

    containers: list[Container] = []
    try:
        web = Container(image, env, _compose_command("web"), f"{prefix}-web")
        containers.append(web)
        worker = Container(image, env, _compose_command("worker"), f"{prefix}-worker")
        containers.append(worker)
        deadline = time.monotonic() + 90
        while not processes.answers(f"http://127.0.0.1:{port}/v1/health") and time.monotonic() < deadline:
            assert web.alive(), web.output()
            time.sleep(0.3)
        assert processes.answers(f"http://127.0.0.1:{port}/v1/health"), web.output()
        uid = _podman("exec", web.name, "id", "-u").stdout.strip()
        assert uid != "0", "the web process runs as root"
        with recording_endpoint() as endpoint:
            smoke.push_job_completes(_Run(worker, port), key, endpoint, {"hello": "container"})
        assert web.alive() and worker.alive(), web.output() + worker.output()
    finally:
        for container in containers:
            container.remove()
