"""Fixtures for the operations tests: the workspace's "emails" pull queue."""

from __future__ import annotations

import pytest

from queues.models import Queue
from tests.factories import make_queue


@pytest.fixture
def queue(workspace) -> Queue:
    return make_queue(workspace, "emails")
