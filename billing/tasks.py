"""Billing's periodic tasks: thin, idempotent, calling one service each."""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task

from .services import retention_apply


@shared_task(name="billing.apply_retention", ignore_result=True)
def apply_retention() -> dict[str, int]:
    """Hourly (settings.CELERY_BEAT_SCHEDULE): delete what each plan no longer keeps, in bounded batches."""
    return asdict(retention_apply())
