"""The Python client (clients/python) against a live server: `make run`'s web process on the test database.

The client is imported from its source folder, not installed (the suite installs nothing), and the CLI runs as
`python -m spindle_client.cli` with that folder on PYTHONPATH. The server sends its delivery hints to this
session's own broker queue, the one `start_worker` (tests/e2e) consumes, so push deliveries reach a real worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from spindle_client import Spindle

from accounts.services import workspace_create
from tests.client import CLIENT_SRC
from tests.e2e.conftest import SESSION_QUEUE, endpoint, start_worker  # noqa: F401  (shared fixtures)
from tests.events import servers

SERVER_ENV = {"SPINDLE_ALLOW_PRIVATE_TARGETS": "1", "SPINDLE_CELERY_QUEUE": SESSION_QUEUE}


@pytest.fixture(scope="module")
def base_url(django_db_setup: None) -> Iterator[str]:
    """One server per module (the test database exists once django_db_setup ran; each test makes a workspace)."""
    with servers.front_server(threads=4, **SERVER_ENV) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def api_key(plans: Any) -> str:
    _, key = workspace_create(name="client", plan_code="pro")
    return key.raw


@pytest.fixture
def spindle(base_url: str, api_key: str) -> Iterator[Spindle]:
    with Spindle(api_key, base_url=base_url) as client:
        yield client


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def cli_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "spindle_client.cli", *args]


def cli_env(base_url: str, api_key: str) -> dict[str, str]:
    pythonpath = os.pathsep.join(p for p in (str(CLIENT_SRC), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "SPINDLE_API_KEY": api_key, "SPINDLE_URL": base_url, "PYTHONPATH": pythonpath}


@pytest.fixture
def cli(base_url: str, api_key: str) -> Callable[..., CliResult]:
    """Run `spindle …` to the end (bounded) with the key and URL in its environment."""

    def run(*args: str, stdin: str | None = None) -> CliResult:
        done = subprocess.run(
            cli_cmd(*args),
            env=cli_env(base_url, api_key),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    return run
