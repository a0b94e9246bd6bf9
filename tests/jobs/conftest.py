"""Fixtures for the jobs API tests: queues are made directly (the queues API is built separately)."""

from __future__ import annotations

import pytest

from queues.models import Queue
from tests.factories import QueueFactory, make_queue


@pytest.fixture
def queue(workspace) -> Queue:
    return make_queue(workspace, "emails")


@pytest.fixture
def other_queue(other_workspace_and_key) -> Queue:
    return make_queue(other_workspace_and_key[0], "emails")


@pytest.fixture
def push_queue_without_endpoint(workspace) -> Queue:
    return QueueFactory(workspace=workspace, name="hooks", delivery="push")
