"""A stand-in for one `celery beat` + worker pair: runs the schedules.tick task body once a second.

Started twice by test_two_tickers.py against the test database (DATABASE_URL points at it).
Usage: python tests/schedules/ticker_loop.py SECONDS
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from schedules.tasks import tick  # noqa: E402


def main() -> None:
    deadline = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < deadline:
        started = time.monotonic()
        tick(window_ms=900)  # the task body, as a worker would run it
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


if __name__ == "__main__":
    main()
