"""Running test code in several threads at once, each with its own database connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection


def run_in_threads(
    target: Callable[[], object], count: int, *, timeout_s: float | None = 30
) -> list[BaseException]:
    """`target` in `count` threads started together; returns what they raised, for the test to assert on.

    Each thread closes its connection when done, so none is left open when the test database is dropped.
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_s)
    return errors


@dataclass
class Woken:
    waited: Any  # what the waiting call returned
    woke: Any  # what the waking call returned
    latency_s: float  # from the end of the waking call to the return of the waiting one
    waited_s: float  # how long the waiting call took


def wait_then_wake(wait: Callable[[], Any], wake: Callable[[], Any], *, after_s: float = 0.3) -> Woken:
    """`wait()` (a long poll) in a thread, `wake()` in this one `after_s` later: how soon the waiting call returned."""
    result: dict[str, Any] = {}

    def waiter() -> None:
        try:
            started = time.monotonic()
            result["waited"] = wait()
            result["returned_at"] = time.monotonic()
            result["waited_s"] = result["returned_at"] - started
        finally:
            connection.close()

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(after_s)
    woke = wake()
    woken_at = time.monotonic()
    thread.join(timeout=10)
    return Woken(result["waited"], woke, result["returned_at"] - woken_at, result["waited_s"])
