"""Issue 9 item 5: deliveries in flight are capped per queue and per workspace across the cluster."""

from __future__ import annotations

import pytest

from jobs.services.dispatch import delivery_slots_acquire, delivery_slots_release
from tests.factories import QueueFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def queues(workspace, other_workspace_and_key):
    def make(ws, name):
        return QueueFactory(workspace=ws, name=name, delivery="push")

    return make(workspace, "a1"), make(workspace, "a2"), make(other_workspace_and_key[0], "b1")


def test_slots_cap_queue_and_workspace(settings, queues):
    settings.SPINDLE_DELIVERY_TASKS_PER_QUEUE = 2
    settings.SPINDLE_DELIVERY_TASKS_PER_WORKSPACE = 3
    a1, a2, b1 = queues

    held = [delivery_slots_acquire(a1.id), delivery_slots_acquire(a1.id)]
    assert all(held)
    assert delivery_slots_acquire(a1.id) is None  # the queue's cap
    third = delivery_slots_acquire(a2.id)
    assert third
    assert delivery_slots_acquire(a2.id) is None  # the workspace's cap, though a2 has a free slot
    assert delivery_slots_acquire(b1.id)  # another tenant is not affected

    delivery_slots_release(held[0])
    assert delivery_slots_acquire(a2.id)
