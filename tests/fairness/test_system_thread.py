"""Issue 14 item 2: with the thread pool, deliver tasks never take the last thread; it stays free for the system
queue (sweeper, ticker), whatever the backlog of delivery hints."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from celery import current_app
from django.core.cache import cache

from jobs import tasks
from jobs.services.dispatch import kick_key


@pytest.fixture(autouse=True)
def _no_gate():
    yield
    tasks._delivery_gate, tasks._in_worker = None, False


def test_thread_pool_keeps_one_thread_for_system_tasks():
    tasks._on_worker_init(sender=SimpleNamespace(concurrency=4, pool_cls="threads"))
    gate = tasks._delivery_gate
    assert gate is not None
    assert [gate.acquire(blocking=False) for _ in range(4)] == [True, True, True, False]


def test_prefork_has_no_gate():
    tasks._on_worker_init(sender=SimpleNamespace(concurrency=4, pool_cls="prefork"))
    assert tasks._delivery_gate is None


def test_a_deliver_task_finding_every_delivery_thread_busy_hands_its_hint_back(settings):
    settings.CELERY_TASK_DEFAULT_QUEUE = f"gate-{uuid.uuid4().hex[:8]}"
    tasks._on_worker_init(sender=SimpleNamespace(concurrency=2, pool_cls="threads"))
    tasks._delivery_gate.acquire()
    client = current_app.connection_for_write().default_channel.client
    try:
        assert tasks.deliver_queue.run("q_1") == 0
        assert cache.get(kick_key("q_1")) == 1  # the hint went back to the broker, de-duplicated as usual
        assert client.llen(settings.CELERY_TASK_DEFAULT_QUEUE) == 1
    finally:
        client.delete(settings.CELERY_TASK_DEFAULT_QUEUE)
