from __future__ import annotations

import pytest

from queues.services import queue_create


@pytest.fixture
def pull_queue(workspace):
    return queue_create(workspace=workspace, data={"name": "sync", "delivery": "pull"})[0]


@pytest.fixture
def other_queue(other_workspace_and_key):
    return queue_create(workspace=other_workspace_and_key[0], data={"name": "sync", "delivery": "pull"})[0]
