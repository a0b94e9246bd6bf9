from __future__ import annotations

import pytest

from tests.factories import make_queue


@pytest.fixture
def pull_queue(workspace):
    return make_queue(workspace, "sync")


@pytest.fixture
def other_queue(other_workspace_and_key):
    return make_queue(other_workspace_and_key[0], "sync")
