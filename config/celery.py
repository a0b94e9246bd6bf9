"""The Celery app. Tasks carry hints only: PostgreSQL is the truth (DESIGN.md invariant 1)."""

from __future__ import annotations

import os

from celery import Celery, bootsteps
from click import Option
from kombu.transport import TRANSPORT_ALIASES

from config.routing import route_task, system_queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Celery's Django fixup runs Django's system checks when a worker starts, and the URL checks import every view,
# the schema generator and the metrics collector into a process that serves none of them (~12 MB, 240 modules of
# make run's worker). `manage.py migrate` and the web process's own start have checked the same code already.
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")
# The embedded broker (see config/broker.py), before any broker URL is parsed.
TRANSPORT_ALIASES.setdefault("spindlefs", "config.broker:Transport")

# Kept importable from here (older importers); CELERY_TASK_ROUTES names config.routing.
__all__ = ["app", "route_task", "system_queue"]


app = Celery("spindle")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class BeatThread(bootsteps.StartStopStep):
    """`worker --beat-thread`: the beat scheduler in a thread of the worker process.

    `-B` runs beat as a child process, a whole extra interpreter (~90 MB); with the thread pool of `make run`
    a thread does the same job. Production runs `celery beat` on its own, as usual.
    """

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, beat_thread: bool = False, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.enabled = bool(beat_thread)
        self.service = None

    def create(self, worker):
        from celery.beat import EmbeddedService

        self.service = EmbeddedService(worker.app, thread=True, scheduler_cls=worker.app.conf.beat_scheduler)
        return self

    def start(self, worker) -> None:
        self.service.start()

    def stop(self, worker) -> None:
        self.service.stop()


app.user_options["worker"].add(
    Option(["--beat-thread"], is_flag=True, default=False, help="Run the beat scheduler in a worker thread.")
)
app.steps["worker"].add(BeatThread)
