"""Fixtures for the jobs API tests: queues are created directly (the queues API is built separately)."""

from __future__ import annotations

import pytest

from queues.models import Queue


@pytest.fixture
def queue(workspace):
    return Queue.objects.create(workspace=workspace, name="emails", delivery="pull", signing_secret="whsec_x")


@pytest.fixture
def other_queue(other_workspace_and_key):
    workspace = other_workspace_and_key[0]
    return Queue.objects.create(workspace=workspace, name="emails", delivery="pull", signing_secret="whsec_x")


@pytest.fixture
def push_queue_without_endpoint(workspace):
    return Queue.objects.create(workspace=workspace, name="hooks", delivery="push", signing_secret="whsec_x")
