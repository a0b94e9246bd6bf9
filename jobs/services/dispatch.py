"""Broker hints after commit. (Stub: the engine fills this in.)"""

from __future__ import annotations

from collections.abc import Iterable


def kick_on_commit(queue_ids: Iterable[str]) -> None:
    """After the current transaction commits, tell workers these queues may have ready jobs."""
    return None
