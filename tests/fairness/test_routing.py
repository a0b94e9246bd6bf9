"""Issue 9 item 5: system tasks have their own broker queue, derived from the session's default queue, and
periodic ticks expire instead of piling up behind busy workers."""

from __future__ import annotations

from celery import current_app
from django.conf import settings

from config.routing import route_task, system_queue


def test_system_tasks_route_to_the_system_queue(settings):
    settings.CELERY_TASK_DEFAULT_QUEUE = "sess-1"
    for name in (
        "jobs.sweep",
        "schedules.tick",
        "alerts.dispatch_events",
        "alerts.send_due",
        "alerts.send_notification",
        "billing.apply_retention",
    ):
        assert route_task(name) == {"queue": "sess-1-system"}, name
    assert route_task("jobs.deliver_queue") is None  # deliveries: the default queue
    assert system_queue() == "sess-1-system"


def test_celery_app_uses_the_router():
    route = current_app.amqp.router.route({}, "schedules.tick")
    assert route["queue"].name == system_queue()
    explicit = current_app.amqp.router.route({"queue": "elsewhere"}, "schedules.tick")
    assert explicit["queue"].name == "elsewhere"


def test_every_beat_entry_expires_within_about_one_interval():
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        options = entry.get("options") or {}
        interval = float(entry["schedule"])
        assert 0 < options.get("expires", 0) <= max(1.0, interval), name
        assert 0 < options.get("expire_seconds", 0) <= max(1, round(interval)), name
