"""The Celery app. Tasks carry hints only: PostgreSQL is the truth (DESIGN.md invariant 1)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("spindle")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
