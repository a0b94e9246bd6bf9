"""Broker routing of tasks: system tasks on `<default queue>-system`, deliveries on the default queue.

Plumbing (bottom layer): services send system tasks here without importing the Celery app, which is the
composition root (config/celery.py re-exports these names).
"""

from __future__ import annotations

from django.conf import settings


def system_queue() -> str:
    """The broker queue of system tasks: `<default queue>-system` (read per call: tests change the default)."""
    return f"{getattr(settings, 'CELERY_TASK_DEFAULT_QUEUE', None) or 'celery'}-system"


def route_task(name: str, args: object = None, kwargs: object = None, options: object = None, **kw: object):
    """CELERY_TASK_ROUTES: system tasks to system_queue(); deliveries (and anything else) to the default queue.

    An explicit `queue=` of the caller still wins (Celery merges the route under the call's options).
    """
    prefixes = tuple(getattr(settings, "SPINDLE_SYSTEM_TASK_PREFIXES", ()))
    if prefixes and name.startswith(prefixes):
        return {"queue": system_queue()}
    return None
