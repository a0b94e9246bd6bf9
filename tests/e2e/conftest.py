"""End-to-end fixtures: a real Celery worker subprocess and a real loopback HTTP endpoint.

The worker runs against this session's test database and broker queue (`-Q`), so parallel sessions sharing a
Redis server never take each other's hints.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests import processes
from tests.endpoints import Endpoint, recording_endpoint

SESSION_QUEUE = f"e2e-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    with recording_endpoint() as ep:
        yield ep


@pytest.fixture
def start_worker(tmp_path, settings):
    """Start `celery -A config worker` (with beat running the sweeper) and wait until it is ready."""
    workers: list[processes.Process] = []
    # Hints sent by this test process go to the session's own broker queue too (jobs.services.dispatch).
    settings.CELERY_TASK_DEFAULT_QUEUE = SESSION_QUEUE

    def start(
        *, concurrency: int = 2, beat: bool = True, extra_env: dict[str, str] | None = None
    ) -> processes.Process:
        n = len(workers)
        env = processes.process_env(
            SPINDLE_TESTING="1",
            SPINDLE_ALLOW_PRIVATE_TARGETS="1",
            SPINDLE_SWEEP_INTERVAL_S="0.2",
            SPINDLE_MIN_LEASE_MS="100",
            SPINDLE_BACKOFF_SCALE="0.001",
            SPINDLE_CELERY_QUEUE=SESSION_QUEUE,
            **(extra_env or {}),
        )
        cmd = processes.celery_worker_cmd(
            queue=SESSION_QUEUE, node=f"{SESSION_QUEUE}-{n}", concurrency=concurrency,
            beat_dir=tmp_path / f"beat{n}" if beat else None,
        )  # fmt: skip
        worker = processes.Process(cmd, env=env, log=tmp_path / f"worker{n}.log")
        workers.append(worker)
        processes.wait_until(lambda: " ready." in worker.output(10**9), worker, what="celery worker")
        return worker

    yield start
    # Hard stop: a warm shutdown waits for beat and the pool; nothing here needs it (the broker only holds
    # hints, and the next test's database is clean).
    for worker in workers:
        worker.kill9()


def wait_for(predicate: Callable[[], Any], *, timeout_s: float = 20.0, interval_s: float = 0.05) -> Any:
    deadline = time.time() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)
