"""django-ratelimit counts in fixed windows; a burst that straddles a window's end starts counting again."""

import time

from django_ratelimit.core import _get_window


def fresh_window(value: str, *, period_s: int = 60, needed_s: int = 8) -> None:
    """Wait, if needed, until `needed_s` seconds of the window that counts `value` (workspace id, client
    address) are left, so a burst in a test is counted in one window."""
    left = _get_window(str(value), period_s) - time.time()
    if left < needed_s:
        time.sleep(max(0.0, left) + 1.1)
