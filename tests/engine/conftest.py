"""Engine fixtures: queues and jobs made directly (the enqueue service is another part's)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from queues.models import Queue
from tests.factories import QueueFactory, insert_jobs


@pytest.fixture
def make_queue(workspace):
    """Queues of the test's workspace: push ones without an endpoint unless a test says otherwise."""

    def make(name: str = "q", **fields) -> Queue:
        return QueueFactory(workspace=workspace, name=name, **{"delivery": "push", **fields})

    return make


@pytest.fixture
def make_jobs():
    return insert_jobs


def past(ms: int = 1000):
    return timezone.now() - timedelta(milliseconds=ms)
